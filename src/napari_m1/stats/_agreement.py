"""Reader agreement: Cohen's κ, Fleiss' κ and intraclass correlations (ICC).

Pure computation (numpy; ``scipy.special`` for the normal and F distributions).
Every statistic that cannot be computed is blank (NaN) with a note saying why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._data import (
    ALPHA,
    CALLS,
    IMAGING,
    NOTE_CONSTANT,
    NOTE_SINGLE_CLASS,
    NOTE_SMALL_N,
    POOLED,
    Notes,
    first_reads,
    reader_order,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import ArrayLike

__all__ = [
    "AGREEMENT_COLUMNS",
    "IccResult",
    "Stat",
    "agreement_table",
    "cohen_kappa",
    "fleiss_kappa_ci",
    "fleiss_kappa_resampled",
    "icc",
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
FLEISS_BOOTSTRAP = 2000


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
    a: ArrayLike,
    b: ArrayLike,
    *,
    names: tuple[str, str] = ("first", "second"),
    alpha: float = ALPHA,
) -> Stat:
    """Cohen's κ of two raters' binary calls with its asymptotic (1 − alpha) CI.

    Computed on the 2×2 table of the pairs where both calls are present, with the
    large-sample standard error of Fleiss, Cohen & Everitt (1969) — the formulas of
    ``statsmodels.stats.inter_rater.cohens_kappa`` (a test checks they agree to 1e-12),
    written out in numpy because statsmodels builds two frozen scipy distributions per
    call (a third of the report's time for 20 readers). The CI is κ ± z·ASE, clipped to
    [−1, 1].

    Parameters
    ----------
    a, b : array_like of 0/1 (NaN = missing), shape (n_cases,)
        The two raters' calls on the same cases, aligned.
    names : tuple of str
        The raters' names for notes.
    alpha : float
        1 − confidence level (two-sided).

    Returns
    -------
    Stat
        κ undefined (NaN, with a note) when there are no pairs or either rater used a
        single class (κ is then 0 by formula, or 0/0, and says nothing about agreement).
    """
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok].astype(int), b[ok].astype(int)
    n = int(a.size)
    nan = float("nan")
    if n == 0:
        return Stat(nan, nan, nan, 0, "no cases read by both", NOTE_SMALL_N)
    single = [name for name, x in zip(names, (a, b), strict=True) if x.min() == x.max()]
    if single:
        who = " and ".join(dict.fromkeys(single))
        return Stat(nan, nan, nan, n, f"κ undefined: {who} used a single class", NOTE_SINGLE_CLASS)
    table = np.bincount(2 * a + b, minlength=4).reshape(2, 2)
    kappa, se = _cohen_kappa_table(table)
    z = _z(1 - alpha / 2)
    note = ""
    if table[0, 1] == 0 and table[1, 0] == 0:
        note = "perfect agreement: asymptotic SE is 0, so the CI is degenerate"
    return Stat(kappa, max(kappa - z * se, -1.0), min(kappa + z * se, 1.0), n, note)


def _cohen_kappa_table(table: np.ndarray) -> tuple[float, float]:
    """κ and its asymptotic standard error from a k×k table (rows: rater a, cols: rater b).

    Fleiss, Cohen & Everitt (1969); the same operations as statsmodels ``cohens_kappa``.
    The SE is NaN when rounding makes the variance negative (perfect agreement).
    """
    import numpy as np

    t = np.asarray(table, dtype=float)
    nobs = t.sum()
    probs = t / nobs
    row, col = t.sum(1) / nobs, t.sum(0) / nobs
    p_exp = float(np.diag(col * row[:, None]).sum())
    kappa = (np.diag(t).sum() / nobs - p_exp) / (1 - p_exp)
    term_a = (np.diag(probs) * (1 - (row + col) * (1 - kappa)) ** 2).sum()
    term_b = probs * (col[:, None] + row) ** 2
    np.fill_diagonal(term_b, 0)
    term_c = (kappa - p_exp * (1 - kappa)) ** 2
    var = (term_a + (1 - kappa) ** 2 * term_b.sum() - term_c) / (1 - p_exp) ** 2 / nobs
    se = math.sqrt(var) if var >= 0 else float("nan")
    return float(kappa), se


def _z(q: float) -> float:
    """The standard normal quantile (stdlib: no scipy import for one number)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


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
        Bootstrap resamples (BCa as ``scipy.stats.bootstrap``, fixed ``seed``).

    Returns
    -------
    Stat
        κ by Fleiss (1971) (statsmodels ``fleiss_kappa``'s formula, see
        :func:`fleiss_kappa_resampled`); undefined when every rating is the same category.
    """
    import numpy as np

    from ._kernels import bca_interval

    x = np.asarray(ratings, dtype=int)
    n = int(x.shape[0])
    nan = float("nan")
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("ratings must be (n_cases, k >= 2 raters)")
    if n < 2:
        return Stat(nan, nan, nan, n, "fewer than 2 complete cases", NOTE_SMALL_N)
    if np.unique(x).size < 2:
        return Stat(
            nan, nan, nan, n, "κ undefined: every rating is the same class", NOTE_SINGLE_CLASS
        )
    # Raters per category and case (statsmodels' aggregate_raters).
    cats, codes = np.unique(x, return_inverse=True)
    table = np.zeros((n, cats.size))
    np.add.at(table, (np.repeat(np.arange(n), x.shape[1]), codes.ravel()), 1)
    value = float(fleiss_kappa_resampled(table, np.arange(n)))

    note = f"{x.shape[1]} readers; bootstrap BCa CI ({n_resamples} resamples of cases)"
    lo, hi = bca_interval(
        lambda idx: fleiss_kappa_resampled(table, idx),
        n,
        n_resamples=n_resamples,
        alpha=alpha,
        rng=np.random.default_rng(seed),
    )
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
    from scipy.special import fdtrc, fdtri

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
            **blank, note="ICC needs ≥ 2 subjects rated by ≥ 2 readers", code=NOTE_SMALL_N
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
            code=NOTE_CONSTANT,
        )
    icc3 = (msr - mse) / (msr + (k - 1) * mse)
    icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    fval = msr / mse
    p = float(fdtrc(df_r, df_e, fval))  # F survival function
    q = 1 - alpha / 2
    # ICC(3,1): exact F limits.
    f_lo = fval / fdtri(df_r, df_e, q)  # fdtri = F quantile (scipy's f.ppf)
    f_hi = fval * fdtri(df_e, df_r, q)
    ci3 = ((f_lo - 1) / (f_lo + k - 1), (f_hi - 1) / (f_hi + k - 1))
    # ICC(2,1): McGraw & Wong (1996) case 2A, Satterthwaite degrees of freedom.
    a = k * icc2 / (n * (1 - icc2))
    b = 1 + k * icc2 * (n - 1) / (n * (1 - icc2))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / df_c + (b * mse) ** 2 / df_e)
    fs_lo = fdtri(df_r, v, q)
    fs_hi = fdtri(v, df_r, q)
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


def agreement_table(
    readings: pd.DataFrame, per_subject: pd.DataFrame | None, notes: Notes | None = None
) -> pd.DataFrame:
    """Inter- and intra-reader agreement (long format, :data:`AGREEMENT_COLUMNS`).

    Rows: Cohen's κ for every reader pair on each call; Fleiss' κ over all readers
    (> 2 readers; cases read by every reader); intra-reader κ of first read vs hidden
    repeat per reader; ICC(2,1) and ICC(3,1) of per-subject thickness and normalised
    SI over all readers (subjects measured by every reader).
    """
    import numpy as np
    import pandas as pd

    notes = notes if notes is not None else Notes()
    rows: list[dict[str, Any]] = []
    fr = first_reads(readings)
    readers = reader_order(fr["reader"].unique())
    cohen_method = "Cohen's κ; 95% CI κ ± 1.96·ASE (asymptotic SE)"

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

    # Hidden repeats (one per reader x case) and the row of their first read.
    rep = readings.loc[(readings["status"] == "submitted") & (readings["is_repeat"] == 1)]
    rep = rep.drop_duplicates(["reader", "case_id"])
    firsts = fr.drop_duplicates(["reader", "case_id"])
    rep_pos = pd.MultiIndex.from_frame(firsts[["reader", "case_id"]]).get_indexer(
        pd.MultiIndex.from_frame(rep[["reader", "case_id"]])
    )
    rep_rows = {r: np.asarray(i) for r, i in rep.groupby("reader", sort=False).indices.items()}
    for measure in CALLS:
        wide = fr.pivot_table(index="case_id", columns="reader", values=measure, aggfunc="first")
        wide = wide.reindex(columns=readers)
        if wide.notna().to_numpy().sum() == 0:
            continue  # the column is absent or empty: nothing to report
        calls = wide.to_numpy()  # (n_cases, n_readers), NaN = not read
        for i, ra in enumerate(readers):
            for j in range(i + 1, len(readers)):
                rb = readers[j]
                s = cohen_kappa(calls[:, i], calls[:, j], names=(ra, rb))
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
            add(measure, "all", "", "fleiss_kappa", s, "Fleiss' κ (Fleiss 1971)")
        # Intra-reader: first read vs hidden repeat of the same case.
        first_vals = np.full(len(rep), np.nan)
        found = rep_pos >= 0
        first_vals[found] = firsts[measure].to_numpy(dtype=float)[rep_pos[found]]
        rep_vals = rep[measure].to_numpy(dtype=float)
        for r in readers:
            idx = rep_rows.get(r)
            if idx is None:
                continue
            s = cohen_kappa(
                first_vals[idx], rep_vals[idx], names=(f"{r} (first read)", f"{r} (repeat)")
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
