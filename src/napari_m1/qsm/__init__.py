"""Quantitative susceptibility mapping (QSM) from multi-echo GRE — pure numpy/scipy/skimage.

One public function per stage (QSM-CI contract: magnitude + phase + mask -> total field ->
local field -> chi, all fields in ppm):

- inputs: :func:`load_case_input`, :class:`QSMInput`, :func:`b0_direction`
- mask: :func:`brain_mask` (Otsu ∩ phase quality)
- phase offset and echo combination: :func:`mcpc3ds_offset`, :func:`combine_echoes`
- unwrapping: :func:`unwrap_path` (exact), :func:`unwrap_laplacian` (fast),
  :func:`template_unwrap`
- background removal: :func:`vsharp` (default), :func:`resharp`, :func:`pdf`
- dipole inversion: :func:`tkd`, :func:`tv_admm`, :func:`iswim` (SWIM-like, research)
- referencing: :func:`reference_mean` (default), :func:`reference_chi` with
  :func:`csf_mask` or a drawn region
- the whole chain: :func:`run_qsm` with :data:`PRESETS`; :func:`write_qsm_outputs`
- metrics: :func:`nrmse`, :func:`hfen`, :func:`xsim`, :func:`fraction_outside`,
  :func:`roi_fraction_outside`

No Qt, no napari (``napari_m1._qt.qsm_widget`` is the dock).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

# Public names, imported on first use (napari_m1._lazy): the CLI registers its
# commands without loading the package.
__getattr__, __dir__ = attach(
    __name__,
    {
        "._background": ["eroded_mask", "resharp", "vsharp", "vsharp_radii"],
        "._common": ["Cancelled"],
        "._dipole": ["tkd", "tv_admm"],
        "._fourier": ["dipole_kernel", "pad_shape"],
        "._inputs": [
            "QSMInput",
            "b0_direction",
            "input_from_arrays",
            "load_case_input",
            "voxel_size_mm",
        ],
        "._mask": ["brain_mask", "fill_holes", "phase_quality"],
        "._metrics": ["fraction_outside", "hfen", "nrmse", "roi_fraction_outside", "xsim"],
        "._output": ["OUTPUT_FILES", "write_qsm_outputs"],
        "._pdf": ["pdf"],
        "._phase": [
            "combine_echoes",
            "field_ppm_from_omega",
            "mcpc3ds_offset",
            "template_unwrap",
            "unwrap_laplacian",
            "unwrap_path",
        ],
        "._pipeline": ["PRESETS", "QSMParams", "QSMResult", "run_qsm", "total_field"],
        "._reference": ["csf_mask", "r2star_map", "reference_chi", "reference_mean"],
        "._swim": ["iswim"],
    },
)

if TYPE_CHECKING:
    from ._background import eroded_mask, resharp, vsharp, vsharp_radii
    from ._common import Cancelled
    from ._dipole import tkd, tv_admm
    from ._fourier import dipole_kernel, pad_shape
    from ._inputs import QSMInput, b0_direction, input_from_arrays, load_case_input, voxel_size_mm
    from ._mask import brain_mask, fill_holes, phase_quality
    from ._metrics import fraction_outside, hfen, nrmse, roi_fraction_outside, xsim
    from ._output import OUTPUT_FILES, write_qsm_outputs
    from ._pdf import pdf
    from ._phase import (
        combine_echoes,
        field_ppm_from_omega,
        mcpc3ds_offset,
        template_unwrap,
        unwrap_laplacian,
        unwrap_path,
    )
    from ._pipeline import PRESETS, QSMParams, QSMResult, run_qsm, total_field
    from ._reference import csf_mask, r2star_map, reference_chi, reference_mean
    from ._swim import iswim

__all__ = [
    "OUTPUT_FILES",
    "PRESETS",
    "Cancelled",
    "QSMInput",
    "QSMParams",
    "QSMResult",
    "b0_direction",
    "brain_mask",
    "combine_echoes",
    "csf_mask",
    "dipole_kernel",
    "eroded_mask",
    "field_ppm_from_omega",
    "fill_holes",
    "fraction_outside",
    "hfen",
    "input_from_arrays",
    "iswim",
    "load_case_input",
    "mcpc3ds_offset",
    "nrmse",
    "pad_shape",
    "pdf",
    "phase_quality",
    "r2star_map",
    "reference_chi",
    "reference_mean",
    "resharp",
    "roi_fraction_outside",
    "run_qsm",
    "template_unwrap",
    "tkd",
    "total_field",
    "tv_admm",
    "unwrap_laplacian",
    "unwrap_path",
    "voxel_size_mm",
    "vsharp",
    "vsharp_radii",
    "write_qsm_outputs",
    "xsim",
]
