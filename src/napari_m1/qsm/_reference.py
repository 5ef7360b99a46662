"""Referencing: which susceptibility is called zero (the whole brain, CSF or a given ROI).

QSM measures susceptibility only up to a constant (the dipole kernel is 0 at k = 0), so a
reconstruction subtracts a reference: the mean over the whole final mask by default (the
2024 QSM consensus), the mean over cerebrospinal fluid, or over a region the reader drew.
The value subtracted and where it came from go to ``qsm.json``. The M1 - control
difference of the ``qsm-m1`` protocol does not depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import M1InputError

__all__ = ["csf_mask", "r2star_map", "reference_chi", "reference_mean"]

#: Minimum number of voxels a CSF or ROI reference must hold.
MIN_REFERENCE_VOXELS = 20


def reference_mean(chi: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Subtract the mean chi inside ``mask`` (whole-brain reference); 0 stays 0 outside.

    Returns
    -------
    chi : float32 ndarray
        Referenced copy.
    reference_ppm : float
        The value subtracted.
    """
    ref = float(np.mean(chi[mask], dtype=np.float64)) if mask.any() else 0.0
    out = chi - np.float32(ref)
    out[~mask] = 0
    return out.astype(np.float32), ref


def r2star_map(mag: np.ndarray, echo_times_ms: Sequence[float]) -> np.ndarray:
    """R2* (1/s) from a log-linear least-squares fit of the echo magnitudes.

    Parameters
    ----------
    mag : float ndarray, shape (n_echoes, n0, n1, n2)
        Magnitude per echo (n_echoes >= 2).
    echo_times_ms : sequence of float

    Returns
    -------
    float32 ndarray, shape (n0, n1, n2)
        R2* in 1/s (``inf`` where a magnitude is not positive).
    """
    te = np.asarray(echo_times_ms, dtype=np.float64) / 1000.0
    if te.size < 2:
        raise M1InputError("R2* (for a CSF reference) needs at least two echoes")
    tc = (te - te.mean()) / np.sum((te - te.mean()) ** 2)
    slope = np.zeros(mag.shape[1:], dtype=np.float32)
    bad = np.zeros(mag.shape[1:], dtype=bool)
    for m, w in zip(mag, tc, strict=True):
        bad |= ~(m > 0)
        slope += np.float32(w) * np.log(np.maximum(m, np.float32(1e-30)), dtype=np.float32)
    r2s = -slope
    r2s[bad] = np.inf
    return r2s


def csf_mask(
    mag: np.ndarray,
    echo_times_ms: Sequence[float],
    mask: np.ndarray,
    *,
    r2star_max: float = 20.0,
) -> np.ndarray:
    """Cerebrospinal fluid inside ``mask``: slow T2* decay and bright first echo.

    CSF has a long T2* (R2* below ``r2star_max``; grey matter at 7 T is ~30/s, white matter
    ~45/s) and, at short echo times, the brightest signal. Voxels with
    R2* < ``r2star_max`` whose first-echo magnitude is above the mask's median are kept.

    Parameters
    ----------
    mag : float ndarray, shape (n_echoes, n0, n1, n2)
    echo_times_ms : sequence of float
    mask : bool ndarray, shape (n0, n1, n2)
        The final (reconstructed) mask.
    r2star_max : float
        R2* threshold, 1/s.

    Returns
    -------
    bool ndarray, shape (n0, n1, n2)
    """
    r2s = r2star_map(mag, echo_times_ms)
    bright = mag[0] > np.median(mag[0][mask]) if mask.any() else np.zeros(mask.shape, bool)
    return mask & bright & (r2s < np.float32(r2star_max))


def reference_chi(
    chi: np.ndarray, mask: np.ndarray, region: np.ndarray, *, what: str
) -> tuple[np.ndarray, float, int]:
    """Subtract the mean chi over ``region`` (∩ ``mask``); 0 stays 0 outside ``mask``.

    Parameters
    ----------
    chi : float ndarray, shape (n0, n1, n2)
    mask : bool ndarray
        Final mask (where chi is defined).
    region : bool ndarray
        Reference region (CSF, a drawn ROI).
    what : str
        Name of the region for the error message.

    Returns
    -------
    chi : float32 ndarray
    reference_ppm : float
    voxels : int
        Voxels the mean was taken over.

    Raises
    ------
    M1InputError
        Fewer than :data:`MIN_REFERENCE_VOXELS` voxels of ``region`` lie inside ``mask``.
    """
    sel = np.asarray(region, dtype=bool) & mask
    n = int(sel.sum())
    if n < MIN_REFERENCE_VOXELS:
        raise M1InputError(
            f"the {what} reference has {n} voxels inside the QSM mask "
            f"(at least {MIN_REFERENCE_VOXELS} needed)"
        )
    ref = float(np.mean(chi[sel], dtype=np.float64))
    out = chi - np.float32(ref)
    out[~mask] = 0
    return out.astype(np.float32), ref, n
