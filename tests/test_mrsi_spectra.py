"""Per-voxel spectra (fsl_mrsi fit/ and LCModel .COORD), voxel lookup and the MRSI voxel
annotation model (no viewer)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_m1.annotation import Annotation, mrsi_voxel_annotation, roi_annotation
from napari_m1.mrsi import (
    PPM_WINDOW,
    CoordSpectra,
    GridSpectra,
    find_spectra,
    read_lcmodel_coord,
    voxel_index,
)
from napari_m1.mrsi._synth import FIT_PEAKS, fit_amplitudes, write_fit_spectra
from napari_m1.protocol import load_protocol

MRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "mrs-small"


def test_coord_spectra_equal_the_real_file(tmp_path):
    src = MRS / "lcmodel" / "svs_97.COORD"
    if not src.is_file():
        pytest.skip("shared MRS test data (../shared/data/mrs-small) not present")
    # LCModel's MRSI naming: slice 2, row 3, column 4 -> voxel (col-1, row-1, slice-1)
    shutil.copy(src, tmp_path / "svs_97_sl2_3-4.coord")
    sp = find_spectra(tmp_path)
    assert isinstance(sp, CoordSpectra) and list(sp.files) == [(3, 2, 1)]
    assert sp.at((0, 0, 0)) is None
    s = sp.at((3, 2, 1))
    c = read_lcmodel_coord(src)
    inside = (c.ppm <= PPM_WINDOW[0]) & (c.ppm >= PPM_WINDOW[1])
    np.testing.assert_array_equal(s.ppm, c.ppm[inside])
    np.testing.assert_array_equal(s.data, c.data[inside])
    np.testing.assert_array_equal(s.fit, c.fit[inside])
    np.testing.assert_array_equal(s.baseline, c.baseline[inside])
    np.testing.assert_allclose(s.residual, c.data[inside] - c.fit[inside])
    assert s.ppm[0] > s.ppm[-1]  # descending, as plotted
    assert s.table.fwhm_ppm == c.table.fwhm_ppm and s.table.snr == c.table.snr
    sp.load()
    lo, hi = sp.y_range
    assert lo < s.data.min() and hi > s.data.max()


def test_grid_spectra_peaks_at_their_ppm(tmp_path):
    shape = (4, 3, 2)
    aff = np.diag([5.0, 5.0, 5.0, 1.0])
    write_fit_spectra(tmp_path, shape, aff)
    sp = find_spectra(tmp_path)
    assert isinstance(sp, GridSpectra) and not sp.loaded
    amps = fit_amplitudes(shape)
    for ijk in [(0, 0, 0), (3, 2, 1)]:
        s = sp.at(ijk)
        assert np.all(np.diff(s.ppm) < 0)
        # data = fit + residual; the tallest data peak is NAA at 2.01 ppm
        np.testing.assert_allclose(s.data, s.fit + s.residual, rtol=1e-5, atol=1e-5)
        assert abs(s.ppm[np.argmax(s.fit)] - FIT_PEAKS["NAA"]) < 0.03
        # peak heights scale with the planted amplitudes (NAA grows with i, j, k)
        near = np.abs(s.ppm - FIT_PEAKS["NAA"]) < 0.05
        assert s.fit[near].max() == pytest.approx(
            sp.at((0, 0, 0)).fit[near].max() * amps["NAA"][ijk] / amps["NAA"][0, 0, 0], rel=0.02
        )


def test_voxel_index_through_an_oblique_affine():
    th = np.deg2rad(20)
    aff = np.eye(4)
    aff[:3, :3] = 5.0 * np.array(
        [[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]]
    )
    aff[:3, 3] = [-40.0, 10.0, 30.0]
    for ijk in [(0, 0, 0), (7, 3, 2)]:
        centre = (aff @ [*ijk, 1.0])[:3]
        off = aff[:3, :3] @ [0.4, -0.4, 0.3]  # inside the voxel
        assert voxel_index(aff, (8, 8, 3), centre + off) == ijk
    assert voxel_index(aff, (8, 8, 3), (aff @ [8.6, 0, 0, 1.0])[:3]) is None


def test_mrsi_voxel_annotation_round_trip_and_checks():
    a = mrsi_voxel_annotation(
        "L_hand_mrsi_voxel", (8, 12, 2), [-21, -16, 48], [2.5, 0, 0], [0, 2.5, 0]
    )
    d = json.loads(json.dumps(a.to_json()))
    assert d["voxel_ijk"] == [8, 12, 2]
    b = Annotation(**{**d, "points_ras": tuple(map(tuple, d["points_ras"]))})
    assert b == a and b.voxel_ijk == (8, 12, 2)
    # ROIs are unchanged: no voxel key in their JSON (old files and new ones alike)
    r = roi_annotation("L_hand_roi", [0, 0, 0], [1, 0, 0], [0, 1, 0])
    assert "voxel_ijk" not in r.to_json()
    with pytest.raises(ValueError, match="voxel indices"):
        Annotation(**{**r.to_json(), "points_ras": r.points_ras, "voxel_ijk": (1, 2, 3)})
    with pytest.raises(ValueError, match="voxel indices"):
        Annotation(**{**d, "points_ras": a.points_ras, "voxel_ijk": None})
    with pytest.raises(ValueError, match="3 integers"):
        Annotation(**{**d, "points_ras": a.points_ras, "voxel_ijk": [1, -2, 3]})


def test_site_protocol_with_mrsi_voxel_slots(tmp_path):
    p = tmp_path / "p.json"
    slot = {"id": "L_hk", "kind": "mrsi_voxel", "region": "hand", "hemisphere": "L"}
    p.write_text(json.dumps({"id": "site", "name": "site", "slots": [slot]}))
    assert load_protocol(p).slot("L_hk").kind == "mrsi_voxel"


def test_layer_to_mrsi_voxel_gather_on_a_resampled_grid():
    """A ratio layer resampled onto another (finer, rotated-relative) grid: each layer voxel
    is re-masked from the MRSI voxel holding its centre (nearest), as voxel_index says."""
    from types import SimpleNamespace

    from napari_m1._mrsi_view import MRSIView
    from napari_m1.io import METADATA_KEY

    th = np.deg2rad(15)
    fit_aff = np.eye(4)
    fit_aff[:3, :3] = 5.0 * np.array(
        [[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]]
    )
    fit_aff[:3, 3] = [-20.0, -20.0, 0.0]
    fit = SimpleNamespace(affine=fit_aff, shape=(8, 8, 3))
    lay_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    lay_aff[:3, 3] = [-30.0, -30.0, -4.0]
    layer = SimpleNamespace(
        data=np.zeros((35, 35, 12), np.float32),
        metadata={METADATA_KEY: {"kind": "mrsi", "ras_affine": lay_aff.tolist()}},
    )
    view = MRSIView.__new__(MRSIView)
    view._gather = {}
    flat, ok = view._gather_index(layer, SimpleNamespace(fit=fit))
    rng = np.random.default_rng(1)
    for idx in rng.integers(0, [35, 35, 12], size=(200, 3)):
        ras = (lay_aff @ [*idx, 1.0])[:3]
        want = voxel_index(fit_aff, fit.shape, ras)
        assert bool(ok[tuple(idx)]) == (want is not None)
        if want is not None:
            assert flat[tuple(idx)] == np.ravel_multi_index(want, fit.shape)
