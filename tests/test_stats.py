"""Study statistics (pure): published numbers, textbook ICC, scipy/statsmodels references."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import napari_m1.stats
from data.m1_study import published_study, synthetic_study, write_study
from napari_m1.errors import M1Error
from napari_m1.stats import (
    cohen_kappa,
    compute_study,
    disease_progression_rate,
    fleiss_kappa_ci,
    icc,
    load_study,
    mann_whitney,
    spearman,
    wilson_interval,
)
from napari_m1.stats._agreement import fleiss_kappa_resampled
from napari_m1.stats._data import reader_order


def pct(x: float) -> int:
    """Round a fraction to whole percent, half up (as papers do: 62.5 % -> 63 %)."""
    return int(Decimal(repr(float(100 * x))).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


@pytest.fixture
def published(tmp_path) -> dict[str, Path]:
    readings, clinical = published_study()
    return write_study(tmp_path / "published", {"readings": readings, "clinical": clinical})


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    frames = synthetic_study(3, 60, seed=3)
    return write_study(tmp_path_factory.mktemp("synthetic"), frames)


@pytest.fixture(scope="module")
def synthetic_results(synthetic):
    data = load_study(synthetic["readings"], synthetic["clinical"], synthetic["measurements"])
    return compute_study(data)


# --------------------------------------------------------------------------- published study
PUBLISHED = {
    # reader: (tp, fp, tn, fn, sensitivity, specificity, ppv, npv, accuracy) in %
    "R1": (12, 3, 10, 6, 67, 77, 80, 63, 71),
    "R2": (9, 0, 13, 9, 50, 100, 100, 59, 71),
}


def test_published_accuracy(published):
    res = compute_study(load_study(published["readings"], published["clinical"]))
    acc = res.diagnostic_accuracy.set_index("reader")
    assert list(acc.index) == ["R1", "R2"]
    for reader, (tp, fp, tn, fn, *percent) in PUBLISHED.items():
        row = acc.loc[reader]
        assert (row["tp"], row["fp"], row["tn"], row["fn"], row["n"]) == (tp, fp, tn, fn, 31)
        got = [pct(row[m]) for m in ("sensitivity", "specificity", "ppv", "npv", "accuracy")]
        assert got == percent
        for m in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
            assert row[f"{m}_ci_low"] <= row[m] <= row[f"{m}_ci_high"]
    assert res.issues == []


def test_published_kappa(published):
    res = compute_study(load_study(published["readings"], published["clinical"]))
    ag = res.agreement
    row = ag.loc[(ag["statistic"] == "cohen_kappa") & (ag["measure"] == "als_consistent")]
    assert len(row) == 1
    row = row.iloc[0]
    assert (row["reader_a"], row["reader_b"], row["n"]) == ("R1", "R2", 31)
    assert round(row["value"], 2) == 0.61
    # By hand: p_o = 25/31, p_e = (15*9 + 16*22)/31^2.
    po, pe = 25 / 31, (15 * 9 + 16 * 22) / 31**2
    assert row["value"] == pytest.approx((po - pe) / (1 - pe), abs=1e-12)
    assert row["ci_low"] < row["value"] < row["ci_high"]
    assert "Fleiss" not in " ".join(ag["method"])  # two readers: no Fleiss' κ


@pytest.mark.parametrize("both_positive", range(3, 10))
def test_published_kappa_fixes_the_table(both_positive):
    """Only 9 patients called positive by both readers reproduce κ = 0.61 (see m1_study)."""
    x = both_positive
    # patients: x both+, 12-x R1 only, 9-x R2 only, x-3 both-; controls: 3 R1 only, 10 both-
    r1 = [1] * x + [1] * (12 - x) + [0] * (9 - x) + [0] * (x - 3) + [1] * 3 + [0] * 10
    r2 = [1] * x + [0] * (12 - x) + [1] * (9 - x) + [0] * (x - 3) + [0] * 3 + [0] * 10
    assert (sum(r1[:18]), sum(r2[:18]), sum(r1[18:]), sum(r2[18:])) == (12, 9, 3, 0)
    k = cohen_kappa(r1, r2).value
    assert (round(k, 2) == 0.61) == (x == 9)


# --------------------------------------------------------------------------- primitives
@pytest.mark.parametrize(
    ("alsfrs", "months", "expected"),
    [
        (36, 12, 1.0),
        (40, 4, 2.0),
        (48, 10, 0.0),
        (30.5, 7, 17.5 / 7),
        (np.nan, 12, np.nan),
        (40, np.nan, np.nan),
        (40, 0, np.nan),
        (40, -3, np.nan),
    ],
)
def test_dpr_hand_values(alsfrs, months, expected):
    got = disease_progression_rate([alsfrs], [months])[0]
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected)


def test_dpr_in_clinical_table_and_issues(published):
    data = load_study(published["readings"], published["clinical"])
    cl = data.clinical
    # published_study(): patient i (0-based) has ALSFRS-R 30 + i and duration 6 + 2 i months.
    assert cl.loc["ALS01", "dpr"] == pytest.approx((48 - 30) / 6)
    assert cl.loc["ALS18", "dpr"] == pytest.approx((48 - 47) / 40)
    assert cl.loc[cl["group"] == "control", "dpr"].isna().all()
    assert data.issues == []


def test_dpr_blank_reported(tmp_path):
    readings, clinical = published_study()
    clinical.loc[0, "disease_duration_months"] = 0
    clinical.loc[1, "alsfrs_r"] = np.nan
    p = write_study(tmp_path, {"readings": readings, "clinical": clinical})
    data = load_study(p["readings"], p["clinical"])
    assert data.clinical.loc[["ALS01", "ALS02"], "dpr"].isna().all()
    assert data.clinical.loc["ALS03", "dpr"] == pytest.approx((48 - 32) / 10)
    kinds = {i.kind: i for i in data.issues}
    assert kinds["dpr-blank"].items == ("ALS01", "ALS02")
    assert kinds["out-of-range"].items == ("ALS01 (0)",)  # duration must be > 0


@pytest.mark.parametrize(("k", "n"), [(12, 18), (0, 13), (13, 13), (1, 2)])
def test_wilson_interval_formula(k, n):
    z = stats.norm.isf(0.025)
    p = k / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(centre - half, abs=1e-12)
    assert hi == pytest.approx(centre + half, abs=1e-12)
    assert 0 <= lo <= p <= hi <= 1


def test_wilson_interval_empty():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_cohen_kappa_undefined_for_single_class():
    s = cohen_kappa([1, 1, 1, 1], [1, 0, 1, 0], names=("R1", "R2"))
    assert math.isnan(s.value) and s.n == 4
    assert "R1 used a single class" in s.note
    s = cohen_kappa([np.nan, 1, 0], [1, np.nan, 0])
    assert s.n == 1 and math.isnan(s.value)


def test_cohen_kappa_ignores_missing_pairs():
    a = [1, 0, 1, 0, np.nan, 1]
    b = [1, 0, 0, 0, 1, np.nan]
    s = cohen_kappa(a, b)
    assert s.n == 4
    assert s.value == pytest.approx(cohen_kappa([1, 0, 1, 0], [1, 0, 0, 0]).value)
    # p_o = 3/4, p_e = (2*1 + 2*3)/16 = 0.5 -> κ = 0.5
    assert s.value == pytest.approx(0.5)


# --------------------------------------------------------------------------- ICC
# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
)


def test_icc_shrout_fleiss_table_2():
    r = icc(SHROUT_FLEISS)
    assert round(r.icc2_1, 2) == 0.29  # published
    assert round(r.icc3_1, 2) == 0.71  # published
    assert (r.n, r.k, r.df1, r.df2) == (6, 4, 5, 15)
    assert r.f_value == pytest.approx(11.03, abs=0.005)
    assert r.p_value == pytest.approx(0.000135, abs=5e-7)
    # CIs as printed by R psych::ICC for the same data (McGraw & Wong formulas).
    assert np.round(r.icc2_1_ci, 3).tolist() == pytest.approx([0.019, 0.761], abs=0.001)
    assert round(r.icc3_1_ci[0], 3) == 0.342
    assert round(r.icc3_1_ci[1], 2) == 0.95


def test_icc_mean_squares_match_statsmodels_anova():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    n, k = SHROUT_FLEISS.shape
    long = pd.DataFrame(
        {
            "y": SHROUT_FLEISS.ravel(),
            "subject": np.repeat(np.arange(n), k),
            "rater": np.tile(np.arange(k), n),
        }
    )
    aov = anova_lm(smf.ols("y ~ C(subject) + C(rater)", data=long).fit())
    ms = aov["sum_sq"] / aov["df"]
    r = icc(SHROUT_FLEISS)
    assert r.ms_subjects == pytest.approx(ms["C(subject)"])
    assert r.ms_raters == pytest.approx(ms["C(rater)"])
    assert r.ms_error == pytest.approx(ms["Residual"])


def test_icc_undefined():
    assert math.isnan(icc(np.ones((5, 3))).icc2_1)
    assert "undefined" in icc(np.ones((5, 3))).note
    assert "≥ 2 subjects" in icc(np.ones((1, 3))).note


# --------------------------------------------------------------------------- Fleiss
def test_fleiss_matches_statsmodels_and_resampled_formula():
    from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

    rng = np.random.default_rng(0)
    truth = rng.random(80) < 0.5
    x = np.where(rng.random((80, 5)) < 0.8, truth[:, None], ~truth[:, None]).astype(int)
    table, _ = aggregate_raters(x)
    s = fleiss_kappa_ci(x, n_resamples=500)
    assert s.value == pytest.approx(fleiss_kappa(table, method="fleiss"))
    assert s.ci_low < s.value < s.ci_high
    assert s.n == 80
    idx = rng.integers(0, 80, size=(7, 80))
    vec = fleiss_kappa_resampled(table, idx)
    ref = [fleiss_kappa(table[i], method="fleiss") for i in idx]
    np.testing.assert_allclose(vec, ref, rtol=1e-12)


def test_fleiss_undefined_when_one_class():
    s = fleiss_kappa_ci(np.ones((10, 3), dtype=int))
    assert math.isnan(s.value) and "same class" in s.note


# --------------------------------------------------------------------------- MWU / Spearman
@pytest.mark.parametrize(
    ("a", "b", "method"),
    [
        ([1.1, 2.3, 3.0, 4.2], [5.5, 6.1, 7.7], "exact"),
        ([1.0, 2.0, 2.0, 4.0], [2.0, 6.0, 7.0], "asymptotic"),  # ties
        (list(np.linspace(0, 1, 9)), [0.35, 2.0, 3.0], "asymptotic"),  # n = 9 > 8
        ([0.5, np.nan, 1.5, 2.5], [3.5, 4.5], "exact"),  # NaN left out, n_a = 3
    ],
)
def test_mann_whitney_matches_scipy(a, b, method):
    r = mann_whitney(a, b)
    x, y = np.asarray(a, float), np.asarray(b, float)
    x = x[np.isfinite(x)]
    ref = stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
    assert r["method"] == method
    assert r["u_statistic"] == pytest.approx(ref.statistic)
    assert r["p_value"] == pytest.approx(ref.pvalue)
    assert (r["n_a"], r["n_b"]) == (len(x), len(y))
    assert r["median_a"] == pytest.approx(np.median(x))
    q1, q3 = np.percentile(y, [25, 75])
    assert (r["q1_b"], r["q3_b"]) == pytest.approx((q1, q3))
    assert r["sd_a"] == pytest.approx(np.std(x, ddof=1))


def test_mann_whitney_too_small_and_constant():
    r = mann_whitney([1.0], [2.0, 3.0])
    assert math.isnan(r["p_value"]) and "n too small" in r["note"] and r["n_a"] == 1
    r = mann_whitney([2.0, 2.0], [2.0, 2.0, 2.0])
    assert math.isnan(r["p_value"]) and "same" in r["note"]


def test_spearman_matches_scipy():
    rng = np.random.default_rng(5)
    x = rng.normal(size=30)
    y = x + rng.normal(scale=0.8, size=30)
    y[[3, 7]] = np.nan
    r = spearman(x, y)
    ok = np.isfinite(y)
    ref = stats.spearmanr(x[ok], y[ok])
    assert r["n"] == 28
    assert r["rho"] == pytest.approx(ref.statistic)
    assert r["p_value"] == pytest.approx(ref.pvalue)


def test_spearman_undefined():
    r = spearman([1, 2, 3, 4], [5, 5, 5, 5])
    assert math.isnan(r["rho"]) and "constant" in r["note"] and r["n"] == 4
    r = spearman([1, 2], [3, 4])
    assert math.isnan(r["rho"]) and "n too small" in r["note"]


def test_reader_order_is_natural():
    assert reader_order(["R10", "R2", "R1", "R2"]) == ["R1", "R2", "R10"]


# --------------------------------------------------------------------------- study tables
def _per_subject_from_raw(paths: dict[str, Path]) -> pd.DataFrame:
    """Per-reader per-subject values worked out independently from the raw CSVs."""
    m = pd.read_csv(paths["measurements"])
    r = pd.read_csv(paths["readings"])
    first = r.loc[r["is_repeat"] == 0, ["reader", "pseudonym", "case_id"]]
    m = m.merge(first, left_on=["reader", "case_label"], right_on=["reader", "pseudonym"])
    m = m.loc[m["region"].isin(["face", "hand", "leg", "foot"])]
    last_echo = m.loc[m["annotation"] == "roi", "echo"].max()
    thick = m.loc[m["annotation"] == "caliper"].groupby(["reader", "case_id"])["thickness_mm"]
    si = m.loc[(m["annotation"] == "roi") & (m["echo"] == last_echo)]
    return pd.DataFrame(
        {
            "thickness_mm": thick.mean(),
            "normalised_si": si.groupby(["reader", "case_id"])["normalised_si"].mean(),
        }
    ).reset_index()


def test_per_subject_values_match_raw(synthetic, synthetic_results):
    raw = _per_subject_from_raw(synthetic)
    per = synthetic_results.per_subject
    mine = per.loc[per["reader"] != "pooled"].merge(raw, on=["reader", "case_id"])
    assert len(mine) == len(raw) == 3 * 60
    np.testing.assert_allclose(mine["thickness_mm_x"], mine["thickness_mm_y"], rtol=1e-9)
    np.testing.assert_allclose(mine["normalised_si_x"], mine["normalised_si_y"], rtol=1e-9)
    assert (mine["n_thickness_slots"] == 8).all()
    pooled = per.loc[per["reader"] == "pooled"].set_index("case_id")
    ref = raw.groupby("case_id")["thickness_mm"].mean()
    np.testing.assert_allclose(pooled.loc[ref.index, "thickness_mm"], ref, rtol=1e-9)


def test_group_comparisons_match_scipy(synthetic, synthetic_results):
    raw = _per_subject_from_raw(synthetic)
    clin = pd.read_csv(synthetic["clinical"]).set_index("case_id")
    gc = synthetic_results.group_comparisons
    for reader in ("R1", "R2", "R3"):
        d = raw.loc[raw["reader"] == reader].join(clin["group"], on="case_id")
        for var in ("thickness_mm", "normalised_si"):
            a = d.loc[d["group"] == "als", var]
            b = d.loc[d["group"] == "control", var]
            ref = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
            row = gc.loc[
                (gc["comparison"] == "als_vs_control")
                & (gc["variable"] == var)
                & (gc["reader"] == reader)
            ].iloc[0]
            assert (row["n_a"], row["n_b"]) == (len(a), len(b))
            assert row["method"] == "asymptotic"
            assert row["u_statistic"] == pytest.approx(ref.statistic)
            assert row["p_value"] == pytest.approx(ref.pvalue)
    # Synthetic patients have thinner deep layers: the test must see it.
    pooled = gc.loc[
        (gc["comparison"] == "als_vs_control")
        & (gc["variable"] == "thickness_mm")
        & (gc["reader"] == "pooled")
    ].iloc[0]
    assert pooled["median_a"] < pooled["median_b"] and pooled["p_value"] < 0.01


def test_correct_vs_misdiagnosed_matches_scipy(synthetic, synthetic_results):
    r = pd.read_csv(synthetic["readings"])
    clin = pd.read_csv(synthetic["clinical"]).set_index("case_id")
    first = r.loc[(r["is_repeat"] == 0) & (r["reader"] == "R2")].join(clin, on="case_id")
    pat = first.loc[first["group"] == "als"]
    a = pat.loc[pat["als_consistent"] == 1, "umn_score"]
    b = pat.loc[pat["als_consistent"] == 0, "umn_score"]
    ref = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
    gc = synthetic_results.group_comparisons
    row = gc.loc[
        (gc["comparison"] == "correct_vs_misdiagnosed")
        & (gc["variable"] == "umn_score")
        & (gc["reader"] == "R2")
    ].iloc[0]
    assert (row["n_a"], row["n_b"]) == (len(a), len(b))
    assert row["p_value"] == pytest.approx(ref.pvalue)


def test_faster_vs_slower_split_at_median(synthetic, synthetic_results):
    clin = pd.read_csv(synthetic["clinical"]).set_index("case_id")
    dpr = ((48 - clin["alsfrs_r"]) / clin["disease_duration_months"]).loc[clin["group"] == "als"]
    med = dpr.median()
    raw = _per_subject_from_raw(synthetic)
    d = raw.loc[raw["reader"] == "R1"].set_index("case_id")
    a = d.loc[d.index.isin(dpr.index[dpr > med]), "normalised_si"]
    b = d.loc[d.index.isin(dpr.index[dpr <= med]), "normalised_si"]
    gc = synthetic_results.group_comparisons
    row = gc.loc[
        (gc["comparison"] == "faster_vs_slower")
        & (gc["variable"] == "normalised_si")
        & (gc["reader"] == "R1")
    ].iloc[0]
    assert (row["n_a"], row["n_b"]) == (len(a), len(b))
    assert row["p_value"] == pytest.approx(stats.mannwhitneyu(a, b).pvalue)
    assert f"{med:.3g}" in row["note"]


def test_correlations_match_scipy_and_use_contralateral_limb(synthetic, synthetic_results):
    cr = synthetic_results.correlations
    clin = pd.read_csv(synthetic["clinical"]).set_index("case_id")
    m = pd.read_csv(synthetic["measurements"])
    r = pd.read_csv(synthetic["readings"])
    first = r.loc[r["is_repeat"] == 0, ["reader", "pseudonym", "case_id"]]
    m = m.merge(first, left_on=["reader", "case_label"], right_on=["reader", "pseudonym"])
    cal = m.loc[(m["annotation"] == "caliper") & (m["reader"] == "R3")]
    for area, hemi, limb in [
        ("hand", "L", "umn_arm_right"),
        ("hand", "R", "umn_arm_left"),
        ("leg", "L", "umn_leg_right"),
        ("foot", "R", "umn_leg_left"),
    ]:
        d = cal.loc[(cal["region"] == area) & (cal["hemisphere"] == hemi)]
        d = d.join(clin, on="case_id")
        d = d.loc[d["group"] == "als"]
        ref = stats.spearmanr(d["thickness_mm"], d[limb])
        row = cr.loc[
            (cr["variable"] == "thickness_mm")
            & (cr["reader"] == "R3")
            & (cr["area"] == area)
            & (cr["hemisphere"] == hemi)
        ]
        assert len(row) == 1 and row.iloc[0]["clinical"] == limb
        assert row.iloc[0]["rho"] == pytest.approx(ref.statistic)
        assert row.iloc[0]["p_value"] == pytest.approx(ref.pvalue)
        assert row.iloc[0]["n"] == len(d)
        # The synthetic truth ties each area to the contralateral limb only.
        assert row.iloc[0]["rho"] < -0.3
    face = cr.loc[cr["area"] == "face"]
    assert len(face) == 2 and face["rho"].isna().all()
    assert face["note"].str.contains("no limb UMN score").all()


def test_per_subject_correlations_match_scipy(synthetic, synthetic_results):
    raw = _per_subject_from_raw(synthetic)
    clin = pd.read_csv(synthetic["clinical"]).set_index("case_id")
    clin["dpr"] = (48 - clin["alsfrs_r"]) / clin["disease_duration_months"]
    d = raw.loc[raw["reader"] == "R1"].join(clin, on="case_id")
    d = d.loc[d["group"] == "als"]
    cr = synthetic_results.correlations
    for c in ("umn_score", "dpr", "alsfrs_r", "disease_duration_months", "mrc"):
        ref = stats.spearmanr(d["normalised_si"], d[c])
        row = cr.loc[
            (cr["variable"] == "normalised_si")
            & (cr["clinical"] == c)
            & (cr["reader"] == "R1")
            & (cr["area"] == "all")
        ].iloc[0]
        assert row["rho"] == pytest.approx(ref.statistic)
        assert row["p_value"] == pytest.approx(ref.pvalue)
        assert row["n"] == len(d)


def test_agreement_rows(synthetic_results):
    ag = synthetic_results.agreement
    cohen = ag.loc[(ag["statistic"] == "cohen_kappa") & (ag["measure"] == "als_consistent")]
    assert list(zip(cohen["reader_a"], cohen["reader_b"], strict=True)) == [
        ("R1", "R2"),
        ("R1", "R3"),
        ("R2", "R3"),
    ]
    assert set(ag["measure"]) == {
        "als_consistent",
        "hypointensity",
        "thinning",
        "thickness_mm",
        "normalised_si",
    }
    fleiss = ag.loc[ag["statistic"] == "fleiss_kappa"]
    assert len(fleiss) == 3 and (fleiss["n"] == 60).all()
    intra = ag.loc[ag["statistic"] == "intra_reader_kappa"]
    assert len(intra) == 9 and (intra["reader_a"] == intra["reader_b"]).all()
    assert (intra["n"] == 12).all()  # 20 % of 60 cases repeated per reader
    iccs = ag.loc[ag["statistic"].isin(["icc2_1", "icc3_1"])]
    assert len(iccs) == 4 and (iccs["value"] > 0.5).all() and (iccs["n"] == 60).all()


def test_intra_reader_kappa_matches_direct(synthetic, synthetic_results):
    r = pd.read_csv(synthetic["readings"])
    r1 = r.loc[r["reader"] == "R2"]
    first = r1.loc[r1["is_repeat"] == 0].set_index("case_id")["als_consistent"]
    rep = r1.loc[r1["is_repeat"] == 1]
    a = first.loc[rep["case_id"]].to_numpy()
    b = rep["als_consistent"].to_numpy()
    ag = synthetic_results.agreement
    row = ag.loc[
        (ag["statistic"] == "intra_reader_kappa")
        & (ag["measure"] == "als_consistent")
        & (ag["reader_a"] == "R2")
    ].iloc[0]
    expected = cohen_kappa(a, b)
    assert row["n"] == len(a)
    if math.isnan(expected.value):
        assert math.isnan(row["value"])
    else:
        assert row["value"] == pytest.approx(expected.value)


# --------------------------------------------------------------------------- bad input
def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("case_id,alsfrs_r\nC1,40\n", "clinical.csv: missing required column(s) group"),
        ("case_id;group\nC1;als\n", "semicolon"),
        ("", "clinical.csv: empty file"),
        ("case_id,group\nC1,als\nC2,control,extra,cells\n", "line 3"),
        (
            b"case_id,group\n" + "Ré1,als\n".encode("latin-1"),
            "not UTF-8 text (byte 0xe9 on line 2)",
        ),
        ("case_id,group\n", "clinical.csv: no cases"),
    ],
)
def test_unusable_clinical_file(tmp_path, published, content, expected):
    bad = _write(tmp_path / "clinical.csv", content)
    with pytest.raises(M1Error) as exc:
        load_study(published["readings"], bad)
    msg = str(exc.value)
    assert expected in msg and "\n" not in msg
    assert "clinical.csv" in msg


def test_missing_file(tmp_path, published):
    with pytest.raises(M1Error, match="nope.csv: file not found"):
        load_study(published["readings"], tmp_path / "nope.csv")


def test_blinded_readings_rejected(tmp_path, published):
    r = pd.read_csv(published["readings"]).drop(columns=["case_id"])
    p = tmp_path / "blinded.csv"
    r.to_csv(p, index=False)
    with pytest.raises(M1Error, match=r"blinded.csv: no 'case_id' column .* study unblind"):
        load_study(p, published["clinical"])


def test_other_schema_version_rejected(tmp_path, published):
    r = pd.read_csv(published["readings"])
    r["schema"] = "napari-m1/readings/2"
    p = tmp_path / "readings.csv"
    r.to_csv(p, index=False)
    with pytest.raises(M1Error, match="schema 'napari-m1/readings/2' is not supported"):
        load_study(p, published["clinical"])


def test_bad_group_and_unmatched_readings(tmp_path):
    readings, clinical = published_study()
    clinical.loc[clinical["case_id"] == "CTL13", "group"] = "ALS?"
    clinical = clinical.loc[clinical["case_id"] != "ALS18"]
    clinical.loc[clinical["case_id"] == "ALS17", "group"] = " ALS "  # trimmed, any case
    p = write_study(tmp_path, {"readings": readings, "clinical": clinical})
    res = compute_study(load_study(p["readings"], p["clinical"]))
    by_kind = {i.kind: i for i in res.issues}
    assert by_kind["bad-group"].items == ("CTL13 (row 31: 'ALS?')",)
    assert by_kind["no-clinical-row"].items == ("ALS18", "CTL13")
    assert by_kind["no-clinical-row"].count == 2
    acc = res.diagnostic_accuracy.set_index("reader")
    assert (acc["n"] == 29).all()
    # ALS18 was a double negative, CTL13 a double negative: R1 loses one FN and one TN.
    assert tuple(acc.loc["R1", ["tp", "fp", "tn", "fn"]]) == (12, 3, 9, 5)
    # ... but both cases still count for reader agreement.
    ag = res.agreement
    kappa = ag.loc[(ag["statistic"] == "cohen_kappa") & (ag["measure"] == "als_consistent")]
    assert kappa.iloc[0]["n"] == 31


def test_single_class_reader_reported(tmp_path):
    readings, clinical = published_study()
    readings.loc[readings["reader"] == "R2", "als_consistent"] = 0
    p = write_study(tmp_path, {"readings": readings, "clinical": clinical})
    res = compute_study(load_study(p["readings"], p["clinical"]))
    ag = res.agreement
    row = ag.loc[(ag["statistic"] == "cohen_kappa") & (ag["measure"] == "als_consistent")]
    assert math.isnan(row.iloc[0]["value"])
    assert "R2 used a single class" in row.iloc[0]["note"]
    acc = res.diagnostic_accuracy.set_index("reader")
    assert math.isnan(acc.loc["R2", "ppv"]) and "ppv" in acc.loc["R2", "note"]
    kinds = {i.kind for i in res.issues}
    assert {"single-class", "zero-denominator"} <= kinds


def test_constant_clinical_column_reported(tmp_path):
    frames = synthetic_study(2, 30, seed=4)
    frames["clinical"].loc[frames["clinical"]["group"] == "als", "mrc"] = 120
    p = write_study(tmp_path, frames)
    res = compute_study(load_study(p["readings"], p["clinical"], p["measurements"]))
    cr = res.correlations
    mrc = cr.loc[cr["clinical"] == "mrc"]
    assert len(mrc) == 6 and mrc["rho"].isna().all()
    assert mrc["note"].str.contains("ρ undefined: clinical values constant").all()
    issue = next(i for i in res.issues if i.kind == "constant")
    assert issue.count == 6


def test_not_submitted_and_bad_values_excluded(tmp_path):
    readings, clinical = published_study()
    readings.loc[0, "status"] = "in_progress"  # R1 / ALS01
    readings.loc[1, "als_consistent"] = 7  # R1 / ALS02
    clinical["alsfrs_r"] = clinical["alsfrs_r"].astype(object)
    clinical.loc[2, "alsfrs_r"] = "forty"
    p = write_study(tmp_path, {"readings": readings, "clinical": clinical})
    data = load_study(p["readings"], p["clinical"])
    res = compute_study(data)
    kinds = {i.kind: i for i in res.issues}
    assert kinds["not-submitted"].items == ("R1 / ALS01",)
    assert kinds["not-binary"].items == ("row 3",)
    assert kinds["not-a-number"].items == ("row 4",)
    assert math.isnan(data.clinical.loc["ALS03", "alsfrs_r"])
    acc = res.diagnostic_accuracy.set_index("reader")
    assert acc.loc["R1", "n"] == 29 and acc.loc["R2", "n"] == 31


# --------------------------------------------------------------------------- measurements
def _small_measurements(tmp_path: Path, **kw) -> dict[str, Path]:
    frames = synthetic_study(2, 12, seed=11, **kw)
    return write_study(tmp_path, frames)


def test_echo_choice(tmp_path):
    p = _small_measurements(tmp_path, echoes=(1, 2, 3))
    data = load_study(p["readings"], p["clinical"], p["measurements"])
    assert data.echo == 3 and data.te_ms == pytest.approx(23.0)
    d1 = load_study(p["readings"], p["clinical"], p["measurements"], echo=1)
    assert d1.echo == 1 and d1.te_ms == pytest.approx(7.0)
    # synthetic SI grows by 0.01 per echo
    diff = data.slots["normalised_si"].mean() - d1.slots["normalised_si"].mean()
    assert diff == pytest.approx(0.02, abs=0.01)
    with pytest.raises(M1Error, match=r"no GRE ROI rows at echo 5 \(echoes present: 1, 2, 3\)"):
        load_study(p["readings"], p["clinical"], p["measurements"], echo=5)


def test_reference_and_other_regions_excluded(tmp_path):
    p = _small_measurements(tmp_path)
    m = pd.read_csv(p["measurements"])
    extra = m.loc[m["slot"] == "ref_precuneus_roi"].copy()
    m.loc[m["slot"] == "ref_precuneus_roi", "normalised_si"] = 1000.0  # must not be used
    extra["region"], extra["slot"] = "m1", "L_m1_roi"
    extra["normalised_si"] = -1000.0
    pd.concat([m, extra]).to_csv(p["measurements"], index=False)
    data = load_study(p["readings"], p["clinical"], p["measurements"])
    assert set(data.slots["region"]) == {"face", "hand", "leg", "foot"}
    assert data.slots["normalised_si"].between(0.5, 1.5).all()


def test_measurement_join_by_case_id_column(tmp_path):
    p = _small_measurements(tmp_path)
    by_label = load_study(p["readings"], p["clinical"], p["measurements"]).slots
    m = pd.read_csv(p["measurements"])
    r = pd.read_csv(p["readings"])
    first = r.loc[r["is_repeat"] == 0, ["reader", "pseudonym", "case_id"]]
    m = m.merge(first, left_on=["reader", "case_label"], right_on=["reader", "pseudonym"])
    m = m.drop(columns=["case_label", "pseudonym"])
    m.to_csv(p["measurements"], index=False)
    by_id = load_study(p["readings"], p["clinical"], p["measurements"]).slots
    pd.testing.assert_frame_equal(by_label, by_id)


def test_measurements_on_repeats_and_unknown_labels_reported(tmp_path):
    p = _small_measurements(tmp_path)
    m = pd.read_csv(p["measurements"])
    r = pd.read_csv(p["readings"])
    rep = r.loc[(r["is_repeat"] == 1) & (r["reader"] == "R1")].iloc[0]
    on_rep = m.loc[m["case_label"] == rep["repeat_of"]].copy()
    on_rep["case_label"] = rep["pseudonym"]
    on_rep["thickness_mm"] = 99.0
    ghost = m.iloc[:3].copy()
    ghost["case_label"] = "ZZZ-404"
    pd.concat([m, on_rep, ghost]).to_csv(p["measurements"], index=False)
    data = load_study(p["readings"], p["clinical"], p["measurements"])
    kinds = {i.kind: i for i in data.issues}
    assert kinds["measurement-on-repeat"].items == (rep["pseudonym"],)
    assert kinds["measurement-on-repeat"].severity == "note"  # normal in a real study
    assert kinds["unknown-case-label"].items == ("ZZZ-404",)
    assert kinds["unknown-case-label"].severity == "issue"
    assert (data.slots["thickness_mm"] < 10).all()


def test_missing_measurement_columns(tmp_path):
    p = _small_measurements(tmp_path)
    pd.read_csv(p["measurements"]).drop(columns=["thickness_mm"]).to_csv(
        p["measurements"], index=False
    )
    with pytest.raises(M1Error, match="measurements.csv: missing required column.*thickness_mm"):
        load_study(p["readings"], p["clinical"], p["measurements"])


def test_missing_si_values_counted_not_imputed(tmp_path):
    p = _small_measurements(tmp_path)
    m = pd.read_csv(p["measurements"])
    r = pd.read_csv(p["readings"])
    label = r.loc[(r["reader"] == "R1") & (r["is_repeat"] == 0)].iloc[0]
    sel = (m["case_label"] == label["pseudonym"]) & (m["annotation"] == "roi")
    m.loc[sel, "normalised_si"] = np.nan
    m["normalised_si_note"] = m["normalised_si_note"].astype(object)
    m.loc[sel, "normalised_si_note"] = "reference ROI missing"
    m.to_csv(p["measurements"], index=False)
    data = load_study(p["readings"], p["clinical"], p["measurements"])
    issue = next(i for i in data.issues if i.kind == "no-normalised-si")
    assert issue.count == 8 and "reference ROI missing: 8" in issue.message
    res = compute_study(data)
    per = res.per_subject.set_index(["reader", "case_id"])
    assert math.isnan(per.loc[("R1", label["case_id"]), "normalised_si"])
    assert per.loc[("R1", label["case_id"]), "n_si_slots"] == 0
    gc = res.group_comparisons
    row = gc.loc[
        (gc["comparison"] == "als_vs_control")
        & (gc["variable"] == "normalised_si")
        & (gc["reader"] == "R1")
    ].iloc[0]
    assert row["n_a"] + row["n_b"] == 11  # 12 cases, one without SI


# --------------------------------------------------------------------------- structure
STATS_SRC = Path(napari_m1.stats.__file__).parent


def _stats_imports() -> dict[str, set[str]]:
    """Module -> the sibling stats modules it imports (at any level, lazily or not)."""
    import ast

    graph: dict[str, set[str]] = {}
    for path in STATS_SRC.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names)
        graph[path.stem] = deps - {path.stem}
    return graph


def test_stats_modules_small_and_without_import_cycle():
    sizes = {
        p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in STATS_SRC.glob("*.py")
    }
    assert max(sizes.values()) <= 500, sizes
    graph = _stats_imports()
    assert "_data" in graph["_agreement"]  # the parser sees relative imports
    done: set[str] = set()

    def visit(mod: str, stack: tuple[str, ...]) -> None:
        assert mod not in stack, f"import cycle: {' -> '.join((*stack, mod))}"
        if mod in done or mod not in graph:
            return
        for dep in graph[mod]:
            visit(dep, (*stack, mod))
        done.add(mod)

    for mod in graph:
        visit(mod, ())


def test_penfield_areas_have_one_home():
    from napari_m1.protocol import PENFIELD_AREAS
    from napari_m1.stats._data import AREA_ORDER

    assert PENFIELD_AREAS == ("foot", "leg", "hand", "face")
    assert AREA_ORDER == tuple(reversed(PENFIELD_AREAS))  # derived, not a second list
    for path in STATS_SRC.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "PENFIELD_AREAS =" not in text and '"foot", "leg"' not in text, path.name


# --------------------------------------------------------------------------- vs statsmodels
def _random_calls(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = (rng.random(n) < rng.uniform(0.2, 0.8)).astype(float)
    b = np.where(rng.random(n) < rng.uniform(0.5, 0.95), a, 1 - a)
    return a, b


@pytest.mark.parametrize("seed", range(12))
def test_cohen_kappa_and_ci_match_statsmodels(seed):
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    a, b = _random_calls(seed, [5, 13, 31, 200, 1000, 7][seed % 6])
    if a.min() == a.max() or b.min() == b.max():
        pytest.skip("single class drawn")
    table = np.bincount((2 * a + b).astype(int), minlength=4).reshape(2, 2)
    ref = sm_kappa(table)
    s = cohen_kappa(a, b)
    assert s.value == pytest.approx(float(ref.kappa), abs=1e-12)
    assert s.ci_low == pytest.approx(max(float(ref.kappa_low), -1.0), abs=1e-12)
    assert s.ci_high == pytest.approx(min(float(ref.kappa_upp), 1.0), abs=1e-12)
    assert s.n == a.size


def test_cohen_kappa_published_table_matches_statsmodels():
    from statsmodels.stats.inter_rater import cohens_kappa as sm_kappa

    # Published study (R1 rows x R2 columns: 1, 0): 9 both +, 6 R1 only, 0 R2 only, 16 both −.
    table = np.array([[16, 0], [6, 9]])
    a = np.repeat([0, 0, 1, 1], table.ravel())
    b = np.repeat([0, 1, 0, 1], table.ravel())
    ref = sm_kappa(table)
    s = cohen_kappa(a, b)
    assert (s.value, s.ci_low, s.ci_high) == pytest.approx(
        (ref.kappa, ref.kappa_low, ref.kappa_upp), abs=1e-12
    )


@pytest.mark.parametrize(("k", "n"), [(12, 18), (0, 13), (13, 13), (1, 2), (517, 1000)])
def test_wilson_interval_matches_statsmodels(k, n):
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((lo, hi), abs=1e-12)


# --------------------------------------------------------------------------- kernels vs scipy
def test_average_ranks_match_scipy_rankdata():
    from napari_m1.stats._kernels import average_ranks

    rng = np.random.default_rng(1)
    x = rng.integers(0, 12, size=200).astype(float)  # many ties
    ranks, sizes = average_ranks(x)
    np.testing.assert_array_equal(ranks, stats.rankdata(x))
    assert sizes.sum() == 200 and sizes.size == np.unique(x).size
    assert average_ranks(np.array([3.0]))[0].tolist() == [1.0]


@pytest.mark.parametrize("seed", range(6))
def test_mann_whitney_asymptotic_matches_scipy_on_larger_samples(seed):
    rng = np.random.default_rng(seed)
    a = np.round(rng.normal(2.0, 0.3, size=40 + seed * 30), 1 + seed % 2)  # rounding: ties
    b = np.round(rng.normal(2.1, 0.3, size=25 + seed * 17), 1 + seed % 2)
    r = mann_whitney(a, b)
    ref = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic")
    assert r["method"] == "asymptotic"
    assert r["u_statistic"] == ref.statistic
    assert r["p_value"] == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1, 2, 3, 4, 5], [2, 4, 6, 8, 10]),  # ρ = 1: p = 0
        ([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]),  # ρ = −1
        ([1, 2, 2, 3, 5, 5, 7], [3, 1, 2, 2, 9, 4, 4]),  # ties in both
    ],
)
def test_spearman_edges_match_scipy(x, y):
    r = spearman(x, y)
    ref = stats.spearmanr(x, y)
    assert r["rho"] == pytest.approx(ref.statistic, abs=1e-12)
    assert r["p_value"] == pytest.approx(ref.pvalue, abs=1e-12)


@pytest.mark.parametrize(("n", "k", "seed"), [(80, 5, 0), (300, 3, 1), (25, 20, 2)])
def test_fleiss_bca_matches_scipy_bootstrap(n, k, seed):
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.4
    x = np.where(rng.random((n, k)) < 0.8, truth[:, None], ~truth[:, None]).astype(int)
    s = fleiss_kappa_ci(x, n_resamples=400, seed=7)
    table = np.stack([(x == 0).sum(axis=1), (x == 1).sum(axis=1)], axis=1).astype(float)
    ref = stats.bootstrap(
        (np.arange(n),),
        lambda idx, axis=-1: fleiss_kappa_resampled(table, idx),
        n_resamples=400,
        confidence_level=0.95,
        method="BCa",
        vectorized=True,
        rng=np.random.default_rng(7),
    ).confidence_interval
    assert (s.ci_low, s.ci_high) == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_public_api_is_lazy_and_complete():
    import subprocess
    import sys

    code = (
        "import sys, napari_m1.stats as s\n"
        "print(sorted(m for m in sys.modules if m.startswith('napari_m1.stats.')))\n"
        "print(all(getattr(s, n) is not None for n in s.__all__))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:2] == ["[]", "True"]  # nothing loaded until used; every name resolves
    assert sorted(napari_m1.stats.__all__) == sorted(napari_m1.stats._LAZY)
