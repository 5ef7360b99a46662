"""The annotation protocol end to end in a real napari window: mouse clicks and drags on
the canvas, the "M1 annotation" and "M1 measurements" docks, CSV export, the CLI and
truth.json."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from qtpy.QtCore import QEvent, Qt
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication

from canvas_input import canvas_xy, send_mouse
from napari_m1._annotate import SHAPES_LAYER_NAME
from napari_m1._viewer import camera_of
from napari_m1.cli import main as cli_main

pytestmark = pytest.mark.gui


def _open(make_napari_viewer, case_dir, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1500, 950)
    _, cw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    cw.open_case(case_dir, block=True)
    _, aw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 annotation")
    mw = next(w for name, w in viewer.window.dock_widgets.items() if "M1 measurements" in name)
    return viewer, aw, mw


class Mouse:
    """Real Qt mouse events on napari's canvas, at world points."""

    def __init__(self, viewer, ctl):
        self.viewer, self.ctl = viewer, ctl
        self.canvas = viewer.window._qt_viewer.canvas

    def goto(self, ras, zoom=24.0):
        w = self.ctl.ras_to_world(ras)
        cam = camera_of(self.viewer)
        self.viewer.dims.set_point(1, w[0])
        cam.center = tuple(w)
        cam.zoom = zoom
        QApplication.processEvents()

    def xy(self, ras):
        return canvas_xy(self.viewer, self.ctl.ras_to_world(ras))

    def _send(self, typ, x, y, buttons):
        send_mouse(self.viewer, typ, x, y, Qt.MouseButton.LeftButton, buttons)

    def click(self, ras):
        x, y = self.xy(ras)
        self._send(QEvent.Type.MouseButtonPress, x, y, Qt.MouseButton.LeftButton)
        self._send(QEvent.Type.MouseButtonRelease, x, y, Qt.MouseButton.NoButton)
        QApplication.processEvents()

    def drag(self, ras1, ras2, steps=6):
        (x1, y1), (x2, y2) = self.xy(ras1), self.xy(ras2)
        self._send(QEvent.Type.MouseButtonPress, x1, y1, Qt.MouseButton.LeftButton)
        for t in np.linspace(0, 1, steps):
            self._send(
                QEvent.Type.MouseMove,
                x1 + t * (x2 - x1),
                y1 + t * (y2 - y1),
                Qt.MouseButton.LeftButton,
            )
            QTest.qWait(8)  # napari throttles mouse moves to one per 5 ms, as a real mouse
        self._send(QEvent.Type.MouseButtonRelease, x2, y2, Qt.MouseButton.NoButton)
        QApplication.processEvents()


def _rough_caliper(region):
    """A reader's rough line: starts 0.2 mm early, ends 0.3 mm late."""
    p1, p2 = (np.asarray(p, float) for p in region["caliper_ras_mm"])
    e = (p2 - p1) / np.linalg.norm(p2 - p1)
    return p1 - 0.2 * e, p2 + 0.3 * e


def _fill_protocol(viewer, aw, mw, truth, qtbot):
    ctl = aw.ctl
    mouse = Mouse(viewer, ctl)
    aw.area_spin.setValue(0.8)  # small ovals so the check against truth is pure tissue
    aw.place_button.setChecked(True)
    assert ctl.placing
    regions = {(r["area"], r["hemisphere"]): r for r in truth["regions"]}
    # the walk sweeps the slices once: area by area, both hemispheres together
    assert [ctl.protocol.slot(s).region for s in ctl.slot_order][:4] == ["foot"] * 4
    for slot in (ctl.protocol.slot(s) for s in ctl.slot_order):
        assert ctl.active == slot.id, "auto-advance should walk the checklist in order"
        if slot.id == "ref_precuneus_roi":
            target = truth["reference"]["centre_ras_mm"]
            mouse.goto(target)
            mouse.click(target)
            continue
        r = regions[(slot.region, slot.hemisphere)]
        if slot.kind == "roi":
            mouse.goto(r["centre_ras_mm"])
            mouse.click(r["centre_ras_mm"])
        else:
            p1, p2 = _rough_caliper(r)
            mouse.goto(r["centre_ras_mm"])
            mouse.drag(p1, p2)
            assert ctl.annset.get(slot.id) is not None, f"{slot.id} not drawn"
            # a caliper stays active until its profile is checked: accept the suggestion,
            # which advances to the next slot
            assert ctl.active == slot.id
            assert mw.accept_button.isEnabled(), mw.profile_label.text()
            qtbot.mouseClick(mw.accept_button, Qt.MouseButton.LeftButton)
            assert ctl.annset.get(slot.id).source == "suggested"
    assert ctl.annset.missing() == []


def test_fill_protocol_export_matches_cli_and_truth(
    make_napari_viewer, phantom_case, qtbot, tmp_path, shots
):
    truth = json.loads((phantom_case / "truth.json").read_text())
    viewer, aw, mw = _open(make_napari_viewer, phantom_case, qtbot)
    ctl = aw.ctl
    _fill_protocol(viewer, aw, mw, truth, qtbot)
    assert aw.progress.text().startswith("17 of 17")
    assert not ctl.hemisphere_warnings
    layer = viewer.layers[SHAPES_LAYER_NAME]
    assert len(layer.data) == 17
    assert sorted(layer.features["slot"]) == sorted(ctl.protocol.slot_ids)

    # screenshots of the finished protocol: hand knob with the active caliper's profile
    hand = next(r for r in truth["regions"] if r["area"] == "hand" and r["hemisphere"] == "L")
    ctl.active = "L_hand_caliper"
    Mouse(viewer, ctl).goto(hand["centre_ras_mm"], zoom=10.0)
    qtbot.wait(100)
    viewer.window.screenshot(str(shots / "annotation_done.png"), canvas_only=False)

    # export through the widget; recompute with the CLI from the autosaved annotations
    gui_csv = aw.export_csv(tmp_path / "gui.csv")
    cli_csv = tmp_path / "cli.csv"
    assert (
        cli_main(["measure", str(phantom_case), str(ctl.autosave_path), "--out", str(cli_csv)])
        == 0
    )
    # the npe2 writer (File > Save Selected Layers) writes the same table
    viewer.layers.selection = {layer}
    saved = viewer.layers.save(str(tmp_path / "writer.csv"), selected=True, plugin="napari-m1")
    assert saved == [str(tmp_path / "writer.csv")]
    writer_rows = list(csv.DictReader((tmp_path / "writer.csv").open()))
    gui_rows = list(csv.DictReader(gui_csv.open()))
    assert [r["slot"] for r in writer_rows] == [r["slot"] for r in gui_rows]
    assert [r["mean"] for r in writer_rows] == [r["mean"] for r in gui_rows]
    cli_rows = list(csv.DictReader(cli_csv.open()))
    assert len(gui_rows) == len(cli_rows) > 17
    for g, c in zip(gui_rows, cli_rows, strict=True):
        for k in g:
            if k != "exported_at_utc":
                assert g[k] == c[k], (k, g["slot"], g[k], c[k])

    # against truth.json
    rows = gui_rows
    ref_int = truth["reference"]["intensity"]
    for r in truth["regions"]:
        sid = f"{r['hemisphere']}_{r['area']}"
        cal = next(x for x in rows if x["slot"] == f"{sid}_caliper")
        assert float(cal["thickness_mm"]) == pytest.approx(r["deep_thickness_mm"], abs=0.1)
        for echo in (1, 2):
            roi = next(x for x in rows if x["slot"] == f"{sid}_roi" and x["echo"] == str(echo))
            # noise of a mean over n voxels (4 SD) plus 1 % for partial volume at the rim
            want = r["deep_intensity"][echo - 1]
            tol = 4 * truth["noise_sd"] / np.sqrt(float(roi["n_voxels"])) + 0.01 * want
            assert float(roi["mean"]) == pytest.approx(want, abs=tol)
            assert float(roi["normalised_si"]) == pytest.approx(want / ref_int[echo - 1], rel=0.1)
            assert float(roi["area_mm2"]) == pytest.approx(0.8)
            assert roi["hemisphere_from_affine"] == r["hemisphere"]
        qsm = next(x for x in rows if x["slot"] == f"{sid}_roi" and x["layer_kind"] == "qsm")
        assert float(qsm["chi_ppm"]) == pytest.approx(r["chi_ppm"], abs=0.01)
        ratio = next(x for x in rows if x["slot"] == f"{sid}_roi" and x["metabolite"] == "NAA/Cr")
        assert float(ratio["mean"]) > 0


def test_undo_redo_and_autosave_reload(make_napari_viewer, phantom_case, qtbot, tmp_path):
    truth = json.loads((phantom_case / "truth.json").read_text())
    viewer, aw, _mw = _open(make_napari_viewer, phantom_case, qtbot)
    ctl = aw.ctl
    mouse = Mouse(viewer, ctl)
    foot = next(r for r in truth["regions"] if r["area"] == "foot" and r["hemisphere"] == "L")
    aw.place_button.setChecked(True)
    mouse.goto(foot["centre_ras_mm"])
    mouse.click(foot["centre_ras_mm"])  # L_foot_roi, 4 mm² default
    roi = ctl.annset.get("L_foot_roi")
    assert roi.area_mm2 == pytest.approx(4.0)
    np.testing.assert_allclose(roi.centre_ras, foot["centre_ras_mm"], atol=0.05)
    p1, p2 = _rough_caliper(foot)
    mouse.drag(p1, p2)  # L_foot_caliper
    assert ctl.annset.done() == ["L_foot_roi", "L_foot_caliper"]

    # move the ROI with napari's own shape tools (select mode drag) -> one undoable edit
    layer = viewer.layers[SHAPES_LAYER_NAME]
    i = list(layer.features["slot"]).index("L_foot_roi")
    shifted = layer.data[i] + np.array([0.0, 2.0, 0.0])  # 2 rows of 0.25 mm: 0.5 mm
    layer.data = [shifted if j == i else d for j, d in enumerate(layer.data)]
    moved = ctl.annset.get("L_foot_roi")
    assert not np.allclose(moved.centre_ras, roi.centre_ras)
    assert np.linalg.norm(moved.centre_ras - roi.centre_ras) == pytest.approx(0.5, abs=1e-6)

    # delete through the widget, then undo/redo through the widget's buttons
    ctl.active = "L_foot_caliper"
    qtbot.mouseClick(aw.delete_button, Qt.MouseButton.LeftButton)
    assert "L_foot_caliper" not in ctl.annset
    assert len(layer.data) == 1
    qtbot.mouseClick(aw.undo_button, Qt.MouseButton.LeftButton)  # undo delete
    assert "L_foot_caliper" in ctl.annset and len(layer.data) == 2
    qtbot.mouseClick(aw.undo_button, Qt.MouseButton.LeftButton)  # undo move
    np.testing.assert_allclose(ctl.annset.get("L_foot_roi").centre_ras, roi.centre_ras)
    qtbot.mouseClick(aw.redo_button, Qt.MouseButton.LeftButton)  # redo move
    np.testing.assert_allclose(ctl.annset.get("L_foot_roi").centre_ras, moved.centre_ras)
    rows_before = [r for r in ctl.export_rows()]
    items_before = dict(ctl.annset.items)
    saved = ctl.autosave_path
    assert saved.is_file()

    # a new napari session on the same case restores the same geometry and numbers
    viewer.close()
    viewer2, aw2, _ = _open(make_napari_viewer, phantom_case, qtbot)
    ctl2 = aw2.ctl
    assert ctl2.autosave_path == saved
    assert ctl2.annset.items == items_before
    rows_after = ctl2.export_rows()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "exported_at_utc"} for r in rows]  # noqa: E731
    assert strip(rows_after) == strip(rows_before)
    assert len(viewer2.layers[SHAPES_LAYER_NAME].data) == 2


def test_hemisphere_check_and_wrong_shape(make_napari_viewer, phantom_case, qtbot):
    truth = json.loads((phantom_case / "truth.json").read_text())
    viewer, aw, _mw = _open(make_napari_viewer, phantom_case, qtbot)
    ctl = aw.ctl
    right_foot = next(
        r for r in truth["regions"] if r["area"] == "foot" and r["hemisphere"] == "R"
    )
    aw.place_button.setChecked(True)
    assert ctl.active == "L_foot_roi"
    mouse = Mouse(viewer, ctl)
    mouse.goto(right_foot["centre_ras_mm"])
    mouse.click(right_foot["centre_ras_mm"])  # an L slot placed in the right hemisphere
    assert "L_foot_roi" in ctl.hemisphere_warnings
    assert "right hemisphere" in ctl.hemisphere_warnings["L_foot_roi"]
    assert aw.checklist.item(0).text().startswith("⚠")
    rows = [r for r in ctl.export_rows() if r["slot"] == "L_foot_roi"]
    assert {r["hemisphere"] for r in rows} == {"L"}
    assert {r["hemisphere_from_affine"] for r in rows} == {"R"}
    # a zero-length caliper (a click in caliper mode) is refused, nothing is stored
    assert ctl.active == "L_foot_caliper"
    mouse.click(right_foot["centre_ras_mm"])
    assert "L_foot_caliper" not in ctl.annset


def test_docked_before_the_case_measures_every_map(make_napari_viewer, phantom_case, qtbot):
    """The annotation dock opened first: maps added with the case are measured too, and
    closing the case (removing its GRE) detaches the annotations."""
    viewer = make_napari_viewer(show=True)
    _, aw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 annotation")
    ctl = aw.ctl
    assert not ctl.has_case
    assert aw.progress.text() == "Open a case to start annotating."
    _, cw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    cw.open_case(phantom_case, block=True)
    assert ctl.has_case
    truth = json.loads((phantom_case / "truth.json").read_text())
    hand = next(r for r in truth["regions"] if r["area"] == "hand" and r["hemisphere"] == "R")
    ctl.place_roi_at(ctl.ras_to_world(hand["centre_ras_mm"]), slot="R_hand_roi")
    kinds = {(r["layer_kind"], r["metabolite"]) for r in ctl.export_rows()}
    assert ("qsm", None) in kinds and ("mrsi", "NAA/Cr") in kinds
    assert viewer.layers[-1].name == SHAPES_LAYER_NAME  # kept on top of the maps
    viewer.layers.remove("QSM χ (ppm)")
    assert ("qsm", None) not in {(r["layer_kind"], r["metabolite"]) for r in ctl.export_rows()}
    viewer.layers.remove("GRE magnitude")
    assert not ctl.has_case and SHAPES_LAYER_NAME not in viewer.layers


def test_placing_keeps_done_slots_pans_and_shows_state(make_napari_viewer, phantom_case, qtbot):
    """Issue 9.2/9.3/9.7: a click never moves a done slot (Shift-R re-places it), a drag
    pans while placing, the checklist jumps to an annotation, O shows on the Place button,
    outlines stay a few screen pixels wide, calipers carry their length, a scale bar."""
    from napari_m1._annotate._layer import EDGE_PX

    truth = json.loads((phantom_case / "truth.json").read_text())
    viewer, aw, _mw = _open(make_napari_viewer, phantom_case, qtbot)
    ctl = aw.ctl
    mouse = Mouse(viewer, ctl)
    cam = camera_of(viewer)
    canvas = viewer.window._qt_viewer.canvas.native
    foot = next(r for r in truth["regions"] if r["area"] == "foot" and r["hemisphere"] == "L")
    c = np.asarray(foot["centre_ras_mm"], float)
    assert viewer.scale_bar.visible

    qtbot.keyClick(canvas, Qt.Key.Key_O)  # the key, not the button: the button follows
    assert ctl.placing and aw.place_button.isChecked()
    mouse.goto(c)
    mouse.click(c)
    roi = ctl.annset.get("L_foot_roi")
    assert ctl.active == "L_foot_caliper"  # auto-advance after a ROI
    p1, p2 = _rough_caliper(foot)
    mouse.drag(p1, p2)
    cal = ctl.annset.get("L_foot_caliper")
    assert ctl.active == "L_foot_caliper"  # a caliper waits for its profile to be checked
    layer = viewer.layers[SHAPES_LAYER_NAME]
    labels = dict(zip(layer.features["slot"], layer.features["label"], strict=True))
    assert labels["L_foot_caliper"] == f"{cal.length_mm:.2f} mm"  # a length on the caliper
    assert labels["L_foot_roi"] == ""  # short labels: lengths only, nothing to overlap

    # back to the done ROI from the checklist: its slice and centre are shown
    mouse.goto(c + np.r_[0, 15.0, 0], zoom=10.0)  # look elsewhere first
    row = ctl.slot_order.index("L_foot_roi")
    qtbot.mouseClick(
        aw.checklist.viewport(),
        Qt.MouseButton.LeftButton,
        pos=aw.checklist.visualItemRect(aw.checklist.item(row)).center(),
    )
    assert ctl.active == "L_foot_roi"
    np.testing.assert_allclose(cam.center[-2:], ctl.ras_to_world(roi.centre_ras)[-2:], atol=1e-6)
    # a click next to it does NOT move the done ROI ...
    mouse.click(c + np.r_[1.5, 0, 0])
    assert ctl.annset.get("L_foot_roi") == roi
    # ... a drag pans the view and places nothing ...
    centre = tuple(cam.center)
    mouse.drag(c + np.r_[1.5, 0, 0], c + np.r_[3.0, 1.0, 0])
    assert ctl.annset.get("L_foot_roi") == roi and tuple(cam.center) != centre
    # ... Shift-R then a click re-places it (one undoable edit)
    qtbot.keyClick(canvas, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    mouse.goto(c)
    mouse.click(c + np.r_[1.0, 0, 0])
    np.testing.assert_allclose(
        ctl.annset.get("L_foot_roi").centre_ras, c + np.r_[1.0, 0, 0], atol=0.05
    )
    ctl.undo()
    assert ctl.annset.get("L_foot_roi") == roi
    qtbot.keyClick(canvas, Qt.Key.Key_O)
    assert not ctl.placing and not aw.place_button.isChecked()

    # outlines: EDGE_PX screen pixels at any zoom
    scale = float(layer.scale[-1])
    for zoom in (4.0, 12.0, 40.0):
        cam.zoom = zoom
        qtbot.wait(10)
        assert ctl.view.edge_width * zoom * scale == pytest.approx(EDGE_PX, rel=0.16)
        assert layer.edge_width[0] == pytest.approx(ctl.view.edge_width)
    # one programmatic move (accept the suggestion) replaces one shape, not the layer
    ctl.active = "L_foot_caliper"
    n = ctl.view.n_shape_updates
    assert ctl.accept_suggestion()
    assert ctl.view.n_shape_updates == n + 1
    assert ctl.active != "L_foot_caliper"  # accepted: on to the next slot
    # the layer-list thumbnail shows the shapes (redrawn on add/remove), while napari's
    # own per-move redraw of every shape's thumbnail is off
    real = getattr(layer, "__wrapped__", layer)
    assert real._allow_thumbnail_update is False
    assert np.asarray(layer.thumbnail)[..., :3].max() > 0
    # labels toggle (Shift-T): all, then off
    qtbot.keyClick(canvas, Qt.Key.Key_T, Qt.KeyboardModifier.ShiftModifier)
    assert aw.labels_box.currentData() == "all" and all(layer.features["label"])
    qtbot.keyClick(canvas, Qt.Key.Key_T, Qt.KeyboardModifier.ShiftModifier)
    assert not any(layer.features["label"])


def test_midline_set_by_one_click_drives_the_hemisphere_check(
    make_napari_viewer, phantom_case, qtbot, tmp_path
):
    """Issue 9.9: a head off centre — the reader clicks the fissure once; hemisphere
    checks and hemisphere_from_affine follow it; it is stored and undoable."""
    truth = json.loads((phantom_case / "truth.json").read_text())
    viewer, aw, _mw = _open(make_napari_viewer, phantom_case, qtbot)
    ctl = aw.ctl
    mouse = Mouse(viewer, ctl)
    foot = next(r for r in truth["regions"] if r["area"] == "foot" and r["hemisphere"] == "L")
    c = np.asarray(foot["centre_ras_mm"], float)
    near_mid = np.array([1.0, c[1], c[2]])  # 1 mm right of scanner x = 0
    mouse.goto(near_mid)
    ctl.place_roi_at(ctl.ras_to_world(near_mid), slot="L_foot_roi")
    assert "L_foot_roi" in ctl.hemisphere_warnings  # right of x = 0, an L slot
    assert "Midline: the scanner's x = 0" in aw.midline_label.text()
    qtbot.mouseClick(aw.midline_button, Qt.MouseButton.LeftButton)
    mouse.click(np.array([3.0, c[1], c[2]]))  # the fissure of a head 3 mm off centre
    assert ctl.midline_x_mm == pytest.approx(3.0, abs=0.13)
    assert "L_foot_roi" not in ctl.hemisphere_warnings
    assert aw.checklist.item(0).text().startswith("✓")
    assert "RAS x = 3.0 mm" in aw.midline_label.text()
    rows = [r for r in ctl.export_rows() if r["slot"] == "L_foot_roi"]
    assert {r["hemisphere_from_affine"] for r in rows} == {"L"}
    # stored with the annotations: a new session restores it
    from napari_m1.annotation import load_annotations

    stored = load_annotations(ctl.autosave_path, case=ctl.annset.case)
    assert stored.get("midline").centre_ras[0] == pytest.approx(ctl.midline_x_mm)
    ctl.undo()  # the midline is an ordinary undoable change
    assert ctl.midline_x_mm == 0.0 and "L_foot_roi" in ctl.hemisphere_warnings
