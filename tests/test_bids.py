"""BIDS datasets and bare NIfTI folders: listing, loading, echo times remembered
beside a copy (never written into the user's folder), ``napari-m1 import``."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

from napari_m1.cli import main
from napari_m1.errors import M1LoadError
from napari_m1.io import load_case, remember_echo_times, remembered_copy
from napari_m1.io._bids import is_bids_root, list_bids, load_bids_case


def _tree(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


def _make_bids(root: Path, phantom: Path, subjects=("01", "02"), sessions=("", "")) -> Path:
    """A BIDS dataset from the phantom case's files: raw MEGRE + derivatives."""
    (root).mkdir(parents=True)
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    for sub, ses in zip(subjects, sessions, strict=True):
        rel = Path(f"sub-{sub}") / (f"ses-{ses}" if ses else "")
        anat = root / rel / "anat"
        anat.mkdir(parents=True)
        ent = f"sub-{sub}" + (f"_ses-{ses}" if ses else "")
        for p in phantom.iterdir():
            name = p.name.replace("sub-phantomcontrol1", ent)
            if "MEGRE" in p.name:
                shutil.copy(p, anat / name)
            elif "Chimap" in p.name:
                d = root / "derivatives" / "qsm" / rel / "anat"
                d.mkdir(parents=True, exist_ok=True)
                shutil.copy(p, d / name)
            elif "_mrsi" in p.name:
                d = root / "derivatives" / "mrsi" / rel / "mrsi"
                d.mkdir(parents=True, exist_ok=True)
                shutil.copy(p, d / name)
    return root


@pytest.fixture(scope="module")
def phantom_with_phase(tmp_path_factory) -> Path:
    from napari_m1.phantom import write_phantom_case

    out = tmp_path_factory.mktemp("ph") / "case"
    return write_phantom_case(out, "control", seed=1, n_slices=16, with_phase=True)


def test_bids_listing_subjects_sessions_and_derivatives(tmp_path, phantom_with_phase):
    root = _make_bids(tmp_path / "bids", phantom_with_phase, ("01", "01", "02"), ("a", "b", ""))
    assert is_bids_root(root)
    entries = list_bids(root)
    assert [(e.subject, e.session) for e in entries] == [("01", "a"), ("01", "b"), ("02", "")]
    e = entries[0]
    assert [p.name for p in e.gre] == [
        "sub-01_ses-a_echo-1_part-mag_MEGRE.nii.gz",
        "sub-01_ses-a_echo-2_part-mag_MEGRE.nii.gz",
    ]
    assert [p.name for p in e.phase] == [
        "sub-01_ses-a_echo-1_part-phase_MEGRE.nii.gz",
        "sub-01_ses-a_echo-2_part-phase_MEGRE.nii.gz",
    ]
    assert e.qsm is not None and e.qsm.name == "sub-01_ses-a_Chimap.nii.gz"
    assert list(e.mrsi) == ["NAA", "Cr", "Cho", "Glx"]
    assert "QSM" in e.summary() and "MRSI NAA" in e.summary()

    case = load_bids_case(root, subject="01", session="b")
    assert [v.kind for v in case.volumes] == ["gre", "phase", "qsm", *["mrsi"] * 4]
    assert case.volumes[0].echo_times_ms == [10.0, 20.0]
    assert case.files.label == "01_ses-b"
    direct = load_case(phantom_with_phase)
    np.testing.assert_array_equal(case.volumes[0].data, direct.volumes[0].data)

    with pytest.raises(M1LoadError, match="3 subjects/sessions.*--subject"):
        load_bids_case(root)
    with pytest.raises(M1LoadError, match="no subject '07'"):
        load_bids_case(root, subject="07")


@pytest.mark.slow
def test_import_bids_subject(tmp_path, phantom_with_phase, capsys):
    root = _make_bids(tmp_path / "bids", phantom_with_phase)
    out = tmp_path / "case"
    assert main(["import", str(root), str(out), "--subject", "sub-02", "--gzip"]) == 0
    assert (out / "sub-02_part-mag_MEGRE.nii.gz").is_file()
    case = load_case(out)
    assert [v.kind for v in case.volumes] == ["gre", "phase", "qsm", *["mrsi"] * 4]
    assert case.volumes[0].echo_times_ms == pytest.approx([10.0, 20.0])
    src = load_bids_case(root, subject="02")
    for a, b in zip(case.volumes, src.volumes, strict=True):
        np.testing.assert_allclose(a.ras_affine, b.ras_affine, atol=1e-5)
        np.testing.assert_allclose(a.data, b.data, atol=1e-6, equal_nan=True)
    assert main(["import", str(root), str(tmp_path / "x")]) == 2
    assert "or with --subject" in capsys.readouterr().err


@pytest.fixture
def readonly_gre(real_gre_dir, tmp_path) -> Path:
    """The real GRE patch as a read-only folder (like ../shared on CI)."""
    d = tmp_path / "ro" / "gre-patch"
    d.mkdir(parents=True)
    for p in real_gre_dir.glob("*.nii.gz"):
        shutil.copy(p, d / p.name)
        os.chmod(d / p.name, stat.S_IRUSR | stat.S_IRGRP)
    os.chmod(d, stat.S_IRUSR | stat.S_IXUSR)
    yield d
    os.chmod(d, stat.S_IRWXU)


def test_bare_nifti_folder_opens_and_echo_times_are_remembered(readonly_gre):
    before = _tree(readonly_gre)
    case = load_case(readonly_gre)
    assert [v.kind for v in case.volumes] == ["gre", "phase"]
    assert case.volumes[0].data.shape == (3, 41, 51, 51)
    assert any("echo times unknown" in w for w in case.warnings)
    assert remembered_copy(readonly_gre) is None

    copy = remember_echo_times(readonly_gre, [4.0, 8.0, 12.0])
    assert copy == remembered_copy(readonly_gre)
    assert not str(copy).startswith(str(readonly_gre))
    assert _tree(readonly_gre) == before  # nothing written into the user's data
    spec = json.loads((copy / "case.json").read_text())
    assert spec["echo_times_ms"] == [4.0, 8.0, 12.0]

    again = load_case(readonly_gre)  # asked once: the answer is used from now on
    assert again.volumes[0].echo_times_ms == [4.0, 8.0, 12.0]
    assert again.volumes[1].echo_times_ms == [4.0, 8.0, 12.0]
    assert again.files.label == "gre-patch"
    np.testing.assert_array_equal(again.volumes[0].data, case.volumes[0].data)
    assert not any("echo times unknown" in w for w in again.warnings)
    with pytest.raises(M1LoadError, match="2 echo time"):
        remember_echo_times(readonly_gre, [4.0, 8.0])


def test_dcm2niix_output_folder_opens_bare(tmp_path):
    ref = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom-gre-siemens" / "Ref"
    if not ref.is_dir():
        pytest.skip(f"dcm2niix reference output not found at {ref}")
    case = load_case(ref)  # no case.json, no BIDS names: roles from sidecars
    mag, ph = case.volumes
    assert mag.n_echoes == 2 and mag.echo_times_ms == pytest.approx([5.19, 7.65])
    assert ph.extra["phase_kind"] == "difference"
    assert ph.extra["delta_te_ms"] == pytest.approx(2.46)


def test_bare_folder_without_magnitude_is_refused(tmp_path):
    from conftest import make_nifti

    make_nifti(tmp_path / "a_phase.nii.gz", np.zeros((4, 4, 4), np.float32))
    make_nifti(tmp_path / "b_chimap.nii.gz", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(M1LoadError, match="no GRE magnitude"):
        load_case(tmp_path)


def test_study_init_from_bids_root(tmp_path, phantom_with_phase, capsys):
    root = _make_bids(tmp_path / "bids", phantom_with_phase, ("01", "01", "02"), ("a", "b", ""))
    (root / "sub-03" / "anat").mkdir(parents=True)  # a subject without GRE
    study = tmp_path / "study"
    assert main(["study", "init", str(study), "--cases", str(root), "--readers", "R1,R2"]) == 0
    out = capsys.readouterr()
    assert "sub-03: left out (no MEGRE)" in out.err
    key = tmp_path / "study-cases.csv"
    lines = key.read_text().splitlines()
    assert lines[0] == "case_id,path"
    assert [ln.split(",")[0] for ln in lines[1:]] == ["sub-01_ses-a", "sub-01_ses-b", "sub-02"]
    assert "3 reads" in out.out or "6 reads" in out.out
    # Each case path opens with its derivatives (QSM and MRSI live under derivatives/).
    case = load_case(lines[2].split(",", 1)[1])
    assert [v.kind for v in case.volumes] == ["gre", "phase", "qsm", *["mrsi"] * 4]
    assert case.files.label == "01_ses-b"


def test_import_bare_folder_with_echo_times(readonly_gre, tmp_path, capsys):
    before = _tree(readonly_gre)
    out = tmp_path / "case"
    assert main(["import", str(readonly_gre), str(out), "--echo-times", "4,8,12"]) == 0
    assert _tree(readonly_gre) == before
    case = load_case(out)
    assert [v.echo_times_ms for v in case.volumes] == [[4.0, 8.0, 12.0]] * 2
    assert not case.warnings or not any("echo times unknown" in w for w in case.warnings)
    assert main(["import", str(readonly_gre), str(tmp_path / "x"), "--echo-times", "4,8"]) == 2
    assert "--echo-times needs 3 value(s)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
