"""Phase stages: unwrapping, MCPC-3D-S phase offset, echo combination -> total field.

Arrays are ``(n_echoes, n0, n1, n2)`` (echo first) or ``(n0, n1, n2)``, any spatial voxel
order; echo times in ms; phase in radians in [-pi, pi). Phase is taken to increase with the
field: ``phase = phi0 + 2 pi * gamma_bar * B0 * field_ppm * 1e-6 * TE``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ._common import CancelFn, Cancelled, ProgressFn, check_cancel, run_abandonable
from ._fourier import _fft_workers

__all__ = [
    "combine_echoes",
    "field_ppm_from_omega",
    "mcpc3ds_offset",
    "template_unwrap",
    "unwrap_laplacian",
    "unwrap_path",
]

GAMMA_BAR_MHZ_PER_T = 42.577478  # 1H gyromagnetic ratio / 2 pi


def _wrap(a: np.ndarray) -> np.ndarray:
    """Wrap radians into [-pi, pi) (float32)."""
    two_pi = np.float32(2 * np.pi)
    return (a - two_pi * np.floor((a + np.float32(np.pi)) / two_pi)).astype(np.float32)


def unwrap_laplacian(
    phase: np.ndarray,
    voxel_size_mm: Sequence[float],
    mask: np.ndarray | None = None,
    *,
    cancel: CancelFn | None = None,
) -> np.ndarray:
    """Laplacian phase unwrapping (Schofield & Zhu 2003): fast, smooth, not integer-exact.

    ``phi = lap^-1 [cos(p) lap(sin p) - sin(p) lap(cos p)]`` with the discrete 7-point
    Laplacian scaled by the voxel size (mm) and Neumann edges, inverted with a DCT (no
    padding, no artificial edge at the array border). The free constant is
    chosen so the result agrees with the wrapped phase on average inside ``mask``.

    Parameters
    ----------
    phase : float ndarray, shape (n0, n1, n2)
        Wrapped phase (radians).
    voxel_size_mm : sequence of 3 float
    mask : bool ndarray, optional
        Voxels whose phase matters (for the constant); default all.
    cancel : callable() -> bool, optional
        Checked between the steps (:class:`Cancelled`).

    Returns
    -------
    float32 ndarray, shape (n0, n1, n2)
        Unwrapped phase (radians); differs from the true unwrapped phase by a smooth error.
    """
    from scipy.fft import dctn, idctn

    shape = phase.shape
    w = _fft_workers()
    h = [float(v) for v in voxel_size_mm]

    def laplacian(a: np.ndarray) -> np.ndarray:
        # 7-point Laplacian with replicated edges (Neumann), which DCT-II diagonalises.
        p = np.pad(a, 1, mode="edge")
        out = np.zeros(shape, dtype=np.float32)
        for ax in range(3):
            lo = [slice(1, -1)] * 3
            hi = [slice(1, -1)] * 3
            lo[ax] = slice(0, -2)
            hi[ax] = slice(2, None)
            out += (p[tuple(lo)] + p[tuple(hi)] - 2 * a) * np.float32(1 / (h[ax] * h[ax]))
        return out

    s = np.sin(phase, dtype=np.float32)
    c = np.cos(phase, dtype=np.float32)
    check_cancel(cancel)
    rhs = c * laplacian(s)
    check_cancel(cancel)
    rhs -= s * laplacian(c)
    del s, c
    check_cancel(cancel)
    eig = np.zeros(shape, dtype=np.float64)
    for ax, n in enumerate(shape):
        sym = (2.0 * np.cos(np.pi * np.arange(n) / n) - 2.0) / (h[ax] * h[ax])
        sh = [1, 1, 1]
        sh[ax] = n
        eig = eig + sym.reshape(sh)
    spec = dctn(rhs, type=2, workers=w)
    del rhs
    check_cancel(cancel)
    eig[0, 0, 0] = 1.0
    spec /= eig.astype(np.float32)
    del eig
    spec[0, 0, 0] = 0.0
    out = np.ascontiguousarray(idctn(spec, type=2, workers=w), dtype=np.float32)
    m = np.ones(shape, bool) if mask is None else mask
    if m.any():
        out += np.float32(np.angle(np.mean(np.exp(1j * (phase[m] - out[m])))))
    return out


def _slice_axis(voxel_size_mm: Sequence[float]) -> int:
    vs = np.asarray(voxel_size_mm, float)
    return int(np.flatnonzero(vs >= vs.max() - 1e-6)[-1])


def unwrap_path(
    phase: np.ndarray,
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    *,
    mode: str = "2d",
    progress: ProgressFn | None = None,
    cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Exact (integer multiples of 2 pi) path-following unwrapping inside ``mask``.

    ``mode='2d'`` (default): ``skimage.restoration.unwrap_phase`` (Herraez et al. 2002)
    on each slice across the coarsest axis, then every connected region of a slice is shifted
    by the multiple of 2 pi that best matches the already aligned neighbouring slice (median
    of the difference on their overlap), starting from the slice with the largest mask.
    Interruptible between slices. ``mode='3d'``: skimage's 3D unwrapper in one call (slower);
    it runs in a helper thread that cancel abandons (:func:`run_abandonable`).

    Parameters
    ----------
    phase : float ndarray, shape (n0, n1, n2)
        Wrapped phase (radians).
    mask : bool ndarray, same shape
    voxel_size_mm : sequence of 3 float
        Chooses the slice axis (the coarsest; the last on ties).
    mode : {'2d', '3d'}
    progress, cancel
        Progress callback ``(fraction, message)`` and cancel check, per slice.

    Returns
    -------
    float32 ndarray, shape (n0, n1, n2)
        Unwrapped phase inside ``mask``, 0 outside. The constant multiple of 2 pi is chosen
        so the mean inside the mask lies in [-pi, pi).
    """
    from scipy import ndimage as ndi
    from skimage.restoration import unwrap_phase

    out = np.zeros(phase.shape, dtype=np.float32)
    if not mask.any():
        return out
    if mode == "3d":
        # one C call (minutes at 256^3): run where cancel can abandon it
        res = run_abandonable(lambda: unwrap_phase(np.ma.array(phase, mask=~mask)), cancel)
        out[mask] = np.ma.getdata(res)[mask]
        if progress is not None:
            progress(1.0, "unwrapped (3D)")
    elif mode == "2d":
        ax = _slice_axis(voxel_size_mm)
        ph = np.moveaxis(phase, ax, 0)
        mk = np.moveaxis(mask, ax, 0)
        ou = np.moveaxis(out, ax, 0)
        n = ph.shape[0]
        counts = mk.reshape(n, -1).sum(axis=1)
        start = int(np.argmax(counts))
        order = [start, *range(start + 1, n), *range(start - 1, -1, -1)]
        two_pi = 2 * np.pi
        for done, k in enumerate(order):
            if cancel is not None and cancel():
                raise Cancelled
            if counts[k]:
                m2 = mk[k]
                u = np.ma.getdata(unwrap_phase(np.ma.array(ph[k], mask=~m2))).astype(np.float32)
                nb = k - 1 if k > start else k + 1
                lab, nlab = ndi.label(m2)
                for c in range(1, nlab + 1):
                    region = lab == c
                    shift = 0.0
                    if k != start and 0 <= nb < n:
                        ov = region & mk[nb]
                        if ov.any():
                            shift = two_pi * np.round(np.median(u[ov] - ou[nb][ov]) / two_pi)
                    ou[k][region] = u[region] - np.float32(shift)
            if progress is not None:
                progress((done + 1) / n, f"unwrapping slice {done + 1}/{n}")
    else:
        raise ValueError(f"unknown unwrapping mode {mode!r}")
    mean = float(out[mask].mean())
    out[mask] -= np.float32(2 * np.pi * np.floor((mean + np.pi) / (2 * np.pi)))
    return out


def mcpc3ds_offset(
    mag: np.ndarray,
    phase: np.ndarray,
    echo_times_ms: Sequence[float],
    mask: np.ndarray,
    voxel_size_mm: Sequence[float],
    *,
    unwrap: Callable[[np.ndarray], np.ndarray],
    sigma_mm: float = 2.0,
    cancel: CancelFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """MCPC-3D-S phase offset (Eckstein et al. 2018) from echoes 1 and 2.

    The Hermitian inner product ``z2 conj(z1)`` gives the phase accrued between the two
    echoes; unwrapped (``unwrap``) and scaled back to TE1 it is removed from echo 1, leaving
    the receive-phase offset phi0, which is smoothed as a complex field (Gaussian,
    ``sigma_mm``) weighted by the magnitude.

    Parameters
    ----------
    mag, phase : float ndarray, shape (n_echoes, n0, n1, n2)
        Magnitude and wrapped phase (radians); n_echoes >= 2.
    echo_times_ms : sequence of float
    mask : bool ndarray, shape (n0, n1, n2)
    voxel_size_mm : sequence of 3 float
    unwrap : callable(wrapped) -> unwrapped
        The unwrapper for the echo-difference phase (3D, radians).
    sigma_mm : float
        Smoothing of phi0 (mm).
    cancel : callable() -> bool, optional
        Checked between the separable filter passes (:class:`Cancelled`).

    Returns
    -------
    phi0 : float32 ndarray, shape (n0, n1, n2)
        Smoothed phase offset (radians).
    omega : float32 ndarray, shape (n0, n1, n2)
        Unwrapped echo-difference phase per ms (rad/ms): the template for the other echoes.
    """
    from scipy.ndimage import gaussian_filter1d

    te = np.asarray(echo_times_ms, dtype=np.float64)
    dte = te[1] - te[0]
    dphi = _wrap(phase[1] - phase[0])
    dphi_u = unwrap(dphi)
    del dphi
    omega = (dphi_u / np.float32(dte)).astype(np.float32)
    del dphi_u
    phi0 = phase[0] - np.float32(te[0]) * omega
    sig = [sigma_mm / v for v in voxel_size_mm]
    w = np.where(mask, mag[0], 0).astype(np.float32)
    smooth = []
    for part in (np.cos(phi0) * w, np.sin(phi0) * w):
        # separable Gaussian (the same as gaussian_filter), one axis per uninterruptible call
        for ax, s in enumerate(sig):
            check_cancel(cancel)
            gaussian_filter1d(part, s, axis=ax, mode="nearest", output=part)
        smooth.append(part)
    del phi0, w
    phi0_s = np.arctan2(smooth[1], smooth[0]).astype(np.float32)
    return phi0_s, omega


def template_unwrap(phase: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The multiple of 2 pi that brings wrapped ``phase`` nearest to ``template`` (radians)."""
    two_pi = np.float32(2 * np.pi)
    return (phase + two_pi * np.round((template - phase) / two_pi)).astype(np.float32)


def combine_echoes(
    mag: np.ndarray,
    phase_unwrapped: np.ndarray,
    echo_times_ms: Sequence[float],
    *,
    method: str = "average",
    cancel: CancelFn | None = None,
) -> np.ndarray:
    """Weighted combination of unwrapped, offset-free echo phases -> omega (rad/ms).

    ``'average'``: ``sum(m_n phi_n) / sum(m_n TE_n)`` — the mean of ``phi_n / TE_n`` with
    weights ``m_n TE_n``. ``'fit'``: weighted least squares through the origin with weights
    ``m_n^2``: ``sum(m_n^2 TE_n phi_n) / sum(m_n^2 TE_n^2)``.

    Parameters
    ----------
    mag, phase_unwrapped : float ndarray, shape (n_echoes, n0, n1, n2)
    echo_times_ms : sequence of float
    method : {'average', 'fit'}
    cancel : callable() -> bool, optional
        Checked once per echo (:class:`Cancelled`).

    Returns
    -------
    float32 ndarray, shape (n0, n1, n2)
        Angular frequency in rad/ms (0 where every magnitude is 0).
    """
    num = np.zeros(mag.shape[1:], dtype=np.float32)
    den = np.zeros(mag.shape[1:], dtype=np.float32)
    for m, p, te in zip(mag, phase_unwrapped, echo_times_ms, strict=True):
        check_cancel(cancel)
        te32 = np.float32(te)
        if method == "average":
            num += m * p
            den += m * te32
        elif method == "fit":
            w = m * m
            num += w * te32 * p
            den += w * te32 * te32
        else:
            raise ValueError(f"unknown echo combination {method!r}")
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def field_ppm_from_omega(omega_rad_per_ms: np.ndarray, b0_tesla: float) -> np.ndarray:
    """Angular frequency (rad/ms) -> field in ppm of B0: ``1000 w / (2 pi gamma_bar B0)``."""
    scale = 1000.0 / (2 * np.pi * GAMMA_BAR_MHZ_PER_T * b0_tesla)
    return (omega_rad_per_ms * np.float32(scale)).astype(np.float32)
