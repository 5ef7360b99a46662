"""A blinded reader session over MRSI cases whose MRS headers (NIfTI-MRS extensions, an
RDA) carry identity: nothing of it reaches the layers, metadata, docks (the spectrum dock
included), notifications, logs or exports (extends test_gui_reader's blinding test)."""

from __future__ import annotations

import logging

import pytest

from napari_m1.cli import main as cli_main

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_reader_session_shows_no_mrs_header_identity(
    make_napari_viewer, tmp_path, qtbot, monkeypatch, caplog
):
    from napari.utils.notifications import notification_manager
    from qtpy.QtWidgets import QMessageBox

    from napari_m1._mrsi_view import get_mrsi_view
    from napari_m1.phantom import write_phantom_case
    from test_gui_reader import (
        _all_texts,
        _assert_nothing_leaks,
        _dock,
        _read_case,
        _start,
        _truth_of,
    )
    from test_gui_spectrum import _world_of
    from test_mrs_privacy import MRS_HEADER, MRS_TOKENS, RDA_HEADER, plant_mrs_identity

    monkeypatch.setattr(
        QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes)
    )
    caplog.set_level(logging.DEBUG)
    root = tmp_path / "cases"
    rows = []
    for i in range(2):
        case = write_phantom_case(
            root / f"c{i}", "als" if i else "control", 20 + i, n_slices=16, label=f"K0{i}",
            with_mrs=True, mrs_noise=False,
        )  # fmt: skip
        plant_mrs_identity(case)
        rows.append(f"ID{i},{case}\n")
    (root / "cases.csv").write_text("case_id,path\n" + "".join(rows))
    study = tmp_path / "study"
    argv = ["study", "init", str(study), "--cases", str(root / "cases.csv"), "--readers", "R1"]
    assert cli_main(argv) == 0
    viewer = make_napari_viewer(show=True)
    rw, aw, _cw = _dock(viewer)
    _, sw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 spectrum")
    n_notes = len(notification_manager.records)
    _start(rw, qtbot, study, "R1")
    seen: list[str] = []
    shown = 0
    for _ in range(len(rw.session.reads())):
        names = [ly.name for ly in viewer.layers]
        assert "MRSI tNAA/tCr" in names  # the MRSI fit is part of the blinded case
        view = get_mrsi_view(viewer)
        assert view.blinded
        fit = view.source().fit
        qtbot.waitUntil(lambda: sw._loading is None, timeout=60_000)  # spectra read
        sw.show_voxel(view.voxel_at(_world_of(viewer, fit, (12, 12, 2))))  # data, fit, QC
        shown += int(sw.hit.ijk == (12, 12, 2) and len(sw.lines["data"].get_data()[0]) > 0)
        # anything logged during the session is redacted with the open case's tokens
        logging.getLogger("napari_m1.test").warning(
            "MRS headers hold %s; RDA %s",
            ", ".join(str(v) for v in MRS_HEADER.values()),
            ", ".join(RDA_HEADER.values()),
        )
        seen += _all_texts(viewer)
        truth = _truth_of(study, "R1", rw.pseudonym)
        answers = {"hypointensity": 1, "thinning": 0, "als_consistent": 1, "confidence": 3}
        with qtbot.capture_exceptions() as caught:
            _read_case(rw, aw, qtbot, answers, truth)
        _only_known_napari_paint_race(caught)
    seen += _all_texts(viewer)
    exports = _assert_nothing_leaks(rw, study, tmp_path, seen, n_notes, caplog, MRS_TOKENS)
    # not vacuous: spectra were shown, the MRSI rows were measured and exported, and the
    # planted values did pass through the logs (redacted)
    assert shown == 2
    assert "tNAA/tCr" in exports[1]
    assert any("MRS headers hold" in r.getMessage() for r in caplog.records)


def _only_known_napari_paint_race(caught) -> None:
    """Switching cases removes the MRSI layers; napari 0.9's layer-list delegate can then
    paint a stale row (``_paint_loading``: the row's size hint is None) and raise in the
    Qt event loop. That napari race is tolerated here (and reported); any other exception
    fails the test."""
    for _type, value, tb in caught:
        import traceback

        where = "".join(traceback.format_tb(tb))
        assert isinstance(value, AttributeError) and "_paint_loading" in where, (value, where)
