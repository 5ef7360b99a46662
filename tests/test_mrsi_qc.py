"""Ratio maps and QC on a synthetic fsl_mrsi folder with known truth and planted failures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_m1.errors import M1LoadError
from napari_m1.mrsi import QCThresholds, ratio_maps, read_fsl_mrsi
from napari_m1.mrsi._synth import write_fsl_mrsi_folder

RATIOS = ("tNAA/tCr", "tCho/tCr", "Glx/tCr")


@pytest.fixture
def syn(tmp_path):
    return write_fsl_mrsi_folder(tmp_path / "fsl_mrsi", (8, 8, 3), seed=3)


def _planted(syn, test: str, met: str) -> np.ndarray:
    z = np.zeros(syn.conc["tCr"].shape, dtype=bool)
    return syn.planted.get((test, met), z)


def test_reader_names_units_and_frequency(syn):
    assert read_fsl_mrsi(syn.folder).scaling == "raw"
    fit = read_fsl_mrsi(syn.folder, scaling="molarity")
    assert fit.scaling == "molarity"
    assert set(fit.conc) == {"tNAA", "tCr", "tCho", "Glx", "Ins"}
    assert fit.labels["tNAA"] == "NAA+NAAG"
    assert fit.spectrometer_frequency_mhz == pytest.approx(297.2)  # from fit/fit.nii.gz
    for m in fit.conc:
        np.testing.assert_allclose(fit.conc[m], syn.conc[m], rtol=1e-6)
    inside = fit.mask
    # planted values come back in their units: %SD as written, FWHM Hz -> ppm
    assert np.all(fit.sd_pct["tNAA"][_planted(syn, "crlb", "tNAA")] == pytest.approx(35.0))
    assert np.all(fit.fwhm_ppm["tCho"][_planted(syn, "fwhm", "tCho")] == pytest.approx(0.15))
    assert np.all(fit.sd_pct["Ins"][inside] < 12.01)
    assert np.all(fit.fwhm_ppm["Ins"][inside] < 0.0601)
    np.testing.assert_array_equal(fit.mask, ~_planted(syn, "mask", "*"))


@pytest.mark.parametrize("write_mask", [True, False])
def test_ratio_maps_equal_truth_and_exclude_exactly_the_planted(tmp_path, write_mask):
    syn = write_fsl_mrsi_folder(tmp_path / "f", (8, 8, 3), seed=1, write_mask=write_mask)
    maps = {r.name: r for r in ratio_maps(read_fsl_mrsi(syn.folder))}
    assert list(maps) == list(RATIOS)
    outside = _planted(syn, "mask", "*")
    for name in RATIOS:
        num = name.split("/")[0]
        r = maps[name]
        per_test = {
            t: (_planted(syn, t, num) | _planted(syn, t, "tCr")) & ~outside
            for t in ("crlb", "fwhm", "snr")
        }
        per_test["mask"] = outside
        expected = np.logical_or.reduce(list(per_test.values()))
        np.testing.assert_array_equal(r.reason != 0, expected)
        np.testing.assert_array_equal(np.isnan(r.values), expected)
        truth = syn.conc[num] / np.where(syn.conc["tCr"] == 0, np.nan, syn.conc["tCr"])
        kept = ~expected
        np.testing.assert_allclose(r.values[kept], truth[kept], rtol=0, atol=1e-6)
        # unfiltered keeps the excluded-but-inside values (for the bias-aware report)
        np.testing.assert_allclose(r.unfiltered[~outside], truth[~outside], atol=1e-6)
        s = r.summary
        assert s["ratio"] == name
        assert s["n_voxels"] == 8 * 8 * 3
        assert s["n_excluded"] == int(expected.sum())
        assert s["excluded_by"] == {k: int(v.sum()) for k, v in per_test.items()}
        assert s["thresholds"] == {"max_sd_pct": 20.0, "max_fwhm_ppm": 0.1, "min_snr": 5.0}


def test_voxel_failing_several_tests_counts_once(syn):
    r = ratio_maps(read_fsl_mrsi(syn.folder))[0]
    multi = _planted(syn, "fwhm", "tCr") & _planted(syn, "snr", "tCr")
    assert multi.sum() == 1
    assert r.reason[multi][0] == 1 | 2 | 4  # crlb, fwhm and snr bits
    assert r.summary["n_excluded"] < sum(r.summary["excluded_by"].values())


def test_thresholds_are_configurable(syn):
    fit = read_fsl_mrsi(syn.folder)
    loose = QCThresholds(max_sd_pct=50, max_fwhm_ppm=0.2, min_snr=2)
    r = ratio_maps(fit, loose)[0]
    assert r.summary["excluded_by"] == {
        "crlb": 0,
        "fwhm": 0,
        "snr": 0,
        "mask": 8 * 8 * 3 - 6 * 6 * 3,
    }
    assert r.summary["thresholds"] == dataclasses.asdict(loose)
    strict = ratio_maps(fit, QCThresholds(max_sd_pct=1.0))[0]
    assert strict.summary["excluded_by"]["crlb"] == int(fit.mask.sum())  # all SD >= 2 %


def test_missing_qc_map_means_test_not_applied(syn):
    for p in (syn.folder / "qc").glob("*_snr.nii.gz"):
        p.unlink()
    r = ratio_maps(read_fsl_mrsi(syn.folder))[0]
    assert r.summary["excluded_by"]["snr"] is None
    assert r.summary["excluded_by"]["crlb"] == 3


def test_not_an_fsl_mrsi_folder(tmp_path):
    with pytest.raises(M1LoadError, match="no concs/"):
        read_fsl_mrsi(tmp_path)


def test_lcmodel_csv_of_the_same_truth(tmp_path, syn):
    """An LCModel CSV (one slice) written from the synthetic truth gives the same QC."""
    from napari_m1.mrsi import lcmodel_csv_fit

    fit = read_fsl_mrsi(syn.folder)
    fails = sum(v for (t, _), v in syn.planted.items() if t != "mask")
    k = int(np.argmax(fails.sum(axis=(0, 1))))  # the slice with most planted failures
    assert fails[:, :, k].sum() >= 2
    stems = {"tNAA": "NAA+NAAG", "tCr": "Cr+PCr", "tCho": "GPC+PCh", "Glx": "Glu+Gln"}
    head = ["Row", "Col"]
    for s in stems.values():
        head += [s, f"{s} %SD", f"{s}/Cr+PCr"]
    lines = [", ".join([*head, "FWHM", "S/N"])]
    for i, j in zip(*np.nonzero(fit.mask[:, :, k]), strict=True):
        cells = [j + 1, i + 1]
        for m in stems:
            cells += [fit.conc[m][i, j, k], fit.sd_pct[m][i, j, k], 0.0]
        # LCModel has one FWHM and S/N per spectrum: take tCr's
        cells += [fit.fwhm_ppm["tCr"][i, j, k], fit.snr["tCr"][i, j, k]]
        lines.append(", ".join(f"{c:.9g}" for c in cells))
    p = tmp_path / "slice.CSV"
    p.write_text("\n".join(lines) + "\n")
    csv_fit = lcmodel_csv_fit(p, fit.shape, fit.affine, slice_index=k, hz_per_ppm=297.2)
    for a, b in zip(ratio_maps(csv_fit), ratio_maps(fit), strict=True):
        assert a.name == b.name
        num = a.name.split("/")[0]
        expected = (
            _planted(syn, "crlb", num)
            | _planted(syn, "crlb", "tCr")
            | _planted(syn, "fwhm", "tCr")
            | _planted(syn, "snr", "tCr")
            | _planted(syn, "mask", "*")
        )[:, :, k]
        np.testing.assert_array_equal(a.reason[:, :, k] != 0, expected)
        kept = ~expected
        np.testing.assert_allclose(a.values[:, :, k][kept], b.unfiltered[:, :, k][kept], rtol=1e-6)
        others = [z for z in range(fit.shape[2]) if z != k]
        assert np.all(a.reason[:, :, others] == 8)  # other slices: not fitted = outside


def test_lcmodel_real_csv_as_one_voxel():
    from pathlib import Path

    from napari_m1.mrsi import lcmodel_csv_fit

    p = Path(__file__).resolve().parents[2] / "shared" / "data" / "mrs-small" / "lcmodel"
    if not p.is_dir():
        pytest.skip("shared MRS test data (../shared/data/mrs-small) not present")
    maps = {r.name: r for r in ratio_maps(lcmodel_csv_fit(p / "svs_97.CSV", (1, 1, 1), np.eye(4)))}
    assert maps["tNAA/tCr"].values[0, 0, 0] == pytest.approx(0.148 / 0.251)
    assert maps["tCho/tCr"].values[0, 0, 0] == pytest.approx(0.115 / 0.251)
    # Glu+Gln %SD 40 > 20: excluded; no FWHM/S/N columns: those tests not applied
    assert np.isnan(maps["Glx/tCr"].values[0, 0, 0])
    assert maps["Glx/tCr"].summary["excluded_by"] == {
        "crlb": 1,
        "fwhm": None,
        "snr": None,
        "mask": 0,
    }
    with pytest.raises(M1LoadError, match="outside the grid"):
        lcmodel_csv_fit(p / "svs_97.CSV", (1, 1, 1), np.eye(4), slice_index=3)
