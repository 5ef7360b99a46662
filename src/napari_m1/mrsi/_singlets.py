"""Lorentzian singlets: the phantom's spectral model and a small fit of it (phantom / QC tool).

This is **not** a replacement for LCModel or FSL-MRS: it knows four singlets at fixed
chemical shifts with zero phase, no baseline, no macromolecules and one Lorentzian linewidth
per voxel. It exists so the phantom's spectra and its fit results (fsl_mrsi folder, LCModel
CSV) come from one honest computation that tests can check against truth.

Model of one voxel's FID (NIfTI-MRS right-handed frame, see :mod:`._niftimrs`)::

    y(t_k) = exp(-pi w t_k) * sum_m c_m exp(2 pi i (4.65 - ppm_m) f0 t_k),  t_k = k dt

``c_m`` real amplitudes (raw units), ``w`` the Lorentzian FWHM in Hz, ``f0`` the
spectrometer frequency in MHz (= Hz/ppm). The fit is variable projection: for a linewidth
the real amplitudes are a linear least-squares solution; the linewidth minimising the
residual is found by a coarse grid then golden-section search (vectorised over voxels).
Cramér-Rao bounds come from the Fisher information of (c, w) with the noise SD per real and
imaginary part; S/N is each singlet's peak height in the spectrum
(``fftshift(fft(fid))``, real part) over the SD of the spectrum's noise (sigma sqrt(n)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SINGLET_PPM", "SingletFit", "fit_singlets", "singlet_fids"]

#: canonical metabolite -> chemical shift (ppm) of its singlet (Glx: the 2.35 ppm multiplet
#: region modelled as one line)
SINGLET_PPM: dict[str, float] = {"tNAA": 2.01, "tCr": 3.03, "tCho": 3.21, "Glx": 2.35}

_REF_PPM = 4.65  # receiver reference of 1H (water)


def _basis(n: int, dwell_s: float, f0_mhz: float, ppm: np.ndarray) -> np.ndarray:
    """(n, M) undamped complex exponentials of the singlets."""
    t = np.arange(n) * dwell_s
    f_hz = (_REF_PPM - ppm) * f0_mhz
    return np.exp(2j * np.pi * t[:, None] * f_hz[None, :])


def singlet_fids(
    amplitudes: np.ndarray,
    fwhm_hz: np.ndarray,
    *,
    n_points: int,
    dwell_s: float,
    f0_mhz: float,
    ppm: np.ndarray | list[float],
) -> np.ndarray:
    """Noise-free FIDs of Lorentzian singlets.

    Parameters
    ----------
    amplitudes : ndarray float, shape (V, M)
        Amplitude of each of M singlets in each of V voxels (raw units: the FID's value at
        t = 0 per singlet).
    fwhm_hz : ndarray float, shape (V,)
        Lorentzian full width at half maximum of each voxel's lines (Hz).
    n_points, dwell_s, f0_mhz
        FID length, dwell time (s), spectrometer frequency (MHz = Hz/ppm).
    ppm : sequence of M floats
        Chemical shift of each singlet.

    Returns
    -------
    ndarray complex128, shape (V, n_points)
    """
    b = _basis(n_points, dwell_s, f0_mhz, np.asarray(ppm, float))
    t = np.arange(n_points) * dwell_s
    decay = np.exp(-np.pi * np.asarray(fwhm_hz, float)[:, None] * t[None, :])
    return decay * (np.asarray(amplitudes, float) @ b.T)


@dataclass
class SingletFit:
    """Fit of V voxels with M singlets (arrays in the order of the input voxels).

    Attributes
    ----------
    amplitude : ndarray (V, M)
        Real amplitudes (raw units).
    sd : ndarray (V, M)
        Cramér-Rao lower bound of each amplitude (raw units).
    fwhm_hz : ndarray (V,)
        Fitted Lorentzian FWHM (Hz).
    snr : ndarray (V, M)
        Peak height of each singlet in the spectrum over the spectrum's noise SD.
    noise_sd : ndarray (V,)
        Noise SD per real/imaginary part of one FID point (given, or from the residual).
    fit : ndarray complex (V, n)
        The fitted FID (the model at the fitted parameters).
    """

    amplitude: np.ndarray
    sd: np.ndarray
    fwhm_hz: np.ndarray
    snr: np.ndarray
    noise_sd: np.ndarray
    fit: np.ndarray

    @property
    def sd_pct(self) -> np.ndarray:
        """CRLB in % of |amplitude| (inf where the amplitude is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.amplitude != 0, 100.0 * self.sd / np.abs(self.amplitude), np.inf)


class _Projector:
    """Amplitudes and residual of every voxel for a per-voxel linewidth (VarPro inner step)."""

    def __init__(self, y: np.ndarray, b: np.ndarray, t: np.ndarray, dwell_s: float) -> None:
        self.y, self.b, self.t, self.n = y, b, t, len(t)
        self.yr, self.yi = np.ascontiguousarray(y.real), np.ascontiguousarray(y.imag)
        self.br, self.bi = np.ascontiguousarray(b.real), np.ascontiguousarray(b.imag)
        self.y2 = (self.yr**2).sum(axis=1) + (self.yi**2).sum(axis=1)
        self.m = b.shape[1]
        # P[k, i*m + j] = conj(b_i) b_j at t_k (for the Fisher information at the end)
        self.p = (b.conj()[:, :, None] * b[:, None, :]).reshape(self.n, self.m * self.m)
        # phase step of conj(b_i) b_j per point, for the closed-form Gram matrix
        step = (b[1] if self.n > 1 else b[0]) / b[0]
        self.rot = step.conj()[:, None] * step[None, :]  # (M, M)
        self.rot_n = self.rot**self.n
        self.dwell = dwell_s

    def gram(self, w: np.ndarray) -> np.ndarray:
        """Re sum_k exp(-2 pi w t_k) conj(b_i) b_j: a geometric series, (V, M, M)."""
        q2 = np.exp(-2 * np.pi * w * self.dwell)[:, None, None]
        num = 1 - q2**self.n * self.rot_n[None]
        return (num / (1 - q2 * self.rot[None])).real

    def solve(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(amplitudes (V, M), Gram (V, M, M), h (V, M), decay (V, n)) for linewidths ``w``."""
        e = np.exp(-np.pi * w[:, None] * self.t[None, :])
        g = self.gram(w)
        h = (e * self.yr) @ self.br + (e * self.yi) @ self.bi  # Re((e y) @ conj(b))
        c = np.linalg.solve(g, h[..., None])[..., 0]
        return c, g, h, e

    def cost(self, w: np.ndarray) -> np.ndarray:
        """|y - model|^2 at the least-squares amplitudes: |y|^2 - c.h."""
        c, _, h, _ = self.solve(w)
        return self.y2 - np.einsum("vm,vm->v", c, h)


def fit_singlets(
    fids: np.ndarray,
    *,
    dwell_s: float,
    f0_mhz: float,
    ppm: np.ndarray | list[float],
    noise_sd: np.ndarray | float | None = None,
    fwhm_range_hz: tuple[float, float] = (1.0, 200.0),
    n_grid: int = 16,
    n_golden: int = 20,
    n_newton: int = 3,
) -> SingletFit:
    """Fit Lorentzian singlets at known shifts with one linewidth per voxel.

    Parameters
    ----------
    fids : ndarray complex, shape (V, n)
        One FID per voxel (NIfTI-MRS frame: ``fftshift(fft(fid))`` has ppm decreasing).
    dwell_s, f0_mhz : float
        Dwell time (s) and spectrometer frequency (MHz).
    ppm : sequence of M floats
        The singlets' chemical shifts.
    noise_sd : float or ndarray (V,), optional
        Known noise SD per real/imaginary part of one FID point (the phantom's noise model,
        also for noise-free spectra). Default: estimated from the residual,
        ``sqrt(|r|^2 / (2n - M - 1))``.
    fwhm_range_hz : (lo, hi)
        Search range of the linewidth (Hz).
    n_grid, n_golden, n_newton : int
        Points of the coarse log-spaced grid; golden-section iterations after it (20 narrow
        the bracket by 0.618**20 ~ 7e-5); Gauss-Newton steps on (amplitudes, linewidth).

    Returns
    -------
    SingletFit
    """
    y = np.asarray(fids, dtype=np.complex128)
    if y.ndim != 2:
        raise ValueError(f"fids must be (V, n), got shape {y.shape}")
    v, n = y.shape
    ppm_a = np.asarray(ppm, float)
    m = len(ppm_a)
    t = np.arange(n) * dwell_s
    b = _basis(n, dwell_s, f0_mhz, ppm_a)
    proj = _Projector(y, b, t, dwell_s)
    grid = np.geomspace(*fwhm_range_hz, n_grid)
    costs = np.stack([proj.cost(np.full(v, w)) for w in grid], axis=1)  # (V, n_grid)
    best = np.argmin(costs, axis=1)
    lo = grid[np.clip(best - 1, 0, n_grid - 1)]
    hi = grid[np.clip(best + 1, 0, n_grid - 1)]
    phi = (np.sqrt(5.0) - 1) / 2
    x1, x2 = hi - phi * (hi - lo), lo + phi * (hi - lo)
    f1, f2 = proj.cost(x1), proj.cost(x2)
    for _ in range(n_golden):
        left = f1 < f2  # the minimum is in [lo, x2]: shrink from the right
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        x1, x2 = (
            np.where(left, hi - phi * (hi - lo), x2),
            np.where(left, x1, lo + phi * (hi - lo)),
        )
        fe = proj.cost(np.where(left, x1, x2))
        f1, f2 = np.where(left, fe, f2), np.where(left, f1, fe)
    w = (lo + hi) / 2
    c = proj.solve(w)[0]
    # Gauss-Newton on (c, w) from the bracketed optimum: converges quadratically and does not
    # suffer the cancellation of |y|^2 - c.h near the minimum (noise-free fits exact to ~1e-12)
    for _ in range(n_newton):
        fim, e, model = _fisher(proj, c, w)
        r = y - model
        grad = np.empty((v, m + 1))
        grad[:, :m] = (e * r.real) @ proj.br + (e * r.imag) @ proj.bi
        grad[:, m] = -np.pi * ((model.conj() * r).real @ t)
        delta = np.einsum("vij,vj->vi", np.linalg.pinv(fim), grad)
        c = c + delta[:, :m]
        w = np.clip(w + delta[:, m], *fwhm_range_hz)
    fim, e, model = _fisher(proj, c, w)
    r = y - model
    if noise_sd is None:
        dof = max(2 * n - m - 1, 1)
        sigma = np.sqrt((np.abs(r) ** 2).sum(axis=1) / dof)
    else:
        sigma = np.broadcast_to(np.asarray(noise_sd, float), (v,)).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = np.linalg.pinv(fim)  # singular when an amplitude is exactly 0 (w unidentified)
        sd = sigma[:, None] * np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2)[:, :m], 0, None))
        height = c * e.sum(axis=1)[:, None]  # DTFT peak of each line at its own frequency
        snr = height / (sigma * np.sqrt(n))[:, None]
    return SingletFit(amplitude=c, sd=sd, fwhm_hz=w, snr=snr, noise_sd=sigma, fit=model)


def _fisher(
    proj: _Projector, c: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re(J^H J) of the model in (c_1..c_M, w), the decay (V, n) and the model (V, n)."""
    v, m = c.shape
    t = proj.t
    e = np.exp(-np.pi * w[:, None] * t[None, :])
    model = e * (c @ proj.b.T)
    e2 = e * e
    pr = proj.p.real
    g = (e2 @ pr).reshape(v, m, m)
    gt = ((e2 * t) @ pr).reshape(v, m, m)
    gtt = ((e2 * (t * t)) @ pr).reshape(v, m, m)
    fim = np.empty((v, m + 1, m + 1))
    fim[:, :m, :m] = g
    cross = -np.pi * np.einsum("vij,vj->vi", gt, c)
    fim[:, :m, m] = cross
    fim[:, m, :m] = cross
    fim[:, m, m] = np.pi**2 * np.einsum("vi,vij,vj->v", c, gtt, c)
    return fim, e, model
