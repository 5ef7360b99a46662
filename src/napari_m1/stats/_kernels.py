"""Numeric kernels of the statistics: average ranks and the BCa bootstrap interval.

numpy and ``scipy.special`` only. ``scipy.stats`` costs about a second to import — a
third of the ``napari-m1 report`` command for a large study — so the few pieces of it
that the report uses on every run are written out here with scipy's own formulas, and
the tests check them against ``scipy.stats`` (``rankdata``, ``mannwhitneyu``,
``spearmanr``, ``bootstrap``). ``scipy.stats`` is still imported where a rare path
needs it (the exact Mann–Whitney distribution of small samples).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["average_ranks", "bca_interval", "mwu_asymptotic_p"]


def average_ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based ranks with ties given their average rank, and the size of each tie group.

    Parameters
    ----------
    x : ndarray, shape (n,)
        Finite values.

    Returns
    -------
    ranks : ndarray of float, shape (n,)
        As ``scipy.stats.rankdata(x, "average")``.
    tie_sizes : ndarray of int, shape (n_distinct,)
        How many values share each distinct value (1 for untied values).
    """
    import numpy as np

    order = np.argsort(x)  # any order within ties: their ranks are averaged
    xs = x[order]
    new = np.empty(xs.size, dtype=bool)
    new[:1] = True
    np.not_equal(xs[1:], xs[:-1], out=new[1:])
    ranks = np.empty(xs.size)
    if new.all():  # no ties (the usual case for measurements): ranks are positions
        ranks[order] = np.arange(1, xs.size + 1)
        return ranks, np.ones(xs.size, dtype=np.intp)
    dense = np.cumsum(new)  # 1-based group number of each sorted value
    bounds = np.append(np.flatnonzero(new), xs.size)  # start of each group, then n
    ranks[order] = 0.5 * (bounds[dense] + bounds[dense - 1] + 1)
    return ranks, np.diff(bounds)


def bca_interval(
    statistic: Callable[[np.ndarray], np.ndarray],
    n: int,
    *,
    n_resamples: int,
    alpha: float,
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Two-sided (1 − alpha) bias-corrected and accelerated bootstrap CI over cases.

    The algorithm of ``scipy.stats.bootstrap(method="BCa", vectorized=True)`` applied
    to the case indices ``np.arange(n)`` (Efron & Tibshirani 1993, 14.3 and 15.4),
    drawing the same resamples from ``rng``, so the interval is the same to rounding.

    Parameters
    ----------
    statistic : callable
        ``statistic(idx)`` with ``idx`` an int array of shape (m, k) — m resamples of
        k case indices — returns the m values; with shape (n,) it returns one value.
    n : int
        Number of cases.
    n_resamples : int
        Bootstrap resamples.
    alpha : float
        1 − confidence level.
    rng : numpy.random.Generator
        Source of the resamples.

    Returns
    -------
    tuple of float
        (low, high); NaN when the bootstrap distribution is degenerate (NaN values).
    """
    import numpy as np
    from scipy.special import ndtr, ndtri

    theta_b = statistic(rng.integers(0, n, (n_resamples, n)))
    theta = statistic(np.arange(n))
    # Bias correction: where the estimate falls in the bootstrap distribution.
    below = np.count_nonzero(theta_b < theta) + np.count_nonzero(theta_b <= theta)
    z0 = ndtri(below / (2 * n_resamples))
    # Acceleration from the jackknife (each row leaves one case out).
    j = np.arange(n - 1)
    step = max(1, 2**22 // n)  # rows per batch: bounded memory for large studies
    theta_i = np.concatenate(
        [
            statistic(j + (j >= r[:, None]))  # row r: every case but r
            for r in (np.arange(s, min(s + step, n)) for s in range(0, n, step))
        ]
    )
    u = (n - 1) * (theta_i.mean() - theta_i)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.sum(u**3) / n**3 / (np.sum(u**2) / n**2) ** 1.5 / 6
        z = ndtri(alpha / 2)
        levels = [ndtr(z0 + (z0 + zz) / (1 - a * (z0 + zz))) for zz in (z, -z)]
    if not all(np.isfinite(levels)) or np.isnan(theta_b).any():
        return float("nan"), float("nan")
    lo, hi = np.quantile(theta_b, levels)
    return float(lo), float(hi)


def mwu_asymptotic_p(u1: float, n1: int, n2: int, tie_sizes: np.ndarray) -> float:
    """Two-sided Mann–Whitney p of U, normal approximation with tie and continuity corrections.

    ``scipy.stats.mannwhitneyu(method="asymptotic")``'s formula.

    Parameters
    ----------
    u1 : float
        U of the first sample.
    n1, n2 : int
        Sample sizes.
    tie_sizes : ndarray of int
        Sizes of the groups of equal values in the pooled sample (:func:`average_ranks`).
    """
    import math

    from scipy.special import ndtr

    n = n1 + n2
    u = max(u1, n1 * n2 - u1)
    tie_term = float(((tie_sizes.astype(float)) ** 3 - tie_sizes).sum())
    s = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    z = (u - n1 * n2 / 2 - 0.5) / s
    return float(min(max(2 * ndtr(-z), 0.0), 1.0))
