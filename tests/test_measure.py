"""Pure measurement geometry against analytic values (no viewer)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from skimage.draw import ellipse as sk_ellipse

from data.measure_cases import brute_weights, map_sources, random_annotation
from napari_m1.annotation import caliper_annotation, roi_annotation
from napari_m1.geometry import canonical_reorientation
from napari_m1.measure import (
    MapSource,
    MeasurementEngine,
    ellipse_weights,
    in_plane_length,
    sample_profile,
    suggest_band,
    weighted_stats,
)
from napari_m1.protocol import PROTOCOLS

M1 = PROTOCOLS["m1-7t"]


def _axes(a, b, angle):
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return rot @ np.diag([a, b])


CASES = [
    (c, ang, ab)
    for c, ang, ab in itertools.product(
        [(20.0, 20.0), (20.37, 31.81), (25.5, 19.5), (33.13, 24.9)],
        [0.0, 0.3, np.pi / 4, 1.2, 2.9],
        [(4.513, 4.513), (7.0, 2.91), (2.2, 9.26)],
    )
]


@pytest.mark.parametrize(("centre", "angle", "ab"), CASES)
def test_roi_area_within_one_percent(centre, angle, ab):
    a, b = ab
    w = ellipse_weights(centre, _axes(a, b, angle), (64, 64))
    assert w.weights.sum() == pytest.approx(math.pi * a * b, rel=0.01)
    assert w.total == pytest.approx(w.weights.sum())  # fully inside: nothing clipped


def test_pixel_centre_rasterisation_is_worse():
    """skimage.draw's pixel-centre count misses the requested area by several percent."""
    rng = np.random.default_rng(0)
    r = math.sqrt(64 / math.pi)  # 4 mm² at 0.25 mm pixels = 64 pixels
    sk_err, our_err = [], []
    for _ in range(200):
        c = rng.uniform(20, 30, 2)
        rr, _ = sk_ellipse(c[0], c[1], r, r)
        sk_err.append(abs(len(rr) / 64 - 1))
        our_err.append(abs(ellipse_weights(c, np.eye(2) * r, (64, 64)).weights.sum() / 64 - 1))
    assert max(sk_err) > 0.03
    assert max(our_err) < 0.01


@pytest.mark.parametrize(("centre", "angle", "ab"), CASES[::4])
def test_weighted_mean_of_smooth_phantom(centre, angle, ab):
    """Mean of f = 100 + 3 r - 2 c + 0.5 (r - 10)² over the oval, analytically."""
    a, b = ab
    axes = _axes(a, b, angle)
    rr, cc = np.mgrid[0:64, 0:64].astype(float)
    f = 100 + 3 * rr - 2 * cc + 0.5 * (rr - 10) ** 2
    w = ellipse_weights(centre, axes, (64, 64))
    got = weighted_stats(f[w.rows, w.cols], w.weights)["mean"]
    cov = axes @ axes.T / 4  # covariance of a uniform ellipse
    cr, ccn = centre
    truth = 100 + 3 * cr - 2 * ccn + 0.5 * ((cr - 10) ** 2 + cov[0, 0])
    assert got == pytest.approx(truth, rel=0.005)


def test_weighted_stats_equal_weights_match_numpy():
    v = np.random.default_rng(1).normal(size=101)
    st = weighted_stats(v, np.ones_like(v))
    assert st["mean"] == pytest.approx(v.mean())
    assert st["sd"] == pytest.approx(v.std())
    assert st["median"] == pytest.approx(np.median(v))
    assert st["n_voxels"] == 101
    nan = weighted_stats([np.nan, 1.0], [1.0, 0.0])
    assert math.isnan(nan["mean"]) and nan["n_voxels"] == 0


def test_roi_partly_outside_reports_coverage():
    w = ellipse_weights((1.0, 30.0), np.eye(2) * 4.0, (64, 64))
    assert 0.2 < w.weights.sum() / w.total < 0.8


# ----------------------------------------------------------------------------- through RAS


def _volume(axcodes_perm, flips, zooms, shape=(40, 44, 36)):
    """A file-order volume whose value is a linear function of RAS: v = 1000 + 2x + 3y + 5z."""
    aff = np.zeros((4, 4))
    aff[3, 3] = 1
    for i, (ax, f) in enumerate(zip(axcodes_perm, flips, strict=True)):
        aff[ax, i] = zooms[i] * (-1 if f else 1)
    aff[:3, 3] = [-5.0, -6.0, 20.0]
    ijk = np.indices(shape).reshape(3, -1)
    ras = aff[:3, :3] @ ijk + aff[:3, 3:4]
    vals = (1000 + 2 * ras[0] + 3 * ras[1] + 5 * ras[2]).reshape(shape).astype(np.float64)
    buf = np.ascontiguousarray(vals.T)  # what the loader reads: file axes reversed
    perm, fl, ras_aff = canonical_reorientation(aff, shape)
    view = buf.transpose(perm)[tuple(slice(None, None, -1) if f else slice(None) for f in fl)]
    return view, ras_aff, aff


ORIENTS = [
    ((0, 1, 2), (0, 0, 0), (0.25, 0.25, 2.0)),
    ((0, 1, 2), (1, 0, 0), (0.25, 0.3, 2.0)),
    ((1, 0, 2), (0, 1, 0), (0.3, 0.25, 1.5)),
    ((2, 0, 1), (0, 1, 1), (2.0, 0.25, 0.25)),  # sagittal-style storage
    ((0, 2, 1), (1, 1, 0), (0.25, 2.0, 0.4)),
]


@pytest.mark.parametrize(("perm", "flips", "zooms"), ORIENTS)
def test_roi_mean_and_area_in_any_orientation(perm, flips, zooms):
    data, ras_aff, _ = _volume(perm, flips, zooms)
    src = MapSource("gre", "g", data, ras_aff)
    eng = MeasurementEngine([src], M1, case_label="t")
    # ROI centre at a slice centre (axial plane of the canonical grid)
    k = data.shape[0] // 2
    centre = (ras_aff @ np.r_[k, data.shape[1] / 2 - 0.3, data.shape[2] / 2 + 0.2, 1.0])[:3]
    col, row = ras_aff[:3, 2], ras_aff[:3, 1]
    col, row = col / np.linalg.norm(col), row / np.linalg.norm(row)
    ang = 0.4
    u = 1.6 * (np.cos(ang) * col + np.sin(ang) * row)
    v = (4.0 / (math.pi * 1.6)) * (-np.sin(ang) * col + np.cos(ang) * row)
    eng.update("L_hand_roi", roi_annotation("L_hand_roi", centre, u, v))
    (r,) = eng.rows()
    assert r["area_mm2"] == pytest.approx(4.0, rel=1e-9)
    px_area = np.linalg.norm(ras_aff[:3, 1]) * np.linalg.norm(ras_aff[:3, 2])
    assert r["n_voxels"] * px_area == pytest.approx(4.0, rel=0.01)
    # a linear function's mean over a centred oval is its value at the centre
    truth = 1000 + 2 * centre[0] + 3 * centre[1] + 5 * centre[2]
    assert r["mean"] == pytest.approx(truth, rel=0.005)
    assert r["coverage_fraction"] == pytest.approx(1.0)
    assert r["hemisphere_from_affine"] == ("L" if centre[0] < 0 else "R")


@pytest.mark.parametrize(("perm", "flips", "zooms"), ORIENTS)
def test_caliper_thickness_in_any_orientation(perm, flips, zooms):
    data, ras_aff, _ = _volume(perm, flips, zooms)
    eng = MeasurementEngine([MapSource("gre", "g", data, ras_aff)], M1)
    k = 3
    p1 = (ras_aff @ np.r_[k, 10.2, 7.7, 1.0])[:3]
    p2 = (ras_aff @ np.r_[k, 14.9, 11.3, 1.0])[:3]
    eng.update("R_leg_caliper", caliper_annotation("R_leg_caliper", p1, p2))
    (r,) = eng.rows()
    assert r["thickness_mm"] == pytest.approx(np.linalg.norm(p2 - p1), rel=1e-9)
    # 3D: second end point one slice up -> in-plane unchanged, 3D longer
    p3 = (ras_aff @ np.r_[k + 1, 14.9, 11.3, 1.0])[:3]
    assert in_plane_length(p1, p3, ras_aff) == pytest.approx(np.linalg.norm(p2 - p1))
    eng.update("R_leg_caliper", caliper_annotation("R_leg_caliper", p1, p3))
    (r,) = eng.rows()
    slice_mm = np.linalg.norm(ras_aff[:3, 0])
    assert r["thickness_3d_mm"] == pytest.approx(
        math.hypot(np.linalg.norm(p2 - p1), slice_mm), rel=1e-9
    )


def test_zero_length_caliper_is_refused():
    with pytest.raises(ValueError, match="zero-length caliper"):
        caliper_annotation("L_hand_caliper", [1, 2, 3], [1, 2, 3])


# ----------------------------------------------------------------------------- normalisation


def _flat_engine(value_slice=None):
    data = np.full((2, 4, 60, 60), 100.0)
    data[1] = 50.0
    if value_slice is not None:
        data[:, 2] = value_slice
    ras = np.diag([2.0, 0.25, 0.25, 1.0])[[2, 1, 0, 3]]
    ras[:3, 3] = [-7.0, -7.0, 0.0]
    ras[3] = [0, 0, 0, 1]
    return MeasurementEngine([MapSource("gre", "g", data, ras, [10.0, 20.0])], M1), ras


def _roi(slot, ras, k=1, r=30.0, c=30.0):
    centre = (ras @ np.r_[k, r, c, 1.0])[:3]
    return roi_annotation(slot, centre, [1.128, 0, 0], [0, 1.128, 0])


def test_normalised_si_and_its_reasons():
    eng, ras = _flat_engine()
    eng.update("L_hand_roi", _roi("L_hand_roi", ras))
    rows = eng.rows()
    assert [r["normalised_si_note"] for r in rows] == ["reference ROI missing"] * 2
    assert all(r["normalised_si"] is None for r in rows)
    eng.update("ref_precuneus_roi", _roi("ref_precuneus_roi", ras))
    rows = {(r["slot"], r["echo"]): r for r in eng.rows()}
    assert rows[("L_hand_roi", 1)]["normalised_si"] == pytest.approx(1.0)
    assert rows[("L_hand_roi", 2)]["te_ms"] == 20.0
    assert rows[("ref_precuneus_roi", 1)]["normalised_si_note"] == "this is the reference ROI"


@pytest.mark.parametrize(
    ("ref_value", "note"),
    [
        (0.0, "reference ROI mean <= 0"),
        (-5.0, "reference ROI mean <= 0"),
        (np.nan, "reference ROI has no data"),
    ],
)
def test_bad_reference_gives_blank_si_with_reason(ref_value, note):
    eng, ras = _flat_engine(value_slice=ref_value)
    eng.update("L_hand_roi", _roi("L_hand_roi", ras, k=1))
    eng.update("ref_precuneus_roi", _roi("ref_precuneus_roi", ras, k=2))
    hand = [r for r in eng.rows() if r["slot"] == "L_hand_roi"]
    assert all(r["normalised_si"] is None for r in hand)
    assert {r["normalised_si_note"] for r in hand} == {note}


def test_roi_on_nan_slice_and_partly_outside():
    eng, ras = _flat_engine(value_slice=np.nan)
    eng.update("L_foot_roi", _roi("L_foot_roi", ras, k=2))
    (r1, _) = eng.rows()
    assert r1["coverage_fraction"] == 0.0 and math.isnan(r1["mean"])
    eng2, ras2 = _flat_engine()
    eng2.update("L_foot_roi", _roi("L_foot_roi", ras2, k=1, r=0.5, c=30))
    (r2, _) = eng2.rows()
    assert 0.3 < r2["coverage_fraction"] < 0.8
    assert r2["mean"] == pytest.approx(100.0)
    assert r2["area_mm2"] == pytest.approx(math.pi * 1.128**2)


# ----------------------------------------------------------------------------- profile


@pytest.mark.parametrize("thickness", [1.5, 2.0])
@pytest.mark.parametrize("angle", [0.0, 0.7, 2.2])
def test_profile_suggestion_finds_the_dark_band(thickness, angle):
    """A straight dark band with partial-volume edges; noise like the phantom's."""
    rng = np.random.default_rng(int(thickness * 10 + angle * 100))
    n = 200
    rr, cc = np.mgrid[0:n, 0:n] * 0.25
    e = np.array([np.cos(angle), np.sin(angle)])
    d = (rr - 25) * e[0] + (cc - 25) * e[1]  # signed distance across the band, mm
    # superficial (bright) d<0, deep band 0..t (dark), white matter beyond (medium)
    ramp = lambda x: np.clip(x / 0.25 + 0.5, 0, 1)  # noqa: E731
    img = 460 - (460 - 250) * ramp(d) + (370 - 250) * ramp(d - thickness)
    img = img + rng.normal(0, 12, img.shape)
    vol = img[None]
    ras = np.zeros((4, 4))
    ras[2, 0], ras[1, 1], ras[0, 2], ras[3, 3] = 2.0, 0.25, 0.25, 1.0
    c0 = np.array([25.0, 25.0])
    p1_rc, p2_rc = c0 - 0.2 * e, c0 + (thickness + 0.3) * e  # a reader's rough line
    to_ras = lambda rc: np.array([rc[1], rc[0], 0.0])  # noqa: E731  (x = col mm, y = row mm)
    prof = sample_profile(vol, ras, to_ras(p1_rc), to_ras(p2_rc))
    sug = suggest_band(prof)
    assert sug.ok, sug.reason
    assert sug.thickness_mm == pytest.approx(thickness, abs=0.1)
    start = prof.ras_at(sug.x1_mm)
    assert np.dot(np.array([start[1], start[0]]) - c0, e) == pytest.approx(0.0, abs=0.1)


def test_profile_without_band_says_so():
    vol = np.full((1, 50, 50), 300.0)
    ras = np.zeros((4, 4))
    ras[2, 0], ras[1, 1], ras[0, 2], ras[3, 3] = 2.0, 0.25, 0.25, 1.0
    prof = sample_profile(vol, ras, [3.0, 3.0, 0.0], [3.0, 6.0, 0.0])
    sug = suggest_band(prof)
    assert not sug.ok and "no dark band" in sug.reason


# ----------------------------------------------------------------------------- live engine


@pytest.mark.parametrize(("centre", "angle", "ab"), CASES[::4])
def test_ellipse_weights_equal_the_supersampling_definition(centre, angle, ab):
    (r0, c0), want = brute_weights(centre, _axes(*ab, angle))
    got = ellipse_weights(centre, _axes(*ab, angle), (64, 64))
    assert (got.rows.start, got.cols.start) == (r0, c0)
    np.testing.assert_allclose(got.weights, want, atol=1e-12)


def _protocol_engine(rng):
    return map_sources(rng, (12, 80, 80), (6, 5, 5), (-10, -10, 20), (-12.5, -12.5, 17.5))


def _random_ann(slot, ras, rng):
    return random_annotation(slot, ras, rng, (2, 10), (15, 65), (15, 65))


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "exported_at_utc"} for r in rows]


def test_incremental_rows_equal_a_fresh_computation():
    rng = np.random.default_rng(3)
    srcs, ras = _protocol_engine(rng)
    live = MeasurementEngine(srcs, M1)
    anns = {}
    for step in range(60):
        slot = M1.slots[int(rng.integers(len(M1.slots)))]
        ann = None if step % 7 == 6 else _random_ann(slot, ras, rng)
        changed = live.update(slot.id, ann)
        if ann is None:
            had = anns.pop(slot.id, None)
            assert (slot.id in changed) if had is not None else changed == ()
        else:
            anns[slot.id] = ann
            assert slot.id in changed
            if slot.id == M1.reference_slot:  # every ROI's normalised SI moved
                assert set(changed) == set(anns)
            else:
                assert changed == (slot.id,)
        fresh = MeasurementEngine(srcs, M1)
        fresh.set_all(anns.values())
        assert _strip(live.rows()) == _strip(fresh.rows())
    for sid in anns:
        assert _strip(live.rows_for(sid)) == _strip([r for r in fresh.rows() if r["slot"] == sid])
    # rows come in protocol order, maps in source order (GRE echoes, NAA, QSM, Cr, ratio)
    kinds = [(r["layer_kind"], r["metabolite"]) for r in live.rows_for(next(iter(anns)))]
    if kinds[0][0] == "gre":
        assert kinds == [("gre", None)] * 2 + [
            ("mrsi", "NAA"), ("qsm", None), ("mrsi", "Cr"), ("mrsi", "NAA/Cr")
        ]  # fmt: skip
    assert live.update(next(iter(anns)), anns[next(iter(anns))]) == ()  # unchanged: nothing


def test_the_midline_decides_hemisphere_from_affine():
    from napari_m1.annotation import midline_annotation

    rng = np.random.default_rng(4)
    srcs, _ = _protocol_engine(rng)
    eng = MeasurementEngine(srcs, M1)
    roi = roi_annotation("L_foot_roi", [-1.0, 0, 30], [1, 0, 0], [0, 1, 0])
    eng.update("L_foot_roi", roi)
    assert {r["hemisphere_from_affine"] for r in eng.rows()} == {"L"}
    assert eng.update("midline", midline_annotation([-3.0, 0, 30])) == ("L_foot_roi",)
    assert {r["hemisphere_from_affine"] for r in eng.rows()} == {"R"}
    eng.set_all([roi, midline_annotation([-3.0, 0, 30])])
    assert {r["hemisphere_from_affine"] for r in eng.rows()} == {"R"}
    assert all(r["slot"] != "midline" for r in eng.rows())


def test_geometry_doctests():
    import doctest

    import napari_m1.geometry as g

    res = doctest.testmod(g)
    assert res.attempted >= 5 and res.failed == 0


def test_weighted_stats_of_many_maps_equal_one_by_one():
    from napari_m1.measure._roi import weighted_stats_many

    rng = np.random.default_rng(5)
    for t in range(300):
        m = int(rng.integers(0, 40))
        w = np.round(rng.uniform(0, 1, m) * 4) / 4  # ties and zero weights
        vals = [np.round(rng.normal(size=m), 1) for _ in range(3)]
        if t % 5 == 0 and m:
            vals[1][0] = np.nan
        many = weighted_stats_many(vals, w)
        for got, v in zip(many, vals, strict=True):
            want = weighted_stats(v, w)
            for key in want:
                assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-12, nan_ok=True)
