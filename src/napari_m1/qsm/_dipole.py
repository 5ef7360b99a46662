"""Dipole inversion: local field (ppm) -> susceptibility chi (ppm).

Two methods, both on a zero-padded grid (:func:`napari_m1.qsm._fourier.pad_shape`):

- :func:`tkd` — thresholded k-space division (Shmueli et al. 2009): ``1/D`` with ``|D|``
  clamped to ``threshold`` near the magic-angle cone. One FFT pair.
- :func:`tv_admm` — total-variation regularised inversion by ADMM with the closed-form
  chi update of Bilgic et al. (MRM 2014):
  ``min 1/2 ||F^-1 D F chi - f||^2 + lambda ||grad chi||_1``.
  float32, ``rfftn``, one FFT pair per iteration, the work buffers allocated once.

Both return chi in the caller's voxel order and shape, zero outside ``mask``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ._common import Cancelled, ProgressFn
from ._fourier import _fft_workers, crop, dipole_kernel, gradient_ft, pad, pad_shape

__all__ = ["tkd", "tv_admm"]


def _sl(ax: int, sl: slice) -> tuple[slice, ...]:
    out = [slice(None)] * 3
    out[ax] = sl
    return tuple(out)


def _forward_diff(x: np.ndarray, ax: int, scale: np.float32, out: np.ndarray) -> None:
    """``out = (x[i+1] - x[i]) * scale`` along ``ax``, periodic; no temporaries."""
    np.subtract(
        x[_sl(ax, slice(1, None))], x[_sl(ax, slice(None, -1))], out=out[_sl(ax, slice(None, -1))]
    )
    np.subtract(
        x[_sl(ax, slice(0, 1))], x[_sl(ax, slice(-1, None))], out=out[_sl(ax, slice(-1, None))]
    )
    out *= scale


def _add_adjoint_diff(t: np.ndarray, ax: int, scale: np.float32, acc: np.ndarray) -> None:
    """``acc += (t[i-1] - t[i]) * scale`` along ``ax`` (adjoint of the forward difference)."""
    t *= scale
    acc[_sl(ax, slice(1, None))] += t[_sl(ax, slice(None, -1))]
    acc[_sl(ax, slice(0, 1))] += t[_sl(ax, slice(-1, None))]
    acc -= t


def _set_adjoint_diff(t: np.ndarray, ax: int, scale: np.float32, acc: np.ndarray) -> None:
    """``acc = (t[i-1] - t[i]) * scale`` along ``ax`` (overwrites ``acc``; scales ``t``)."""
    t *= scale
    np.negative(t, out=acc)
    acc[_sl(ax, slice(1, None))] += t[_sl(ax, slice(None, -1))]
    acc[_sl(ax, slice(0, 1))] += t[_sl(ax, slice(-1, None))]


def tkd(
    local_field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    b0_dir: Sequence[float],
    *,
    threshold: float = 0.19,
    padded_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Thresholded k-space division.

    Parameters
    ----------
    local_field_ppm : float ndarray, shape (n0, n1, n2)
        Tissue (local) field in ppm of B0, any voxel order.
    mask : bool ndarray, same shape
        Where the field is valid; chi is zeroed outside.
    voxel_size_mm : sequence of 3 float
        Voxel size per axis (mm).
    b0_dir : sequence of 3 float
        Unit main-field direction in the voxel frame.
    threshold : float
        ``|D|`` below this is replaced by ``threshold * sign(D)`` (0.19 by default).
    padded_shape : sequence of 3 int, optional
        FFT grid; default :func:`pad_shape` of the mask.

    Returns
    -------
    float32 ndarray, shape (n0, n1, n2)
        Susceptibility in ppm (not referenced).
    """
    from scipy.fft import irfftn, rfftn

    shape = local_field_ppm.shape
    ps = tuple(padded_shape) if padded_shape is not None else pad_shape(shape, mask, b0_dir)
    d = dipole_kernel(ps, voxel_size_mm, b0_dir)
    small = np.abs(d) < threshold
    d[small] = threshold * np.sign(d[small])
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, 1.0 / d, 0.0).astype(np.float32)
    del d
    w = _fft_workers()
    f = pad(np.where(mask, local_field_ppm, 0), ps)
    spec = rfftn(f, workers=w)
    spec *= inv
    chi = crop(irfftn(spec, s=ps, workers=w), shape).astype(np.float32)
    chi[~mask] = 0
    return chi


def tv_admm(
    local_field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    b0_dir: Sequence[float],
    *,
    lam: float = 5e-4,
    rho: float | None = None,
    n_iter: int = 40,
    tol: float = 3e-3,
    padded_shape: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, dict]:
    """Total-variation dipole inversion by ADMM with a closed-form chi update.

    Parameters
    ----------
    local_field_ppm, mask, voxel_size_mm, b0_dir
        As for :func:`tkd`.
    lam : float
        TV weight ``lambda`` (field in ppm, gradients in ppm/mm).
    rho : float, optional
        ADMM penalty; default ``100 * lam``.
    n_iter : int
        Maximum number of iterations.
    tol : float
        Stop when ``||chi_k - chi_{k-1}|| / ||chi_k|| < tol``.
    padded_shape : sequence of 3 int, optional
        FFT grid; default :func:`pad_shape` of the mask with ``cut='both'``.
    progress : callable(fraction, message), optional
        Called after every iteration.
    cancel : callable() -> bool, optional
        Checked every iteration; :class:`Cancelled` is raised when it returns True.

    Returns
    -------
    chi : float32 ndarray, shape (n0, n1, n2)
        Susceptibility in ppm (not referenced), zero outside ``mask``.
    info : dict
        ``iterations`` run and the final ``relative_change``.
    """
    from scipy.fft import irfftn, rfftn

    shape = local_field_ppm.shape
    ps = (
        tuple(padded_shape)
        if padded_shape is not None
        else pad_shape(shape, mask, b0_dir, cut="both")
    )
    rho = 100.0 * lam if rho is None else float(rho)
    w = _fft_workers()
    h = [float(v) for v in voxel_size_mm]

    if cancel is not None and cancel():
        raise Cancelled
    d = dipole_kernel(ps, voxel_size_mm, b0_dir)
    e = gradient_ft(ps, voxel_size_mm)
    denom = d * d
    for ei in e:
        denom += np.float32(rho) * (ei.real**2 + ei.imag**2)
    denom[0, 0, 0] = 1.0  # mean of chi is undetermined: keep it at 0 (numerator is 0 there)
    inv_denom = (1.0 / denom).astype(np.float32)
    del denom, e
    if cancel is not None and cancel():
        raise Cancelled
    f = pad(np.where(mask, local_field_ppm, 0), ps)
    dtf = rfftn(f, workers=w)  # becomes D * F(f)
    dtf *= d
    del f, d

    # Closed-form x-update: X = a * F(sum_ax E_ax^H w_ax) + b with a = rho / denom and
    # b = D F(f) / denom, so one rfftn + one irfftn per iteration and two complex passes.
    a = (np.float32(rho) * inv_denom).astype(np.float32)
    b = dtf
    b *= inv_denom
    del inv_denom, dtf

    # ADMM for the splitting z = grad x (scaled dual u). Only u is stored: the x-update needs
    # z - u = t - 2 clip(t), where t = grad x + u, and that is folded straight into the
    # adjoint sum ``acc`` during the z/u update (soft(t) = t - clip(t), u_new = clip(t)).
    x = np.zeros(ps, dtype=np.float32)
    u = [np.zeros(ps, dtype=np.float32) for _ in range(3)]
    t = np.empty(ps, dtype=np.float32)
    acc = np.zeros(ps, dtype=np.float32)  # sum_ax E_ax^T (z - u)_ax: 0 for z = u = 0
    thr = np.float32(lam / rho)
    inv_h = [np.float32(1.0 / v) for v in h]
    change = np.inf
    it = 0
    for it in range(1, n_iter + 1):
        if cancel is not None and cancel():
            raise Cancelled
        spec = rfftn(acc, workers=w)
        spec *= a
        spec += b
        x_new = irfftn(spec, s=ps, workers=w)
        del spec
        if x_new.dtype != np.float32:  # pragma: no cover - scipy keeps complex64 -> float32
            x_new = x_new.astype(np.float32)
        np.subtract(x_new, x, out=t)
        flat_t, flat_x = t.reshape(-1), x_new.reshape(-1)
        num = float(np.dot(flat_t, flat_t))
        den = float(np.dot(flat_x, flat_x)) or 1.0
        change = (num / den) ** 0.5
        x = x_new
        for ax in range(3):
            _forward_diff(x, ax, inv_h[ax], t)
            t += u[ax]
            np.clip(t, -thr, thr, out=u[ax])
            t -= u[ax]
            t -= u[ax]  # t = z - u
            if ax == 0:
                _set_adjoint_diff(t, ax, inv_h[ax], acc)
            else:
                _add_adjoint_diff(t, ax, inv_h[ax], acc)
        if progress is not None:
            progress(it / n_iter, f"TV iteration {it}/{n_iter}")
        if change < tol:
            break
    chi = np.array(crop(x, shape), dtype=np.float32)
    chi[~mask] = 0
    return chi, {"iterations": it, "relative_change": change}
