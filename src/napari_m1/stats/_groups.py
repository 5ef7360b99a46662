"""Group statistics: diagnostic accuracy, Mann–Whitney comparisons, Spearman correlations.

Pure computation (numpy, pandas, scipy). Missing values are never imputed: every
test reports the ``n`` it used, and a statistic that cannot be computed is blank
(NaN) with a note saying why.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._data import (
    ALPHA,
    AREA_ORDER,
    IMAGING,
    NOTE_CONSTANT,
    NOTE_SMALL_N,
    POOLED,
    Notes,
    reader_order,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from numpy.typing import ArrayLike

__all__ = [
    "ACCURACY_COLUMNS",
    "CLINICAL_FOR_CORRELATION",
    "COMPARISON_COLUMNS",
    "CONTRALATERAL_LIMB",
    "CORRELATION_COLUMNS",
    "METRICS",
    "correlation_table",
    "diagnostic_accuracy",
    "group_comparison_table",
    "mann_whitney",
    "spearman",
    "wilson_interval",
]

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


def wilson_interval(count: int, nobs: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion, two-sided (1 − alpha).

    The formula of statsmodels ``proportion_confint(method="wilson")`` (a test checks
    they agree), without importing statsmodels and scipy.stats for it. Exact at the
    ends: 0 at ``count == 0`` and 1 at ``count == nobs``. ``(nan, nan)`` when ``nobs``
    is 0.
    """
    from statistics import NormalDist

    if nobs <= 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = count / nobs
    denom = 1 + z * z / nobs
    centre = (p + z * z / (2 * nobs)) / denom
    half = z * math.sqrt(p * (1 - p) / nobs + z * z / (4 * nobs**2)) / denom
    # Floats may miss the ends by 1 ulp.
    return (0.0 if count == 0 else centre - half), (1.0 if count == nobs else centre + half)


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
    """Two-sided Mann–Whitney U test of two independent samples.

    The exact distribution (``scipy.stats.mannwhitneyu``) is used when both samples
    have ≤ 8 values and there are no ties; otherwise the normal approximation with tie
    and continuity corrections, written out with scipy's formulas (tests check that
    both agree with ``scipy.stats.mannwhitneyu``).

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

    from ._kernels import average_ranks, mwu_asymptotic_p

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
        out["code"] = NOTE_SMALL_N
        return out
    both = np.concatenate([x, y])
    ranks, tie_sizes = average_ranks(both)
    if tie_sizes.size == 1:
        out["note"] = "not tested: every value is the same"
        out["code"] = NOTE_CONSTANT
        return out
    ties = tie_sizes.size < both.size
    method = "exact" if max(x.size, y.size) <= MWU_EXACT_MAX_N and not ties else "asymptotic"
    n1, n2 = x.size, y.size
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2)
    if method == "exact":  # small samples only: scipy's exact null distribution
        from scipy.stats import mannwhitneyu

        p = float(mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue)
    else:
        p = mwu_asymptotic_p(u1, n1, n2, tie_sizes)
    out.update(u_statistic=u1, p_value=p, method=method)
    if method == "asymptotic" and max(x.size, y.size) <= MWU_EXACT_MAX_N:
        out["note"] = "ties: normal approximation with tie correction"
    return out


def spearman(x: ArrayLike, y: ArrayLike) -> dict[str, Any]:
    """Spearman's ρ of the pairs where both values are present.

    ρ is Pearson's r of the average ranks; the two-sided p uses the t distribution
    with n − 2 degrees of freedom — ``scipy.stats.spearmanr``'s formulas (tests check
    they agree), without importing ``scipy.stats``.

    Returns
    -------
    dict
        ``rho``, ``p_value`` (two-sided), ``n`` (complete pairs), ``note``, ``code``;
        ρ is blank when n < 3 or either variable is constant.
    """
    import numpy as np
    from scipy.special import stdtr

    from ._kernels import average_ranks

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = int(a.size)
    out: dict[str, Any] = {"rho": np.nan, "p_value": np.nan, "n": n, "note": "", "code": ""}
    if n < MIN_N_SPEARMAN:
        out.update(note=f"not tested: n too small (need ≥ {MIN_N_SPEARMAN})", code=NOTE_SMALL_N)
        return out
    const = [nm for nm, v in (("imaging", a), ("clinical", b)) if np.ptp(v) == 0]
    if const:
        out.update(note=f"ρ undefined: {' and '.join(const)} values constant", code=NOTE_CONSTANT)
        return out
    ra, rb = average_ranks(a)[0], average_ranks(b)[0]
    ra -= ra.mean()
    rb -= rb.mean()
    rho = float(np.clip(ra @ rb / math.sqrt((ra @ ra) * (rb @ rb)), -1.0, 1.0))
    dof = n - 2
    denom = (rho + 1.0) * (1.0 - rho)  # 0 at |ρ| = 1: t infinite, p = 0
    t = math.copysign(math.inf, rho) if denom <= 0 else rho * math.sqrt(dof / denom)
    p = float(min(2 * stdtr(dof, -abs(t)), 1.0))
    out.update(rho=rho, p_value=p)
    return out


def _comparison_row(
    comparison: str,
    variable: str,
    reader: str,
    group_a: str,
    group_b: str,
    a: ArrayLike,
    b: ArrayLike,
    notes: Notes,
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
    notes: Notes | None = None,
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

    notes = notes if notes is not None else Notes()
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
    notes: Notes | None = None,
) -> pd.DataFrame:
    """Spearman correlations in patients (:data:`CORRELATION_COLUMNS`).

    Per-subject thickness and SI (per reader and pooled; ``area``/``hemisphere`` =
    ``all``) against :data:`CLINICAL_FOR_CORRELATION`, and each Penfield area × side
    against the contralateral limb's UMN score (:data:`CONTRALATERAL_LIMB`). The face
    has no limb score: one row per variable says so.
    """
    import pandas as pd

    notes = notes if notes is not None else Notes()
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
        for area in AREA_ORDER:
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
