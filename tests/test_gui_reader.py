"""Blinded reader sessions in a real napari window: blinding, a full 2-reader study,
resume, locking."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractButton,
    QComboBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QTableWidget,
    QWidget,
)

from napari_m1.cli import main as cli_main
from napari_m1.phantom import write_phantom_case
from napari_m1.session import Study

pytestmark = pytest.mark.gui

TOKENS = ("CASEIDTOKEN", "FOLDERTOKEN", "FILETOKEN")
N_CASES = 6


@pytest.fixture(scope="module")
def study_cases(tmp_path_factory):
    """Six phantom cases (3 ALS, 3 control) whose ids, folders and files carry tokens."""
    root = tmp_path_factory.mktemp("cases")
    rows, clinical = [], []
    for i in range(N_CASES):
        group = "als" if i % 2 == 0 else "control"
        folder = root / f"FOLDERTOKEN{i}"
        write_phantom_case(folder, group, seed=10 + i, n_slices=16, label=f"FILETOKEN{i}")
        rows.append(f"CASEIDTOKEN{i},{folder.name}\n")
        clinical.append(f"CASEIDTOKEN{i},{group}\n")
    (root / "cases.csv").write_text("case_id,path\n" + "".join(rows))
    (root / "clinical.csv").write_text("case_id,group\n" + "".join(clinical))
    return root


def _new_study(study_cases, tmp_path, *extra):
    study = tmp_path / "study"
    assert (
        cli_main(
            [
                "study",
                "init",
                str(study),
                "--cases",
                str(study_cases / "cases.csv"),
                "--readers",
                "R1,R2",
                "--seed",
                "7",
                *extra,
            ]
        )
        == 0
    )
    return study


def _dock(viewer):
    _, rw = viewer.window.add_plugin_dock_widget("napari-m1", "Reader session")
    _, aw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 annotation")
    _, cw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    return rw, aw, cw


@pytest.fixture
def yes(monkeypatch):
    monkeypatch.setattr(
        QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes)
    )


def _start(rw, qtbot, study, reader):
    rw.study_edit.setText(str(study))
    rw.reader_edit.setText(reader)
    with qtbot.waitSignal(rw.case_opened, timeout=60_000):  # loads in a worker thread
        qtbot.mouseClick(rw.start_button, Qt.MouseButton.LeftButton)
    assert rw.session is not None and rw.session.reader == reader


def _click_and_wait(rw, qtbot, button):
    """Click a navigation button and wait until the case it opens is on screen."""
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not rw.loading, timeout=60_000)


def _read_case(rw, aw, qtbot, answers, truth):
    """Answer the form by clicking, place a ROI and a caliper, submit with the button."""
    for field, value in answers.items():
        qtbot.mouseClick(rw.groups[field].button(value), Qt.MouseButton.LeftButton)
    qtbot.keyClicks(rw.comment, "looked at both hand knobs")
    ctl = aw.ctl
    hand = next(r for r in truth["regions"] if r["area"] == "hand" and r["hemisphere"] == "L")
    ctl.place_roi_at(ctl.ras_to_world(hand["centre_ras_mm"]), slot="L_hand_roi")
    p1, p2 = hand["caliper_ras_mm"]
    ctl.place_caliper(ctl.ras_to_world(p1), ctl.ras_to_world(p2), slot="L_hand_caliper")
    _click_and_wait(rw, qtbot, rw.submit_button)


def _truth_of(study, reader, pseudonym):
    st = Study(study)
    try:
        path = next(
            r["path"] for r in st.reads() if r["reader"] == reader and r["pseudonym"] == pseudonym
        )
    finally:
        st.close()
    return json.loads((Path(path) / "truth.json").read_text())


def _all_texts(viewer) -> list[str]:
    win = viewer.window._qt_window
    out = [win.windowTitle(), viewer.title, str(viewer.status)]
    for w in win.findChildren(QWidget):
        out.append(w.toolTip())
        if isinstance(w, (QLabel, QAbstractButton)):
            out.append(w.text())
        elif isinstance(w, QLineEdit):
            out.append(w.text())
        elif isinstance(w, QPlainTextEdit):
            out.append(w.toPlainText())
        elif isinstance(w, QComboBox):
            out.extend(w.itemText(i) for i in range(w.count()))
        elif isinstance(w, QListWidget):
            out.extend(w.item(i).text() for i in range(w.count()))
        elif isinstance(w, QTableWidget):
            out.extend(
                w.item(r, c).text()
                for r in range(w.rowCount())
                for c in range(w.columnCount())
                if w.item(r, c) is not None
            )
    for ly in viewer.layers:
        out.append(ly.name)
        out.append(json.dumps(ly.metadata, default=str))
        if hasattr(ly, "features"):
            out.append(ly.features.to_csv())
    return out


def _assert_nothing_leaks(rw, study, tmp_path, seen, n_notes, caplog, tokens) -> list[str]:
    """Export the study, close the session, and check that no token appears in what the
    reader saw (``seen``), the notifications since ``n_notes``, the logs or the exports.
    Returns the exports' texts (readings, measurements)."""
    from napari.utils.notifications import notification_manager

    readings, meas = tmp_path / "readings.csv", tmp_path / "meas.csv"
    argv = ["study", "export", str(study), "--out", str(readings), "--measurements", str(meas)]
    assert cli_main(argv) == 0
    rw.close_session()
    exports = [readings.read_text(), meas.read_text()]
    haystack = {
        "widgets/layers/metadata": seen,
        "notifications": [str(n.message) for n in notification_manager.records[n_notes:]],
        "logs": [r.getMessage() for r in caplog.records],
        "exports": exports,
    }
    hits = {
        w: [t for t in texts if any(tok in t for tok in tokens)] for w, texts in haystack.items()
    }
    assert hits == {k: [] for k in haystack}, hits
    return exports


def test_blinding_no_identifier_anywhere(
    make_napari_viewer, study_cases, tmp_path, qtbot, yes, caplog
):
    from napari.utils.notifications import notification_manager

    caplog.set_level(logging.DEBUG)
    study = _new_study(study_cases, tmp_path, "--repeat-fraction", "0.34")
    viewer = make_napari_viewer(show=True)
    rw, aw, _cw = _dock(viewer)
    n_notes = len(notification_manager.records)
    _start(rw, qtbot, study, "R1")
    seen_texts: list[str] = []
    n_reads = len(rw.session.reads())
    assert n_reads == N_CASES + 2  # two hidden repeats
    for k in range(n_reads):
        assert rw.header.text().startswith(f"Case {k + 1} of {n_reads}")
        seen_texts += _all_texts(viewer)
        if k == 1:  # a bad action's message must be blinded too
            ctl = aw.ctl
            ctl.active = "L_foot_caliper"
            with pytest.raises(Exception, match="zero-length"):
                ctl.place_caliper([0, 0, 0], [0, 0, 0])
        truth = _truth_of(study, "R1", rw.pseudonym)
        _read_case(
            rw,
            aw,
            qtbot,
            {"hypointensity": 1, "thinning": 0, "als_consistent": 1, "confidence": 3},
            truth,
        )
    assert rw.header.text().startswith("All")
    seen_texts += _all_texts(viewer)
    viewer.window.screenshot(str(tmp_path / "reader_done.png"), canvas_only=False)
    # the reader's own exports (coordinator exports stay blinded too)
    exports = _assert_nothing_leaks(rw, study, tmp_path, seen_texts, n_notes, caplog, TOKENS)
    # and the scan is not vacuous: the pseudonyms and measurements are there
    assert any("M1-" in t for t in seen_texts)
    assert "L_hand_caliper" in exports[1]


def test_full_two_reader_study_resume_export_unblind(
    make_napari_viewer, study_cases, tmp_path, qtbot, yes
):
    study = _new_study(study_cases, tmp_path)
    answers_given: dict[tuple[str, str], int] = {}
    for reader in ("R1", "R2"):
        viewer = make_napari_viewer(show=True)
        rw, aw, _ = _dock(viewer)
        _start(rw, qtbot, study, reader)
        for k in range(N_CASES):
            if reader == "R1" and k == 3:
                # close napari mid-study (with an answer given but not submitted) and reopen
                qtbot.mouseClick(rw.groups["hypointensity"].button(0), Qt.MouseButton.LeftButton)
                pseud = rw.pseudonym
                rw.close_session()
                viewer.close()
                viewer = make_napari_viewer(show=True)
                rw, aw, _ = _dock(viewer)
                _start(rw, qtbot, study, reader)
                assert rw.pseudonym == pseud
                assert rw.header.text().startswith("Case 4 of 6")
                assert rw.groups["hypointensity"].checkedId() == 0
            truth = _truth_of(study, reader, rw.pseudonym)
            # R1 calls ALS right every time; R2 calls everything positive
            call = int(truth["group"] == "als") if reader == "R1" else 1
            answers_given[(reader, rw.pseudonym)] = call
            _read_case(
                rw,
                aw,
                qtbot,
                {"hypointensity": call, "thinning": call, "als_consistent": call, "confidence": 4},
                truth,
            )
        assert rw.header.text().startswith("All 6 cases submitted")
        rw.close_session()
        viewer.close()

    readings = tmp_path / "readings.csv"
    meas = tmp_path / "measurements.csv"
    unbl = tmp_path / "unblinded.csv"
    assert (
        cli_main(
            ["study", "export", str(study), "--out", str(readings), "--measurements", str(meas)]
        )
        == 0
    )
    assert (
        cli_main(
            [
                "study",
                "unblind",
                str(study),
                "--key",
                str(study_cases / "cases.csv"),
                "--clinical",
                str(study_cases / "clinical.csv"),
                "--out",
                str(unbl),
            ]
        )
        == 0
    )
    assert cli_main(["study", "verify", str(study)]) == 0
    rows = list(csv.DictReader(unbl.open()))
    assert len(rows) == 2 * N_CASES
    assert {r["status"] for r in rows} == {"submitted"}
    for r in rows:
        assert int(r["als_consistent"]) == answers_given[(r["reader"], r["pseudonym"])]
        if r["reader"] == "R1":  # R1 was always right: unblinding must map back correctly
            assert int(r["als_consistent"]) == int(r["group"] == "als")
        assert r["comment"] == "looked at both hand knobs"
        assert float(r["active_time_s"]) >= 0
    assert "case_id" not in readings.read_text().splitlines()[0]
    m = list(csv.DictReader(meas.open()))
    cal = [x for x in m if x["slot"] == "L_hand_caliper"]
    assert len(cal) == 2 * N_CASES
    assert {x["case_label"] for x in cal} <= {r["pseudonym"] for r in rows}
    assert all(
        float(x["thickness_mm"]) in (pytest.approx(1.5, abs=0.01), pytest.approx(2.0, abs=0.01))
        for x in cal
    )


def test_locked_read_is_refused_and_logged(make_napari_viewer, study_cases, tmp_path, qtbot, yes):
    study = _new_study(study_cases, tmp_path, "--allow-back")
    viewer = make_napari_viewer(show=True)
    rw, aw, _ = _dock(viewer)
    _start(rw, qtbot, study, "R2")
    first = rw.pseudonym
    truth = _truth_of(study, "R2", first)
    _read_case(
        rw,
        aw,
        qtbot,
        {"hypointensity": 0, "thinning": 0, "als_consistent": 0, "confidence": 5},
        truth,
    )
    assert rw.pseudonym != first
    _click_and_wait(rw, qtbot, rw.prev_button)  # back-navigation allowed
    assert rw.pseudonym == first
    assert not rw.form_box.isEnabled() and not rw.submit_button.isEnabled()
    assert "locked" in rw.state_label.text()
    ctl = aw.ctl
    before = dict(ctl.annset.items)
    foot = next(r for r in truth["regions"] if r["area"] == "foot" and r["hemisphere"] == "L")
    with pytest.raises(Exception, match="submitted and locked"):
        ctl.place_roi_at(ctl.ras_to_world(foot["centre_ras_mm"]), slot="L_foot_roi")
    assert ctl.annset.items == before
    with pytest.raises(Exception, match="locked"):
        rw.session.set_answer(first, "confidence", 1)
    st = Study(study)
    events = [(a["event"], a["pseudonym"]) for a in st.audit_rows()]
    st.close()
    assert events.count(("refused", first)) == 2, [e for e in events if e[1] == first][-6:]
    # the refused ROI never reached the display either
    assert "L_foot_roi" not in list(viewer.layers["M1 annotations"].features["slot"])
    rw.close_session()
    np.testing.assert_equal(len(before), 2)
    shutil.rmtree(study)


def test_dock_messages_one_at_a_time_and_incomplete_protocol_asks(
    make_napari_viewer, study_cases, tmp_path, qtbot, monkeypatch, shots
):
    study = _new_study(study_cases, tmp_path)
    asked: list[str] = []

    def question(parent, title, text, *a, **k):
        asked.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    viewer = make_napari_viewer(show=True)
    rw, _aw, _ = _dock(viewer)
    _start(rw, qtbot, study, "R1")
    first = rw.pseudonym
    qtbot.mouseClick(rw.submit_button, Qt.MouseButton.LeftButton)  # nothing answered
    assert "Answer hypointensity, thinning, als consistent, confidence" in rw.message_label.text()
    for field, value in {"hypointensity": 1, "thinning": 1, "als_consistent": 1,
                         "confidence": 3}.items():  # fmt: skip
        qtbot.mouseClick(rw.groups[field].button(value), Qt.MouseButton.LeftButton)
    qtbot.mouseClick(rw.submit_button, Qt.MouseButton.LeftButton)  # no ROI placed at all
    (text,) = asked
    assert text.startswith("17 protocol slot(s) are not annotated:") and "L_hand_roi" in text
    assert rw.pseudonym == first and not rw.session.is_locked(first)  # the reader said no
    _click_and_wait(rw, qtbot, rw.next_button)
    assert rw.message_label.text() == ""  # the old error stayed with the old case
    for _ in range(N_CASES - 2):
        _click_and_wait(rw, qtbot, rw.next_button)
    assert rw.header.text().startswith(f"Case {N_CASES} of {N_CASES}")
    qtbot.mouseClick(rw.next_button, Qt.MouseButton.LeftButton)
    msg = rw.message_label.text()
    assert "This is the last case of your list." in msg and "Not submitted yet: case 1," in msg
    assert "in progress" in rw.state_label.text() and "All" not in rw.header.text()
    viewer.window.screenshot(str(shots / "reader-last-case.png"), canvas_only=False)
    rw.close_session()


def test_dock_keeps_an_answer_the_database_refuses_and_retries(
    make_napari_viewer, study_cases, tmp_path, qtbot, shots
):
    from sqlalchemy import event

    study = _new_study(study_cases, tmp_path)
    viewer = make_napari_viewer(show=True)
    rw, _aw, _ = _dock(viewer)
    _start(rw, qtbot, study, "R2")
    p = rw.pseudonym
    engine = rw.session._store._db.engine

    def read_only(dbapi_conn, record):  # SQLite refuses every write: SQLITE_READONLY
        dbapi_conn.execute("PRAGMA query_only = ON")

    event.listen(engine, "connect", read_only)
    engine.dispose()
    qtbot.mouseClick(rw.groups["confidence"].button(5), Qt.MouseButton.LeftButton)
    msg = rw.message_label.text()
    assert "Not saved: the study database study.sqlite is read-only" in msg
    assert "kept on screen and retried" in msg
    assert rw.groups["confidence"].checkedId() == 5  # the answer stays on screen
    qtbot.mouseClick(rw.next_button, Qt.MouseButton.LeftButton)
    assert rw.pseudonym == p and "not saved yet" in rw.message_label.text()
    viewer.window.screenshot(str(shots / "reader-readonly.png"), canvas_only=False)
    event.remove(engine, "connect", read_only)
    engine.dispose()
    qtbot.waitUntil(lambda: not rw.reader_ctl.pending, timeout=15_000)  # the 5 s retry
    assert rw.message_label.text().count("Saved") == 1
    assert rw.session.answers(p)["confidence"] == 5
    rw.close_session()


@pytest.mark.parametrize("hidden", [True, False])
def test_study_setting_hides_live_numbers_from_the_reader(
    make_napari_viewer, study_cases, tmp_path, qtbot, hidden
):
    study = _new_study(study_cases, tmp_path, *(["--hide-numbers"] if hidden else []))
    viewer = make_napari_viewer(show=True)
    rw, _aw, _ = _dock(viewer)
    _, mw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 measurements")
    _start(rw, qtbot, study, "R1")
    assert mw.hide_numbers is hidden
    assert mw.tabs.isVisible() is not hidden  # the tables with the numbers
    _click_and_wait(rw, qtbot, rw.next_button)
    assert mw.hide_numbers is hidden
    rw.close_session()
    assert mw.hide_numbers is False


@pytest.mark.parametrize("screen", [(1920, 1080), (1366, 768)], ids=["1920x1080", "1366x768"])
def test_reader_layout_fits_the_screen(
    make_napari_viewer, study_cases, tmp_path, qtbot, shots, screen
):
    """The reader's layout -- the Reader session dock beside the M1 workstation -- fits
    the screen: at 1920x1080 the form, Submit/Next, the annotation buttons, the summary
    and the sliders are all on screen without scrolling; at 1366x768 the session dock is
    whole and the workstation's parts are reached by scrolling its tab. The GRE is the
    selected layer."""
    from qtpy.QtCore import QPoint
    from qtpy.QtWidgets import QScrollArea

    w, h = screen
    study = _new_study(study_cases, tmp_path)
    viewer = make_napari_viewer(show=True)
    _, rw = viewer.window.add_plugin_dock_widget("napari-m1", "Reader session")
    _, ws = viewer.window.add_plugin_dock_widget("napari-m1", "M1 workstation")
    win = viewer.window._qt_window
    win.resize(w, h)
    assert win.minimumSizeHint().height() <= h, win.minimumSizeHint()
    _start(rw, qtbot, study, "R1")
    qtbot.waitUntil(lambda: not rw.loading, timeout=60_000)
    assert (win.width(), win.height()) == (w, h)
    aw = ws.annotation
    truth = _truth_of(study, "R1", rw.pseudonym)
    answers = {"hypointensity": 1, "thinning": 1, "als_consistent": 1, "confidence": 4}
    for field, value in answers.items():
        qtbot.mouseClick(rw.groups[field].button(value), Qt.MouseButton.LeftButton)
    assert {k: rw.reader_ctl.answers()[k] for k in answers} == answers
    ctl = aw.ctl
    hand = next(r for r in truth["regions"] if r["area"] == "hand" and r["hemisphere"] == "L")
    ctl.place_roi_at(ctl.ras_to_world(hand["centre_ras_mm"]), slot="L_hand_roi")
    p1, p2 = hand["caliper_ras_mm"]
    ctl.place_caliper(ctl.ras_to_world(p1), ctl.ras_to_world(p2), slot="L_hand_caliper")
    qtbot.wait(200)

    def scroll_area(wdg):
        p = wdg.parent()
        while p is not None and not isinstance(p, QScrollArea):
            p = p.parent()
        return p

    def on_screen(wdg) -> bool:
        if not wdg.isVisible():
            return False
        c = wdg.mapTo(win, QPoint(wdg.width() // 2, wdg.height() // 2))
        if not win.rect().contains(c):
            return False
        area = scroll_area(wdg)
        if area is None:
            return True
        vp = area.viewport()
        return vp.rect().contains(wdg.mapTo(vp, QPoint(wdg.width() // 2, wdg.height() // 2)))

    session = {"Submit": rw.submit_button, "Next": rw.next_button, "form": rw.form_box}
    session.update({f"{f} answer": g.button(1) for f, g in rw.groups.items()})
    workstation = {
        "Place": aw.place_button,
        "Next missing": aw.next_button,
        "Undo": aw.undo_button,
        "summary": ws.measurements.summary,
    }
    viewer.window.screenshot(str(shots / f"reader-session-{w}x{h}.png"), canvas_only=False)
    off = [n for n, wdg in session.items() if not on_screen(wdg)]
    assert off == [], f"session dock not whole at {w}x{h}: {off}"
    off = [n for n, wdg in workstation.items() if not on_screen(wdg)]
    if w == 1920:
        assert off == [], f"not visible at 1920x1080: {off}"
    for name, wdg in workstation.items():  # smaller screens: a scroll, nothing lost
        area = scroll_area(wdg)
        if area is not None:
            area.ensureWidgetVisible(wdg)
            qtbot.wait(20)
        assert on_screen(wdg), name
    sliders = [s for s in viewer.window._qt_viewer.dims.slider_widgets if s.isVisible()]
    assert len(sliders) == 2 and all(on_screen(s) for s in sliders)
    assert viewer.layers.selection.active.name == "GRE magnitude"
    rw.close_session()
