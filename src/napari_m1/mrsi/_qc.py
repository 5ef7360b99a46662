"""Metabolite ratio maps with quality control on the native MRSI grid. Pure numpy.

A voxel of ``N/tCr`` is excluded (NaN) when the numerator *or* tCr fails a test:

=========  ==========================================  ==========
test       rule (default)                              reason bit
=========  ==========================================  ==========
``crlb``   %SD > ``max_sd_pct`` (20 %), or undefined   1
``fwhm``   FWHM > ``max_fwhm_ppm`` (0.1 ppm)           2
``snr``    S/N < ``min_snr`` (5)                       4
``mask``   outside the MRSI mask                       8
=========  ==========================================  ==========

The fit tests count voxels inside the mask only; a voxel outside the mask counts under
``mask`` alone. A test whose input is missing (no %SD, S/N or FWHM map) is not applied and
the summary says so (``excluded_by[test] = None``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._fslmrs import MRSIFit
from ._names import RATIOS

__all__ = ["REASON_BITS", "QCThresholds", "RatioMap", "ratio_maps"]

REASON_BITS: dict[str, int] = {"crlb": 1, "fwhm": 2, "snr": 4, "mask": 8}


@dataclass(frozen=True)
class QCThresholds:
    """Exclusion thresholds (written with every export via :meth:`as_dict`).

    Attributes
    ----------
    max_sd_pct : float
        Largest accepted Cramér-Rao SD, % of the concentration (default 20).
    max_fwhm_ppm : float
        Largest accepted linewidth, ppm (default 0.1).
    min_snr : float
        Smallest accepted signal-to-noise ratio (default 5).

    Raises
    ------
    M1InputError
        A threshold that is not a finite number >= 0 (also a ValueError).
    """

    max_sd_pct: float = 20.0
    max_fwhm_ppm: float = 0.1
    min_snr: float = 5.0

    def __post_init__(self) -> None:
        from ..errors import M1InputError

        for name, v in asdict(self).items():
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not ok or not math.isfinite(v) or v < 0:
                raise M1InputError(f"QC threshold {name} must be a finite number >= 0, not {v!r}")
            object.__setattr__(self, name, float(v))

    def as_dict(self) -> dict[str, float]:
        """``{"max_sd_pct": ..., "max_fwhm_ppm": ..., "min_snr": ...}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QCThresholds:
        """From :meth:`as_dict` output (unknown keys refused, missing ones default)."""
        from ..errors import M1InputError

        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise M1InputError(f"unknown QC threshold(s): {', '.join(sorted(unknown))}")
        return cls(**d)


@dataclass
class RatioMap:
    """One ratio map.

    Attributes
    ----------
    name : str
        ``"tNAA/tCr"``.
    values : ndarray float, shape (x, y, z)
        The ratio with excluded voxels set to NaN.
    unfiltered : ndarray float, shape (x, y, z)
        The ratio everywhere it is defined (filtering on CRLB biases means upward).
    reason : ndarray uint8, shape (x, y, z)
        Bitwise OR of :data:`REASON_BITS` of the failed tests; 0 = kept.
    summary : dict
        ``{"ratio", "n_voxels", "n_excluded", "n_kept", "excluded_by": {...}, "thresholds"}``.
    """

    name: str
    values: np.ndarray
    unfiltered: np.ndarray
    reason: np.ndarray
    summary: dict[str, Any]


def _fails_above(a: np.ndarray | None, limit: float) -> np.ndarray | None:
    return None if a is None else ~(a <= limit)  # NaN fails


def _fails_below(a: np.ndarray | None, limit: float) -> np.ndarray | None:
    return None if a is None else ~(a >= limit)


def _either(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    if a is None or b is None:
        return None  # a test needs both metabolites' QC to be applied
    return a | b


def ratio_maps(
    fit: MRSIFit,
    thresholds: QCThresholds | None = None,
    ratios: tuple[tuple[str, str], ...] = RATIOS,
) -> list[RatioMap]:
    """Ratio maps (``tNAA/tCr``, ``tCho/tCr``, ``Glx/tCr`` by default) with QC exclusion.

    Ratios whose numerator or denominator has no concentration map are left out.
    """
    th = thresholds or QCThresholds()
    out = []
    for num, den in ratios:
        if num not in fit.conc or den not in fit.conc:
            continue
        tests = {
            "crlb": _either(
                _fails_above(fit.sd_pct.get(num), th.max_sd_pct),
                _fails_above(fit.sd_pct.get(den), th.max_sd_pct),
            ),
            "fwhm": _either(
                _fails_above(fit.fwhm_ppm.get(num), th.max_fwhm_ppm),
                _fails_above(fit.fwhm_ppm.get(den), th.max_fwhm_ppm),
            ),
            "snr": _either(
                _fails_below(fit.snr.get(num), th.min_snr),
                _fails_below(fit.snr.get(den), th.min_snr),
            ),
        }
        # Outside the mask the fit is undefined: count those voxels under "mask" only.
        tests = {k: (None if t is None else t & fit.mask) for k, t in tests.items()}
        tests["mask"] = ~fit.mask
        reason = np.zeros(fit.shape, dtype=np.uint8)
        for k, failed in tests.items():
            if failed is not None:
                reason |= failed.astype(np.uint8) * np.uint8(REASON_BITS[k])
        d = fit.conc[den]
        with np.errstate(divide="ignore", invalid="ignore"):
            unfiltered = np.where(d != 0, fit.conc[num] / d, np.nan)
        values = np.where(reason == 0, unfiltered, np.nan)
        name = f"{num}/{den}"
        n_excl = int(np.count_nonzero(reason))
        summary = {
            "ratio": name,
            "n_voxels": int(reason.size),
            "n_excluded": n_excl,
            "n_kept": int(reason.size) - n_excl,
            "excluded_by": {
                k: (None if t is None else int(np.count_nonzero(t))) for k, t in tests.items()
            },
            "thresholds": th.as_dict(),
        }
        out.append(RatioMap(name, values, unfiltered, reason, summary))
    return out
