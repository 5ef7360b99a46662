"""Overlap-weighted ROI rows on MRSI maps: contributing voxels, largest weight, f_GM, QC."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_m1.annotation import roi_annotation
from napari_m1.measure import MEASUREMENT_COLUMNS, MapSource, MeasurementEngine
from napari_m1.measure._mrsi_rows import MRSI_COLUMNS, mrsi_overlap_columns
from napari_m1.protocol import PROTOCOLS

M1 = PROTOCOLS["m1-7t"]
SLOT = "L_hand_roi"
# napari order (S, A, R): GRE 0.25 mm in-plane, 2 mm slices; MRSI 5 mm, voxel edges at
# x, y in {-15, -10, -5, 0, 5, 10}, slab z = 15 ... 45
RAS = np.array([[0, 0, 0.25, -10], [0, 0.25, 0, -10], [2, 0, 0, 20], [0, 0, 0, 1.0]])
MRAS = np.array([[0, 0, 5, -12.5], [0, 5, 0, -12.5], [5, 0, 0, 17.5], [0, 0, 0, 1.0]])
R4 = math.sqrt(4 / math.pi)  # radius of a 4 mm² disc


def _engine():
    rng = np.random.default_rng(0)
    naa = rng.uniform(5, 10, (6, 5, 5))
    ratio = rng.uniform(1, 2, (6, 5, 5))
    unfiltered = ratio.copy()
    reason = np.zeros((6, 5, 5), np.uint8)
    reason[2, 2, 2] = 1  # the voxel x in [-5, 0], y in [-5, 0] of slice 2 fails CRLB
    ratio[reason != 0] = np.nan
    unfiltered[2, 2, 2] = 9.0  # what QC removed
    f_gm = rng.uniform(0, 1, (6, 5, 5))
    srcs = [
        MapSource("gre", "g", rng.normal(400, 20, (12, 80, 80)), RAS, [10.0], source_affine=RAS),
        MapSource("mrsi", "NAA", naa, MRAS, None, "NAA", aux={"f_gm": f_gm}),
        MapSource(
            "mrsi",
            "tNAA/tCr",
            ratio,
            MRAS,
            None,
            "tNAA/tCr",
            aux={"unfiltered": unfiltered, "f_gm": f_gm},
            meta={"qc": {"thresholds": {"max_sd_pct": 20.0, "max_fwhm_ppm": 0.1, "min_snr": 5.0}}},
        ),
    ]
    return MeasurementEngine(srcs, M1), naa, ratio, unfiltered, f_gm


def _rows(eng, x, y, z=28.0):
    eng.update(SLOT, roi_annotation(SLOT, [x, y, z], [R4, 0, 0], [0, R4, 0]))
    return {r["metabolite"]: r for r in eng.rows_for(SLOT) if r["layer_kind"] == "mrsi"}


def test_roi_inside_one_voxel():
    eng, naa, _ratio, _u, f_gm = _engine()
    r = _rows(eng, -7.5, -2.5)["NAA"]  # centre of voxel (k, row, col) = (2, 2, 1)
    assert r["mean"] == pytest.approx(naa[2, 2, 1])
    assert r["mrsi_n_voxels_contributing"] == 1
    assert r["mrsi_largest_weight"] == pytest.approx(1.0)
    # 4 mm² of a 25 mm² voxel face: 16 % (12 x 12 samples per 5 mm voxel: within 10 %)
    assert r["mrsi_largest_voxel_area_fraction"] == pytest.approx(0.16, rel=0.1)
    assert r["mrsi_flag"] == ""
    assert r["f_gm_weighted"] == pytest.approx(f_gm[2, 2, 1])
    assert r["mrsi_n_excluded_voxels"] is None and r["mean_unfiltered"] is None


def test_roi_on_a_corner_is_shared_by_four_voxels_and_flagged():
    eng, naa, _ratio, _u, f_gm = _engine()
    r = _rows(eng, -10.0, -10.0)["NAA"]  # the corner of voxels rows 1-2, cols 0-1
    four = (slice(2, 3), slice(0, 2), slice(0, 2))
    assert r["mrsi_n_voxels_contributing"] == 4
    assert r["mrsi_largest_weight"] == pytest.approx(0.25)
    assert r["mrsi_flag"] == "largest_weight<0.5"
    assert r["mean"] == pytest.approx(naa[four].mean())
    assert r["f_gm_weighted"] == pytest.approx(f_gm[four].mean())
    # on an edge: two voxels, half each: not flagged (the threshold is strict)
    r = _rows(eng, -5.0, -7.5)["NAA"]
    assert r["mrsi_n_voxels_contributing"] == 2
    assert r["mrsi_largest_weight"] == pytest.approx(0.5)
    assert r["mrsi_flag"] == ""


def test_ratio_rows_report_excluded_voxels_and_the_unfiltered_mean():
    eng, _naa, ratio, unfiltered, f_gm = _engine()
    r = _rows(eng, -5.0, -5.0)["tNAA/tCr"]  # corner of voxels rows 1-2, cols 1-2; (2,2,2) out
    four = (2, slice(1, 3), slice(1, 3))
    kept = [(2, 1, 1), (2, 1, 2), (2, 2, 1)]
    assert r["mrsi_n_excluded_voxels"] == 1
    assert r["mrsi_n_voxels_contributing"] == 3
    assert r["mean"] == pytest.approx(np.mean([ratio[v] for v in kept]))
    assert r["mean_unfiltered"] == pytest.approx(unfiltered[four].mean())
    assert r["mean_unfiltered"] > r["mean"]  # the excluded voxel was the high one
    assert r["mrsi_largest_weight"] == pytest.approx(1 / 3)
    assert r["f_gm_weighted"] == pytest.approx(np.mean([f_gm[v] for v in kept]))
    assert (r["qc_max_sd_pct"], r["qc_max_fwhm_ppm"], r["qc_min_snr"]) == (20.0, 0.1, 5.0)
    # the GUI re-masks a layer in place (new data, new qc metadata): the rows follow
    src = next(s for s in eng.sources if s.metabolite == "tNAA/tCr")
    src.data[2, 2, 2] = unfiltered[2, 2, 2]
    src.meta["qc"] = {"thresholds": {"max_sd_pct": 50.0, "max_fwhm_ppm": 0.1, "min_snr": 5.0}}
    eng.update(SLOT, None)
    r = _rows(eng, -5.0, -5.0)["tNAA/tCr"]
    assert r["mrsi_n_excluded_voxels"] == 0 and r["mrsi_n_voxels_contributing"] == 4
    assert r["mean"] == pytest.approx(r["mean_unfiltered"]) and r["qc_max_sd_pct"] == 50.0


def test_columns_are_in_the_schema_and_empty_for_other_rows():
    assert set(MRSI_COLUMNS) <= set(MEASUREMENT_COLUMNS)
    eng, *_ = _engine()
    _rows(eng, -7.5, -2.5)
    for r in eng.rows_for(SLOT):
        if r["layer_kind"] != "mrsi":
            assert all(r[c] is None for c in MRSI_COLUMNS)
    # an ROI outside the MRSI slab: no contributing voxel, nothing else claimed
    out = mrsi_overlap_columns(None, np.zeros((0, 0)))
    assert out["mrsi_n_voxels_contributing"] == 0 and out["mrsi_largest_weight"] is None


def test_qc_thresholds_are_validated_and_round_trip(tmp_path, capsys):
    from napari_m1.cli import main
    from napari_m1.errors import M1InputError
    from napari_m1.mrsi import QCThresholds

    th = QCThresholds(max_sd_pct=15, min_snr=3)
    assert th.as_dict() == {"max_sd_pct": 15.0, "max_fwhm_ppm": 0.1, "min_snr": 3.0}
    assert QCThresholds.from_dict(th.as_dict()) == th
    for bad in ({"max_sd_pct": -1}, {"max_fwhm_ppm": float("nan")}, {"min_snr": "5"}):
        with pytest.raises(M1InputError, match="QC threshold"):
            QCThresholds(**bad)
    with pytest.raises(M1InputError, match="unknown QC threshold"):
        QCThresholds.from_dict({"max_sd": 20})
    assert main(["info", str(tmp_path), "--max-fwhm-ppm", "inf"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["napari-m1: error: QC threshold max_fwhm_ppm must be a finite number >= 0, "
                   "not inf"]  # fmt: skip


@pytest.mark.parametrize("where", [".", "anat"])
def test_f_gm_from_a_fast_label_map_in_the_case_folder(phantom_case, tmp_path, where):
    """A FAST ``*pveseg`` label map on the GRE grid (L,A,S): GM where x < -10 mm, WM beyond.
    The MRSI voxel spanning x = -13.7 ... -8.7 mm is 74 % GM (exact box fraction)."""
    import shutil

    import nibabel as nib

    from napari_m1.io import load_case
    from napari_m1.measure import engine_for_case

    case = tmp_path / "case"
    shutil.copytree(phantom_case, case)
    gre = nib.load(next(case.glob("*_echo-1_part-mag_MEGRE.nii.gz")))
    i = np.arange(gre.shape[0])
    x = gre.affine[0, 0] * i + gre.affine[0, 3]  # RAS x of each file column (L,A,S order)
    lab = np.where(x < -10.0, 2, 3).astype(np.int16)[:, None, None] * np.ones(gre.shape, np.int16)
    (case / where).mkdir(exist_ok=True)
    nib.save(nib.Nifti1Image(lab, gre.affine), str(case / where / "T1_fast_pveseg.nii.gz"))
    loaded = load_case(case)
    assert [v.name for v in loaded.volumes] == [v.name for v in load_case(phantom_case).volumes]
    eng = engine_for_case(loaded, M1)
    eng.update(SLOT, roi_annotation(SLOT, [-11.2, -16.2, 51.0], [R4, 0, 0], [0, R4, 0]))
    rows = {r["metabolite"]: r for r in eng.rows_for(SLOT) if r["layer_kind"] == "mrsi"}
    assert set(rows) >= {"NAA", "Cr"}
    assert rows["NAA"]["mrsi_n_voxels_contributing"] == 1  # the ROI lies in that voxel
    for r in rows.values():
        if r["mrsi_n_voxels_contributing"]:
            assert r["f_gm_weighted"] == pytest.approx(0.74, abs=1e-5)
            assert r["f_wm_weighted"] == pytest.approx(0.26, abs=1e-5)
            assert r["f_csf_weighted"] == pytest.approx(0.0, abs=1e-6)
