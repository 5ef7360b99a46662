"""The phantom's MRSI as spectra + fit results: truth, planted QC failures, formats (issue 12)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from napari_m1.mrsi import (
    SINGLET_PPM,
    fit_singlets,
    lcmodel_csv_fit,
    ratio_maps,
    read_fsl_mrsi,
    read_nifti_mrs,
    singlet_fids,
)
from napari_m1.phantom import make_phantom, write_phantom_mrs
from napari_m1.phantom._mrs import DWELL_S, N_POINTS, PLANTED

RATIOS = ("tNAA/tCr", "tCho/tCr", "Glx/tCr")


@pytest.fixture(scope="module")
def phantom():
    return make_phantom("als", 0, n_slices=16)


@pytest.fixture(scope="module")
def clean(phantom, tmp_path_factory):
    return write_phantom_mrs(tmp_path_factory.mktemp("clean"), phantom, noise=False)


@pytest.fixture(scope="module")
def noisy(phantom, tmp_path_factory):
    return write_phantom_mrs(tmp_path_factory.mktemp("noisy"), phantom, noise=True, seed=7)


def _truth_ratio(mrs, name: str) -> np.ndarray:
    num = name.split("/")[0]
    return mrs.conc_mm[num] / np.where(mrs.mask, mrs.conc_mm["tCr"], np.nan)


def test_truth_is_the_phantom_maps_and_planted_voxels_are_inside(phantom, clean):
    mask = np.isfinite(phantom.mrsi["NAA"])
    np.testing.assert_array_equal(clean.mask, mask)
    np.testing.assert_allclose(clean.conc_mm["tNAA"][mask], phantom.mrsi["NAA"][mask], rtol=1e-6)
    for what, vox, met, _tests in PLANTED:
        assert clean.mask[vox], what
        if met is not None:
            assert clean.conc_mm[met][vox] == pytest.approx(0.005)
    # each planted failure excludes the ratios it concerns, nothing else is expected excluded
    assert clean.excluded["tNAA/tCr"].sum() == 2  # broad + noisy voxels
    assert clean.excluded["tCho/tCr"].sum() == 3
    assert clean.excluded["Glx/tCr"].sum() == 3


def test_spectra_are_valid_nifti_mrs_with_singlets_at_their_shifts(clean):
    path = clean.folder / clean.files["spectra"]
    nm = pytest.importorskip("nifti_mrs.nifti_mrs", reason="nifti-mrs (BSD-3) validates")
    from nifti_mrs.validator import validate_nifti_mrs

    ref = nm.NIFTI_MRS(str(path))  # validates on creation
    validate_nifti_mrs(ref)
    assert ref.shape == (24, 24, 6, N_POINTS)
    assert ref.dwelltime == pytest.approx(DWELL_S)
    n = read_nifti_mrs(path)
    assert n.nucleus == "1H"
    assert n.spectrometer_frequency_mhz == pytest.approx(298.0423, abs=1e-3)
    np.testing.assert_allclose(n.affine, clean.affine)
    # the four tallest local maxima of a voxel's real spectrum sit at the singlets' shifts
    vox = tuple(np.argwhere(clean.mask)[100])
    spec = n.spectrum(vox).real
    ppm = n.ppm_axis()
    peaks = [k for k in range(1, len(spec) - 1) if spec[k - 1] < spec[k] > spec[k + 1]]
    top = sorted(peaks, key=lambda k: spec[k])[-4:]
    bin_ppm = abs(ppm[1] - ppm[0])
    for shift in SINGLET_PPM.values():
        assert min(abs(ppm[k] - shift) for k in top) < bin_ppm, shift
    assert "PatientName" not in json.dumps(n.header)


@pytest.mark.parametrize("which", ["clean", "noisy"])
def test_fsl_mrsi_ratio_maps_equal_truth_and_exclude_exactly_the_planted(which, request):
    mrs = request.getfixturevalue(which)
    fit = read_fsl_mrsi(mrs.folder / "fsl_mrsi")
    assert fit.scaling == "raw"
    assert fit.spectrometer_frequency_mhz == pytest.approx(298.0423, abs=1e-3)
    maps = {r.name: r for r in ratio_maps(fit)}
    assert list(maps) == list(RATIOS)
    for name in RATIOS:
        r = maps[name]
        expected = mrs.excluded[name] | ~mrs.mask
        np.testing.assert_array_equal(r.reason != 0, expected)
        np.testing.assert_array_equal(np.isnan(r.values), expected)
        truth = _truth_ratio(mrs, name)
        kept = ~expected
        if which == "clean":
            np.testing.assert_allclose(r.values[kept], truth[kept], rtol=1e-6, atol=0)
            inside = mrs.mask
            np.testing.assert_allclose(r.unfiltered[inside], truth[inside], rtol=1e-6)
        else:
            rel = np.abs(r.values[kept] / truth[kept] - 1)
            assert rel.max() < 0.02, (name, rel.max())
            assert rel.max() > 1e-5  # the noise is really there
        s = r.summary
        assert s["n_excluded"] == int(expected.sum())
        assert s["excluded_by"]["mask"] == int((~mrs.mask).sum())
        # every planted test that concerns this ratio is counted under its name
        num = name.split("/")[0]
        for test in ("crlb", "fwhm", "snr"):
            planted = sum(
                1 for _w, _v, met, tests in PLANTED if test in tests and met in (None, num, "tCr")
            )
            assert s["excluded_by"][test] == planted, (name, test)


def test_fit_files_are_data_fit_residual_and_baseline(noisy):
    spectra = read_nifti_mrs(noisy.folder / noisy.files["spectra"])
    fm = noisy.folder / "fsl_mrsi" / "fit"
    fit, res, base = (read_nifti_mrs(fm / f"{p}.nii.gz") for p in ("fit", "residual", "baseline"))
    inside = noisy.mask
    np.testing.assert_allclose(
        (fit.data + res.data)[inside], spectra.data[inside], rtol=0, atol=1e-4
    )
    assert not np.any(base.data)
    assert not np.any(fit.data[~inside])
    # the residual is noise: its SD matches the modelled noise in an ordinary voxel
    vox = tuple(np.argwhere(inside)[50])
    assert np.std(res.data[vox].real) == pytest.approx(0.25, rel=0.15)
    # the broad-line voxel's fitted linewidth is the planted 0.15 ppm
    broad = next(v for w, v, _m, _t in PLANTED if w == "broad lines")
    qc = read_fsl_mrsi(noisy.folder / "fsl_mrsi")
    assert qc.fwhm_ppm["tCr"][broad] == pytest.approx(0.15, rel=0.02)


def test_lcmodel_csvs_carry_the_same_truth(clean):
    import nibabel as nib

    grid = nib.load(clean.folder / "fsl_mrsi" / "mask.nii.gz")
    for k, rel in enumerate(clean.files["lcmodel_csv"]):
        f = lcmodel_csv_fit(
            clean.folder / rel, grid.shape, grid.affine, slice_index=k, hz_per_ppm=298.0423
        )
        np.testing.assert_array_equal(f.mask[..., k], clean.mask[..., k])
        for r in ratio_maps(f):
            truth = _truth_ratio(clean, r.name)[..., k]
            expected = (clean.excluded[r.name] | ~clean.mask)[..., k]
            np.testing.assert_array_equal(r.reason[..., k] != 0, expected, err_msg=r.name)
            kept = ~expected
            np.testing.assert_allclose(r.values[..., k][kept], truth[kept], rtol=1e-6)


def test_fit_singlets_crlb_is_calibrated_and_noise_estimated():
    rng = np.random.default_rng(3)
    v, ppm = 400, list(SINGLET_PPM.values())
    amp = rng.uniform(2, 20, (v, 4))
    w = rng.uniform(10, 16, v)
    clean = singlet_fids(amp, w, n_points=512, dwell_s=2.5e-4, f0_mhz=298.0, ppm=ppm)
    exact = fit_singlets(clean, dwell_s=2.5e-4, f0_mhz=298.0, ppm=ppm, noise_sd=0.3)
    np.testing.assert_allclose(exact.amplitude, amp, rtol=1e-9)
    np.testing.assert_allclose(exact.fwhm_hz, w, rtol=1e-9)
    noise = rng.standard_normal((*clean.shape, 2)) @ np.array([1.0, 1j])
    noisy = clean + 0.3 * noise
    f = fit_singlets(noisy, dwell_s=2.5e-4, f0_mhz=298.0, ppm=ppm)
    np.testing.assert_allclose(f.noise_sd, 0.3, rtol=0.1)
    z = (f.amplitude - amp) / f.sd
    assert np.all(np.abs(z.std(axis=0) - 1) < 0.12)  # CRLB = the actual scatter
    assert np.all(np.abs(z.mean(axis=0)) < 0.2)  # unbiased


def _cell(text: str):
    from napari_m1.formats import restore_cell

    text = restore_cell(text)
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


@pytest.mark.slow
def test_sample_with_mrs_info_and_measure_with_thresholds(tmp_path, capsys):
    """CLI end to end: sample --mrs, info --json (QC audit), measure (overlap columns, f_GM,
    excluded voxels, the unfiltered mean and the thresholds in every MRSI ratio row)."""
    import csv

    from napari_m1.annotation import AnnotationSet, roi_annotation, save_annotations
    from napari_m1.cli import main
    from napari_m1.io import load_case
    from napari_m1.measure import case_fingerprint_of
    from napari_m1.protocol import get_protocol

    case = tmp_path / "case"
    args = ["sample", str(case), "--slices", "16", "--mrs", "--label", "c01", "--seed", "2"]
    assert main(args) == 0
    truth = json.loads((case / "truth.json").read_text())["mrs"]
    assert truth["noise"] is True
    assert [p["voxel"] for p in truth["planted"]] == [list(p[1]) for p in PLANTED]
    assert (case / "mrs" / "sub-c01_mrsi.nii.gz").is_file()
    capsys.readouterr()
    assert main(["info", str(case), "--json"]) == 0
    qc = {s["ratio"]: s for s in json.loads(capsys.readouterr().out)["mrsi_qc"]}
    n_out = 24 * 24 * 6 - truth["n_voxels_fitted"]
    assert {r: s["n_excluded"] for r, s in qc.items()} == {
        "tNAA/tCr": n_out + 2,
        "tCho/tCr": n_out + 3,
        "Glx/tCr": n_out + 3,
    }
    # stricter S/N than any ordinary voxel has: every fitted voxel goes (thresholds applied)
    assert main(["info", str(case), "--json", "--min-snr", "1e9"]) == 0
    qc = {s["ratio"]: s for s in json.loads(capsys.readouterr().out)["mrsi_qc"]}
    assert qc["tNAA/tCr"]["n_excluded"] == 24 * 24 * 6
    assert qc["tNAA/tCr"]["thresholds"]["min_snr"] == 1e9

    ph = make_phantom("control", 2, n_slices=16)
    loaded = load_case(case)
    s = AnnotationSet(get_protocol("m1-7t"), case_fingerprint_of(loaded), "R1")
    absent = next(v for w, v, _m, _t in PLANTED if w == "absent tCho")  # (8, 14, 1)
    centre = (ph.mrsi_affine @ [*absent, 1])[:3]
    centre[2] = 43.0  # a GRE slice inside MRSI slice 1 (z 41 ... 46)
    r4 = math.sqrt(4 / math.pi)
    s.put(roi_annotation("L_hand_roi", centre, [r4, 0, 0], [0, r4, 0]))
    ann = save_annotations(tmp_path / "a.m1ann.jsonl", s)
    out = tmp_path / "m.csv"
    assert main(["measure", str(case), str(ann), "--out", str(out), "--max-sd-pct", "30"]) == 0
    with open(out, newline="") as fh:
        rows = [{k: _cell(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    mrsi = {r["metabolite"]: r for r in rows if r["layer_kind"] == "mrsi"}
    cho = mrsi["tCho/tCr"]
    assert cho["mrsi_n_excluded_voxels"] == 1  # the planted voxel, and the ROI is inside it
    assert cho["mrsi_n_voxels_contributing"] == 0
    # the planted tCho (0.005 mM, CRLB ~40 % in noise) is still in the unfiltered mean
    assert abs(cho["mean_unfiltered"]) < 0.01  # an ordinary voxel: tCho/tCr ~ 0.2
    assert (cho["qc_max_sd_pct"], cho["qc_max_fwhm_ppm"], cho["qc_min_snr"]) == (30, 0.1, 5)
    naa = mrsi["tNAA/tCr"]
    assert naa["mrsi_n_excluded_voxels"] == 0 and naa["mrsi_n_voxels_contributing"] == 1
    assert naa["mrsi_largest_weight"] == pytest.approx(1.0)
    assert naa["f_gm_weighted"] == pytest.approx(ph.mrsi_fractions["GM"][absent], rel=1e-6)
    assert naa["f_wm_weighted"] == pytest.approx(ph.mrsi_fractions["WM"][absent], rel=1e-6)
    # concentration maps carry tissue fractions too, but no QC columns
    plain = mrsi["NAA"]
    assert plain["f_gm_weighted"] == pytest.approx(ph.mrsi_fractions["GM"][absent], rel=1e-6)
    assert plain["qc_max_sd_pct"] is None and plain["mrsi_n_excluded_voxels"] is None
