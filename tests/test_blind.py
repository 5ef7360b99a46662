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


def test_blind_case_redacts_provenance_text_in_extra_but_not_data_names():
    from types import SimpleNamespace

    from napari_m1.session import Redactor, blind_case

    vol = SimpleNamespace(
        sources=["sub-SECRETX_echo-1.nii.gz"],
        warnings=["read sub-SECRETX_echo-1.nii.gz"],
        extra={
            "b0_from": "sub-SECRETX_echo-1.nii.gz sidecar MagneticFieldStrength",
            "metabolite": "NAA+NAAG",
            "b0_tesla": 7.0,
        },
    )
    case = SimpleNamespace(files=SimpleNamespace(label="SECRETX"), volumes=[vol])
    blind_case(case, "M1-ABC", Redactor(["sub-SECRETX_echo-1.nii.gz", "SECRETX", "NAA+NAAG"]))
    assert case.files.label == "M1-ABC" and vol.sources == []
    assert "SECRETX" not in vol.warnings[0] and "SECRETX" not in vol.extra["b0_from"]
    assert vol.extra["b0_from"].endswith("sidecar MagneticFieldStrength")
    assert vol.extra["metabolite"] == "NAA+NAAG" and vol.extra["b0_tesla"] == 7.0
