"""Iterative thresholded k-space inversion, SWIM-like (research; for parity with the paper).

The related QSM study reconstructed chi with iSWIM (Tang et al., MRM 2013; Haacke's
susceptibility-weighted imaging and mapping). This is a *SWIM-like* version, labelled
research, not a validated re-implementation: an initial thresholded k-space division
(``1/D`` where ``|D| >= threshold``, ``sign(D)/threshold`` inside the magic-angle cone), then
iterations that keep the measured k-space outside the cone and refill the cone from the
Fourier transform of the current map constrained to its support (the brain mask) and,
optionally, to its structures (``|chi|`` above ``structure_ppm``, the geometric constraint
of iSWIM). Stops when the map changes by less than ``tol`` (relative) or after
``n_iter`` iterations. One FFT pair per iteration.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._common import CancelFn, ProgressFn, check_cancel
from ._fourier import _fft_workers, crop, dipole_kernel, pad, pad_shape

__all__ = ["iswim"]


def iswim(
    local_field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    b0_dir: Sequence[float],
    *,
    threshold: float = 0.19,
    n_iter: int = 3,
    tol: float = 1e-2,
    structure_ppm: float = 0.0,
    padded_shape: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> tuple[np.ndarray, dict]:
    """SWIM-like iterative thresholded k-space inversion (research).

    Parameters
    ----------
    local_field_ppm : float ndarray, shape (n0, n1, n2)
        Tissue (local) field in ppm of B0, any voxel order.
    mask : bool ndarray, same shape
    voxel_size_mm : sequence of 3 float
    b0_dir : sequence of 3 float
        Unit B0 direction in the voxel frame.
    threshold : float
        ``|D|`` below this is the ill-conditioned cone that the iterations refill.
    n_iter : int
        Maximum refill iterations (0: thresholded division only).
    tol : float
        Stop when ``||chi_k - chi_{k-1}|| / ||chi_k|| < tol``.
    structure_ppm : float
        Geometric constraint: only voxels with ``|chi| > structure_ppm`` contribute to the
        cone refill (0: the whole mask).
    padded_shape : sequence of 3 int, optional
        FFT grid; default :func:`pad_shape` of the mask.
    progress, cancel
        Called / checked once per iteration.

    Returns
    -------
    chi : float32 ndarray, shape (n0, n1, n2)
        Susceptibility in ppm (not referenced), zero outside ``mask``.
    info : dict
        ``iterations``, ``relative_change``, ``threshold``, ``structure_ppm``, ``research``.
    """
    from scipy.fft import irfftn, rfftn

    shape = local_field_ppm.shape
    ps = tuple(padded_shape) if padded_shape is not None else pad_shape(shape, mask, b0_dir)
    w = _fft_workers()
    d = dipole_kernel(ps, voxel_size_mm, b0_dir)
    cone = np.abs(d) < threshold
    with np.errstate(divide="ignore"):
        inv = np.where(cone, np.sign(d) / np.float32(threshold), 1.0 / d).astype(np.float32)
    inv[0, 0, 0] = 0.0
    del d
    m_pad = pad(mask, ps).astype(bool)
    spec = rfftn(pad(np.where(mask, local_field_ppm, 0), ps), workers=w)
    spec *= inv
    measured = spec[~cone]  # the well-conditioned k-space, kept fixed
    del inv
    chi = irfftn(spec, s=ps, workers=w).astype(np.float32, copy=False)
    change = np.inf
    it = 0
    for it in range(1, n_iter + 1):
        check_cancel(cancel)
        constrained = np.where(m_pad, chi, np.float32(0))
        if structure_ppm > 0:
            constrained[np.abs(constrained) <= structure_ppm] = 0
        spec = rfftn(constrained, workers=w)
        del constrained
        spec[~cone] = measured
        new = irfftn(spec, s=ps, workers=w).astype(np.float32, copy=False)
        del spec
        diff = (new - chi)[m_pad]
        den = float(np.linalg.norm(new[m_pad])) or 1.0
        change = float(np.linalg.norm(diff)) / den
        chi = new
        if progress is not None:
            progress(it / n_iter, f"iSWIM iteration {it}/{n_iter}")
        if change < tol:
            break
    out = np.array(crop(chi, shape), dtype=np.float32)
    out[~mask] = 0
    info = {
        "iterations": it,
        "relative_change": change,
        "threshold": threshold,
        "structure_ppm": structure_ppm,
        "research": True,
    }
    return out, info
