"""The report's MRSI section: QC-filtered ratio means beside the unfiltered ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.m1_study import synthetic_study, write_study
from napari_m1.stats import build_report


def test_report_shows_unfiltered_beside_filtered_mrsi_ratios(tmp_path):
    frames = synthetic_study(2, 12, seed=3, repeat_fraction=0.0)
    meas = frames["measurements"]
    roi = meas.loc[
        (meas["annotation"] == "roi") & (meas["layer_kind"] == "gre") & (meas["echo"] == 1)
        & (meas["region"] != "precuneus")
    ]  # fmt: skip
    groups = frames["clinical"].set_index("case_id")["group"]
    first = frames["readings"].drop_duplicates(["reader", "pseudonym"])
    keys = zip(first["reader"], first["pseudonym"], strict=True)
    case_of = dict(zip(keys, first["case_id"], strict=True))
    mrsi = roi.copy()
    mrsi["layer_kind"], mrsi["metabolite"], mrsi["echo"], mrsi["te_ms"] = (
        "mrsi",
        "tNAA/tCr",
        "",
        "",
    )
    grp = [
        groups[case_of[(r, c)]] for r, c in zip(mrsi["reader"], mrsi["case_label"], strict=True)
    ]
    als = np.array(grp) == "als"
    k = np.arange(len(mrsi))
    # unfiltered 1.0 (ALS) / 1.3 (controls); every 3rd ALS ROI lost a low voxel to QC
    # (filtered 1.2), every 6th lost all its voxels (filtered NaN)
    unf = np.where(als, 1.0, 1.3)
    lost = als & (k % 3 == 0)
    gone = als & (k % 6 == 0)
    mean = np.where(lost, 1.2, unf)
    mean[gone] = np.nan
    mrsi["mean_unfiltered"], mrsi["mean"] = unf, mean
    mrsi["mrsi_n_excluded_voxels"] = np.where(gone, 4, np.where(lost, 1, 0))
    mrsi["qc_max_sd_pct"], mrsi["qc_max_fwhm_ppm"], mrsi["qc_min_snr"] = 20.0, 0.1, 5.0
    frames["measurements"] = pd.concat([meas, mrsi], ignore_index=True)
    paths = write_study(tmp_path / "in", frames)
    res = build_report(
        paths["readings"], paths["clinical"], tmp_path / "out", measurements=paths["measurements"]
    )
    table = pd.read_csv(res.tables["mrsi_qc"]).set_index("group")
    assert list(table["ratio"].unique()) == ["tNAA/tCr"]
    a, c = table.loc["als"], table.loc["control"]
    assert a["n_rois"] == als.sum() and c["n_rois"] == (~als).sum()
    assert a["mean_unfiltered"] == pytest.approx(1.0)
    kept = mean[als][~gone[als]]
    assert a["mean_filtered"] == pytest.approx(kept.mean(), rel=1e-5)
    assert a["mean_filtered"] > a["mean_unfiltered"]  # the upward bias the table shows
    assert a["filtering_shift"] == pytest.approx((kept - 1.0).mean(), rel=1e-5)
    assert a["n_rois_with_excluded_voxels"] == lost.sum()
    assert a["n_rois_all_excluded"] == gone.sum()
    assert a["n_excluded_voxels"] == (4 * gone.sum() + (lost & ~gone).sum())
    assert c["mean_filtered"] == pytest.approx(1.3) and c["filtering_shift"] == pytest.approx(0)
    assert table.loc["all", "n_rois"] == len(mrsi)
    assert a["thresholds"] == "%SD <= 20, FWHM <= 0.1 ppm, S/N >= 5"
    html = res.html.read_text()
    assert "MRSI ratios: QC-filtered and unfiltered" in html and "tables/mrsi_qc.csv" in html


def test_no_mrsi_section_without_mrsi_columns(tmp_path):
    paths = write_study(tmp_path / "in", synthetic_study(2, 8, seed=1))
    res = build_report(
        paths["readings"], paths["clinical"], tmp_path / "out", measurements=paths["measurements"]
    )
    assert "mrsi_qc" not in res.tables
    assert "MRSI ratios" not in res.html.read_text()
