"""The reader's keys work whichever layer is selected (napari's Image layer binds O)."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt

from napari_m1._annotate import SHAPES_LAYER_NAME
from napari_m1._viewer import reference_layer

pytestmark = pytest.mark.gui


def test_o_toggles_placement_with_the_gre_selected(make_napari_viewer, phantom_case, qtbot):
    viewer = make_napari_viewer(show=True)
    _, cw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    cw.open_case(phantom_case, block=True)
    _, aw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 annotation")
    ctl = aw.ctl
    canvas = viewer.window._qt_viewer.canvas.native
    gre = reference_layer(viewer)
    assert ctl.has_case and not ctl.placing
    for selected in (gre, viewer.layers[SHAPES_LAYER_NAME], gre):
        viewer.layers.selection.active = selected
        before = ctl.placing
        qtbot.keyClick(canvas, Qt.Key.Key_O)  # a real key event on napari's canvas
        assert ctl.placing is not before, selected.name
        assert aw.place_button.isChecked() is ctl.placing  # the button shows the state
    assert ctl.placing and "O" in {str(k) for k in gre.keymap}  # bound on the layer
    # the controller's close gives the key back to napari (its Image action again)
    ctl.close()
    viewer.layers.selection.active = gre
    assert "O" not in {str(k) for k in gre.keymap}
    qtbot.keyClick(canvas, Qt.Key.Key_O)
    assert ctl.placing  # not toggled any more
