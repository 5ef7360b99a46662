"""Loading NIfTI files and case folders: real data, layouts, bad input."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import make_nifti
from napari_m1._reader import get_case_reader, get_nifti_reader, read_case, read_nifti
from napari_m1.errors import M1LoadError
from napari_m1.io import (
    METADATA_KEY,
    find_case_files,
    guess_kind,
    load_case,
    load_multi_echo,
    load_nifti,
    rescale_phase,
)

# ----------------------------------------------------------------------------- real data


def test_real_gre_magnitude_loads_three_echoes(real_gre_dir):
    vol = load_nifti(real_gre_dir / "Mag.nii.gz")
    assert vol.kind == "gre"
    assert vol.n_echoes == 3
    assert vol.data.shape == (3, 41, 51, 51)
    np.testing.assert_allclose(vol.voxel_size_mm, (1.0, 0.46875, 0.46875))
    # Same values as nibabel at the same RAS point.
    img = nib.load(real_gre_dir / "Mag.nii.gz")
    ref = np.asanyarray(img.dataobj)
    for idx in [(0, 0, 0), (20, 10, 40), (40, 50, 3)]:
        vox = np.rint(np.linalg.inv(img.affine) @ vol.ras_affine @ np.r_[idx, 1.0]).astype(int)
        for e in range(3):
            assert vol.data[(e, *idx)] == ref[(*vox[:3], e)]


def test_real_gre_phase_is_radians(real_gre_dir):
    vol = load_nifti(real_gre_dir / "Phase.nii.gz")
    assert vol.kind == "phase"
    assert vol.n_echoes == 3
    assert np.nanmin(vol.data) >= -np.pi - 1e-6
    assert np.nanmax(vol.data) <= np.pi + 1e-6
    # Arbitrary units of about +-0.0037 were stretched to the full circle.
    assert np.nanmax(vol.data) - np.nanmin(vol.data) > 1.9 * np.pi
    assert vol.extra["phase_scaling"]["method"] == "linear"
    assert abs(vol.extra["phase_scaling"]["max"] - 0.0037) < 2e-4


def test_real_gre_case_via_case_json(real_gre_dir, tmp_path):
    for f in ("Mag.nii.gz", "Phase.nii.gz"):
        shutil.copy(real_gre_dir / f, tmp_path / f)
    (tmp_path / "case.json").write_text(
        json.dumps(
            {
                "label": "realpatch",
                "gre": "Mag.nii.gz",
                "phase": "Phase.nii.gz",
                "echo_times_ms": [4, 8, 12],
            }
        )
    )
    case = load_case(tmp_path)
    assert [v.kind for v in case.volumes] == ["gre", "phase"]
    assert case.reference.echo_times_ms == [4.0, 8.0, 12.0]
    assert case.files.label == "realpatch"
    assert case.placements[1] == case.placements[0]


# ----------------------------------------------------------------------------- helpers


def _grid(shape=(16, 14, 6), zooms=(0.25, 0.25, 2.0), origin=(-2.0, -1.75, 30.0)):
    aff = np.diag([*zooms, 1.0])
    aff[:3, 3] = origin
    return aff


def _bids_case(folder: Path, *, n_echoes=2, phase=True, qsm=True, mrsi=True, seed=0):
    rng = np.random.default_rng(seed)
    aff = _grid()
    mags = []
    for e in range(1, n_echoes + 1):
        d = rng.uniform(100, 200, (16, 14, 6)).astype(np.float32)
        mags.append(d)
        make_nifti(folder / f"sub-x_echo-{e}_part-mag_MEGRE.nii.gz", d, aff)
        (folder / f"sub-x_echo-{e}_part-mag_MEGRE.json").write_text(
            json.dumps({"EchoTime": 0.01 * e})
        )
        if phase:
            ph = rng.integers(-4096, 4096, (16, 14, 6)).astype(np.int16)
            make_nifti(folder / f"sub-x_echo-{e}_part-phase_MEGRE.nii.gz", ph, aff)
    if qsm:
        make_nifti(
            folder / "sub-x_Chimap.nii.gz",
            rng.normal(0, 0.02, (16, 14, 6)).astype(np.float32),
            aff,
        )
    if mrsi:
        maff = _grid((2, 2, 3), (2.5, 2.5, 5.0), (-1.0, -1.0, 31.0))
        for met in ("NAA", "Cr"):
            make_nifti(
                folder / f"sub-x_met-{met}_mrsi.nii.gz",
                rng.uniform(5, 9, (2, 2, 3)).astype(np.float32),
                maff,
            )
    return mags


# ----------------------------------------------------------------------------- case folders


def test_bids_case_folder_loads_every_map(tmp_path):
    mags = _bids_case(tmp_path)
    files = find_case_files(tmp_path)
    assert files.label == "x"
    assert [p.name for p in files.gre] == [
        "sub-x_echo-1_part-mag_MEGRE.nii.gz",
        "sub-x_echo-2_part-mag_MEGRE.nii.gz",
    ]
    case = load_case(tmp_path)
    kinds = [v.kind for v in case.volumes]
    assert kinds == ["gre", "phase", "qsm", "mrsi", "mrsi"]
    gre = case.reference
    assert gre.data.shape == (2, 6, 14, 16)
    assert gre.echo_times_ms == pytest.approx([10.0, 20.0])
    # echo e at canonical (k, j, i) is file voxel (i, j, k) of echo file e
    assert gre.data[1, 3, 5, 7] == mags[1][7, 5, 3]
    ph = case.volumes[1]
    assert ph.data.min() >= -np.pi and ph.data.max() <= np.pi
    # MRSI: a different, axis-aligned grid is placed exactly (no resampling):
    # its voxel centre lands at its own RAS position in the world.
    mrsi = case.volumes[3]
    place = case.placements[3]
    assert not place.resample_to_reference
    idx = np.array([1, 0, 1])
    world = np.asarray(place.scale) * idx + np.asarray(place.translate)
    ras = mrsi.ras_affine @ np.r_[idx, 1.0]
    np.testing.assert_allclose(world[::-1], ras[:3])
    names = [kw["name"] for _, kw, _ in read_case(tmp_path)]
    assert names == ["GRE magnitude", "GRE phase", "QSM χ (ppm)", "MRSI NAA", "MRSI Cr"]


def test_layer_metadata_carries_ras_affine_and_kind(tmp_path):
    _bids_case(tmp_path)
    layers = read_case(tmp_path)
    for _data, kw, typ in layers:
        md = kw["metadata"][METADATA_KEY]
        assert typ == "image"
        assert md["kind"] in {"gre", "phase", "qsm", "mrsi"}
        ras = np.asarray(md["ras_affine"])
        assert ras.shape == (4, 4)
        # scale/translate and ras_affine agree for axis-aligned data: world == RAS reversed
        idx = np.array([1.0, 2.0, 3.0])
        world = np.asarray(kw["scale"][-3:]) * idx + np.asarray(kw["translate"][-3:])
        np.testing.assert_allclose(world[::-1], (ras @ np.r_[idx, 1.0])[:3], atol=1e-9)
    qsm = next(kw for _, kw, _ in layers if kw["metadata"][METADATA_KEY]["kind"] == "qsm")
    lo, hi = qsm["contrast_limits"]
    assert lo == pytest.approx(-hi) and hi > 0


def test_rotated_mrsi_is_resampled_nearest_neighbour(tmp_path):
    _bids_case(tmp_path, mrsi=False)
    c, s = np.cos(np.deg2rad(30)), np.sin(np.deg2rad(30))
    maff = _grid((4, 4, 3), (2.5, 2.5, 5.0), (-1.0, -1.0, 31.0))
    maff[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ maff[:3, :3]
    vals = np.arange(1, 49, dtype=np.float32).reshape(4, 4, 3)
    make_nifti(tmp_path / "sub-x_met-NAA_mrsi.nii.gz", vals, maff)
    case = load_case(tmp_path)
    mrsi = case.volumes[-1]
    assert case.placements[-1].resample_to_reference
    assert mrsi.data.shape == case.reference.spatial_shape
    np.testing.assert_allclose(mrsi.ras_affine, case.reference.ras_affine)
    got = np.unique(mrsi.data[np.isfinite(mrsi.data)])
    assert set(got) <= set(vals.ravel())  # nearest neighbour: no blended values
    assert any("resampled" in w for w in case.warnings)
    # A resampled voxel holds the value of the MRSI voxel that contains it.
    ref = case.reference
    idx = np.argwhere(np.isfinite(mrsi.data))[len(got) // 2]
    ras = ref.ras_affine @ np.r_[idx, 1.0]
    src = np.rint(np.linalg.inv(maff) @ ras).astype(int)[:3]
    assert mrsi.data[tuple(idx)] == vals[tuple(src)]


def test_fsl_mrs_concs_layout(tmp_path):
    _bids_case(tmp_path, mrsi=False)
    for sub in ("raw", "internal"):
        (tmp_path / "concs" / sub).mkdir(parents=True)
        for met in ("NAA", "Cr", "Cho"):
            v = 1.0 if sub == "raw" else 2.0
            make_nifti(
                tmp_path / "concs" / sub / f"{met}.nii.gz",
                np.full((2, 2, 3), v, np.float32),
                _grid((2, 2, 3), (2.5, 2.5, 5.0), (-1.0, -1.0, 31.0)),
            )
    files = find_case_files(tmp_path)
    assert sorted(files.mrsi) == ["Cho", "Cr", "NAA"]
    assert all(p.parent.name == "internal" for p in files.mrsi.values())


def test_case_json_layout(tmp_path):
    aff = _grid()
    d = np.random.default_rng(3).uniform(1, 2, (16, 14, 6, 2)).astype(np.float32)
    make_nifti(tmp_path / "gre4d.nii.gz", d, aff)
    make_nifti(tmp_path / "chi.nii.gz", np.zeros((16, 14, 6), np.float32), aff)
    (tmp_path / "case.json").write_text(
        json.dumps(
            {"label": "c1", "gre": "gre4d.nii.gz", "qsm": "chi.nii.gz", "echo_times_ms": [10, 20]}
        )
    )
    case = load_case(tmp_path)
    assert [v.kind for v in case.volumes] == ["gre", "qsm"]
    assert case.reference.n_echoes == 2
    assert case.reference.data[1, 2, 3, 4] == d[4, 3, 2, 1]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "case.json: malformed"),
        ('["a"]', "must hold a JSON object"),
        ('{"gre": "missing.nii.gz"}', "not found"),
        ('{"gre": "/etc/passwd"}', "relative"),
        ('{"gre": "../x.nii.gz"}', "relative"),
        ('{"gre": 3}', "file name or a list"),
    ],
)
def test_bad_case_json(tmp_path, content, match):
    (tmp_path / "case.json").write_text(content)
    with pytest.raises(M1LoadError, match=match):
        load_case(tmp_path)


def test_two_subjects_in_one_folder(tmp_path):
    _bids_case(tmp_path, phase=False, qsm=False, mrsi=False)
    make_nifti(tmp_path / "sub-y_echo-1_part-mag_MEGRE.nii.gz", np.ones((4, 4, 4), np.float32))
    with pytest.raises(M1LoadError, match="2 subjects"):
        find_case_files(tmp_path)


def test_case_folder_without_gre(tmp_path):
    make_nifti(tmp_path / "sub-x_Chimap.nii.gz", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(M1LoadError, match="no GRE magnitude"):
        load_case(tmp_path)
    assert get_case_reader(str(tmp_path)) is None


def test_map_outside_reference_is_refused(tmp_path):
    _bids_case(tmp_path, mrsi=False, qsm=False, phase=False)
    far = _grid(origin=(500.0, 0.0, 0.0))
    make_nifti(tmp_path / "sub-x_Chimap.nii.gz", np.zeros((16, 14, 6), np.float32), far)
    with pytest.raises(M1LoadError, match="does not overlap"):
        load_case(tmp_path)


def test_echo_geometry_mismatch_is_refused(tmp_path):
    _bids_case(tmp_path, phase=False, qsm=False, mrsi=False)
    make_nifti(
        tmp_path / "sub-x_echo-2_part-mag_MEGRE.nii.gz",
        np.zeros((16, 14, 6), np.float32),
        _grid(origin=(0, 0, 0)),
    )
    with pytest.raises(M1LoadError, match="geometry"):
        load_case(tmp_path)


# ----------------------------------------------------------------------------- bad files


def _good(tmp_path, name="sub-x_echo-1_part-mag_MEGRE.nii.gz"):
    return make_nifti(tmp_path / name, np.ones((8, 8, 4), np.float32), _grid())


def test_not_a_nifti(tmp_path):
    p = tmp_path / "notes.nii"
    p.write_text("this is not an image\n" * 40)
    with pytest.raises(M1LoadError, match=r"^notes\.nii: not a readable NIfTI"):
        load_nifti(p)
    png = tmp_path / "x.png"
    png.write_text("x")
    with pytest.raises(M1LoadError, match=r"expected \.nii or \.nii\.gz"):
        load_nifti(png)


def test_truncated_gzip(tmp_path):
    p = make_nifti(
        tmp_path / "big.nii.gz",
        np.random.default_rng(0).normal(size=(32, 32, 16)).astype(np.float32),
        _grid(),
    )
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(M1LoadError, match="truncated|corrupt") as ei:
        load_nifti(p)
    assert "\n" not in str(ei.value)


def test_corrupt_gzip(tmp_path):
    p = make_nifti(
        tmp_path / "big.nii.gz",
        np.random.default_rng(0).normal(size=(32, 32, 16)).astype(np.float32),
        _grid(),
    )
    raw = bytearray(p.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 64] = bytes(64)
    p.write_bytes(bytes(raw))
    with pytest.raises(M1LoadError, match="corrupt|truncated"):
        load_nifti(p)


def test_gzip_of_garbage(tmp_path):
    p = tmp_path / "garbage.nii.gz"
    p.write_bytes(gzip.compress(b"x" * 1000))
    with pytest.raises(M1LoadError, match="garbage.nii.gz"):
        load_nifti(p)


def test_truncated_uncompressed(tmp_path):
    p = make_nifti(tmp_path / "v.nii", np.ones((16, 16, 8), np.float32), _grid())
    raw = p.read_bytes()
    p.write_bytes(raw[:-100])
    with pytest.raises(M1LoadError, match="truncated"):
        load_nifti(p)


@pytest.mark.parametrize(
    ("shape", "match"),
    [((8, 8), "2D data"), ((4, 4, 4, 2, 2), "5D data"), ((2, 2, 2, 2, 2, 2), "6D data")],
)
def test_wrong_dimensions(tmp_path, shape, match):
    p = make_nifti(tmp_path / "v.nii.gz", np.ones(shape, np.float32), np.eye(4))
    with pytest.raises(M1LoadError, match=match):
        load_nifti(p)


def test_4d_with_singleton_time_is_3d(tmp_path):
    p = make_nifti(tmp_path / "sub-x_Chimap.nii.gz", np.ones((4, 5, 6, 1), np.float32), _grid())
    assert load_nifti(p).data.shape == (6, 5, 4)


def test_4d_qsm_is_refused(tmp_path):
    p = make_nifti(tmp_path / "sub-x_Chimap.nii.gz", np.ones((4, 5, 6, 3), np.float32), _grid())
    with pytest.raises(M1LoadError, match="must be 3D"):
        load_nifti(p)


def test_complex_data_refused(tmp_path):
    p = make_nifti(tmp_path / "v.nii.gz", np.ones((4, 4, 4), np.complex64), np.eye(4))
    with pytest.raises(M1LoadError, match="complex-valued"):
        load_nifti(p)


def test_all_nan_loads_with_warning(tmp_path):
    p = make_nifti(
        tmp_path / "sub-x_Chimap.nii.gz", np.full((4, 4, 4), np.nan, np.float32), _grid()
    )
    vol = load_nifti(p)
    assert np.isnan(vol.data).all()
    assert any("every value is NaN" in w for w in vol.warnings)
    ((_, kw, _),) = read_nifti(str(p))
    assert np.all(np.isfinite(kw["contrast_limits"]))


def test_inf_replaced_by_nan_with_warning(tmp_path):
    d = np.ones((4, 4, 4), np.float32)
    d[0, 0, 0], d[1, 1, 1], d[2, 2, 2] = np.inf, -np.inf, np.nan
    p = make_nifti(tmp_path / "sub-x_echo-1_part-mag_MEGRE.nii.gz", d, _grid())
    vol = load_nifti(p)
    assert int(np.isnan(vol.data).sum()) == 3 and not np.isinf(vol.data).any()
    assert any("2 infinite" in w for w in vol.warnings)
    assert any("1 NaN" in w for w in vol.warnings)


def _patch_pixdim(path, axis, value):
    import struct

    raw = bytearray(path.read_bytes())
    raw[76 + 4 * axis : 80 + 4 * axis] = struct.pack("<f", value)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("value", [0.0, -0.25])
def test_zero_or_negative_voxel_size(tmp_path, value):
    p = make_nifti(tmp_path / "v.nii", np.ones((4, 4, 4), np.float32), _grid())
    _patch_pixdim(p, 2, value)
    with pytest.raises(M1LoadError, match=r"^v\.nii: voxel sizes must be positive"):
        load_nifti(p)


def test_singular_affine(tmp_path):
    aff = _grid()
    aff[:3, 1] = aff[:3, 0]  # two identical columns
    p = make_nifti(tmp_path / "v.nii.gz", np.ones((4, 4, 4), np.float32), aff)
    img = nib.load(p)
    img.header["pixdim"][1:4] = 1.0
    img.set_qform(None, code=0)
    img.set_sform(aff, code=1)
    with pytest.raises(M1LoadError, match="singular"):
        load_multi_echo([img.to_filename(p) or p])


def test_failed_case_returns_nothing(tmp_path):
    _bids_case(tmp_path, mrsi=False)
    (tmp_path / "sub-x_Chimap.nii.gz").write_bytes(b"\x1f\x8b\x08broken")
    with pytest.raises(M1LoadError, match="sub-x_Chimap"):
        read_case(str(tmp_path))


# ----------------------------------------------------------------------------- phase, kinds


@pytest.mark.parametrize(
    ("lo", "hi", "dtype"),
    [(-4096, 4095, np.int16), (0, 4095, np.uint16), (-0.0037, 0.0037, float)],
)
def test_phase_rescaled_to_radians(lo, hi, dtype):
    raw = np.linspace(lo, hi, 1001).astype(dtype).astype(np.float32)
    info = rescale_phase(raw)
    assert raw.min() == pytest.approx(-np.pi, abs=1e-5)
    assert raw.max() == pytest.approx(np.pi, abs=1e-5)
    assert info["method"] == "linear"
    assert raw[500] == pytest.approx(0.0, abs=0.01)


def test_phase_in_radians_kept():
    raw = np.linspace(-np.pi, np.pi, 1001).astype(np.float32)
    before = raw.copy()
    assert rescale_phase(raw)["method"] == "radians"
    np.testing.assert_array_equal(raw, before)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("sub-01_echo-1_part-mag_MEGRE.nii.gz", "gre"),
        ("sub-01_echo-1_part-phase_MEGRE.nii.gz", "phase"),
        ("Phase.nii.gz", "phase"),
        ("Mag.nii.gz", "gre"),
        ("sub-01_Chimap.nii.gz", "qsm"),
        ("QSM.nii", "qsm"),
        ("sub-01_met-NAA_mrsi.nii.gz", "mrsi"),
        ("anatomy.nii.gz", "other"),
    ],
)
def test_guess_kind(name, kind):
    assert guess_kind(name) == kind


def test_npe2_reader_contract(tmp_path):
    p = _good(tmp_path)
    assert get_nifti_reader(str(p)) is read_nifti
    assert get_nifti_reader(str(tmp_path / "x.tif")) is None
    assert get_nifti_reader([str(p), str(p)]) is None
    assert get_case_reader(str(tmp_path)) is read_case
    assert get_case_reader(str(p)) is None
    ((data, kw, typ),) = read_nifti(str(p))
    assert typ == "image" and data.shape == (4, 8, 8)
    assert kw["metadata"][METADATA_KEY]["kind"] == "gre"


def test_manifest_validates():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    mf = pm.get_manifest("napari-m1")
    assert {r.command for r in mf.contributions.readers} == {
        "napari-m1.get_case_reader",
        "napari-m1.get_nifti_reader",
    }
    assert {w.display_name for w in mf.contributions.widgets} >= {"M1 case"}
    assert len(mf.contributions.sample_data) == 2
