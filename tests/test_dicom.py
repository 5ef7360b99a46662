"""DICOM import: the real Siemens field map against dcm2niix's own output, synthesized
orientations against dcm2niix and nibabel, enhanced multi-frame, and bad input."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from napari_m1.cli import main
from napari_m1.errors import M1LoadError
from napari_m1.io import load_case, load_nifti
from napari_m1.io._dicom_synth import orientation_iop, write_dicom_series

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom-gre-siemens"


@pytest.fixture(scope="module")
def siemens() -> Path:
    if not (DATA / "In").is_dir() or not (DATA / "Ref").is_dir():
        pytest.skip(f"real Siemens DICOM not found at {DATA}")
    return DATA


def _dcm2niix() -> str | None:
    try:
        import dcm2niix

        exe = Path(dcm2niix.bin)
        return str(exe) if exe.is_file() else None
    except (ImportError, AttributeError):
        return shutil.which("dcm2niix")


def _rng_series(shape, seed=0, hi=4000):
    return np.random.default_rng(seed).integers(1, hi, shape).astype(np.uint16)


# --------------------------------------------------------------------------- real data


def test_real_siemens_matches_dcm2niix_reference(siemens):
    case = load_case(siemens / "In")
    mag, ph = case.volumes
    assert mag.kind == "gre" and mag.data.shape == (2, 36, 64, 64)
    assert mag.echo_times_ms == pytest.approx([5.19, 7.65])
    for e, name in enumerate(("Si_2_gre_field_magph_e1.nii", "Si_2_gre_field_magph_e2.nii")):
        ref = load_nifti(siemens / "Ref" / name, kind="gre")
        np.testing.assert_array_equal(mag.data[e], ref.data)
        np.testing.assert_allclose(mag.ras_affine, ref.ras_affine, atol=1e-3)
    # One phase image for two magnitude echoes: a Siemens phase difference.
    assert ph.kind == "phase" and ph.data.ndim == 3
    assert ph.extra["phase_kind"] == "difference"
    assert ph.extra["delta_te_ms"] == pytest.approx(7.65 - 5.19)
    side = json.loads((siemens / "Ref" / "Si_3_gre_field_magph_e2_ph.json").read_text())
    assert ph.extra["echo_time1_ms"] == pytest.approx(side["EchoTime1"] * 1000)
    assert ph.extra["echo_time2_ms"] == pytest.approx(side["EchoTime2"] * 1000)
    ref = load_nifti(siemens / "Ref" / "Si_3_gre_field_magph_e2_ph.nii", kind="other")
    # dcm2niix keeps Siemens integers (-4096..4094); napari-m1 shows radians.
    np.testing.assert_allclose(ph.data, ref.data * np.pi / 4096, atol=1e-6)
    np.testing.assert_allclose(ph.ras_affine, ref.ras_affine, atol=1e-3)
    assert float(ph.data.min()) >= -np.pi - 1e-6 and float(ph.data.max()) <= np.pi


def test_import_cli_real_gives_reference_layers(siemens, tmp_path, capsys):
    out = tmp_path / "case"
    assert main(["import", str(siemens / "In"), str(out)]) == 0
    assert "wrote 2 image(s)" in capsys.readouterr().out
    spec = json.loads((out / "case.json").read_text())
    assert spec["phase_difference"] is True
    assert spec["echo_times_ms"] == pytest.approx([5.19, 7.65])
    case = load_case(out)
    mag, ph = case.volumes
    assert mag.echo_times_ms == pytest.approx([5.19, 7.65])
    assert ph.extra["phase_kind"] == "difference"
    assert ph.extra["delta_te_ms"] == pytest.approx(2.46)
    for e, name in enumerate(("Si_2_gre_field_magph_e1.nii", "Si_2_gre_field_magph_e2.nii")):
        ref = load_nifti(siemens / "Ref" / name, kind="gre")
        np.testing.assert_array_equal(mag.data[e], ref.data)
        np.testing.assert_allclose(mag.ras_affine, ref.ras_affine, atol=1e-3)
    ref = load_nifti(siemens / "Ref" / "Si_3_gre_field_magph_e2_ph.nii", kind="other")
    np.testing.assert_allclose(ph.data, ref.data * np.pi / 4096, atol=1e-6)
    # The case folder opens through the same layer path as any other.
    assert main(["info", str(out)]) == 0
    assert "GRE phase difference" in capsys.readouterr().out


def test_import_anonymise_lists_removed_tags(siemens, tmp_path, capsys):
    out = tmp_path / "anon"
    assert main(["import", str(siemens / "In"), str(out), "--anonymise"]) == 0
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if ln.startswith("removed identifying tags:"))
    for tag in ("PatientName (0010,0010)", "PatientID (0010,0020)", "InstitutionName (0008,0080)"):
        assert tag in line
    blob = "".join(p.read_text() for p in out.glob("*.json"))
    for token in ("phantom", "crlab", "USC", "Columbia", "Husband", "MRC35131", "67060"):
        assert token not in blob
    # Without --anonymise no patient identifier is written either (site fields are).
    out2 = tmp_path / "plain"
    assert main(["import", str(siemens / "In"), str(out2)]) == 0
    blob2 = "".join(p.read_text() for p in out2.glob("*.json"))
    assert "crlab" not in blob2 and "phantom" not in blob2 and "19990909" not in blob2
    assert "USC" in blob2


def test_import_list_series(siemens, capsys):
    assert main(["import", "--list", str(siemens / "In"), "unused"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "M  echoes 2  TE 5.19, 7.65 ms  64x64x36  72 file(s)" in out[0]
    assert "P  echoes 1  TE 7.65 ms" in out[1]


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal", "oblique"])
def test_orientation_matches_nibabel_per_slice(tmp_path, plane):
    """Every slice file's own geometry (nibabel's DICOM wrapper) agrees with the volume."""
    import warnings

    from nibabel.affines import apply_affine

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "DICOM readers are highly experimental"
        from nibabel.nicom import dicomwrappers

    data = _rng_series((1, 5, 9, 7))
    files = write_dicom_series(
        tmp_path / "in",
        data,
        iop=orientation_iop(plane),
        pixel_spacing=(0.6, 0.45),
        slice_spacing=1.3,
        echo_times_ms=[4.0],
    )
    vol = load_case(tmp_path / "in").volumes[0]
    src = vol.source_affine  # (column i, row j, slice k) -> RAS
    for k, f in enumerate(files):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w = dicomwrappers.wrapper_from_file(str(f))
        lps = apply_affine(w.affine, [[3, 2, 0], [0, 0, 0], [8, 6, 0]])  # (row, col, 0)
        ras = apply_affine(src, [[2, 3, k], [0, 0, k], [6, 8, k]])
        np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-4)
        # ... and the canonical layer holds that file's pixels at those voxels.
        idx = np.rint(apply_affine(np.linalg.inv(vol.ras_affine), ras[0])).astype(int)
        assert vol.data[tuple(idx)] == data[0, k, 3, 2]


@pytest.mark.parametrize("plane", ["axial", "coronal", "sagittal", "oblique"])
def test_orientation_matches_dcm2niix(tmp_path, plane):
    exe = _dcm2niix()
    if exe is None:
        pytest.skip("dcm2niix binary not installed (pip install dcm2niix)")
    data = _rng_series((2, 6, 11, 9), seed=3)
    write_dicom_series(
        tmp_path / "in",
        data,
        iop=orientation_iop(plane),
        pixel_spacing=(0.6, 0.45),
        slice_spacing=1.3,
        echo_times_ms=[4.0, 9.5],
    )
    vol = load_case(tmp_path / "in").volumes[0]
    out = tmp_path / "ref"
    out.mkdir()
    subprocess.run(
        [exe, "-o", str(out), "-f", "ref_%e", "-z", "n", "-b", "y", str(tmp_path / "in")],
        check=True,
        capture_output=True,
    )
    refs = sorted(out.glob("ref_*.nii"))
    assert len(refs) == 2
    assert vol.echo_times_ms == pytest.approx([4.0, 9.5])
    for e, r in enumerate(refs):
        ref = load_nifti(r, kind="gre")
        np.testing.assert_array_equal(vol.data[e], ref.data)
        np.testing.assert_allclose(vol.ras_affine, ref.ras_affine, atol=1e-3)
        te = json.loads(r.with_suffix(".json").read_text())["EchoTime"] * 1000
        assert vol.echo_times_ms[e] == pytest.approx(te)


def test_enhanced_multiframe_equals_classic(tmp_path):
    mag = _rng_series((4, 6, 10, 8), seed=5)
    pha = _rng_series((4, 6, 10, 8), seed=6, hi=4095)
    kw = {
        "iop": orientation_iop("oblique", degrees=17),
        "pixel_spacing": (0.5, 0.5),
        "echo_times_ms": [4.0, 8.0, 12.0, 16.0],
    }
    write_dicom_series(tmp_path / "classic", mag, series_number=7, **kw)
    write_dicom_series(tmp_path / "classic", pha, series_number=8, component="P", **kw)
    write_dicom_series(tmp_path / "enh", mag, series_number=7, enhanced=True, **kw)
    write_dicom_series(tmp_path / "enh", pha, series_number=8, component="P", enhanced=True, **kw)
    a, b = load_case(tmp_path / "classic"), load_case(tmp_path / "enh")
    assert [v.kind for v in b.volumes] == ["gre", "phase"]
    for va, vb in zip(a.volumes, b.volumes, strict=True):
        assert vb.data.shape == (4, 6, 10, 8) or vb.data.shape[0] == 4
        np.testing.assert_array_equal(va.data, vb.data)
        np.testing.assert_allclose(va.ras_affine, vb.ras_affine, atol=1e-6)
        assert vb.echo_times_ms == pytest.approx([4.0, 8.0, 12.0, 16.0])
    ph = b.volumes[1]
    # Stored 0..4094 with slope 2, intercept -4096 -> radians value * pi / 4096.
    assert ph.extra["phase_scaling"]["method"] == "siemens"
    expect = (pha.astype(np.float64) * 2 - 4096) * np.pi / 4096
    vol_native = np.sort(expect.ravel())
    np.testing.assert_allclose(np.sort(ph.data.ravel()), vol_native, atol=1e-5)


def test_unsorted_nested_folders_and_reused_instance_numbers(tmp_path):
    data = _rng_series((3, 5, 6, 6), seed=9)
    files = write_dicom_series(
        tmp_path / "flat", data, iop=orientation_iop("axial"), echo_times_ms=[3.0, 6.0, 9.0]
    )
    rng = np.random.default_rng(1)
    deep = tmp_path / "deep"
    for n, f in enumerate(rng.permutation(files)):
        d = deep / f"d{n % 3}" / f"x{n % 2}"
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, d / f"IM{n:05d}")  # no extension, as PACS exports do
    a, b = load_case(tmp_path / "flat").volumes[0], load_case(deep).volumes[0]
    np.testing.assert_array_equal(a.data, b.data)
    assert b.echo_times_ms == [3.0, 6.0, 9.0]


def test_missing_echo_times_warn_and_picker_choice(tmp_path):
    write_dicom_series(
        tmp_path,
        _rng_series((1, 4, 6, 6)),
        iop=orientation_iop("axial"),
        echo_times_ms=None,
        series_number=3,
    )
    write_dicom_series(
        tmp_path,
        _rng_series((2, 4, 6, 6)),
        iop=orientation_iop("axial"),
        echo_times_ms=[5.0, 10.0],
        series_number=4,
    )
    case = load_case(tmp_path)  # the series with most echoes
    assert case.volumes[0].echo_times_ms == [5.0, 10.0]
    assert any("2 magnitude series" in w for w in case.warnings)
    from napari_m1.io import load_dicom_case

    one = load_dicom_case(tmp_path, gre=3)
    assert one.volumes[0].echo_times_ms is None
    assert any("echo times unknown" in w for w in one.warnings)
    with pytest.raises(M1LoadError, match="no magnitude series 9"):
        load_dicom_case(tmp_path, gre=9)


# --------------------------------------------------------------------------- bad input


def _good(tmp_path: Path) -> list[Path]:
    return write_dicom_series(
        tmp_path / "in", _rng_series((2, 5, 8, 8)), iop=orientation_iop("axial")
    )


def _truncate_pixels(tmp_path):
    f = _good(tmp_path)[3]
    f.write_bytes(f.read_bytes()[:-50])
    return f.name, "truncated or corrupt pixel data"


def _truncate_header(tmp_path):
    f = _good(tmp_path)[2]
    f.write_bytes(f.read_bytes()[:300])
    return f.name, "truncated"


def _missing_slice(tmp_path):
    files = _good(tmp_path)
    for f in files:
        if f.name.endswith("_0003.dcm"):
            f.unlink()
    return "slice missing between", "s5_e1_0002.dcm"


def _mixed_matrix(tmp_path):
    _good(tmp_path)
    write_dicom_series(tmp_path / "tmp", _rng_series((2, 5, 9, 8)), iop=orientation_iop("axial"))
    shutil.copy(tmp_path / "tmp" / "s5_e1_0002.dcm", tmp_path / "in" / "s5_e1_0002.dcm")
    return "mixed matrix sizes", "8x9"


def _non_image_only(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    d = tmp_path / "in"
    d.mkdir(parents=True)
    for n, sop in enumerate(["1.2.840.10008.5.1.4.1.1.88.22", "1.2.840.10008.5.1.4.1.1.11.1"]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{n}"
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = sop, f"1.2.3.{n}"
        ds.Modality = "SR" if n == 0 else "PR"
        ds.save_as(d / f"obj{n}.dcm", enforce_file_format=True)
    return "no DICOM images, only non-image objects", "SR"


def _dicomdir_only(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    d = tmp_path / "in"
    d.mkdir(parents=True)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.FileSetID = "DISC"
    ds.save_as(d / "DICOMDIR", enforce_file_format=True)
    return "only a DICOMDIR index", "in"


def _repeated_positions(tmp_path):
    files = _good(tmp_path)
    import pydicom

    f = files[1]
    ds = pydicom.dcmread(f)
    ds.ImagePositionPatient = pydicom.dcmread(files[0]).ImagePositionPatient
    ds.save_as(f)
    return "repeated slice position", "s5_e1_0001.dcm"


@pytest.mark.parametrize(
    "make",
    [
        _truncate_pixels,
        _truncate_header,
        _missing_slice,
        _mixed_matrix,
        _non_image_only,
        _dicomdir_only,
        _repeated_positions,
    ],
)
def test_bad_dicom_one_line_error_nothing_written(tmp_path, make, capsys):
    a, b = make(tmp_path)
    with pytest.raises(M1LoadError) as ei:
        load_case(tmp_path / "in")
    msg = str(ei.value)
    assert "\n" not in msg and a in msg and b in msg
    out = tmp_path / "out"
    assert main(["import", str(tmp_path / "in"), str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-m1: error:") and len(err.splitlines()) == 1
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial")]


def test_non_image_objects_beside_images_are_skipped(tmp_path):
    _good(tmp_path)
    _non_image_only(tmp_path / "extra")
    shutil.move(tmp_path / "extra" / "in", tmp_path / "in" / "sr")
    case = load_case(tmp_path / "in")
    assert case.volumes[0].data.shape == (2, 5, 8, 8)
    assert any("skipped 2 non-image DICOM object(s)" in w for w in case.warnings)


def test_dicomdir_beside_images_is_ignored(tmp_path):
    _good(tmp_path)
    _dicomdir_only(tmp_path / "x")
    shutil.move(tmp_path / "x" / "in" / "DICOMDIR", tmp_path / "in" / "DICOMDIR")
    case = load_case(tmp_path / "in")
    assert case.volumes[0].data.shape == (2, 5, 8, 8)
    assert any("DICOMDIR" in w for w in case.warnings)


def test_reader_contract_dicom_folder(tmp_path, siemens):
    from napari_m1._reader import get_case_reader

    assert get_case_reader(str(siemens / "In")) is not None
    assert get_case_reader(str(siemens / "In" / "2_gre_field_magph")) is not None
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    assert get_case_reader(str(empty)) is None
    layers = get_case_reader(str(siemens / "In"))(str(siemens / "In"))
    assert [ld[1]["name"] for ld in layers] == ["GRE magnitude", "GRE phase difference"]
    assert layers[1][1]["metadata"]["napari_m1"]["phase_kind"] == "difference"


def test_progress_is_reported(tmp_path):
    from napari_m1.io import load_dicom_case

    _good(tmp_path)
    seen: list[tuple[int, int]] = []
    load_dicom_case(tmp_path / "in", progress=lambda d, n: seen.append((d, n)))
    assert seen[-1] == (20, 20)  # 10 headers scanned + 10 files read
    assert all(b[0] >= a[0] for a, b in itertools.pairwise(seen))
    assert os.path.isdir(tmp_path / "in")


@pytest.mark.parametrize("plane", ["coronal", "sagittal", "oblique"])
def test_import_round_trip_any_orientation(tmp_path, plane):
    """The case folder written by import reads back to the very layers of the DICOM."""
    from napari_m1.io._import import import_case

    kw = {"iop": orientation_iop(plane), "pixel_spacing": (0.6, 0.45), "slice_spacing": 1.3}
    write_dicom_series(tmp_path / "in", _rng_series((3, 5, 9, 7)), echo_times_ms=[4, 8, 12], **kw)
    write_dicom_series(
        tmp_path / "in",
        _rng_series((3, 5, 9, 7), 1, 4095),
        series_number=6,
        component="P",
        echo_times_ms=[4, 8, 12],
        **kw,
    )
    res = import_case(tmp_path / "in", tmp_path / "out", subject="x1")
    assert sorted(res.files) == [
        "case.json",
        "sub-x1_part-mag_MEGRE.json",
        "sub-x1_part-mag_MEGRE.nii",
        "sub-x1_part-phase_MEGRE.json",
        "sub-x1_part-phase_MEGRE.nii",
    ]
    a, b = load_case(tmp_path / "in"), load_case(tmp_path / "out")
    for va, vb in zip(a.volumes, b.volumes, strict=True):
        np.testing.assert_array_equal(va.data, vb.data)
        np.testing.assert_allclose(va.ras_affine, vb.ras_affine, atol=1e-6)
        assert vb.echo_times_ms == pytest.approx([4, 8, 12])
