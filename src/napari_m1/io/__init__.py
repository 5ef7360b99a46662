"""Pure I/O: NIfTI files and case folders -> volumes and napari layer data (no Qt)."""

from ._case import (
    Case,
    CaseFiles,
    case_summary,
    find_case_files,
    is_case_folder,
    load_case,
    place_on_reference,
)
from ._layers import layer_metadata, robust_limits, volume_to_layer_data
from ._meta import METADATA_KEY, LayerMeta
from ._nifti import (
    KINDS,
    Volume,
    guess_kind,
    is_nifti_path,
    load_multi_echo,
    load_nifti,
    read_sidecar,
    rescale_phase,
)

__all__ = [
    "KINDS",
    "METADATA_KEY",
    "Case",
    "CaseFiles",
    "LayerMeta",
    "Volume",
    "case_summary",
    "find_case_files",
    "guess_kind",
    "is_case_folder",
    "is_nifti_path",
    "layer_metadata",
    "load_case",
    "load_multi_echo",
    "load_nifti",
    "place_on_reference",
    "read_sidecar",
    "rescale_phase",
    "robust_limits",
    "volume_to_layer_data",
]
