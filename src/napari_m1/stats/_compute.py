"""The study statistics: accuracy, agreement, group comparisons and correlations.

Pure computation (numpy, pandas, scipy.stats, statsmodels); no Qt, no plotting.
Every statistic that cannot be computed is returned blank (NaN) with a ``note``
saying why, and the reason is also collected as a
:class:`~napari_m1.stats._load.DataIssue` (source ``analysis``). Missing values
are never imputed: every test reports the ``n`` it used.
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ._load import CALLS, PENFIELD_AREAS, DataIssue, StudyData, make_issue

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import ArrayLike

__all__ = [
    "ACCURACY_COLUMNS",
    "AGREEMENT_COLUMNS",
    "CLINICAL_FOR_CORRELATION",
    "COMPARISON_COLUMNS",
    "CORRELATION_COLUMNS",
    "IccResult",
    "StudyResults",
    "cohen_kappa",
    "compute_study",
    "diagnostic_accuracy",
    "disease_progression_rate",
    "fleiss_kappa_ci",
    "icc",
    "mann_whitney",
    "per_subject_values",
    "reader_order",
    "spearman",
    "wilson_interval",
]

log = logging.getLogger(__name__)

ALPHA = 0.05
POOLED = "pooled"
METRICS = ("sensitivity", "specificity", "ppv", "npv", "accuracy")
ACCURACY_COLUMNS = [
    "reader",
    "tp",
    "fp",
    "tn",
    "fn",
    *METRICS,
    *(f"{m}_ci_{s}" for m in METRICS for s in ("low", "high")),
    "n",
    "note",
]
AGREEMENT_COLUMNS = [
    "measure",
    "reader_a",
    "reader_b",
    "statistic",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "method",
    "note",
]
_GROUP_STATS = ("n", "median", "q1", "q3", "mean", "sd")
COMPARISON_COLUMNS = [
    "comparison",
    "variable",
    "reader",
    "group_a",
    "group_b",
    "n_a",
    "n_b",
    "median_a",
    "q1_a",
    "q3_a",
    "median_b",
    "q1_b",
    "q3_b",
    "mean_a",
    "sd_a",
    "mean_b",
    "sd_b",
    "u_statistic",
    "p_value",
    "method",
    "note",
]
CORRELATION_COLUMNS = [
    "variable",
    "clinical",
    "reader",
    "area",
    "hemisphere",
    "rho",
    "p_value",
    "n",
    "note",
]
IMAGING = ("thickness_mm", "normalised_si")
CLINICAL_FOR_CORRELATION = ("umn_score", "dpr", "alsfrs_r", "disease_duration_months", "mrc")
#: Limb UMN score of the limb that a Penfield area of one hemisphere controls (contralateral).
CONTRALATERAL_LIMB = {
    ("hand", "L"): "umn_arm_right",
    ("hand", "R"): "umn_arm_left",
    ("leg", "L"): "umn_leg_right",
    ("leg", "R"): "umn_leg_left",
    ("foot", "L"): "umn_leg_right",
    ("foot", "R"): "umn_leg_left",
}
MWU_EXACT_MAX_N = 8
MIN_N_GROUP = 2
MIN_N_SPEARMAN = 3
FLEISS_BOOTSTRAP = 2000

_NOTE_SINGLE_CLASS = "single-class"
_NOTE_CONSTANT = "constant"
_NOTE_SMALL_N = "small-n"
_NOTE_UNDEFINED = "zero-denominator"


# --------------------------------------------------------------------------- primitives
def reader_order(readers: Iterable[str]) -> list[str]:
    """Reader ids in natural order (``R2`` before ``R10``)."""
    import re

    def key(r: str) -> tuple:
        return tuple(
            (0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(r)) if t
        )

    return sorted(set(readers), key=key)


def disease_progression_rate(alsfrs_r: ArrayLike, duration_months: ArrayLike) -> Any:
    """Disease progression rate, ALSFRS-R points lost per month since symptom onset.

    ``DPR = (48 − ALSFRS-R) / disease duration``. Blank (NaN) where either input is
    missing or the duration is not > 0.

    Parameters
    ----------
    alsfrs_r : array_like
        Revised ALS functional rating scale, points (0–48).
    duration_months : array_like
        Disease duration, months (> 0).

    Returns
    -------
    pandas.Series or numpy.ndarray
        Points per month; a Series (same index) when ``alsfrs_r`` is one.
    """
    import numpy as np
    import pandas as pd

    a = np.asarray(alsfrs_r, dtype=float)
    d = np.asarray(duration_months, dtype=float)
    ok = np.isfinite(a) & np.isfinite(d) & (d > 0)
    out = np.full(np.broadcast(a, d).shape, np.nan)
    np.divide(48.0 - a, d, out=out, where=ok)
    if isinstance(alsfrs_r, pd.Series):
        return pd.Series(out, index=alsfrs_r.index, name="dpr")
    return out


def wilson_interval(count: int, nobs: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (statsmodels ``proportion_confint``).

    Returns ``(nan, nan)`` when ``nobs`` is 0.
    """
    from statsmodels.stats.proportion import proportion_confint

    if nobs <= 0:
        return float("nan"), float("nan")
    lo, hi = proportion_confint(count, nobs, alpha=alpha, method="wilson")
    # Exact at the ends (Wilson gives 0 at k = 0 and 1 at k = n; floats may miss by 1 ulp).
    return (0.0 if count == 0 else float(lo)), (1.0 if count == nobs else float(hi))


def _fraction(count: int, nobs: int) -> float:
    return count / nobs if nobs > 0 else float("nan")


def diagnostic_accuracy(calls: pd.DataFrame) -> pd.DataFrame:
    """Per-reader accuracy of the visual call against the clinical group.

    Parameters
    ----------
    calls : pandas.DataFrame
        One row per first read with columns ``reader``, ``als_consistent`` (0/1) and
        ``group`` (``als``/``control``). Rows with a missing call are ignored.

    Returns
    -------
    pandas.DataFrame
        :data:`ACCURACY_COLUMNS`: TP/FP/TN/FN counts, sensitivity, specificity, PPV,
        NPV and accuracy as fractions (0–1) with 95 % Wilson score intervals, ``n``
        reads used and a ``note`` naming undefined metrics (zero denominators).
    """
    import pandas as pd

    rows = []
    calls = calls.loc[calls["als_consistent"].notna()]
    groups = dict(list(calls.groupby("reader", sort=False)))
    for reader in reader_order(groups):
        g = groups[reader]
        pos = g["als_consistent"].to_numpy() == 1
        als = g["group"].to_numpy() == "als"
        tp, fp = int((pos & als).sum()), int((pos & ~als).sum())
        tn, fn = int((~pos & ~als).sum()), int((~pos & als).sum())
        frac = {
            "sensitivity": (tp, tp + fn),
            "specificity": (tn, tn + fp),
            "ppv": (tp, tp + fp),
            "npv": (tn, tn + fn),
            "accuracy": (tp + tn, tp + tn + fp + fn),
        }
        row: dict[str, Any] = {"reader": reader, "tp": tp, "fp": fp, "tn": tn, "fn": fn}
        undefined = []
        for m, (k, n) in frac.items():
            row[m] = _fraction(k, n)
            row[f"{m}_ci_low"], row[f"{m}_ci_high"] = wilson_interval(k, n)
            if n == 0:
                undefined.append(m)
        row["n"] = tp + fp + tn + fn
        notes = []
        if undefined:
            notes.append(f"undefined (zero denominator): {', '.join(undefined)}")
        if tp + fp == 0 or tn + fn == 0:
            notes.append("reader used a single class")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows, columns=ACCURACY_COLUMNS)


@dataclass(frozen=True)
class Stat:
    """One agreement statistic with its CI; NaN and a note when undefined."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    note: str = ""
    code: str = ""  # machine-readable reason for a blank value


def cohen_kappa(
    a: ArrayLike, b: ArrayLike, *, names: tuple[str, str] = ("first", "second")
) -> Stat:
    """Cohen's κ of two raters' binary calls with its asymptotic 95 % CI.

    Computed by ``statsmodels.stats.inter_rater.cohens_kappa`` on the 2×2 table of
    the pairs where both calls are present; the CI is κ ± z·ASE, clipped to [−1, 1].

    Parameters
    ----------
    a, b : array_like of 0/1 (NaN = missing)
        The two raters' calls on the same cases, aligned.
    names : tuple of str
        The raters' names for notes.

    Returns
    -------
    Stat
        κ undefined (NaN, with a note) when there are no pairs or either rater used a
        single class (κ is then 0 by formula, or 0/0, and says nothing about agreement).
    """
    import numpy as np
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok].astype(int), b[ok].astype(int)
    n = int(a.size)
    nan = float("nan")
    if n == 0:
        return Stat(nan, nan, nan, 0, "no cases read by both", _NOTE_SMALL_N)
    single = [name for name, x in zip(names, (a, b), strict=True) if np.unique(x).size < 2]
    if single:
        who = " and ".join(dict.fromkeys(single))
        return Stat(
            nan, nan, nan, n, f"κ undefined: {who} used a single class", _NOTE_SINGLE_CLASS
        )
    table = np.bincount(2 * a + b, minlength=4).reshape(2, 2)
    res = sm_kappa(table)  # kappa_low/kappa_upp: 95 % two-sided (alpha 0.025 per side)
    note = ""
    if table[0, 1] == 0 and table[1, 0] == 0:
        note = "perfect agreement: asymptotic SE is 0, so the CI is degenerate"
    return Stat(
        float(res.kappa),
        float(max(res.kappa_low, -1.0)),
        float(min(res.kappa_upp, 1.0)),
        n,
        note,
    )


def fleiss_kappa_ci(
    ratings: ArrayLike, *, alpha: float = ALPHA, n_resamples: int = FLEISS_BOOTSTRAP, seed: int = 0
) -> Stat:
    """Fleiss' κ of k ≥ 2 raters with a bootstrap (BCa, resampling cases) CI.

    Parameters
    ----------
    ratings : array_like, shape (n_cases, k_raters)
        Integer categories (here 0/1); rows must be complete.
    alpha : float
        1 − confidence level.
    n_resamples : int
        Bootstrap resamples (``scipy.stats.bootstrap``, method BCa, fixed seed).

    Returns
    -------
    Stat
        κ from ``statsmodels.stats.inter_rater.fleiss_kappa``; undefined when every
        rating is the same category.
    """
    import numpy as np
    from scipy.stats import bootstrap
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    x = np.asarray(ratings, dtype=int)
    n = int(x.shape[0])
    nan = float("nan")
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("ratings must be (n_cases, k >= 2 raters)")
    if n < 2:
        return Stat(nan, nan, nan, n, "fewer than 2 complete cases", _NOTE_SMALL_N)
    if np.unique(x).size < 2:
        return Stat(
            nan, nan, nan, n, "κ undefined: every rating is the same class", _NOTE_SINGLE_CLASS
        )
    table, _ = aggregate_raters(x)
    value = float(fleiss_kappa(table, method="fleiss"))

    def stat(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        return fleiss_kappa_resampled(table, idx)

    note = f"{x.shape[1]} readers; bootstrap BCa CI ({n_resamples} resamples of cases)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = bootstrap(
            (np.arange(n),),
            stat,
            n_resamples=n_resamples,
            confidence_level=1 - alpha,
            method="BCa",
            vectorized=True,
            rng=np.random.default_rng(seed),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        lo = hi = nan
        note += "; CI not computable (degenerate resamples)"
    return Stat(value, lo, hi, n, note)


def fleiss_kappa_resampled(table: np.ndarray, idx: ArrayLike) -> np.ndarray:
    """Fleiss' κ of resamples of the cases of a count table, vectorised over resamples.

    Fleiss (1971): κ = (mean_i P_i − Σ_j p_j²) / (1 − Σ_j p_j²), with per-case agreement
    P_i = (Σ_j n_ij² − k) / (k(k − 1)) and category shares p_j = mean_i n_ij / k. Both
    are means over cases of per-case terms, so a resample only gathers those terms. This
    is statsmodels' ``fleiss_kappa`` formula (tests check they agree), made fast enough
    for 2000 bootstrap resamples of 1000 cases.

    Parameters
    ----------
    table : ndarray, shape (n_cases, n_categories)
        Counts of raters per category (``aggregate_raters``); every row sums to k.
    idx : array_like of int, shape (..., m)
        Case indices of each resample.

    Returns
    -------
    ndarray, shape (...)
        κ per resample (NaN when a resample has a single category).
    """
    import numpy as np

    t = np.asarray(table, dtype=float)
    k = t[0].sum()
    p_case = ((t * t).sum(axis=1) - k) / (k * (k - 1))
    q_case = t / k
    idx = np.asarray(idx, dtype=int)
    p_e = sum(q_case[:, j][idx].mean(axis=-1) ** 2 for j in range(t.shape[1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (p_case[idx].mean(axis=-1) - p_e) / (1 - p_e)


@dataclass(frozen=True)
class IccResult:
    """Intraclass correlations from a two-way ANOVA without replication.

    Attributes
    ----------
    icc2_1, icc3_1 : float
        Shrout & Fleiss ICC(2,1) (two-way random, absolute agreement, single rater) and
        ICC(3,1) (two-way mixed, consistency, single rater).
    icc2_1_ci, icc3_1_ci : tuple of float
        (1 − alpha) CIs: McGraw & Wong (1996) F-based limits; ICC(2,1) uses
        Satterthwaite's approximate degrees of freedom.
    f_value, df1, df2, p_value : float
        F = MS_subjects / MS_error, its degrees of freedom and p (H0: ICC = 0).
    ms_subjects, ms_raters, ms_error : float
        Mean squares of the ANOVA.
    n, k : int
        Subjects and raters used (complete subjects only).
    note : str
        Why the ICC is undefined, if it is.
    """

    icc2_1: float
    icc2_1_ci: tuple[float, float]
    icc3_1: float
    icc3_1_ci: tuple[float, float]
    f_value: float
    df1: float
    df2: float
    p_value: float
    ms_subjects: float
    ms_raters: float
    ms_error: float
    n: int
    k: int
    note: str = ""
    code: str = ""


def icc(ratings: ArrayLike, *, alpha: float = ALPHA) -> IccResult:
    """ICC(2,1) and ICC(3,1) of a complete subjects × raters table (Shrout & Fleiss 1979).

    The mean squares are those of the two-way ANOVA ``y ~ subject + rater`` (one
    observation per cell), computed directly from the table (same values as
    statsmodels ``anova_lm``, which would need an n-column design matrix).

    Parameters
    ----------
    ratings : array_like, shape (n_subjects, k_raters)
        Measurements (any unit); rows with a missing value must be removed beforehand.
    alpha : float
        1 − confidence level.

    Returns
    -------
    IccResult
        All NaN, with a note, when n < 2, k < 2 or the table has no residual variance.
    """
    import numpy as np
    from scipy.stats import f

    y = np.asarray(ratings, dtype=float)
    n, k = (int(s) for s in y.shape)
    nan = float("nan")
    blank = {
        "icc2_1": nan,
        "icc2_1_ci": (nan, nan),
        "icc3_1": nan,
        "icc3_1_ci": (nan, nan),
        "f_value": nan,
        "df1": nan,
        "df2": nan,
        "p_value": nan,
        "ms_subjects": nan,
        "ms_raters": nan,
        "ms_error": nan,
        "n": n,
        "k": k,
    }
    if n < 2 or k < 2:
        return IccResult(
            **blank, note="ICC needs ≥ 2 subjects rated by ≥ 2 readers", code=_NOTE_SMALL_N
        )
    gm = y.mean()
    ss_r = k * ((y.mean(axis=1) - gm) ** 2).sum()
    ss_c = n * ((y.mean(axis=0) - gm) ** 2).sum()
    ss_e = ((y - gm) ** 2).sum() - ss_r - ss_c
    df_r, df_c, df_e = n - 1, k - 1, (n - 1) * (k - 1)
    msr, msc, mse = ss_r / df_r, ss_c / df_c, max(ss_e, 0.0) / df_e
    if mse <= 1e-12 * max(msr, msc, 1e-300) or msr == 0:
        return IccResult(
            **{**blank, "ms_subjects": msr, "ms_raters": msc, "ms_error": mse},
            note="ICC undefined: no variance between subjects or no residual variance",
            code=_NOTE_CONSTANT,
        )
    icc3 = (msr - mse) / (msr + (k - 1) * mse)
    icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    fval = msr / mse
    p = float(f.sf(fval, df_r, df_e))
    q = 1 - alpha / 2
    # ICC(3,1): exact F limits.
    f_lo = fval / f.ppf(q, df_r, df_e)
    f_hi = fval * f.ppf(q, df_e, df_r)
    ci3 = ((f_lo - 1) / (f_lo + k - 1), (f_hi - 1) / (f_hi + k - 1))
    # ICC(2,1): McGraw & Wong (1996) case 2A, Satterthwaite degrees of freedom.
    a = k * icc2 / (n * (1 - icc2))
    b = 1 + k * icc2 * (n - 1) / (n * (1 - icc2))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / df_c + (b * mse) ** 2 / df_e)
    fs_lo = f.ppf(q, df_r, v)
    fs_hi = f.ppf(q, v, df_r)
    lo2 = n * (msr - fs_lo * mse) / (fs_lo * (k * msc + (k * n - k - n) * mse) + n * msr)
    hi2 = n * (fs_hi * msr - mse) / (k * msc + (k * n - k - n) * mse + n * fs_hi * msr)
    return IccResult(
        icc2_1=float(icc2),
        icc2_1_ci=(float(lo2), float(hi2)),
        icc3_1=float(icc3),
        icc3_1_ci=(float(ci3[0]), float(ci3[1])),
        f_value=float(fval),
        df1=float(df_r),
        df2=float(df_e),
        p_value=p,
        ms_subjects=float(msr),
        ms_raters=float(msc),
        ms_error=float(mse),
        n=n,
        k=k,
    )


def _describe(x: np.ndarray) -> dict[str, float]:
    import numpy as np

    if x.size == 0:
        return dict.fromkeys(_GROUP_STATS, float("nan")) | {"n": 0}
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return {
        "n": int(x.size),
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "mean": float(x.mean()),
        "sd": float(x.std(ddof=1)) if x.size > 1 else float("nan"),
    }


def mann_whitney(a: ArrayLike, b: ArrayLike) -> dict[str, Any]:
    """Two-sided Mann–Whitney U test of two independent samples (``scipy.stats.mannwhitneyu``).

    The exact distribution is used when both samples have ≤ 8 values and there are no
    ties; otherwise the normal approximation with tie and continuity corrections.

    Parameters
    ----------
    a, b : array_like
        The two samples; NaN values are left out (and not counted in ``n``).

    Returns
    -------
    dict
        ``n_a, median_a, q1_a, q3_a, mean_a, sd_a`` (and ``_b``), ``u_statistic`` (U of
        sample a), ``p_value``, ``method`` (``exact``/``asymptotic``, empty when not
        tested), ``note`` and ``code``.
    """
    import numpy as np
    from scipy.stats import mannwhitneyu

    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    out: dict[str, Any] = {}
    for suffix, s in (("a", x), ("b", y)):
        for key, val in _describe(s).items():
            out[f"{key}_{suffix}"] = val
    out.update(u_statistic=np.nan, p_value=np.nan, method="", note="", code="")
    if min(x.size, y.size) < MIN_N_GROUP:
        out["note"] = f"not tested: n too small (need ≥ {MIN_N_GROUP} per group)"
        out["code"] = _NOTE_SMALL_N
        return out
    both = np.concatenate([x, y])
    if np.unique(both).size == 1:
        out["note"] = "not tested: every value is the same"
        out["code"] = _NOTE_CONSTANT
        return out
    ties = np.unique(both).size < both.size
    method = "exact" if max(x.size, y.size) <= MWU_EXACT_MAX_N and not ties else "asymptotic"
    res = mannwhitneyu(x, y, alternative="two-sided", method=method)
    out.update(u_statistic=float(res.statistic), p_value=float(res.pvalue), method=method)
    if method == "asymptotic" and max(x.size, y.size) <= MWU_EXACT_MAX_N:
        out["note"] = "ties: normal approximation with tie correction"
    return out


def spearman(x: ArrayLike, y: ArrayLike) -> dict[str, Any]:
    """Spearman's ρ of the pairs where both values are present (``scipy.stats.spearmanr``).

    Returns
    -------
    dict
        ``rho``, ``p_value`` (two-sided), ``n`` (complete pairs), ``note``, ``code``;
        ρ is blank when n < 3 or either variable is constant.
    """
    import numpy as np
    from scipy.stats import spearmanr

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = int(a.size)
    out: dict[str, Any] = {"rho": np.nan, "p_value": np.nan, "n": n, "note": "", "code": ""}
    if n < MIN_N_SPEARMAN:
        out.update(note=f"not tested: n too small (need ≥ {MIN_N_SPEARMAN})", code=_NOTE_SMALL_N)
        return out
    const = [nm for nm, v in (("imaging", a), ("clinical", b)) if np.ptp(v) == 0]
    if const:
        out.update(note=f"ρ undefined: {' and '.join(const)} values constant", code=_NOTE_CONSTANT)
        return out
    res = spearmanr(a, b)
    out.update(rho=float(res.statistic), p_value=float(res.pvalue))
    return out


# --------------------------------------------------------------------------- tables
def first_reads(readings: pd.DataFrame) -> pd.DataFrame:
    """Submitted first reads (``is_repeat == 0``), one per reader × case."""
    sel = (readings["status"] == "submitted") & (readings["is_repeat"] == 0)
    return readings.loc[sel]


def per_subject_values(slots: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    """Per-reader and pooled per-subject thickness and normalised SI.

    A reader's per-subject value is the mean over the Penfield areas × hemispheres
    that reader measured (``n_*_slots`` says how many); the pooled value is the mean
    over readers of those per-reader values (``n_readers``).

    Parameters
    ----------
    slots : pandas.DataFrame
        :attr:`StudyData.slots`.
    clinical : pandas.DataFrame
        :attr:`StudyData.clinical` (for ``group``; blank when the case has no row).

    Returns
    -------
    pandas.DataFrame
        Columns ``reader`` (reader id or ``pooled``), ``case_id``, ``group``,
        ``thickness_mm``, ``n_thickness_slots``, ``normalised_si``, ``n_si_slots``,
        ``n_readers``.
    """
    import pandas as pd

    g = slots.groupby(["reader", "case_id"], sort=True)
    per = pd.DataFrame(
        {
            "thickness_mm": g["thickness_mm"].mean(),
            "n_thickness_slots": g["thickness_mm"].count(),
            "normalised_si": g["normalised_si"].mean(),
            "n_si_slots": g["normalised_si"].count(),
        }
    ).reset_index()
    per["n_readers"] = 1
    gp = per.groupby("case_id", sort=True)
    pooled = pd.DataFrame(
        {
            "thickness_mm": gp["thickness_mm"].mean(),
            "n_thickness_slots": gp["n_thickness_slots"].sum(),
            "normalised_si": gp["normalised_si"].mean(),
            "n_si_slots": gp["n_si_slots"].sum(),
            "n_readers": gp["thickness_mm"].count().combine(gp["normalised_si"].count(), max),
        }
    ).reset_index()
    pooled.insert(0, "reader", POOLED)
    out = pd.concat([per, pooled], ignore_index=True)
    out.insert(2, "group", out["case_id"].map(clinical["group"]).fillna("").astype(str))
    return out


class _Notes:
    """Collects analysis notes (undefined κ/ρ, small n) into a few DataIssues."""

    LABELS: ClassVar[dict[str, str]] = {
        _NOTE_SINGLE_CLASS: "κ undefined (a reader used a single class) for {n} comparison(s)",
        _NOTE_CONSTANT: "statistic undefined (constant values) for {n} test(s)",
        _NOTE_SMALL_N: "not computed (n too small) for {n} test(s)",
        _NOTE_UNDEFINED: "accuracy metric(s) undefined (zero denominator) for {n} reader(s)",
    }

    def __init__(self) -> None:
        self.items: dict[str, list[str]] = defaultdict(list)

    def add(self, code: str, item: str) -> None:
        if code:
            self.items[code].append(item)

    def issues(self) -> list[DataIssue]:
        return [
            make_issue("analysis", code, self.LABELS[code].format(n=len(items)), items)
            for code, items in self.items.items()
        ]


def agreement_table(
    readings: pd.DataFrame, per_subject: pd.DataFrame | None, notes: _Notes | None = None
) -> pd.DataFrame:
    """Inter- and intra-reader agreement (long format, :data:`AGREEMENT_COLUMNS`).

    Rows: Cohen's κ for every reader pair on each call; Fleiss' κ over all readers
    (> 2 readers; cases read by every reader); intra-reader κ of first read vs hidden
    repeat per reader; ICC(2,1) and ICC(3,1) of per-subject thickness and normalised
    SI over all readers (subjects measured by every reader).
    """
    import numpy as np
    import pandas as pd

    notes = notes if notes is not None else _Notes()
    rows: list[dict[str, Any]] = []
    fr = first_reads(readings)
    readers = reader_order(fr["reader"].unique())
    cohen_method = "Cohen's κ (statsmodels cohens_kappa); 95% CI κ ± 1.96·ASE"

    def add(measure: str, ra: str, rb: str, statistic: str, s: Stat, method: str) -> None:
        rows.append(
            {
                "measure": measure,
                "reader_a": ra,
                "reader_b": rb,
                "statistic": statistic,
                "value": s.value,
                "ci_low": s.ci_low,
                "ci_high": s.ci_high,
                "n": s.n,
                "method": method,
                "note": s.note,
            }
        )
        notes.add(s.code, f"{statistic} {measure} {ra}{'–' + rb if rb else ''}")

    for measure in CALLS:
        wide = fr.pivot_table(index="case_id", columns="reader", values=measure, aggfunc="first")
        wide = wide.reindex(columns=readers)
        if wide.notna().to_numpy().sum() == 0:
            continue  # the column is absent or empty: nothing to report
        for i, ra in enumerate(readers):
            for rb in readers[i + 1 :]:
                s = cohen_kappa(wide[ra].to_numpy(), wide[rb].to_numpy(), names=(ra, rb))
                add(measure, ra, rb, "cohen_kappa", s, cohen_method)
        if len(readers) > 2:
            complete = wide.dropna()
            s = fleiss_kappa_ci(complete.to_numpy())
            dropped = len(wide) - len(complete)
            if dropped:
                s = Stat(
                    s.value,
                    s.ci_low,
                    s.ci_high,
                    s.n,
                    "; ".join(
                        filter(
                            None, [s.note, f"{dropped} case(s) not read by every reader left out"]
                        )
                    ),
                    s.code,
                )
            add(measure, "all", "", "fleiss_kappa", s, "Fleiss' κ (statsmodels fleiss_kappa)")
        # Intra-reader: first read vs hidden repeat of the same case.
        rep = readings.loc[(readings["status"] == "submitted") & (readings["is_repeat"] == 1)]
        for r in readers:
            rr = rep.loc[rep["reader"] == r].drop_duplicates("case_id")
            if rr.empty:
                continue
            f1 = fr.loc[fr["reader"] == r].set_index("case_id")[measure]
            pair = pd.DataFrame(
                {"first": f1.reindex(rr["case_id"]).to_numpy(), "repeat": rr[measure].to_numpy()}
            )
            s = cohen_kappa(
                pair["first"], pair["repeat"], names=(f"{r} (first read)", f"{r} (repeat)")
            )
            add(
                measure,
                r,
                r,
                "intra_reader_kappa",
                s,
                cohen_method + "; first read vs hidden repeat",
            )

    if per_subject is not None:
        per = per_subject.loc[per_subject["reader"] != POOLED]
        for measure in IMAGING:
            wide = per.pivot_table(
                index="case_id", columns="reader", values=measure, aggfunc="first"
            )
            if wide.shape[1] < 2:
                continue
            complete = wide.dropna()
            res = icc(complete.to_numpy())
            order = reader_order(wide.columns)
            ra, rb = (order[0], order[1]) if len(order) == 2 else ("all", "")
            extra = f"{res.k} readers"
            if np.isfinite(res.f_value):
                extra += (
                    f"; F({res.df1:g}, {res.df2:g}) = {res.f_value:.3g}, p = {res.p_value:.3g}"
                )
            dropped = len(wide) - len(complete)
            if dropped:
                extra += f"; {dropped} subject(s) not measured by every reader left out"
            for stat, val, ci in (
                ("icc2_1", res.icc2_1, res.icc2_1_ci),
                ("icc3_1", res.icc3_1, res.icc3_1_ci),
            ):
                s = Stat(
                    val, ci[0], ci[1], res.n, "; ".join(filter(None, [res.note, extra])), res.code
                )
                method = (
                    "ICC(2,1) two-way random, absolute agreement; CI McGraw & Wong"
                    if stat == "icc2_1"
                    else "ICC(3,1) two-way mixed, consistency; CI F-based"
                )
                add(measure, str(ra), str(rb), stat, s, method)
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)


def _comparison_row(
    comparison: str,
    variable: str,
    reader: str,
    group_a: str,
    group_b: str,
    a: ArrayLike,
    b: ArrayLike,
    notes: _Notes,
) -> dict[str, Any]:
    res = mann_whitney(a, b)
    notes.add(res.pop("code"), f"MWU {variable} {group_a} vs {group_b} ({reader})")
    return {
        "comparison": comparison,
        "variable": variable,
        "reader": reader,
        "group_a": group_a,
        "group_b": group_b,
        **res,
    }


def group_comparison_table(
    calls: pd.DataFrame,
    clinical: pd.DataFrame,
    per_subject: pd.DataFrame | None,
    notes: _Notes | None = None,
) -> pd.DataFrame:
    """Mann–Whitney comparisons (:data:`COMPARISON_COLUMNS`).

    * ``als_vs_control``: per-subject thickness and normalised SI, patients vs
      controls, per reader and pooled.
    * ``correct_vs_misdiagnosed``: UMN score and DPR of patients the reader called
      positive vs negative, per reader.
    * ``faster_vs_slower``: thickness and SI of patients with DPR above vs at or below
      the patients' median DPR, per reader and pooled.
    """
    import numpy as np
    import pandas as pd

    notes = notes if notes is not None else _Notes()
    rows = []
    if per_subject is not None:
        ps = per_subject.loc[per_subject["group"].isin(["als", "control"])]
        by = dict(list(ps.groupby("reader", sort=False)))
        readers = [*reader_order(r for r in by if r != POOLED), POOLED]
        for var in IMAGING:
            for r in readers:
                if r not in by:
                    continue
                d = by[r]
                rows.append(
                    _comparison_row(
                        "als_vs_control",
                        var,
                        r,
                        "als",
                        "control",
                        d.loc[d["group"] == "als", var],
                        d.loc[d["group"] == "control", var],
                        notes,
                    )
                )
    pat_calls = calls.loc[(calls["group"] == "als") & calls["als_consistent"].notna()]
    by_reader = dict(list(pat_calls.groupby("reader", sort=False)))
    for var in ("umn_score", "dpr"):
        for r in reader_order(by_reader):
            d = by_reader[r]
            vals = clinical[var].reindex(d["case_id"]).to_numpy()
            pos = d["als_consistent"].to_numpy() == 1
            rows.append(
                _comparison_row(
                    "correct_vs_misdiagnosed",
                    var,
                    str(r),
                    "correct",
                    "misdiagnosed",
                    vals[pos],
                    vals[~pos],
                    notes,
                )
            )
    if per_subject is not None:
        pat = clinical.loc[clinical["group"] == "als", "dpr"].dropna()
        if len(pat):
            median = float(np.median(pat))
            faster = set(pat.index[pat > median])
            slower = set(pat.index[pat <= median])
            ps = per_subject.loc[per_subject["group"] == "als"]
            speed = ps["case_id"].map(
                lambda c: "faster" if c in faster else ("slower" if c in slower else "")
            )
            by = dict(list(ps.assign(speed=speed).groupby("reader", sort=False)))
            readers = [*reader_order(r for r in by if r != POOLED), POOLED]
            for var in IMAGING:
                for r in readers:
                    if r not in by:
                        continue
                    d = by[r]
                    row = _comparison_row(
                        "faster_vs_slower",
                        var,
                        r,
                        "faster",
                        "slower",
                        d.loc[d["speed"] == "faster", var],
                        d.loc[d["speed"] == "slower", var],
                        notes,
                    )
                    split = f"split at median DPR {median:.3g} points/month"
                    row["note"] = "; ".join(filter(None, [split, row["note"]]))
                    rows.append(row)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def correlation_table(
    clinical: pd.DataFrame,
    per_subject: pd.DataFrame | None,
    slots: pd.DataFrame | None,
    notes: _Notes | None = None,
) -> pd.DataFrame:
    """Spearman correlations in patients (:data:`CORRELATION_COLUMNS`).

    Per-subject thickness and SI (per reader and pooled; ``area``/``hemisphere`` =
    ``all``) against :data:`CLINICAL_FOR_CORRELATION`, and each Penfield area × side
    against the contralateral limb's UMN score (:data:`CONTRALATERAL_LIMB`). The face
    has no limb score: one row per variable says so.
    """
    import pandas as pd

    notes = notes if notes is not None else _Notes()
    rows: list[dict[str, Any]] = []
    if per_subject is None or slots is None:
        return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)
    pat_ids = clinical.index[clinical["group"] == "als"]
    limbs = sorted(set(CONTRALATERAL_LIMB.values()))
    ps = per_subject.loc[per_subject["case_id"].isin(pat_ids)]
    ps = ps.join(clinical[list(CLINICAL_FOR_CORRELATION)], on="case_id")
    by_reader = dict(list(ps.groupby("reader", sort=False)))
    readers = [*reader_order(r for r in by_reader if r != POOLED), POOLED]

    def add(var: str, clin: str, reader: str, area: str, hemi: str, x: Any, y: Any) -> None:
        res = spearman(x, y)
        notes.add(res.pop("code"), f"ρ {var}~{clin} {reader} {area}/{hemi}")
        rows.append(
            {
                "variable": var,
                "clinical": clin,
                "reader": reader,
                "area": area,
                "hemisphere": hemi,
                **res,
            }
        )

    for var in IMAGING:
        for r in readers:
            d = by_reader.get(r)
            if d is None:
                continue
            for clin in CLINICAL_FOR_CORRELATION:
                add(var, clin, r, "all", "all", d[var].to_numpy(), d[clin].to_numpy())
    sl = slots.loc[slots["case_id"].isin(pat_ids)]
    pooled = (
        sl.groupby(["case_id", "region", "hemisphere"], sort=True)[list(IMAGING)]
        .mean()
        .reset_index()
    )
    pooled.insert(0, "reader", POOLED)
    sl = pd.concat([sl, pooled], ignore_index=True).join(clinical[limbs], on="case_id")
    by = dict(list(sl.groupby(["reader", "region", "hemisphere"], sort=False)))
    for var in IMAGING:
        for area in PENFIELD_AREAS:
            for hemi in ("L", "R"):
                if area == "face":
                    if hemi == "L":
                        rows.append(
                            {
                                "variable": var,
                                "clinical": "",
                                "reader": "",
                                "area": "face",
                                "hemisphere": "",
                                "rho": float("nan"),
                                "p_value": float("nan"),
                                "n": 0,
                                "note": "not tested: no limb UMN score for the face area",
                            }
                        )
                    continue
                clin = CONTRALATERAL_LIMB[(area, hemi)]
                for r in readers:
                    d = by.get((r, area, hemi))
                    if d is None:
                        continue
                    add(var, clin, r, area, hemi, d[var].to_numpy(), d[clin].to_numpy())
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


@dataclass
class StudyResults:
    """Every table of the report, plus the inputs the figures need.

    Attributes
    ----------
    data : StudyData
        The validated inputs.
    subjects : pandas.DataFrame
        The clinical table with ``dpr`` (``tables/subjects.csv``).
    calls : pandas.DataFrame
        First reads with a valid clinical group: ``reader``, ``case_id``,
        ``als_consistent``, ``group``.
    per_subject : pandas.DataFrame or None
        :func:`per_subject_values` (``tables/per_subject.csv``).
    diagnostic_accuracy, agreement, group_comparisons, correlations : pandas.DataFrame
        The tables of the same names.
    issues : list of DataIssue
        Input issues followed by analysis issues.
    """

    data: StudyData
    subjects: pd.DataFrame
    calls: pd.DataFrame
    per_subject: pd.DataFrame | None
    diagnostic_accuracy: pd.DataFrame
    agreement: pd.DataFrame
    group_comparisons: pd.DataFrame
    correlations: pd.DataFrame
    issues: list[DataIssue] = field(default_factory=list)

    @property
    def readers(self) -> list[str]:
        """Reader ids with at least one submitted first read, sorted."""
        return reader_order(first_reads(self.data.readings)["reader"].unique())


def compute_study(data: StudyData) -> StudyResults:
    """Compute every table of the report from validated inputs.

    Parameters
    ----------
    data : StudyData
        From :func:`napari_m1.stats.load_study`.

    Returns
    -------
    StudyResults
    """
    notes = _Notes()
    fr = first_reads(data.readings)
    calls = fr.loc[
        fr["case_id"].isin(data.clinical.index), ["reader", "case_id", "als_consistent"]
    ].copy()
    calls["group"] = calls["case_id"].map(data.clinical["group"])
    per = per_subject_values(data.slots, data.clinical) if data.slots is not None else None
    acc = diagnostic_accuracy(calls)
    for _, row in acc.loc[acc["note"] != ""].iterrows():
        if "undefined" in row["note"]:
            notes.add(_NOTE_UNDEFINED, f"{row['reader']}: {row['note']}")
    with warnings.catch_warnings():
        # Degenerate cases are caught before calling scipy/statsmodels; anything left is
        # reported through the tables' notes rather than as console noise.
        warnings.simplefilter("ignore", RuntimeWarning)
        agree = agreement_table(data.readings, per, notes)
        comp = group_comparison_table(calls, data.clinical, per, notes)
        corr = correlation_table(data.clinical, per, data.slots, notes)
    subjects = data.clinical.reset_index()
    return StudyResults(
        data=data,
        subjects=subjects,
        calls=calls.reset_index(drop=True),
        per_subject=per,
        diagnostic_accuracy=acc,
        agreement=agree,
        group_comparisons=comp,
        correlations=corr,
        issues=[*data.issues, *notes.issues()],
    )
