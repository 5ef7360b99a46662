"""Background field removal: V-SHARP (variable-radius SHARP) and RESHARP.

V-SHARP: Schweser et al. 2011 / Wu et al. 2012: the total field minus its spherical mean value
(SMV) is free of harmonic (background) fields inside the mask eroded by the sphere; the
largest sphere that fits is used at each voxel, from ``max_radius_mm`` down to one voxel, so
cortex at the brain edge survives. The high-passed field is then deconvolved with
``1 - SMV`` of the largest sphere (truncated below ``threshold``).

RESHARP (Sun & Wilman 2014): instead of the truncated deconvolution, the local field is the
Tikhonov-regularised least-squares solution of ``M C f_L = M C f_T`` (``C = 1 - SMV`` of
one sphere, ``M`` the mask eroded by it), found by conjugate gradients.
PDF (projection onto dipole fields) lives in :mod:`napari_m1.qsm._pdf`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._common import CancelFn, ProgressFn, check_cancel
from ._fourier import _fft_workers, crop, kernel_filter, pad, pad_shape, sphere_kernel_ft
from ._solvers import conjugate_gradient

__all__ = ["eroded_mask", "resharp", "vsharp", "vsharp_radii"]


def vsharp_radii(voxel_size_mm: Sequence[float], max_radius_mm: float = 12.0) -> list[float]:
    """Sphere radii (mm), largest first: ``max_radius_mm`` down to the coarsest voxel size.

    The step is the coarsest voxel size but at least 1 mm (12, 11, ..., 1 mm for 1 mm voxels;
    12, 10, ..., 2 mm for 0.25 x 0.25 x 2 mm voxels).
    """
    vmax = float(max(voxel_size_mm))
    step = max(vmax, 1.0)
    radii = []
    r = float(max_radius_mm)
    while r >= vmax - 1e-6:
        radii.append(round(r, 6))
        r -= step
    return radii or [vmax]


def vsharp(
    total_field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    *,
    max_radius_mm: float = 12.0,
    threshold: float = 0.05,
    padded_shape: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """V-SHARP background removal.

    Parameters
    ----------
    total_field_ppm : float ndarray, shape (n0, n1, n2)
        Unwrapped total field (ppm), any voxel order.
    mask : bool ndarray, same shape
    voxel_size_mm : sequence of 3 float
    max_radius_mm : float
        Largest sphere (mm).
    threshold : float
        Truncation of ``1 - SMV`` in the deconvolution.
    padded_shape : sequence of 3 int, optional
        FFT grid; default :func:`pad_shape` of the mask.
    progress, cancel
        Called once per radius.

    Returns
    -------
    local_field_ppm : float32 ndarray, shape (n0, n1, n2)
        Zero outside ``eroded_mask``.
    eroded_mask : bool ndarray
        Voxels where at least the smallest sphere fits inside ``mask``.
    info : dict
        ``radii_mm`` and ``padded_shape``.
    """
    from scipy.fft import irfftn, rfftn

    shape = total_field_ppm.shape
    ps = tuple(padded_shape) if padded_shape is not None else pad_shape(shape, mask)
    w = _fft_workers()
    radii = vsharp_radii(voxel_size_mm, max_radius_mm)
    f_ft = rfftn(pad(np.where(mask, total_field_ppm, 0), ps), workers=w)
    m_ft = rfftn(pad(mask.astype(np.float32), ps), workers=w)
    hp = np.zeros(shape, dtype=np.float32)
    assigned = np.zeros(shape, dtype=bool)
    deconv = None
    for i, r in enumerate(radii):
        check_cancel(cancel)
        s = sphere_kernel_ft(ps, voxel_size_mm, r)
        eroded = crop(irfftn(m_ft * s, s=ps, workers=w), shape) > 0.999
        eroded &= mask
        new = eroded & ~assigned
        one_minus_s = 1.0 - s
        del s
        if deconv is None:
            deconv = one_minus_s
        if new.any():
            hp_r = crop(irfftn(f_ft * one_minus_s, s=ps, workers=w), shape)
            hp[new] = hp_r[new]
            assigned |= new
            del hp_r
        if progress is not None:
            progress((i + 1) / (len(radii) + 1), f"V-SHARP radius {r:g} mm")
    del f_ft, m_ft
    check_cancel(cancel)
    inv = np.zeros_like(deconv)
    big = np.abs(deconv) > threshold
    inv[big] = 1.0 / deconv[big]
    spec = rfftn(pad(hp, ps), workers=w)
    spec *= inv
    local = np.array(crop(irfftn(spec, s=ps, workers=w), shape), dtype=np.float32)
    local[~assigned] = 0
    if progress is not None:
        progress(1.0, "V-SHARP done")
    return local, assigned, {"radii_mm": radii, "padded_shape": list(ps)}


def eroded_mask(
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    radius_mm: float,
    padded_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Voxels of ``mask`` where a sphere of ``radius_mm`` fits entirely inside it.

    Computed as the FFT convolution of the mask with the normalised sphere (>= 0.999) on
    ``padded_shape`` (default :func:`pad_shape` of the mask), as V-SHARP does.
    """
    from scipy.fft import irfftn, rfftn

    shape = mask.shape
    ps = tuple(padded_shape) if padded_shape is not None else pad_shape(shape, mask)
    w = _fft_workers()
    conv = irfftn(
        rfftn(pad(mask.astype(np.float32), ps), workers=w)
        * sphere_kernel_ft(ps, voxel_size_mm, radius_mm),
        s=ps,
        workers=w,
    )
    return (crop(conv, shape) > 0.999) & mask


def resharp(
    total_field_ppm: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    *,
    radius_mm: float = 4.0,
    lam: float = 1e-4,
    n_iter: int = 100,
    tol: float = 2e-3,
    padded_shape: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """RESHARP background removal (regularisation-enabled SHARP).

    Solves ``(C M C + lam I) f_L = C M C f_T`` by conjugate gradients, with ``C`` the
    spherical-mean-value high-pass ``1 - SMV`` of radius ``radius_mm`` (real and symmetric
    in k-space, so ``C^T = C``) and ``M`` the mask eroded by that sphere. Two FFT pairs per
    iteration.

    Parameters
    ----------
    total_field_ppm : float ndarray, shape (n0, n1, n2)
        Unwrapped total field (ppm), any voxel order.
    mask : bool ndarray, same shape
    voxel_size_mm : sequence of 3 float
    radius_mm : float
        SMV sphere radius (mm).
    lam : float
        Tikhonov weight on the local field (both terms are in ppm^2, so it is unitless).
    n_iter, tol : int, float
        Conjugate-gradient iterations (maximum) and relative residual to stop at.
    padded_shape : sequence of 3 int, optional
        FFT grid; default :func:`pad_shape` of the mask.
    progress, cancel
        Called / checked once per iteration.

    Returns
    -------
    local_field_ppm : float32 ndarray, shape (n0, n1, n2)
        Zero outside ``eroded``.
    eroded : bool ndarray
        The mask eroded by the sphere (where the local field is valid).
    info : dict
        ``radius_mm``, ``lambda``, ``iterations``, ``relative_residual``, ``padded_shape``.
    """

    shape = total_field_ppm.shape
    ps = tuple(padded_shape) if padded_shape is not None else pad_shape(shape, mask)
    w = _fft_workers()
    one_minus_s = 1.0 - sphere_kernel_ft(ps, voxel_size_mm, radius_mm)
    check_cancel(cancel)
    eroded = eroded_mask(mask, voxel_size_mm, radius_mm, ps)
    if not eroded.any():
        return np.zeros(shape, np.float32), eroded, {"radius_mm": radius_mm, "iterations": 0}
    m_pad = pad(eroded, ps).astype(bool)

    def c(x: np.ndarray) -> np.ndarray:
        return kernel_filter(x, one_minus_s, w)

    def cmc(x: np.ndarray) -> np.ndarray:
        y = c(x)
        y[~m_pad] = 0
        return c(y)

    check_cancel(cancel)
    rhs = cmc(pad(np.where(mask, total_field_ppm, 0), ps))
    lam32 = np.float32(lam)

    def apply_a(p: np.ndarray) -> np.ndarray:
        out = cmc(p)
        out += lam32 * p
        return out

    x, cg = conjugate_gradient(
        apply_a, rhs, n_iter=n_iter, tol=tol, label="RESHARP", progress=progress, cancel=cancel
    )
    local = np.array(crop(x, shape), dtype=np.float32)
    local[~eroded] = 0
    if progress is not None:
        progress(1.0, "RESHARP done")
    info = {"radius_mm": radius_mm, "lambda": lam, **cg, "padded_shape": list(ps)}
    return local, eroded, info
