"""QSM challenge metrics: NRMSE, HFEN, XSIM, and ROI helpers.

Definitions follow the QSM reconstruction challenges as implemented by QSM-CI's scorer
(``qsm_ci.qsm_eval``, MIT; ported from QSM.rs): demeaned NRMSE in %, HFEN as the relative
norm of the Laplacian-of-Gaussian (sigma 1.5 voxels) error in %, XSIM as SSIM with 5x5x5
windows and ``K1 = 0.01, K2 = 0.001, L = 1`` (Milovic et al. 2024). Tests cross-check them
against ``qsm_ci``; the package never imports it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["fraction_outside", "hfen", "nrmse", "roi_fraction_outside", "xsim"]


def nrmse(recon: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Demeaned normalised RMS error (%) inside ``mask``: ``100 ||r - t|| / ||t||``.

    Both maps are demeaned inside the mask first (chi is only defined up to a constant).
    """
    m = mask > 0
    r = recon[m].astype(np.float64)
    t = truth[m].astype(np.float64)
    r -= r.mean()
    t -= t.mean()
    den = math.sqrt(float(t @ t))
    return 100.0 * math.sqrt(float((r - t) @ (r - t))) / den if den > 0 else math.nan


def hfen(recon: np.ndarray, truth: np.ndarray, mask: np.ndarray, sigma: float = 1.5) -> float:
    """High-frequency error norm (%): LoG (``sigma`` voxels) of the error over LoG of truth."""
    from scipy.ndimage import gaussian_laplace

    m = mask > 0
    lr = gaussian_laplace(recon.astype(np.float64), sigma=sigma, truncate=5.0)
    lt = gaussian_laplace(truth.astype(np.float64), sigma=sigma, truncate=5.0)
    err = lr[m] - lt[m]
    den = math.sqrt(float(lt[m] @ lt[m]))
    return 100.0 * math.sqrt(float(err @ err)) / den if den > 0 else math.nan


def xsim(recon: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """XSIM: SSIM tuned for QSM (5x5x5 windows truncated at the border), mean in ``mask``."""
    from scipy.ndimage import uniform_filter

    c1, c2, k = 1e-4, 1e-6, 5
    a = recon.astype(np.float64)
    b = truth.astype(np.float64)

    def wsum(x: np.ndarray) -> np.ndarray:
        return uniform_filter(x, size=k, mode="constant", cval=0.0) * k**3

    cnt = wsum(np.ones_like(a))
    cnt[cnt == 0] = 1.0
    mu_a, mu_b = wsum(a) / cnt, wsum(b) / cnt
    var_a = wsum(a * a) / cnt - mu_a**2
    var_b = wsum(b * b) / cnt - mu_b**2
    cov = wsum(a * b) / cnt - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    valid = (mask > 0) & (den > 0)
    return float(np.mean(num[valid] / den[valid])) if valid.any() else 0.0


def fraction_outside(roi: np.ndarray, mask: np.ndarray) -> float:
    """Fraction (0-1) of a ROI's voxels that fall outside ``mask`` (e.g. V-SHARP's erosion).

    M1 lies at the brain surface, where background removal erodes the mask: a ROI mostly
    outside the final mask measures chi that was never reconstructed.

    Parameters
    ----------
    roi, mask : bool ndarrays of one shape
        ROI voxels and the final QSM mask.
    """
    r = roi > 0
    n = int(r.sum())
    return float((r & ~(mask > 0)).sum() / n) if n else math.nan


def roi_fraction_outside(
    centre_ras: np.ndarray,
    semi_axes_ras: np.ndarray,
    mask: np.ndarray,
    ras_affine: np.ndarray,
) -> float:
    """Area fraction (0-1) of an oval ROI that lies outside ``mask`` (or outside the grid).

    Uses the measurement engine's exact-area pixel weights
    (:func:`napari_m1.measure.ellipse_weights`) on the ROI's slice.

    Parameters
    ----------
    centre_ras : (3,) float
        ROI centre, scanner RAS mm (``Annotation.centre_ras``).
    semi_axes_ras : (2, 3) float
        The two semi-axis vectors in RAS mm (``Annotation.semi_axes_ras``).
    mask : bool ndarray, shape (n0, n1, n2)
        The final QSM mask in napari order (slices along axis 0).
    ras_affine : (4, 4)
        napari index -> RAS mm of ``mask``.
    """
    from ..measure import ellipse_weights

    inv = np.linalg.inv(np.asarray(ras_affine, dtype=float))
    c = inv[:3, :3] @ np.asarray(centre_ras, dtype=float) + inv[:3, 3]
    uv = np.asarray(semi_axes_ras, dtype=float) @ inv[:3, :3].T
    k = int(np.rint(c[0]))
    if not 0 <= k < mask.shape[0]:
        return 1.0
    w = ellipse_weights(c[1:], uv[:, 1:].T, mask.shape[1:])
    if w.total <= 0:
        return math.nan
    inside = float((w.weights * (mask[k, w.rows, w.cols] > 0)).sum())
    return max(0.0, 1.0 - inside / w.total)
