"""The QSM pipeline: inputs -> mask -> total field -> local field -> chi (ppm).

Stages and outputs follow the QSM-CI contract (phase + magnitude + mask + params ->
total field -> local field -> chi), every field in ppm, so each stage can be scored on its
own. :func:`run_qsm` chains them with progress and cancel; each stage is also a public
function (see ``napari_m1.qsm.__all__``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import M1InputError
from ._common import CancelFn, ProgressFn, check_cancel
from ._inputs import QSMInput
from ._reference import reference_mean
from ._stages import background_stage, dipole_stage, reference_stage

__all__ = ["PRESETS", "QSMParams", "QSMResult", "reference_mean", "run_qsm"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QSMParams:
    """Every parameter of a reconstruction (written to qsm.json).

    Attributes
    ----------
    preset : str
        Name of the preset these came from (``fast``, ``default``) or ``custom``.
    mask_quality : float
        Minimum local phase coherence for the mask (0 disables).
    unwrap : {'path', 'path3d', 'laplacian'}
        ``path``: skimage path-following per slice + slice alignment, then template
        unwrapping of the echoes (exact); ``path3d``: the same with skimage's 3D unwrapper;
        ``laplacian``: Laplacian unwrapping of every echo (fast, inexact).
    combine : {'average', 'fit'}
        Echo combination (:func:`napari_m1.qsm.combine_echoes`).
    phi0_sigma_mm : float
        Smoothing of the MCPC-3D-S phase offset.
    background : {'vsharp', 'resharp', 'pdf'}
        Background field removal (:func:`~napari_m1.qsm.vsharp`,
        :func:`~napari_m1.qsm.resharp`, :func:`~napari_m1.qsm.pdf`).
    vsharp_max_radius_mm, vsharp_threshold : float
        V-SHARP largest sphere and deconvolution truncation.
    resharp_radius_mm, resharp_lambda, resharp_tol : float
        RESHARP sphere, Tikhonov weight, CG stopping residual.
    pdf_tol : float
        PDF CG stopping residual.
    bg_iterations : int
        Maximum CG iterations of RESHARP / PDF.
    dipole : {'tv', 'tkd', 'iswim'}
        Dipole inversion; ``iswim`` is the SWIM-like research method.
    tkd_threshold : float
    tv_lambda, tv_rho : float
        TV weight; ADMM penalty (None -> 100 lambda).
    tv_iterations : int
        Maximum TV iterations.
    tv_tol : float
        TV stops when chi changes by less than this (relative) in an iteration.
    iswim_threshold : float
        ``|D|`` below which the SWIM-like method refills k-space.
    iswim_iterations : int
    reference : {'mean', 'csf', 'roi', 'none'}
        ``mean``: subtract the mean chi inside the final mask (whole-brain reference);
        ``csf``: the mean over CSF (R2* < ``csf_r2star_max``, bright first echo);
        ``roi``: the mean over a given region (``run_qsm(reference_roi=...)``).
    csf_r2star_max : float
        R2* threshold (1/s) of the CSF reference.
    """

    preset: str = "default"
    mask_quality: float = 0.6
    unwrap: Literal["path", "path3d", "laplacian"] = "path"
    combine: Literal["average", "fit"] = "average"
    phi0_sigma_mm: float = 2.0
    background: Literal["vsharp", "resharp", "pdf"] = "vsharp"
    vsharp_max_radius_mm: float = 12.0
    vsharp_threshold: float = 0.05
    resharp_radius_mm: float = 4.0
    resharp_lambda: float = 1e-4
    resharp_tol: float = 1e-3
    pdf_tol: float = 1e-3
    bg_iterations: int = 100
    dipole: Literal["tv", "tkd", "iswim"] = "tv"
    tkd_threshold: float = 0.19
    tv_lambda: float = 7e-5
    tv_rho: float | None = None
    tv_iterations: int = 40
    tv_tol: float = 3e-3
    iswim_threshold: float = 0.19
    iswim_iterations: int = 3
    reference: Literal["mean", "csf", "roi", "none"] = "mean"
    csf_r2star_max: float = 20.0

    def replace(self, **kw: Any) -> QSMParams:
        """A copy with some fields changed (``preset`` becomes ``custom`` unless given)."""
        kw.setdefault("preset", "custom")
        return dataclasses.replace(self, **kw)


PRESETS: dict[str, QSMParams] = {
    "fast": QSMParams(preset="fast", unwrap="laplacian", dipole="tkd"),
    "default": QSMParams(preset="default", unwrap="path", dipole="tv"),
}


@dataclass
class QSMResult:
    """Outputs of :func:`run_qsm`, all float32 on the input grid (spatial axes only).

    Attributes
    ----------
    chi_ppm : ndarray, shape (n0, n1, n2)
        Susceptibility (ppm), referenced, 0 outside ``mask``.
    mask : bool ndarray
        Final mask: the input mask eroded by V-SHARP's smallest (RESHARP's) sphere; PDF keeps
        the input mask.
    input_mask : bool ndarray
        The mask the field was computed in (automatic or given).
    total_field_ppm, local_field_ppm : ndarray
        Unwrapped total field and background-free local field (ppm of B0).
    params : QSMParams
    info : dict
        Stage facts for qsm.json (thresholds, radii, padded shape, iterations, reference).
    timings_s : dict
        Wall time per stage (not written to qsm.json, which stays bit-identical).
    warnings : list of str
    """

    chi_ppm: np.ndarray
    mask: np.ndarray
    input_mask: np.ndarray
    total_field_ppm: np.ndarray
    local_field_ppm: np.ndarray
    params: QSMParams
    info: dict = field(default_factory=dict)
    timings_s: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


# Share of the progress bar per stage.
_STAGES = (("mask", 0.03), ("field", 0.32), ("background", 0.2), ("dipole", 0.45))


class _Progress:
    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress = progress
        self.start = 0.0
        self.width = 0.0

    def stage(self, name: str) -> None:
        acc = 0.0
        for n, w in _STAGES:
            if n == name:
                self.start, self.width = acc, w
                break
            acc += w
        self(0.0, name)

    def __call__(self, frac: float, msg: str) -> None:
        if self.progress is not None:
            self.progress(min(1.0, self.start + self.width * float(frac)), msg)


def total_field(
    inp: QSMInput,
    mask: np.ndarray,
    params: QSMParams,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> tuple[np.ndarray, dict]:
    """Unwrapped total field (ppm) from the multi-echo phase inside ``mask``.

    MCPC-3D-S phase offset from echoes 1-2, unwrapping (``params.unwrap``), echo
    combination (``params.combine``), conversion to ppm with ``inp.b0_tesla``.

    Returns
    -------
    field_ppm : float32 ndarray, shape (n0, n1, n2)
        0 outside ``mask``.
    info : dict
    """
    from ._phase import (
        _wrap,
        combine_echoes,
        field_ppm_from_omega,
        mcpc3ds_offset,
        template_unwrap,
        unwrap_laplacian,
        unwrap_path,
    )

    vs = inp.voxel_size_mm
    tes = inp.echo_times_ms
    phase = np.empty(inp.phase.shape, dtype=np.float32)
    for e in range(len(tes)):
        check_cancel(cancel)
        phase[e] = _wrap(inp.phase[e])

    def prog(lo: float, hi: float) -> ProgressFn:
        return lambda f, m: progress(lo + (hi - lo) * f, m) if progress else None

    def unwrap3(p: np.ndarray, lo: float = 0.0, hi: float = 0.7) -> np.ndarray:
        if params.unwrap == "laplacian":
            return unwrap_laplacian(p, vs, mask, cancel=cancel)
        mode = "3d" if params.unwrap == "path3d" else "2d"
        return unwrap_path(p, mask, vs, mode=mode, progress=prog(lo, hi), cancel=cancel)

    info: dict[str, Any] = {"n_echoes": len(tes)}
    if len(tes) == 1:
        omega_t = unwrap3(phase[0]) / np.float32(tes[0])
        unwrapped = omega_t[None] * np.float32(tes[0])
        info["phase_offset"] = "none (one echo)"
    else:
        phi0, omega_t = mcpc3ds_offset(
            inp.mag,
            phase,
            tes,
            mask,
            vs,
            unwrap=lambda p: unwrap3(p, 0.0, 0.7),
            sigma_mm=params.phi0_sigma_mm,
            cancel=cancel,
        )
        info["phase_offset"] = "MCPC-3D-S (echoes 1-2)"
        check_cancel(cancel)
        unwrapped = np.empty_like(phase)
        for e, te in enumerate(tes):
            check_cancel(cancel)
            pe = _wrap(phase[e] - phi0)
            if params.unwrap == "laplacian":
                unwrapped[e] = unwrap_laplacian(pe, vs, mask, cancel=cancel)
            else:
                unwrapped[e] = template_unwrap(pe, omega_t * np.float32(te))
            if progress:
                progress(0.7 + 0.25 * (e + 1) / len(tes), f"echo {e + 1} unwrapped")
        del phi0
    check_cancel(cancel)
    omega = combine_echoes(inp.mag, unwrapped, tes, method=params.combine, cancel=cancel)
    del unwrapped
    check_cancel(cancel)
    field_ppm = field_ppm_from_omega(omega, inp.b0_tesla)
    field_ppm[~mask] = 0
    if progress:
        progress(1.0, "total field done")
    return field_ppm, info


def run_qsm(
    inp: QSMInput,
    params: QSMParams | None = None,
    *,
    mask: np.ndarray | None = None,
    reference_roi: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> QSMResult:
    """Reconstruct QSM from multi-echo magnitude and phase.

    Parameters
    ----------
    inp : QSMInput
    params : QSMParams, optional
        Default ``PRESETS['default']``.
    mask : bool ndarray, shape (n0, n1, n2), optional
        Use this brain mask instead of the automatic one (Otsu ∩ phase quality).
    reference_roi : bool ndarray, shape (n0, n1, n2), optional
        The reference region when ``params.reference == 'roi'``.
    progress : callable(fraction, message), optional
        Overall fraction in [0, 1]; called at least once per slice, sphere or iteration.
    cancel : callable() -> bool, optional
        When it returns True the run stops with :class:`napari_m1.qsm.Cancelled`.

    Returns
    -------
    QSMResult
    """
    from ._fourier import pad_shape
    from ._mask import brain_mask

    p = params or PRESETS["default"]
    pr = _Progress(progress)
    timings: dict[str, float] = {}
    info: dict[str, Any] = {
        "voxel_size_mm": list(inp.voxel_size_mm),
        "b0_direction_voxel": list(inp.b0_dir),
        "b0_tesla": inp.b0_tesla,
        "echo_times_ms": list(inp.echo_times_ms),
        "shape": list(inp.shape),
    }

    t0 = time.perf_counter()
    pr.stage("mask")
    if mask is None:
        in_mask, minfo = brain_mask(
            inp.mag,
            inp.phase,
            quality_threshold=p.mask_quality,
            voxel_size_mm=inp.voxel_size_mm,
            cancel=cancel,
        )
        info["mask"] = {"source": "automatic (Otsu ∩ phase quality)", **minfo}
    else:
        in_mask = np.asarray(mask).astype(bool)
        if in_mask.shape != inp.shape:
            raise M1InputError(f"mask shape {in_mask.shape} differs from the images {inp.shape}")
        info["mask"] = {"source": "given"}
    if not in_mask.any():
        raise M1InputError("the brain mask is empty")
    info["mask"]["voxels"] = int(in_mask.sum())
    timings["mask"] = time.perf_counter() - t0
    check_cancel(cancel)

    t0 = time.perf_counter()
    pr.stage("field")
    total, finfo = total_field(inp, in_mask, p, progress=pr, cancel=cancel)
    info["field"] = finfo
    timings["field"] = time.perf_counter() - t0
    check_cancel(cancel)

    ps = pad_shape(inp.shape, in_mask, inp.b0_dir)
    info["padded_shape"] = list(ps)
    t0 = time.perf_counter()
    pr.stage("background")
    local, final_mask, binfo = background_stage(
        total, in_mask, inp, p, ps, progress=pr, cancel=cancel
    )
    info["background"] = binfo
    info["mask"]["final_voxels"] = int(final_mask.sum())
    timings["background"] = time.perf_counter() - t0
    check_cancel(cancel)
    if not final_mask.any():
        raise M1InputError(
            f"{binfo['method']} eroded the whole mask (is the brain mask too small?)"
        )

    t0 = time.perf_counter()
    pr.stage("dipole")
    chi, info["dipole"] = dipole_stage(
        local, final_mask, in_mask, inp, p, ps, progress=pr, cancel=cancel
    )
    timings["dipole"] = time.perf_counter() - t0
    check_cancel(cancel)
    chi, info["reference"] = reference_stage(chi, final_mask, inp, p, reference_roi)
    if progress:
        progress(1.0, "done")
    log.info("QSM %s: %s", p.preset, ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    return QSMResult(
        chi_ppm=chi,
        mask=final_mask,
        input_mask=in_mask,
        total_field_ppm=total,
        local_field_ppm=local,
        params=p,
        info=info,
        timings_s=timings,
        warnings=list(inp.warnings),
    )
