"""Background field removal by projection onto dipole fields (PDF; Liu et al. 2011).

The background field inside the mask is modelled as the field of dipoles *outside* it:
``f_B = M D (Mbar chi_B)`` with ``D`` the unit dipole convolution, ``M`` the mask and
``Mbar`` its complement on the padded grid. ``chi_B`` is the least-squares fit
``min ||W M (f_T - D Mbar chi_B)||^2`` (conjugate gradients on the normal equations, two
FFT pairs per iteration); the local field is ``M (f_T - f_B)``. Unlike SHARP methods the
mask is not eroded, so cortex at the brain surface keeps a field (less exact there).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._common import CancelFn, ProgressFn, check_cancel
from ._fourier import _fft_workers, crop, dipole_kernel, kernel_filter, pad, pad_shape
from ._solvers import conjugate_gradient

__all__ = ["pdf"]


def pdf(
    total_field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    b0_dir: Sequence[float],
    *,
    weights: np.ndarray | None = None,
    n_iter: int = 100,
    tol: float = 1e-3,
    padded_shape: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """PDF background removal.

    Parameters
    ----------
    total_field_ppm : float ndarray, shape (n0, n1, n2)
        Unwrapped total field (ppm), any voxel order.
    mask : bool ndarray, same shape
    voxel_size_mm : sequence of 3 float
    b0_dir : sequence of 3 float
        Unit B0 direction in the voxel frame.
    weights : float ndarray, same shape, optional
        Data weights ``W`` (e.g. first-echo magnitude); default 1 in the mask.
    n_iter, tol : int, float
        Conjugate-gradient iterations (maximum) and relative residual to stop at.
    padded_shape : sequence of 3 int, optional
        FFT grid; default :func:`pad_shape` of the mask (outside sources lie in the padding).
    progress, cancel
        Called / checked once per iteration.

    Returns
    -------
    local_field_ppm : float32 ndarray, shape (n0, n1, n2)
        Zero outside ``mask``; its mean inside ``mask`` is removed (a uniform field is no
        dipole field and carries no susceptibility contrast).
    mask : bool ndarray
        The input mask (PDF does not erode).
    info : dict
        ``iterations``, ``relative_residual``, ``padded_shape``.
    """

    shape = total_field_ppm.shape
    ps = tuple(padded_shape) if padded_shape is not None else pad_shape(shape, mask, b0_dir)
    w = _fft_workers()
    check_cancel(cancel)
    d = dipole_kernel(ps, voxel_size_mm, b0_dir)
    m_pad = pad(mask, ps).astype(bool)
    out_pad = ~m_pad
    if weights is None:
        w2 = m_pad.astype(np.float32)
    else:
        wt = np.where(mask, np.asarray(weights, dtype=np.float32), 0)
        wt /= np.float32(np.mean(wt[mask])) if mask.any() else np.float32(1)
        w2 = pad(wt * wt, ps)

    def dconv(x: np.ndarray) -> np.ndarray:
        return kernel_filter(x, d, w)

    def ata(p: np.ndarray) -> np.ndarray:
        # A = M D Mbar, A^T W^2 A; p is zero inside the mask
        y = dconv(p)
        y *= w2
        y = dconv(y)
        y[m_pad] = 0
        return y

    check_cancel(cancel)
    f = pad(np.where(mask, total_field_ppm, 0), ps)
    f *= w2
    rhs = dconv(f)
    rhs[m_pad] = 0
    del f
    chi_b, cg = conjugate_gradient(
        ata, rhs, n_iter=n_iter, tol=tol, label="PDF", progress=progress, cancel=cancel
    )
    check_cancel(cancel)
    chi_b[~out_pad] = 0
    background = crop(dconv(chi_b), shape)
    local = np.where(mask, total_field_ppm - background, 0).astype(np.float32)
    if mask.any():
        local[mask] -= np.float32(np.mean(local[mask], dtype=np.float64))
    if progress is not None:
        progress(1.0, "PDF done")
    return local, mask.copy(), {**cg, "padded_shape": list(ps)}
