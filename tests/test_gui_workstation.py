"""The "M1 workstation" dock in a real napari window: fits small screens, reads the image
(slice keys, window/level drag, per-echo contrast, hover readout, MinIP, side by side,
orthogonal views) and summarises the measurements; real Qt mouse and key events."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qtpy.QtCore import QEvent, QPoint, Qt
from qtpy.QtGui import QKeyEvent
from qtpy.QtWidgets import QApplication

from canvas_input import canvas_xy, send_mouse
from napari_m1._qt.measurement_widget import fmt_number, set_numbers_hidden
from napari_m1._reading import get_reading_tools
from napari_m1._viewer import camera_of, reference_layer

pytestmark = pytest.mark.gui

SCREENS = {"1920x1080": (1920, 1080), "1366x768": (1366, 768)}


def _workstation(make_napari_viewer, case_dir, size=(1920, 1080)):
    viewer = make_napari_viewer(show=True)
    _, ws = viewer.window.add_plugin_dock_widget("napari-m1", "M1 workstation")
    ws.case.open_case(case_dir, block=True)
    viewer.window._qt_window.resize(*size)
    _settle()
    return viewer, ws


def _settle(n=5):
    for _ in range(n):
        QApplication.processEvents()


class User:
    """Real Qt input on napari's canvas and widgets; counts the reader's actions."""

    def __init__(self, viewer, ctl=None):
        self.viewer, self.ctl = viewer, ctl
        self.canvas = viewer.window._qt_viewer.canvas
        self.actions: list[str] = []

    def xy(self, world3):
        """Canvas pixel (integer, as a real mouse) of a 3D world point on the shown slice."""
        x, y = canvas_xy(self.viewer, world3)
        return round(x), round(y)

    def ras_xy(self, ras):
        return self.xy(self.ctl.ras_to_world(ras))

    def _send(self, typ, x, y, button, buttons):
        send_mouse(self.viewer, typ, x, y, button, buttons)

    def move(self, x, y):
        self._send(QEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
        _settle(1)

    def click(self, x, y, what="click"):
        self.actions.append(what)
        left = Qt.MouseButton.LeftButton
        self._send(QEvent.Type.MouseButtonPress, x, y, left, left)
        self._send(QEvent.Type.MouseButtonRelease, x, y, left, Qt.MouseButton.NoButton)
        _settle(1)

    def drag(self, p1, p2, button=Qt.MouseButton.LeftButton, what="drag", steps=6):
        self.actions.append(what)
        (x1, y1), (x2, y2) = p1, p2
        self._send(QEvent.Type.MouseButtonPress, x1, y1, button, button)
        for t in np.linspace(0, 1, steps)[1:]:
            self._send(
                QEvent.Type.MouseMove,
                round(x1 + t * (x2 - x1)),
                round(y1 + t * (y2 - y1)),
                Qt.MouseButton.NoButton,
                button,
            )
            _settle(1)
        self._send(QEvent.Type.MouseButtonRelease, x2, y2, button, Qt.MouseButton.NoButton)
        _settle(1)

    def key(self, key, what=None):
        """A key press and release on the canvas (napari's keybinding dispatch)."""
        self.actions.append(what or Qt.Key(key).name.removeprefix("Key_"))
        native = self.canvas.native
        for typ in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(native, QKeyEvent(typ, key, Qt.KeyboardModifier.NoModifier))
        _settle(1)

    def button(self, qtbot, widget, what):
        """A real click on a Qt button, which must be on screen (scrolled to if needed)."""
        if not _on_screen(widget):
            self.actions.append(f"scroll to {what}")
            _scroll_to(widget)
        assert _on_screen(widget), f"{what}: button not on screen"
        self.actions.append(what)
        qtbot.mouseClick(widget, Qt.MouseButton.LeftButton)
        _settle(1)


def _scroll_area_of(widget):
    from qtpy.QtWidgets import QScrollArea

    p = widget.parent()
    while p is not None and not isinstance(p, QScrollArea):
        p = p.parent()
    return p


def _scroll_to(widget):
    area = _scroll_area_of(widget)
    if area is not None:
        area.ensureWidgetVisible(widget)
        _settle(1)


def _on_screen(widget):
    """The widget is shown and its centre lies inside the window (and its scroll viewport)."""
    if not widget.isVisible():
        return False
    win = widget.window()
    centre = widget.mapTo(win, QPoint(widget.width() // 2, widget.height() // 2))
    if not win.rect().contains(centre):
        return False
    area = _scroll_area_of(widget)
    if area is not None:
        vp = area.viewport()
        c = widget.mapTo(vp, QPoint(widget.width() // 2, widget.height() // 2))
        return vp.rect().contains(c)
    return True


# ---------------------------------------------------------------------- layout
@pytest.mark.parametrize("screen", list(SCREENS))
def test_everything_reachable_on_small_screens(make_napari_viewer, phantom_case, screen, shots):
    viewer, ws = _workstation(make_napari_viewer, phantom_case, SCREENS[screen])
    win = viewer.window._qt_window
    # The three docks' content in one dock: the window can shrink well below the screen
    # (it could not below 1487 px with the case, annotation and measurement docks stacked).
    min_h = win.minimumSizeHint().height()
    assert min_h <= 600, min_h
    w, h = SCREENS[screen]
    assert (win.width(), win.height()) == (w, h)
    aw, mw = ws.annotation, ws.measurements
    needed = {
        "Place": aw.place_button,
        "Next": aw.next_button,
        "Undo": aw.undo_button,
        "Export": aw.export_button,
        "Accept": mw.accept_button,
        "summary": mw.summary,
    }
    qt_dims = viewer.window._qt_viewer.dims
    sliders = [s for s in qt_dims.slider_widgets if s.isVisible()]
    assert len(sliders) == 2  # echo and slice
    for s in sliders:
        assert _on_screen(s)
    assert _on_screen(ws.positions.status)
    off = [name for name, wdg in needed.items() if not _on_screen(wdg)]
    if screen == "1920x1080":
        assert off == [], f"not visible without scrolling: {off}"
    for name, wdg in needed.items():  # at 1366x768 some need a scroll, none is lost
        _scroll_to(wdg)
        assert _on_screen(wdg), name
    viewer.window.screenshot(str(shots / f"workstation_{screen}.png"), canvas_only=False)


# ---------------------------------------------------------------------- reading
def test_slice_keys_positions_in_mm_and_te(make_napari_viewer, phantom_case):
    viewer, ws = _workstation(make_napari_viewer, phantom_case)
    user = User(viewer)
    ref = reference_layer(viewer)
    assert viewer.layers.selection.active is ref  # the GRE, not a hidden MRSI map
    dims = viewer.dims
    k0 = dims.current_step[1]
    user.key(Qt.Key.Key_Up)
    assert dims.current_step[1] == k0 + 1
    user.key(Qt.Key.Key_PageDown)
    assert dims.current_step[1] == k0 - 4
    user.key(Qt.Key.Key_Down)
    assert dims.current_step[1] == k0 - 5
    user.key(Qt.Key.Key_PageUp)
    assert dims.current_step[1] == k0
    z = ref.translate[1] + ref.scale[1] * k0  # world S-I = RAS z for this axial case
    pos = ws.positions
    assert pos.slider_text(1) == f"S {z:.1f} mm"
    assert pos._slider_labels[1].text() == f"S {z:.1f} mm"
    assert f"slice {k0 + 1}/16" in pos.status.text() and f"S {z:.1f} mm" in pos.status.text()
    dims.set_current_step(0, 1)  # second echo
    assert pos._slider_labels[0].text() == "echo 2/2 · TE 20 ms"
    assert "echo 2/2 · TE 20 ms" in pos.status.text()


def test_window_level_drag_per_echo_and_hover_readout(make_napari_viewer, phantom_case):
    viewer, ws = _workstation(make_napari_viewer, phantom_case)
    tools = get_reading_tools(viewer)
    gre = reference_layer(viewer)
    user = User(viewer, ws.annotation.ctl)
    viewer.dims.set_current_step(0, 0)  # echo 1
    lim1 = tuple(gre.contrast_limits)
    assert lim1 == pytest.approx(tools.echo_limits(gre)[0])
    viewer.dims.set_current_step(0, 1)
    lim2 = tuple(gre.contrast_limits)
    assert lim2 != pytest.approx(lim1)  # each echo its own window
    viewer.dims.set_current_step(0, 0)

    # right-drag 120 px right and 60 px down: wider window, higher level
    w, h = user.canvas.native.width(), user.canvas.native.height()
    zoom = camera_of(viewer).zoom
    user.drag((w // 2, h // 2), (w // 2 + 120, h // 2 + 60), button=Qt.MouseButton.RightButton)
    lo, hi = gre.contrast_limits
    span = gre.contrast_limits_range[1] - gre.contrast_limits_range[0]
    assert hi - lo == pytest.approx((lim1[1] - lim1[0]) + 120 * span / 600, rel=0.02)
    assert (hi + lo) / 2 == pytest.approx((lim1[1] + lim1[0]) / 2 + 60 * span / 600, rel=0.02)
    assert camera_of(viewer).zoom == pytest.approx(zoom)  # the drag did not zoom
    dragged = tuple(gre.contrast_limits)
    viewer.dims.set_current_step(0, 1)
    assert tuple(gre.contrast_limits) == pytest.approx(lim2)
    viewer.dims.set_current_step(0, 0)
    assert tuple(gre.contrast_limits) == pytest.approx(dragged)  # echo 1 kept its window

    # hover over the left hand ROI centre: every visible map's value with units
    truth = json.loads((phantom_case / "truth.json").read_text())
    hand = next(r for r in truth["regions"] if r["area"] == "hand" and r["hemisphere"] == "L")
    ctl = ws.annotation.ctl
    world = ctl.ras_to_world(hand["centre_ras_mm"])
    viewer.dims.set_point(1, world[0])
    qsm = viewer.layers["QSM χ (ppm)"]
    qsm.visible = True
    viewer.layers.selection.active = viewer.layers["M1 annotations"]  # a shapes layer active
    _settle()
    user.move(*user.xy(world))
    text = tools.readout_text
    cursor = np.asarray(viewer.cursor.position)  # where the (integer-pixel) mouse is
    assert np.linalg.norm(cursor[1:] - world) < 0.5
    idx = tuple(int(i) for i in np.floor(gre.world_to_data(cursor) + 0.5))
    want_gre = float(gre.data[idx])
    assert f"GRE magnitude e1: {fmt_number(want_gre, 'g3')} a.u." in text, text
    q_idx = tuple(int(i) for i in np.floor(qsm.world_to_data(cursor[1:]) + 0.5))
    want_chi = 1000 * float(qsm.data[q_idx])
    assert f"QSM χ: {want_chi:.0f} ppb" in text, text
    assert "RAS (" in text and text.rstrip().endswith("L")
    assert viewer.canvas.overlays["m1_readout"].text == text
    # no box: napari relinks a boxed overlay's shader on each text change (every mouse move)
    assert viewer.canvas.overlays["m1_readout"].box is False


def test_minip_side_by_side_and_orthogonal_views(make_napari_viewer, phantom_case, qtbot, shots):
    viewer, ws = _workstation(make_napari_viewer, phantom_case)
    gre = reference_layer(viewer)
    view = ws.view
    single = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    view.minip_slices.setValue(5)
    view.minip_box.setChecked(True)
    _settle()
    assert gre.projection_mode == "min"
    assert viewer.dims.thickness[1] == pytest.approx(5 * gre.scale[1])
    minip = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    tissue = single.mean(axis=-1) > 20
    # the minimum over 5 (noisy) slices is darker than one slice
    assert minip[tissue].mean() < single[tissue].mean() - 1
    view.minip_box.setChecked(False)
    assert gre.projection_mode == "none"

    viewer.layers["MRSI NAA"].visible = True
    order = [ly.name for ly in viewer.layers]
    view.side_button.setChecked(True)
    _settle()
    qsm = viewer.layers["QSM χ (ppm)"]
    assert viewer.grid.enabled and qsm.visible and not viewer.layers["MRSI NAA"].visible
    grid, layers = viewer.canvas.grid, viewer.layers
    cells = {ly.name: grid.position(i, layers) for i, ly in enumerate(layers)}
    assert grid.actual_shape(layers) == (1, 2)
    assert cells["GRE magnitude"] == cells["M1 annotations"] != cells["QSM χ (ppm)"]
    viewer.window.screenshot(str(shots / "side_by_side.png"), canvas_only=False)
    img = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(float)
    left, right = img[:, : img.shape[1] // 2], img[:, img.shape[1] // 2 :]
    colour = lambda a: np.abs(a[..., 2] - a[..., 0]).mean()  # noqa: E731
    assert colour(right) > 5 * max(colour(left), 0.5)  # QSM (blue-red) beside grey GRE
    view.side_button.setChecked(False)
    assert not viewer.grid.enabled
    assert [ly.name for ly in viewer.layers] == order
    assert viewer.layers["MRSI NAA"].visible and not qsm.visible
    viewer.layers["MRSI NAA"].visible = False

    pytest.importorskip("napari_orthogonal_views")
    from napari_orthogonal_views.ortho_view_manager import _get_manager
    from napari_orthogonal_views.ortho_view_widget import OrthoViewWidget

    ws.tabs.setCurrentIndex(2)  # "View"
    _settle()
    assert _on_screen(view.ortho_button)
    qtbot.mouseClick(view.ortho_button, Qt.MouseButton.LeftButton)
    _settle(10)
    m = _get_manager(viewer)
    assert m.is_shown() and view.ortho_button.isChecked()
    assert isinstance(m.right_widget, OrthoViewWidget)
    side = m.right_widget.vm_container.viewer_model
    assert "GRE magnitude" in [ly.name for ly in side.layers]
    viewer.dims.set_point(1, viewer.dims.point[1] + 4)  # linked: the side view follows
    _settle()
    assert side.dims.point[1] == pytest.approx(viewer.dims.point[1])
    viewer.window.screenshot(str(shots / "orthogonal_views.png"), canvas_only=False)
    qtbot.mouseClick(view.ortho_button, Qt.MouseButton.LeftButton)
    _settle()
    assert not m.is_shown()


# ---------------------------------------------------------------------- measurements
def test_summary_precision_incremental_table_and_profile(make_napari_viewer, phantom_case):
    viewer, ws = _workstation(make_napari_viewer, phantom_case)
    ctl, mw = ws.annotation.ctl, ws.measurements
    truth = json.loads((phantom_case / "truth.json").read_text())
    regions = {(r["area"], r["hemisphere"]): r for r in truth["regions"]}
    ctl.auto_advance = False
    for (area, hemi), r in regions.items():
        ctl.place_roi_at(ctl.ras_to_world(r["centre_ras_mm"]), slot=f"{hemi}_{area}_roi")
        p1, p2 = (ctl.ras_to_world(p) for p in r["caliper_ras_mm"])
        ctl.place_caliper(p1, p2, slot=f"{hemi}_{area}_caliper")
    ctl.place_roi_at(
        ctl.ras_to_world(truth["reference"]["centre_ras_mm"]), slot="ref_precuneus_roi"
    )
    rows = ctl.export_rows()
    echo = mw.current_echo()
    assert echo == 2
    summary = {(s["area"], s["hemisphere"]): s for s in mw.summary_rows()}
    assert len(summary) == 8
    for (area, hemi), _r in regions.items():
        sid = f"{hemi}_{area}"
        s = summary[(area, hemi)]
        gre = next(x for x in rows if x["slot"] == f"{sid}_roi" and x["echo"] == echo)
        qsm = next(x for x in rows if x["slot"] == f"{sid}_roi" and x["layer_kind"] == "qsm")
        cal = next(x for x in rows if x["slot"] == f"{sid}_caliper")
        ratio = next(x for x in rows if x["slot"] == f"{sid}_roi" and x["metabolite"] == "NAA/Cr")
        assert s["norm_si"] == pytest.approx(gre["normalised_si"])
        assert s["chi_ppb"] == pytest.approx(1000 * qsm["chi_ppm"])
        assert s["thickness_mm"] == pytest.approx(cal["thickness_mm"])
        assert s["ratio"] == pytest.approx(ratio["mean"]) and s["ratio_name"] == "NAA/Cr"
    # what the reader sees: one row per area and side, units in the headers, no "0.0"
    headers = [mw.summary.horizontalHeaderItem(j).text() for j in range(5)]
    assert headers == ["Area", "Norm SI e2", "Thick mm", "χ ppb", "NAA/Cr"]
    row = next(iter(summary))
    i = list(summary).index(row)
    cells = [mw.summary.item(i, j).text() for j in range(5)]
    s = summary[row]
    assert cells == [
        f"{row[0]} {row[1]}",
        f"{s['norm_si']:.2f}",
        f"{s['thickness_mm']:.2f}",
        f"{s['chi_ppb']:.0f}",
        f"{s['ratio']:.2f}",
    ]
    assert fmt_number(0.045, "g3") == "0.0450"
    assert abs(s["chi_ppb"]) >= 1  # χ of tens of ppb is shown as such, never as 0.0

    # the full long table: one click away
    mw.tabs.setCurrentIndex(1)
    assert mw.table.rowCount() == len(rows)
    assert mw.tabs.tabText(1) == f"All rows ({len(rows)})"
    qsm_i = next(i for i, x in enumerate(rows) if x["layer_kind"] == "qsm")
    assert mw.table.item(qsm_i, 1).text() == "QSM χ ppm"
    assert mw.table.item(qsm_i, 2).text() == fmt_number(rows[qsm_i]["mean"], "g3")
    assert mw.table.item(qsm_i, 2).text() not in ("0.0", "-0.0", "0")

    # an edit of one ROI rewrites only that ROI's cells; other items are untouched
    keep = [mw.table.item(i, 2) for i in range(mw.table.rowCount())]
    draws = mw.profile_draws
    ctl.active = "L_hand_caliper"
    assert mw.profile_draws == draws + 1  # new caliper: redrawn
    draws = mw.profile_draws
    hand = regions[("hand", "R")]
    moved = np.add(hand["centre_ras_mm"], (0.3, 0.0, 0.0))
    ctl.place_roi_at(ctl.ras_to_world(moved), slot="R_hand_roi")
    n_slot_rows = sum(1 for x in rows if x["slot"] == "R_hand_roi")
    assert 0 < mw.table.cells_written <= n_slot_rows * len(mw.table._keys[0]) * 6
    same = [mw.table.item(i, 2) is keep[i] for i in range(mw.table.rowCount())]
    assert all(same)  # items updated in place, never recreated
    changed = [
        i for i, x in enumerate(ctl.export_rows()) if mw.table.item(i, 2).text() != keep[i].text()
    ]
    assert changed == []  # (texts were updated in the same items)
    assert mw.profile_draws == draws  # an ROI edit does not redraw the caliper's profile
    mw.echo_box.setCurrentIndex(0)
    assert mw.profile_draws == draws + 1  # a new echo does
    assert mw.summary.horizontalHeaderItem(1).text() == "Norm SI e1"

    # after the checklist moved on, the last caliper's profile stays (and can be accepted)
    ctl.active = "L_hand_caliper"
    ctl.active = "R_face_roi"
    assert mw.profile_slot() == "L_hand_caliper"
    ctl.delete_active()  # R_face_roi
    ctl.place_caliper(
        *(ctl.ras_to_world(p) for p in regions[("face", "R")]["caliper_ras_mm"]),
        slot="R_face_caliper",
    )
    assert mw.profile_slot() == "R_face_caliper"
    assert mw.accept_button.isEnabled()
    mw.accept_button.click()
    assert ctl.annset.get("R_face_caliper").source == "suggested"

    # blinded reads: numbers hidden, the profile's shape kept
    set_numbers_hidden(viewer, True)
    assert mw.hide_numbers and not mw.tabs.isVisible() and mw.hidden_label.isVisible()
    assert not any(ch.isdigit() for ch in mw.profile_label.text())
    readout = get_reading_tools(viewer).readout_line(viewer.cursor.position)
    assert readout.startswith("RAS (") and "a.u." not in readout
    set_numbers_hidden(viewer, False)
    assert mw.tabs.isVisible()

    # no caliper at all: the empty profile is drawn once, not again on every ROI edit
    from napari_m1.protocol import Protocol, Slot

    ctl.reconfigure(protocol=Protocol("rois", "ROIs", (Slot("L_hand_roi", "roi", "hand", "L"),)))
    assert mw.profile_slot() is None
    ctl.place_roi_at(ctl.ras_to_world(regions[("hand", "L")]["centre_ras_mm"]))
    draws = mw.profile_draws
    ctl.place_roi_at(ctl.ras_to_world(moved * (-1, 1, 1)), slot="L_hand_roi")
    assert ctl.annset.get("L_hand_roi") is not None and mw.profile_draws == draws


# ---------------------------------------------------------------------- the whole protocol
def _slice_keys(d):
    """Fewest presses of PageUp/PageDown (±5) and Up/Down (±1) that move ``d`` slices."""
    best = min(range(-4, 5), key=lambda q: abs(q) + abs(d - 5 * q))
    big = [Qt.Key.Key_PageUp if best > 0 else Qt.Key.Key_PageDown] * abs(best)
    rest = d - 5 * best
    return big + [Qt.Key.Key_Up if rest > 0 else Qt.Key.Key_Down] * abs(rest)


def _rough_caliper(region):
    """A reader's rough line across the deep band: 0.2 mm early, 0.3 mm late."""
    p1, p2 = (np.asarray(p, float) for p in region["caliper_ras_mm"])
    e = (p2 - p1) / np.linalg.norm(p2 - p1)
    return p1 - 0.2 * e, p2 + 0.3 * e


@pytest.mark.slow
@pytest.mark.parametrize("screen", list(SCREENS))
def test_full_protocol_real_input_at_most_40_actions(
    make_napari_viewer, phantom_case, screen, shots, qtbot
):
    """A reader fills all 17 slots with real key presses, clicks and drags on the default
    view (no zooming needed), accepting each caliper's suggested edges; every action counts."""
    viewer, ws = _workstation(make_napari_viewer, phantom_case, SCREENS[screen])
    ctl, aw, mw = ws.annotation.ctl, ws.annotation, ws.measurements
    truth = json.loads((phantom_case / "truth.json").read_text())
    regions = {(r["area"], r["hemisphere"]): r for r in truth["regions"]}
    user = User(viewer, ctl)
    ref = reference_layer(viewer)
    assert viewer.layers.selection.active is ref

    user.button(qtbot, aw.place_button, "Place")
    assert ctl.placing
    for _ in range(3 * len(ctl.protocol.slots)):
        missing = ctl.annset.missing()
        if not missing:
            break
        sid = ctl.active
        assert sid in missing, (sid, missing)
        slot = ctl.protocol.slot(sid)
        if slot.role == "reference":
            target = truth["reference"]["centre_ras_mm"]
        else:
            target = regions[(slot.region, slot.hemisphere)]["centre_ras_mm"]
        world = ctl.ras_to_world(target)
        k = round(float(world[0] - ref.translate[1]) / float(ref.scale[1]))
        for key in _slice_keys(k - viewer.dims.current_step[1]):
            user.key(key)
        assert viewer.dims.current_step[1] == k
        if slot.kind == "roi":
            user.click(*user.ras_xy(target), what=f"place {sid}")
        else:
            p1, p2 = _rough_caliper(regions[(slot.region, slot.hemisphere)])
            user.drag(user.ras_xy(p1), user.ras_xy(p2), what=f"draw {sid}")
            assert sid in ctl.annset, f"{sid} not drawn"
            assert mw.profile_slot() == sid  # its profile stays after auto-advance
            user.button(qtbot, mw.accept_button, f"accept {sid}")
            assert ctl.annset.get(sid).source == "suggested"
        assert sid in ctl.annset, f"{sid} not placed"
    assert ctl.annset.missing() == []
    assert not ctl.hemisphere_warnings
    rows = ctl.export_rows()
    for (area, hemi), r in regions.items():
        cal = next(x for x in rows if x["slot"] == f"{hemi}_{area}_caliper")
        assert cal["thickness_mm"] == pytest.approx(r["deep_thickness_mm"], abs=0.15)
    summary = mw.summary_rows()
    assert all(np.isfinite(s["norm_si"]) and np.isfinite(s["thickness_mm"]) for s in summary)
    hand = regions[("hand", "L")]
    viewer.dims.set_point(1, ctl.ras_to_world(hand["centre_ras_mm"])[0])
    ctl.active = "L_hand_caliper"
    _settle()
    viewer.window.screenshot(str(shots / f"protocol_done_{screen}.png"), canvas_only=False)
    n = len(user.actions)
    print(f"{screen}: {n} actions: {user.actions}")
    assert n <= 40, user.actions
