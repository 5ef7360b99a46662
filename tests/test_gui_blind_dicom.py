"""Blinding with what the scanner gives: identity planted in DICOM tags and in JSON
sidecar fields never reaches layers, metadata, the docks, notifications, logs or
exports of a reader session (extends test_gui_reader's blinding test)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_m1.cli import main as cli_main
from napari_m1.io import load_case
from napari_m1.io._dicom_synth import write_dicom_series
from napari_m1.phantom import write_phantom_case
from napari_m1.session import identifying_tokens

pytestmark = [pytest.mark.gui, pytest.mark.slow]

DICOM_TOKENS = {
    "PatientName": "Smithtoken^Johntoken",
    "PatientID": "PIDTOKEN77",
    "PatientBirthDate": "19010203",
    "InstitutionName": "INSTTOKEN Hospital",
    "InstitutionAddress": "ADDRTOKEN Street 5",
    "ReferringPhysicianName": "DOCTOKEN^Ann",
    "StudyDescription": "STUDYTOKEN brain",
    "AccessionNumber": "ACCTOKEN9",
}
SIDECAR_TOKENS = {
    "PatientName": "Sidetoken^Mary",
    "PatientID": "SIDEPIDTOKEN",
    "InstitutionName": "SIDEINSTTOKEN",
    "InstitutionAddress": "SIDEADDRTOKEN Road",
    "DeviceSerialNumber": "SERIALTOKEN42",
}
TOKENS = (
    "Smithtoken",
    "Johntoken",
    "PIDTOKEN77",
    "19010203",
    "INSTTOKEN",
    "ADDRTOKEN",
    "DOCTOKEN",
    "STUDYTOKEN",
    "ACCTOKEN9",
    "Sidetoken",
    "SIDEPIDTOKEN",
    "SIDEINSTTOKEN",
    "SIDEADDRTOKEN",
    "SERIALTOKEN42",
)


def phantom_as_dicom(case_dir: Path, out: Path, identity: dict[str, str]) -> Path:
    """The phantom's GRE written as an axial Siemens-style DICOM series (same RAS grid)."""
    vol = load_case(case_dir, kinds=("gre",)).volumes[0]
    data = np.asarray(vol.data)  # (echo, S, A, R), axis-aligned RAS
    aff = vol.ras_affine
    _ne, _ns, na, nr = data.shape
    # DICOM axial: columns run to patient left (-R), rows to posterior (-A).
    pix = data[:, :, ::-1, ::-1]
    pix = np.clip(np.rint(pix * 30.0), 0, 65535).astype(np.uint16)
    corner = aff @ np.array([0, na - 1, nr - 1, 1.0])
    lps0 = corner[:3] * [-1, -1, 1]
    write_dicom_series(
        out,
        pix,
        iop=[1, 0, 0, 0, 1, 0],
        ipp0=lps0,
        pixel_spacing=(aff[1, 1], aff[0, 2]),
        slice_spacing=aff[2, 0],
        echo_times_ms=vol.echo_times_ms,
        identity=identity,
    )
    shutil.copy(case_dir / "truth.json", out / "truth.json")
    return out


def _is_dicom(study: Path, pseudonym: str) -> bool:
    from napari_m1.session import Study

    st = Study(study)
    try:
        path = next(r["path"] for r in st.reads() if r["pseudonym"] == pseudonym)
    finally:
        st.close()
    return Path(path).name.startswith("dicom")


@pytest.fixture(scope="module")
def scanner_cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("scanner")
    rows = []
    for i in range(2):
        ph = write_phantom_case(
            root / f"ph{i}",
            "als" if i else "control",
            seed=20 + i,
            n_slices=16,
            label=f"neutral{i}",
        )
        dcm = phantom_as_dicom(ph, root / f"dicom{i}", DICOM_TOKENS)
        rows.append(f"C{i}D,{dcm.name}\n")
        # A NIfTI case whose sidecars carry dcm2niix -ba n style identity fields.
        for side in ph.glob("*.json"):
            if side.name == "truth.json":
                continue
            obj = json.loads(side.read_text())
            obj.update(SIDECAR_TOKENS)
            side.write_text(json.dumps(obj))
        rows.append(f"C{i}N,{ph.name}\n")
    (root / "cases.csv").write_text("case_id,path\n" + "".join(rows))
    return root


def test_dicom_case_matches_its_phantom_geometry(scanner_cases):
    a = load_case(scanner_cases / "dicom0").volumes[0]
    b = load_case(scanner_cases / "ph0", kinds=("gre",)).volumes[0]
    np.testing.assert_allclose(a.ras_affine, b.ras_affine, atol=1e-4)
    assert a.echo_times_ms == b.echo_times_ms
    toks = identifying_tokens(scanner_cases / "dicom0")
    for t in ("Smithtoken", "PIDTOKEN77", "INSTTOKEN Hospital", "ADDRTOKEN Street 5"):
        assert t in toks
    assert "SIDEPIDTOKEN" in identifying_tokens(scanner_cases / "ph0")


def test_reader_session_shows_no_dicom_or_sidecar_identity(
    make_napari_viewer, scanner_cases, tmp_path, qtbot, monkeypatch, caplog
):
    from napari.utils.notifications import notification_manager
    from qtpy.QtWidgets import QMessageBox

    from test_gui_reader import (
        _all_texts,
        _assert_nothing_leaks,
        _dock,
        _read_case,
        _start,
        _truth_of,
    )

    monkeypatch.setattr(
        QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes)
    )
    caplog.set_level(logging.DEBUG)
    study = tmp_path / "study"
    assert (
        cli_main(
            [
                "study",
                "init",
                str(study),
                "--cases",
                str(scanner_cases / "cases.csv"),
                "--readers",
                "R1",
            ]
        )
        == 0
    )
    viewer = make_napari_viewer(show=True)
    rw, aw, _cw = _dock(viewer)
    n_notes = len(notification_manager.records)
    _start(rw, qtbot, study, "R1")
    seen: list[str] = []
    n_reads = len(rw.session.reads())
    assert n_reads == 4
    kinds = set()
    for _ in range(n_reads):
        seen += _all_texts(viewer)
        kinds.add(len(viewer.layers))
        # Anything logged during the session is redacted with the open case's tokens.
        planted = DICOM_TOKENS if _is_dicom(study, rw.pseudonym) else SIDECAR_TOKENS
        logging.getLogger("napari_m1.test").warning(
            "case folder holds %s", ", ".join(planted.values())
        )
        truth = _truth_of(study, "R1", rw.pseudonym)
        _read_case(
            rw,
            aw,
            qtbot,
            {"hypointensity": 1, "thinning": 0, "als_consistent": 1, "confidence": 3},
            truth,
        )
    seen += _all_texts(viewer)
    exports = _assert_nothing_leaks(rw, study, tmp_path, seen, n_notes, caplog, TOKENS)
    # not vacuous: the DICOM cases were shown (GRE layer) and measured
    assert any("M1-" in t for t in seen)
    assert "L_hand_caliper" in exports[1]
    logs = [r.getMessage() for r in caplog.records]
    assert sum("case folder holds [case]" in m for m in logs) == n_reads
