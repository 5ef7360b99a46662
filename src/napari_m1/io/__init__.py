"""Pure I/O: NIfTI files and case folders -> volumes and napari layer data (no Qt)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

# Public names, imported on first use (napari_m1._lazy): the CLI registers its
# commands without loading the package.
__getattr__, __dir__ = attach(
    __name__,
    {
        "._case": [
            "Case",
            "CaseFiles",
            "case_summary",
            "find_case_files",
            "is_case_folder",
            "load_case",
            "load_case_files",
        ],
        "._caseload": ["CaseLoad", "LoadEvent", "LoadingArray"],
        "._dicom": ["DicomScan", "DicomSeries", "is_dicom_folder", "scan_dicom"],
        "._dicom_case": ["choose_series", "load_dicom_case", "load_series", "series_table"],
        "._folder": ["is_openable_folder", "remember_echo_times", "remembered_copy"],
        "._layers": ["layer_metadata", "robust_limits", "volume_to_layer_data"],
        "._meta": ["METADATA_KEY", "LayerMeta"],
        "._nifti": ["KINDS", "Volume", "guess_kind", "is_nifti_path", "read_sidecar"],
        "._placement": ["place_on_reference"],
        "._read": ["load_multi_echo", "load_nifti", "rescale_phase"],
    },
)

if TYPE_CHECKING:
    from ._case import (
        Case,
        CaseFiles,
        case_summary,
        find_case_files,
        is_case_folder,
        load_case,
        load_case_files,
    )
    from ._caseload import CaseLoad, LoadEvent, LoadingArray
    from ._dicom import DicomScan, DicomSeries, is_dicom_folder, scan_dicom
    from ._dicom_case import choose_series, load_dicom_case, load_series, series_table
    from ._folder import is_openable_folder, remember_echo_times, remembered_copy
    from ._layers import layer_metadata, robust_limits, volume_to_layer_data
    from ._meta import METADATA_KEY, LayerMeta
    from ._nifti import KINDS, Volume, guess_kind, is_nifti_path, read_sidecar
    from ._placement import place_on_reference
    from ._read import load_multi_echo, load_nifti, rescale_phase

__all__ = [
    "KINDS",
    "METADATA_KEY",
    "Case",
    "CaseFiles",
    "CaseLoad",
    "DicomScan",
    "DicomSeries",
    "LayerMeta",
    "LoadEvent",
    "LoadingArray",
    "Volume",
    "case_summary",
    "choose_series",
    "find_case_files",
    "guess_kind",
    "is_case_folder",
    "is_dicom_folder",
    "is_nifti_path",
    "is_openable_folder",
    "layer_metadata",
    "load_case",
    "load_case_files",
    "load_dicom_case",
    "load_multi_echo",
    "load_nifti",
    "load_series",
    "place_on_reference",
    "read_sidecar",
    "remember_echo_times",
    "remembered_copy",
    "rescale_phase",
    "robust_limits",
    "scan_dicom",
    "series_table",
    "volume_to_layer_data",
]
