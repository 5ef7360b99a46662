"""Blinding helpers: the redactor and the active-time counter."""

from __future__ import annotations

import logging

import pytest

from napari_m1.session import ActiveTimer, Redactor, identifying_tokens


def test_active_time_skips_idle_gaps():
    t = ActiveTimer(idle_s=120)
    assert t.touch(0.0) == 0.0  # first activity: nothing to count yet
    assert t.touch(30.0) == 30.0
    assert t.touch(90.0) == 60.0
    assert t.touch(90.0 + 3600) == 0.0  # lunch break: not reading time
    assert t.touch(3700.0) == pytest.approx(10.0)
    assert t.take() == pytest.approx(100.0)
    assert t.take() == 0.0
    t.reset()
    assert t.touch(5000.0) == 0.0


def test_tokens_and_redaction(tmp_path):
    folder = tmp_path / "PATIENT_X17"
    folder.mkdir()
    (folder / "sub-X17_echo-1_part-mag_MEGRE.nii.gz").write_bytes(b"")
    toks = identifying_tokens(folder)
    assert "PATIENT_X17" in toks and "sub-X17" in toks and "X17" in toks
    r = Redactor(toks)
    msg = f"{folder}/sub-X17_echo-1_part-mag_MEGRE.nii.gz: truncated (sub-X17)"
    out = r.redact(msg)
    assert "X17" not in out and "PATIENT" not in out
    assert out.endswith(": truncated ([case])")


def test_redactor_scrubs_every_logger(caplog):
    r = Redactor(["SECRET42"])
    r.install()
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("napari_m1.io._case").warning("loading %s", "/data/SECRET42/x")
            logging.getLogger("some.other.lib").info("path SECRET42")
    finally:
        r.uninstall()
    msgs = [rec.getMessage() for rec in caplog.records]
    assert msgs == ["loading /data/[case]/x", "path [case]"]
    logging.getLogger("x").warning("SECRET42 after uninstall")
    assert caplog.records[-1].getMessage() == "SECRET42 after uninstall"


def test_blind_case_redacts_file_names_in_extra_metadata(tmp_path):
    """A case's extra metadata may name a file (where B0 came from): blinded as text."""
    from napari_m1.io import load_case
    from napari_m1.phantom import write_phantom_case
    from napari_m1.session import blind_case

    folder = write_phantom_case(tmp_path / "FOLDERX9", "control", 1, n_slices=16, label="subX9")
    case = load_case(folder)
    ref = case.volumes[0]
    ref.extra["b0_from"] = "sub-subX9_echo-1_part-mag_MEGRE.json MagneticFieldStrength"
    ref.extra["nested"] = {"files": ["FOLDERX9/a.nii", 3]}
    blind_case(case, "M1-ABC", Redactor(identifying_tokens(folder)))
    text = repr([v.extra for v in case.volumes]) + repr([v.sources for v in case.volumes])
    assert "X9" not in text and case.files.label == "M1-ABC"
    assert ref.extra["b0_from"].endswith("MagneticFieldStrength")
    assert ref.extra["nested"]["files"][1] == 3
