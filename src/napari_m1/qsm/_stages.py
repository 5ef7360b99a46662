"""The background, dipole and reference stages of :func:`napari_m1.qsm.run_qsm`, by name.

Each function takes the :class:`~napari_m1.qsm.QSMParams` and returns the stage's output
with a dict of facts for ``qsm.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import M1InputError
from ._common import CancelFn, ProgressFn

if TYPE_CHECKING:
    from ._inputs import QSMInput
    from ._pipeline import QSMParams

__all__ = ["background_stage", "dipole_stage", "reference_stage"]


def background_stage(
    total: np.ndarray,
    mask: np.ndarray,
    inp: QSMInput,
    p: QSMParams,
    ps: tuple[int, ...],
    *,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Total field -> (local field, final mask, info) with ``p.background``."""
    vs = inp.voxel_size_mm
    if p.background == "vsharp":
        from ._background import vsharp

        local, final, info = vsharp(
            total,
            mask,
            vs,
            max_radius_mm=p.vsharp_max_radius_mm,
            threshold=p.vsharp_threshold,
            padded_shape=ps,
            progress=progress,
            cancel=cancel,
        )
        return local, final, {"method": "V-SHARP", **info}
    if p.background == "resharp":
        from ._background import resharp

        local, final, info = resharp(
            total,
            mask,
            vs,
            radius_mm=p.resharp_radius_mm,
            lam=p.resharp_lambda,
            n_iter=p.bg_iterations,
            tol=p.resharp_tol,
            padded_shape=ps,
            progress=progress,
            cancel=cancel,
        )
        return local, final, {"method": "RESHARP", **info}
    if p.background == "pdf":
        from ._pdf import pdf

        local, final, info = pdf(
            total,
            mask,
            vs,
            inp.b0_dir,
            n_iter=p.bg_iterations,
            tol=p.pdf_tol,
            padded_shape=ps,
            progress=progress,
            cancel=cancel,
        )
        return local, final, {"method": "PDF", **info}
    raise ValueError(f"unknown background removal {p.background!r}")


def dipole_stage(
    local: np.ndarray,
    mask: np.ndarray,
    in_mask: np.ndarray,
    inp: QSMInput,
    p: QSMParams,
    ps: tuple[int, ...],
    *,
    progress: ProgressFn | None,
    cancel: CancelFn | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Local field -> (chi, info) with ``p.dipole`` (chi not yet referenced)."""
    from ._fourier import pad_shape

    vs, b0 = inp.voxel_size_mm, inp.b0_dir
    if p.dipole == "tkd":
        from ._dipole import tkd

        chi = tkd(local, mask, vs, b0, threshold=p.tkd_threshold, padded_shape=ps)
        return chi, {"method": "TKD", "threshold": p.tkd_threshold}
    if p.dipole == "tv":
        from ._dipole import tv_admm

        ps_tv = pad_shape(inp.shape, in_mask, b0, cut="both")
        chi, info = tv_admm(
            local,
            mask,
            vs,
            b0,
            lam=p.tv_lambda,
            rho=p.tv_rho,
            n_iter=p.tv_iterations,
            tol=p.tv_tol,
            padded_shape=ps_tv,
            progress=progress,
            cancel=cancel,
        )
        return chi, {"method": "TV-ADMM", **info, "padded_shape": list(ps_tv)}
    if p.dipole == "iswim":
        from ._swim import iswim

        chi, info = iswim(
            local,
            mask,
            vs,
            b0,
            threshold=p.iswim_threshold,
            n_iter=p.iswim_iterations,
            padded_shape=ps,
            progress=progress,
            cancel=cancel,
        )
        return chi, {"method": "SWIM-like iterative thresholded k-space (research)", **info}
    raise ValueError(f"unknown dipole inversion {p.dipole!r}")


def reference_stage(
    chi: np.ndarray,
    mask: np.ndarray,
    inp: QSMInput,
    p: QSMParams,
    reference_roi: np.ndarray | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Subtract the reference named by ``p.reference``; returns chi and the facts."""
    from ._reference import csf_mask, reference_chi, reference_mean

    if p.reference == "mean":
        chi, ref = reference_mean(chi, mask)
        return chi, {
            "method": "whole-brain mean (final mask)",
            "subtracted_ppm": ref,
            "voxels": int(mask.sum()),
        }
    if p.reference == "csf":
        if len(inp.echo_times_ms) < 2:
            raise M1InputError("a CSF reference needs two or more echoes (R2*); use 'mean'")
        csf = csf_mask(inp.mag, inp.echo_times_ms, mask, r2star_max=p.csf_r2star_max)
        chi, ref, n = reference_chi(chi, mask, csf, what="CSF")
        return chi, {
            "method": f"CSF (R2* < {p.csf_r2star_max:g}/s, bright first echo, in the final mask)",
            "subtracted_ppm": ref,
            "voxels": n,
        }
    if p.reference == "roi":
        if reference_roi is None:
            raise M1InputError("reference 'roi' needs a reference region (a mask on the GRE grid)")
        roi = np.asarray(reference_roi).astype(bool)
        if roi.shape != chi.shape:
            raise M1InputError(f"reference region shape {roi.shape} differs from {chi.shape}")
        chi, ref, n = reference_chi(chi, mask, roi, what="ROI")
        return chi, {"method": "ROI (given region)", "subtracted_ppm": ref, "voxels": n}
    if p.reference == "none":
        return chi, {"method": "none", "subtracted_ppm": 0.0, "voxels": 0}
    raise ValueError(f"unknown reference {p.reference!r}")
