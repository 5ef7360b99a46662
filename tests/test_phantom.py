"""Tests of the synthetic 7T M1 phantom (pure: no viewer, no Qt)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from nibabel.affines import apply_affine
from scipy.ndimage import map_coordinates

from napari_m1.errors import M1Error
from napari_m1.phantom import Phantom, make_phantom, write_phantom_case
from napari_m1.phantom import _anatomy as ph_mod
from napari_m1.phantom import _truth as ph_truth

N = 16  # keep the tests fast
MAG = "sub-{label}_echo-{n}_part-mag_MEGRE"
PHASE = "sub-{label}_echo-{n}_part-phase_MEGRE"
METS = ("NAA", "Cr", "Cho", "Glx")


def expected_names(label: str, with_phase: bool) -> set[str]:
    names = {"truth.json", f"sub-{label}_Chimap.nii.gz"}
    names |= {f"sub-{label}_met-{m}_mrsi.nii.gz" for m in METS}
    if with_phase:
        names.add("truth_chi.nii.gz")  # the chi that generated the phase (QSM truth)
    stems = [MAG] + ([PHASE] if with_phase else [])
    for stem in stems:
        for n in (1, 2):
            base = stem.format(label=label, n=n)
            names |= {f"{base}.nii.gz", f"{base}.json"}
    return names


@pytest.fixture(scope="module")
def clean() -> dict[str, Phantom]:
    """Noise-free phantoms of both groups, with phase."""
    return {
        g: make_phantom(g, 0, n_slices=N, noise_sd=0, with_phase=True) for g in ("control", "als")
    }


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory):
    """A written control case with phase (default noise, seed 3)."""
    out = tmp_path_factory.mktemp("cases") / "ctrl"
    path = write_phantom_case(out, "control", 3, n_slices=N, with_phase=True)
    return path


def sample(volume: np.ndarray, affine: np.ndarray, ras: np.ndarray, order: int = 1) -> np.ndarray:
    """Values of a 3D ``volume`` at RAS mm points (N, 3) via the inverse affine."""
    vox = apply_affine(np.linalg.inv(affine), np.atleast_2d(ras))
    return map_coordinates(volume, vox.T, order=order, mode="nearest")


def crossings(t: np.ndarray, prof: np.ndarray, level: float) -> list[float]:
    s = np.sign(prof - level)
    idx = np.flatnonzero(np.diff(s) != 0)
    return [t[i] + (level - prof[i]) / (prof[i + 1] - prof[i]) * (t[i + 1] - t[i]) for i in idx]


# --------------------------------------------------------------------------- written case


def test_written_files_and_names(case_dir):
    names = {p.name for p in case_dir.iterdir()}
    assert names == expected_names("phantomcontrol3", with_phase=True)


def test_default_label_and_no_phase(tmp_path):
    out = write_phantom_case(tmp_path / "c", "als", 1, n_slices=N, label="Case07")
    assert {p.name for p in out.iterdir()} == expected_names("Case07", with_phase=False)


@pytest.mark.parametrize(
    ("stem", "dtype"),
    [
        ("sub-phantomcontrol3_echo-1_part-mag_MEGRE", np.float32),
        ("sub-phantomcontrol3_echo-2_part-mag_MEGRE", np.float32),
        ("sub-phantomcontrol3_echo-1_part-phase_MEGRE", np.int16),
        ("sub-phantomcontrol3_echo-2_part-phase_MEGRE", np.int16),
        ("sub-phantomcontrol3_Chimap", np.float32),
    ],
)
def test_gre_grid_nifti_headers(case_dir, stem, dtype):
    img = nib.load(case_dir / f"{stem}.nii.gz")
    assert img.shape == (448, 448, N)
    assert img.header.get_zooms() == pytest.approx((0.25, 0.25, 2.0))
    assert nib.aff2axcodes(img.affine) == ("L", "A", "S")
    assert img.get_data_dtype() == dtype
    sform, scode = img.header.get_sform(coded=True)
    qform, qcode = img.header.get_qform(coded=True)
    assert (int(scode), int(qcode)) == (1, 1)
    np.testing.assert_allclose(sform, qform, atol=1e-5)
    assert img.header.get_xyzt_units() == ("mm", "sec")


def test_stored_las_matches_ras_arrays(case_dir):
    """The files hold the same voxels as the in-memory RAS+ arrays, at the same RAS mm."""
    ph = make_phantom("control", 3, n_slices=N, with_phase=True)
    for e in (0, 1):
        img = nib.load(case_dir / f"sub-phantomcontrol3_echo-{e + 1}_part-mag_MEGRE.nii.gz")
        canon = nib.as_closest_canonical(img)
        np.testing.assert_allclose(canon.affine, ph.gre_affine, atol=1e-6)
        np.testing.assert_array_equal(np.asanyarray(canon.dataobj), ph.gre[..., e])
        ph_img = nib.as_closest_canonical(
            nib.load(case_dir / f"sub-phantomcontrol3_echo-{e + 1}_part-phase_MEGRE.nii.gz")
        )
        np.testing.assert_array_equal(np.asanyarray(ph_img.dataobj), ph.phase[..., e])
    chi = nib.as_closest_canonical(nib.load(case_dir / "sub-phantomcontrol3_Chimap.nii.gz"))
    np.testing.assert_array_equal(np.asanyarray(chi.dataobj), ph.qsm)
    truth = json.loads((case_dir / "truth.json").read_text())
    assert truth == json.loads(json.dumps(ph.truth))


def test_fiducial_is_on_the_right_in_the_stored_file(case_dir):
    """The only L/R asymmetry: a bright marker at x = +50 mm, read through the LAS file."""
    img = nib.load(case_dir / "sub-phantomcontrol3_echo-1_part-mag_MEGRE.nii.gz")
    data = np.asanyarray(img.dataobj)
    truth = json.loads((case_dir / "truth.json").read_text())
    x, y = truth["fiducial"]["centre_xy_ras_mm"]
    right = sample(data, img.affine, np.array([x, y, 51.0]), order=0)[0]
    left = sample(data, img.affine, np.array([-x, y, 51.0]), order=0)[0]
    assert truth["fiducial"]["hemisphere"] == "R" and x > 0
    assert right == pytest.approx(truth["fiducial"]["intensity"][0], rel=0.1)
    assert left < 150


def test_sidecars(case_dir):
    for part in ("mag", "phase"):
        for n, te in ((1, 0.010), (2, 0.020)):
            path = case_dir / f"sub-phantomcontrol3_echo-{n}_part-{part}_MEGRE.json"
            side = json.loads(path.read_text())
            assert side["EchoTime"] == pytest.approx(te)
            assert side["MagneticFieldStrength"] == 7
            assert 0 < side["RepetitionTime"] < 1
            assert 0 < side["FlipAngle"] < 90
            text = path.read_text().lower()
            assert "control" not in text and "als" not in text and "group" not in text


def test_mrsi_files(case_dir):
    gre = nib.load(case_dir / "sub-phantomcontrol3_echo-1_part-mag_MEGRE.nii.gz")
    for met in METS:
        img = nib.load(case_dir / f"sub-phantomcontrol3_met-{met}_mrsi.nii.gz")
        assert img.header.get_zooms() == pytest.approx((5.0, 5.0, 5.0))
        assert img.get_data_dtype() == np.float32
        data = np.asanyarray(img.dataobj)
        assert np.isnan(data).any() and np.isfinite(data).sum() > 0.5 * data.size
        # A genuinely different grid: MRSI voxel centres fall between GRE voxel centres.
        centres = apply_affine(img.affine, np.indices(img.shape).reshape(3, -1).T)
        in_gre = apply_affine(np.linalg.inv(gre.affine), centres)
        frac = np.abs(in_gre - np.round(in_gre))
        assert np.all(frac.max(axis=1) > 0.1)
        # Slab z ~ 36..66 mm.
        z = centres[:, 2]
        assert z.min() - 2.5 == pytest.approx(36.0) and z.max() + 2.5 == pytest.approx(66.0)


# --------------------------------------------------------------------------- truth vs image


def regions_of(ph: Phantom) -> list[dict]:
    return ph.truth["regions"]


@pytest.mark.parametrize("group", ["control", "als"])
def test_eight_regions_and_hemispheres(clean, group):
    regions = regions_of(clean[group])
    assert sorted((r["area"], r["hemisphere"]) for r in regions) == sorted(
        (a, h) for a in ("foot", "leg", "hand", "face") for h in "LR"
    )
    for r in regions:
        xs = [r["centre_ras_mm"][0]] + [p[0] for p in r["caliper_ras_mm"]]
        assert all((x > 0) == (r["hemisphere"] == "R") for x in xs)
        assert r["centre_ras_mm"][2] == r["slice_z_mm"]
        assert {"foot": 61, "leg": 57, "hand": 51, "face": 41}[r["area"]] == r["slice_z_mm"]


@pytest.mark.parametrize("group", ["control", "als"])
@pytest.mark.parametrize("echo", [0, 1])
def test_centre_intensity_is_deep_layer(clean, group, echo):
    ph = clean[group]
    for r in regions_of(ph):
        val = sample(ph.gre[..., echo], ph.gre_affine, np.array(r["centre_ras_mm"]))[0]
        assert val == pytest.approx(r["deep_intensity"][echo], rel=0.02), r["area"]
        chi = sample(ph.qsm, ph.gre_affine, np.array(r["centre_ras_mm"]))[0]
        assert chi == pytest.approx(r["chi_ppm"], abs=1e-4)


@pytest.mark.parametrize("group", ["control", "als"])
def test_reference_and_qsm_control(clean, group):
    ph = clean[group]
    ref = ph.truth["reference"]
    assert ref["area"] == "precuneus" and ref["hemisphere"] == "L"
    assert ref["centre_ras_mm"][0] < 0
    for echo in (0, 1):
        val = sample(ph.gre[..., echo], ph.gre_affine, np.array(ref["centre_ras_mm"]))[0]
        assert val == pytest.approx(ref["intensity"][echo], rel=0.02)
    assert ref["intensity"] == ph.truth["tissues"]["superficial"]["intensity"]
    hand = {r["hemisphere"]: r for r in regions_of(ph) if r["area"] == "hand"}
    for q in ph.truth["qsm_control"]:
        c = np.array(q["centre_ras_mm"])
        assert (c[0] > 0) == (q["hemisphere"] == "R")
        assert c[2] == hand[q["hemisphere"]]["slice_z_mm"]
        assert c[1] > hand[q["hemisphere"]]["centre_ras_mm"][1] + 5  # anterior border of M1
        assert sample(ph.qsm, ph.gre_affine, c)[0] == pytest.approx(q["chi_ppm"], abs=1e-4)


@pytest.mark.parametrize("group", ["control", "als"])
@pytest.mark.parametrize("echo", [0, 1])
def test_profile_shows_deep_band_of_true_thickness(clean, group, echo):
    """Along the caliper, the deep band spans deep_thickness_mm between its half-way levels."""
    ph = clean[group]
    k = ph.truth["tissues"]
    wm = k["white_matter"]["intensity"][echo]
    for r in regions_of(ph):
        sup, deep = r["superficial_intensity"][echo], r["deep_intensity"][echo]
        start, end = (np.array(p) for p in r["caliper_ras_mm"])
        n = np.array(r["normal_ras"])
        assert np.linalg.norm(end - start) == pytest.approx(r["deep_thickness_mm"], abs=1e-3)
        np.testing.assert_allclose((end - start) / np.linalg.norm(end - start), n, atol=1e-4)
        t = np.arange(-0.9, r["deep_thickness_mm"] + 0.9, 0.005)
        prof = sample(ph.gre[..., echo], ph.gre_affine, start + t[:, None] * n)
        # Each edge of the band is where the profile passes half-way between the plateaus on
        # either side (a staircase in controls, a dip below white matter in ALS).
        mid = r["deep_thickness_mm"] / 2
        outer = [c for c in crossings(t, prof, (sup + deep) / 2) if c < mid]
        inner = [c for c in crossings(t, prof, (deep + wm) / 2) if c > mid]
        assert len(outer) == 1 and len(inner) == 1, r["area"]
        assert inner[0] - outer[0] == pytest.approx(r["deep_thickness_mm"], abs=0.1)
        assert outer[0] == pytest.approx(0.0, abs=0.1)


def test_truth_points_are_where_the_layers_say(clean):
    """Independent of the image: signed distance to CSF at centre and caliper ends."""
    for group, ph in clean.items():
        for r in regions_of(ph):
            pts = np.array([r["centre_ras_mm"], *r["caliper_ras_mm"]])[:, :2]
            d = ph_mod._signed_distance(pts)
            t_sup, t_deep = r["superficial_thickness_mm"], r["deep_thickness_mm"]
            np.testing.assert_allclose(d, [t_sup + t_deep / 2, t_sup, t_sup + t_deep], atol=2e-3)
            assert np.all(ph_mod._m1_weight(pts[:, 0], pts[:, 1]) == 1.0), (group, r["area"])
        ref = np.array(ph.truth["reference"]["centre_ras_mm"])[None, :2]
        assert ph_mod._signed_distance(ref)[0] == pytest.approx(0.6, abs=2e-3)


def test_ellipse_distance_against_analytic():
    rng = np.random.default_rng(1)
    # Circle: exact signed distance r - |p|.
    pts = rng.uniform(-25, 25, size=(2000, 2))
    d = ph_mod._ellipse_signed_distance(pts, 20.0, 20.0, (0.0, 0.0), clamp=6.0)
    want = np.clip(20.0 - np.hypot(*pts.T), -6, 6)
    np.testing.assert_allclose(d, want, atol=0.01)
    # Brain ellipse along its axes, within 5 mm of the vertices (nearest point = vertex).
    a, b = ph_mod._BRAIN_SEMI_AXES_MM
    cx, cy = ph_mod._BRAIN_CENTRE_XY
    t = np.linspace(-5, 5, 41)
    on_x = np.column_stack([cx + a - t, np.full_like(t, cy)])
    on_y = np.column_stack([np.full_like(t, cx), cy - b + t])
    for p in (on_x, on_y):
        np.testing.assert_allclose(
            ph_mod._ellipse_signed_distance(p, a, b, (cx, cy), 6.0), t, atol=0.01
        )


def test_sulcal_distance_against_brute_force():
    """Distance to the central sulcus near the truth points vs a brute-force dense curve."""
    u = np.arange(ph_mod._CENTRAL_U_START, ph_mod._SULCUS_U_END, 0.002)
    curve = np.column_stack([u, ph_mod._sulcus_y("central", u)[0]])
    rng = np.random.default_rng(2)
    u0 = rng.uniform(6, 46, 300)
    y0 = ph_mod._sulcus_y("central", u0)[0] + rng.uniform(0.4, 4.0, 300)
    pts = np.column_stack([u0, y0])
    brute = np.array([np.min(np.hypot(*(curve - p).T)) for p in pts])
    got = ph_mod._sulcal_distance()(pts)
    # The nearest sulcus is not always the central one: compare where it is.
    near_cs = brute <= got + 0.01
    assert near_cs.mean() > 0.9
    np.testing.assert_allclose(got[near_cs], brute[near_cs], atol=0.01)


def test_hand_knob_bends_posteriorly(clean):
    by = {(r["area"], r["hemisphere"]): r["centre_ras_mm"] for r in regions_of(clean["control"])}
    for h in "LR":
        leg, hand, face = (np.array(by[(a, h)]) for a in ("leg", "hand", "face"))
        # y of the leg-face line at the hand's x: the knob lies well behind it.
        y_line = np.interp(abs(hand[0]), [abs(leg[0]), abs(face[0])], [leg[1], face[1]])
        assert hand[1] < y_line - 3


@pytest.mark.parametrize("n_slices", [16, 60])
def test_truth_points_inside_fov(n_slices):
    aff = ph_mod._gre_affine_ras(n_slices)
    truth = ph_truth._truth_regions("control", n_slices, ph_mod._tissues("control"))
    inv = np.linalg.inv(aff)
    for r in truth:
        for p in [r["centre_ras_mm"], *r["caliper_ras_mm"]]:
            ijk = apply_affine(inv, p)
            assert np.all(ijk >= 0) and np.all(ijk <= [447, 447, n_slices - 1])
            assert ijk[2] == pytest.approx(round(ijk[2]))  # on a slice centre
            assert round(ijk[2]) == r["slice_index"]


@pytest.mark.parametrize(("n_slices", "z0", "z1"), [(16, 35.0, 65.0), (60, -9.0, 109.0)])
def test_slice_centres(n_slices, z0, z1):
    aff = ph_mod._gre_affine_ras(n_slices)
    z = apply_affine(
        aff, np.column_stack([np.zeros(n_slices), np.zeros(n_slices), np.arange(n_slices)])
    )[:, 2]
    assert (z[0], z[-1]) == (z0, z1)
    assert np.all(z % 2 == 1) and z.mean() == 50.0
    xy = apply_affine(aff, [[0, 0, 0], [447, 447, 0]])[:, :2]
    np.testing.assert_allclose(xy.mean(axis=0), [0.0, -20.0])
    np.testing.assert_allclose(xy[1] - xy[0] + 0.25, [112.0, 112.0])


def test_phase_model(clean):
    """Noise-free phase = wrap(phi0 + 2 pi (background + 298 Hz/ppm * F^-1[D F(chi)]) TE).

    (Adapted for the dipole-consistent phase model: the tissue term is the dipole field
    ``field_ppm`` of the chi truth, not chi itself; the background adds an air sphere.)
    """
    ph = clean["als"]
    assert ph.phase is not None and ph.phase.dtype == np.int16
    assert ph.phase.min() >= -4096 and ph.phase.max() <= 4095
    m = ph.truth["phase_model"]
    assert m["hz_per_ppm"] == pytest.approx(298.0, abs=0.1)
    sph = m["air_sphere"]
    inv = np.linalg.inv(ph.gre_affine)
    for r in regions_of(ph):
        ijk = np.round(apply_affine(inv, r["centre_ras_mm"])).astype(int)
        x, y, z = apply_affine(ph.gre_affine, ijk)
        ox, oy, oz = m["background_origin_ras_mm"]
        gx, gy, gz = m["background_gradient_hz_per_mm"]
        df = m["background_hz"] + gx * (x - ox) + gy * (y - oy) + gz * (z - oz)
        d = np.array([x, y, z]) - sph["centre_ras_mm"]
        rr = np.linalg.norm(d)
        df += m["hz_per_ppm"] * (
            sph["delta_chi_ppm"] / 3 * (sph["radius_mm"] / rr) ** 3 * (3 * (d[2] / rr) ** 2 - 1)
        )
        df += m["hz_per_ppm"] * ph.field_ppm[tuple(ijk)]
        px, py = m["phi0_gradient_rad_per_mm"]
        phi0 = m["phi0_rad"] + px * (x - ox) + py * (y - oy)
        for e, te in enumerate(ph.echo_times_ms):
            want = np.angle(np.exp(1j * (phi0 + 2 * np.pi * df * te / 1000)))
            got = ph.phase[(*ijk, e)] / 4096 * np.pi
            assert abs(np.angle(np.exp(1j * (got - want)))) < 2e-3


def test_tissue_field_is_the_dipole_field_of_chi(clean):
    """The tissue field is chi convolved with the dipole (checked in k-space on the
    forward model's own padded grid) and is ~chi/3 for this z-invariant pattern."""
    ph = clean["control"]
    assert ph.chi_ppm is not None and ph.field_ppm is not None
    assert ph.chi_ppm.shape == ph.field_ppm.shape == ph.qsm.shape
    k = N // 2
    c, f = ph.chi_ppm[..., k], ph.field_ppm[..., k]
    inside = c != 0
    slope = np.polyfit(c[inside], f[inside], 1)[0]
    # Infinitely long structures along B0 have field chi/3; a 32 mm slab is not infinite.
    assert 0.25 < slope < 0.34
    assert np.corrcoef(c[inside], f[inside])[0, 1] > 0.95
    # The noise-free chi truth is the QSM map without its noise.
    np.testing.assert_array_equal(ph.chi_ppm, ph.qsm)


def test_mrsi_values(clean):
    for ph in clean.values():
        assert ph.mrsi_affine[:3, :3] == pytest.approx(np.diag([5.0, 5.0, 5.0]))
        for met in METS:
            arr = ph.mrsi[met]
            assert arr.dtype == np.float32 and arr.shape == (24, 24, 6)
            gm, wm = ph.truth["mrsi"][met]["gm"], ph.truth["mrsi"][met]["wm"]
            finite = arr[np.isfinite(arr)]
            # CSF dilutes, never concentrates; >= 50 % brain in every kept voxel.
            hi = max(gm, wm) * (1.1 if met == "Cho" else 1.0)
            assert finite.max() <= hi + 1e-4 and finite.min() >= 0.5 * min(gm, wm) * 0.75 - 1e-4
        # Outside the head (FOV corner) -> NaN.
        assert np.isnan(ph.mrsi["NAA"][0, 0, 0])
        assert np.isfinite(ph.mrsi["NAA"][12, 12, 0])
    assert ph_mod._MRSI_SHAPE == (24, 24, 6)


# --------------------------------------------------------------------------- groups


def test_als_vs_control(clean):
    ctrl, als = clean["control"].truth, clean["als"].truth
    for r_c, r_a in zip(ctrl["regions"], als["regions"], strict=True):
        assert (r_c["area"], r_c["hemisphere"]) == (r_a["area"], r_a["hemisphere"])
        assert (r_c["deep_thickness_mm"], r_a["deep_thickness_mm"]) == (2.0, 1.5)
        assert r_c["superficial_thickness_mm"] == r_a["superficial_thickness_mm"] == 1.2
        assert all(
            a < c for a, c in zip(r_a["deep_intensity"], r_c["deep_intensity"], strict=True)
        )
        assert r_a["chi_ppm"] > r_c["chi_ppm"]
    assert als["mrsi"]["NAA"]["m1_mean"] < 0.85 * ctrl["mrsi"]["NAA"]["m1_mean"]
    assert als["mrsi"]["Cho"]["m1_mean"] > ctrl["mrsi"]["Cho"]["m1_mean"]
    # In the MRSI voxel most affected, NAA is down by about 25 % and Cho up by about 10 %
    # (the thinner deep layer alone moves either by only a few per cent).
    m_c, m_a = clean["control"].mrsi, clean["als"].mrsi
    idx = np.unravel_index(np.nanargmax(m_c["NAA"] - m_a["NAA"]), m_c["NAA"].shape)
    assert m_a["NAA"][idx] / m_c["NAA"][idx] < 0.8
    assert m_a["Cho"][idx] / m_c["Cho"][idx] > 1.08
    assert 0.95 < m_a["Cr"][idx] / m_c["Cr"][idx] < 1.0
    assert als["tissues"]["deep_other"] == ctrl["tissues"]["deep_other"]
    # The image agrees: at the right hand centre ALS is darker and more paramagnetic.
    c = np.array(
        next(r for r in ctrl["regions"] if r["area"] == "hand" and r["hemisphere"] == "R")[
            "centre_ras_mm"
        ]
    )
    img_c = sample(clean["control"].gre[..., 1], clean["control"].gre_affine, c)[0]
    img_a = sample(clean["als"].gre[..., 1], clean["als"].gre_affine, c)[0]
    assert img_a < img_c - 30
    assert sample(clean["als"].qsm, clean["als"].gre_affine, c)[0] > 0.05


def test_truth_schema_keys(clean):
    t = clean["control"].truth
    assert t["schema"] == "napari-m1-phantom-truth/1"
    assert (t["group"], t["seed"], t["n_slices"], t["noise_sd"]) == ("control", 0, N, 0.0)
    assert t["voxel_size_mm"] == [0.25, 0.25, 2.0]
    assert t["echo_times_ms"] == [10.0, 20.0]
    assert t["mrsi_voxel_size_mm"] == [5.0, 5.0, 5.0]
    assert {"csf", "superficial", "deep_m1", "deep_other", "white_matter"} <= set(t["tissues"])
    for tissue in t["tissues"].values():
        assert len(tissue["intensity"]) == 2 and "chi_ppm" in tissue
    assert set(t["mrsi"]) == set(METS)
    for v in t["mrsi"].values():
        assert {"m1_mean", "gm", "wm"} <= set(v)
    json.dumps(t, allow_nan=False)  # strictly JSON-serialisable


@pytest.mark.parametrize("group", ["control", "als"])
def test_deep_layer_is_a_dark_band(clean, group):
    """Deep layer darker than superficial cortex and white matter by >= 3 noise SDs."""
    t = clean[group].truth["tissues"]
    for deep in ("deep_m1", "deep_other"):
        for e in (0, 1):
            d = t[deep]["intensity"][e]
            assert d < t["white_matter"]["intensity"][e] - 3 * ph_mod.DEFAULT_NOISE_SD
            assert d < t["superficial"]["intensity"][e] - 3 * ph_mod.DEFAULT_NOISE_SD


def test_pure_tissue_intensities():
    """Truth intensities follow S = 1000 * M0 * exp(-TE / T2*)."""
    t = make_phantom("control", 0, n_slices=N, noise_sd=0).truth["tissues"]
    for tissue in ("csf", "superficial", "deep_m1", "white_matter"):
        m0, t2 = t[tissue]["m0"], t[tissue]["t2star_ms"]
        want = [1000 * m0 * math.exp(-te / t2) for te in (10.0, 20.0)]
        assert t[tissue]["intensity"] == pytest.approx(want, abs=1e-3)
    assert t["csf"]["intensity"][0] == pytest.approx(882.5, abs=0.1)


# --------------------------------------------------------------------------- noise and determinism


def test_determinism_and_seed():
    a = make_phantom("als", 5, n_slices=N, with_phase=True)
    b = make_phantom("als", 5, n_slices=N, with_phase=True)
    c = make_phantom("als", 6, n_slices=N, with_phase=True)
    np.testing.assert_array_equal(a.gre, b.gre)
    np.testing.assert_array_equal(a.phase, b.phase)
    np.testing.assert_array_equal(a.qsm, b.qsm)
    assert a.truth == b.truth
    assert not np.array_equal(a.gre, c.gre)
    assert not np.array_equal(a.qsm, c.qsm)
    # ... but only the noise differs.
    assert np.abs(a.gre - c.gre).mean() < 25
    assert {k: v for k, v in a.truth.items() if k != "seed"} == {
        k: v for k, v in c.truth.items() if k != "seed"
    }


def test_noise_level_and_phase_independence(clean):
    noisy = make_phantom("control", 0, n_slices=N, with_phase=True)
    no_phase = make_phantom("control", 0, n_slices=N, with_phase=False)
    assert no_phase.phase is None and noisy.phase is not None
    np.testing.assert_array_equal(noisy.gre, no_phase.gre)
    assert noisy.truth["noise_sd"] == ph_mod.DEFAULT_NOISE_SD
    diff = noisy.gre[..., 0] - clean["control"].gre[..., 0]
    # In bright tissue Rician noise is ~Gaussian with the nominal SD.
    bright = clean["control"].gre[..., 0] > 400
    assert np.std(diff[bright]) == pytest.approx(ph_mod.DEFAULT_NOISE_SD, rel=0.05)
    assert 0.01 < ph_mod.DEFAULT_NOISE_SD / noisy.truth["tissues"]["csf"]["intensity"][0] < 0.02
    qdiff = noisy.qsm - clean["control"].qsm
    assert np.std(qdiff[bright]) == pytest.approx(0.003, rel=0.1)
    assert np.all(noisy.gre >= 0) and noisy.gre.dtype == np.float32


def test_arrays_shapes_and_types(clean):
    ph = clean["control"]
    assert ph.gre.shape == (448, 448, N, 2) and ph.gre.dtype == np.float32
    assert ph.qsm.shape == (448, 448, N) and ph.qsm.dtype == np.float32
    assert ph.phase.shape == ph.gre.shape
    assert ph.echo_times_ms == (10.0, 20.0)
    assert nib.aff2axcodes(ph.gre_affine) == ("R", "A", "S")
    assert nib.aff2axcodes(ph.mrsi_affine) == ("R", "A", "S")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("n_slices", [15, 17, 14, 0, -2, 16.0, True])
def test_bad_n_slices(n_slices):
    with pytest.raises(ValueError, match="n_slices"):
        make_phantom("control", n_slices=n_slices)


@pytest.mark.parametrize("group", ["ALS", "patient", "", None])
def test_bad_group(group):
    with pytest.raises(ValueError, match="group"):
        make_phantom(group, n_slices=N)


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"noise_sd": -1.0}, {"noise_sd": float("nan")}])
def test_bad_seed_or_noise(kwargs):
    with pytest.raises(ValueError):
        make_phantom("control", n_slices=N, **kwargs)


def test_write_refuses_non_empty_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(M1Error) as err:
        write_phantom_case(tmp_path, "control", 0, n_slices=N)
    msg = str(err.value)
    assert "\n" not in msg and "not empty" in msg
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    write_phantom_case(tmp_path, "control", 0, n_slices=N, force=True)
    assert (tmp_path / "truth.json").is_file() and (tmp_path / "notes.txt").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_write_refuses_file_and_bad_label(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(M1Error):
        write_phantom_case(f, n_slices=N)
    with pytest.raises(ValueError, match="label"):
        write_phantom_case(tmp_path / "c", label="sub_01", n_slices=N)
    assert not (tmp_path / "c").exists()


def test_no_qt_or_napari_import():
    code = (
        "import sys, napari_m1.phantom; "
        "top = {m.split('.')[0] for m in sys.modules}; "
        "bad = top & {'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6'}; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
