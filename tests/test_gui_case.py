"""The "M1 case" dock in a real napari window (virtual display under CI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from napari_m1._viewer import (
    camera_of,
    hemisphere_at_world,
    reference_layer,
    world_to_ras_in_viewer,
)
from napari_m1.geometry import ras_to_world
from napari_m1.io import METADATA_KEY

pytestmark = pytest.mark.gui


def _dock(viewer):
    _dock_widget, widget = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    return widget


def test_open_sample_case_through_the_dock(make_napari_viewer, phantom_case, shots, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = _dock(viewer)
    with qtbot.waitSignal(widget.case_loaded, timeout=60_000):
        widget.open_case(phantom_case)  # worker thread, as a user click would
    names = [ly.name for ly in viewer.layers]
    assert names == ["GRE magnitude", "QSM χ (ppm)", "MRSI NAA", "MRSI Cr", "MRSI Cho", "MRSI Glx"]
    kinds = [ly.metadata[METADATA_KEY]["kind"] for ly in viewer.layers]
    assert kinds == ["gre", "qsm", "mrsi", "mrsi", "mrsi", "mrsi"]
    assert [ly.visible for ly in viewer.layers] == [True, False, False, False, False, False]
    gre = viewer.layers["GRE magnitude"]
    assert gre.data.shape == (2, 16, 448, 448)
    assert viewer.dims.axis_labels[0] == "echo"
    assert widget.table.rowCount() == 6
    assert widget.table.item(0, 4).text() == "10, 20"

    # Radiological by default: anterior up, patient's left on the screen's right.
    assert tuple(map(str, camera_of(viewer).orientation2d)) == ("up", "left")
    assert widget.orientation.letters() == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    texts = {k: viewer.canvas.overlays[f"m1_{k}"].text for k in ("top", "left", "right")}
    assert texts == {"top": "A", "left": "R", "right": "L"}

    # Every truth point maps back to its RAS position and hemisphere through the viewer.
    truth = json.loads((phantom_case / "truth.json").read_text())
    ref = reference_layer(viewer)
    ras_aff = np.asarray(ref.metadata[METADATA_KEY]["ras_affine"])
    for r in [*truth["regions"], truth["reference"]]:
        world = ras_to_world(r["centre_ras_mm"], ras_aff, ref.scale, ref.translate)
        np.testing.assert_allclose(
            world_to_ras_in_viewer(ref, world), r["centre_ras_mm"], atol=1e-6
        )
        assert hemisphere_at_world(viewer, world) == r["hemisphere"]

    # Go to the hand slice and look at it.
    hand = next(r for r in truth["regions"] if r["area"] == "hand")
    viewer.dims.set_point(1, hand["centre_ras_mm"][2])
    viewer.window.resize(1400, 900)
    qtbot.wait(200)
    viewer.window.screenshot(str(shots / "case_radiological.png"), canvas_only=False)
    canvas = viewer.screenshot(canvas_only=True)
    assert canvas.std() > 10  # an image is drawn, not a blank canvas

    # The left hemisphere's truth point is drawn on the screen's right half.
    left = next(r for r in truth["regions"] if r["hemisphere"] == "L" and r["area"] == "hand")
    _assert_screen_side(viewer, ref, ras_aff, left["centre_ras_mm"], "right")

    # Neurological: the toggle flips the view and the letters.
    widget.radiological.setChecked(False)
    assert tuple(map(str, camera_of(viewer).orientation2d)) == ("up", "right")
    assert widget.orientation.letters()["right"] == "R"
    _assert_screen_side(viewer, ref, ras_aff, left["centre_ras_mm"], "left")
    viewer.window.screenshot(str(shots / "case_neurological.png"), canvas_only=False)

    # Coronal view (roll dims): superior up, letters follow.
    widget.radiological.setChecked(True)
    viewer.dims.order = (0, 2, 1, 3)
    assert widget.orientation.letters() == {"top": "S", "bottom": "I", "left": "R", "right": "L"}


def _assert_screen_side(viewer, ref, ras_aff, ras_point, side):
    """Render a green marker at a RAS point and check which half of the canvas shows it."""
    world = ras_to_world(ras_point, ras_aff, ref.scale, ref.translate)
    # A 13x13-voxel green square image centred on the point (image layers honour the
    # camera flips exactly like the GRE they sit on).
    sc = np.asarray(ref.scale[-3:])
    marker = viewer.add_image(
        np.ones((1, 13, 13), np.float32),
        scale=sc,
        translate=world - sc * [0, 6, 6],
        colormap="green",
        contrast_limits=(0, 1),
        name="_marker",
        blending="opaque",
    )
    try:
        img = viewer.screenshot(canvas_only=True, flash=False)
        if os.environ.get("NAPARI_M1_SCREENSHOTS"):
            from skimage.io import imsave

            imsave(Path(os.environ["NAPARI_M1_SCREENSHOTS"]) / f"marker_{side}.png", img)
        green = (img[..., 1] > 200) & (img[..., 0] < 80) & (img[..., 2] < 80)
        cols = np.nonzero(green)[1]
        assert cols.size > 10, "marker not drawn"
        on_right = cols.mean() > img.shape[1] / 2
        assert on_right == (side == "right"), (side, cols.mean(), img.shape)
    finally:
        viewer.layers.remove(marker)


def test_bad_case_shows_an_error_and_loads_nothing(make_napari_viewer, tmp_path, qtbot):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    (tmp_path / "case.json").write_text('{"gre": "missing.nii.gz"}')
    with qtbot.waitSignal(widget.load_failed, timeout=10_000) as sig:
        widget.open_case(tmp_path)
    assert "not found" in sig.args[0]
    assert "\n" not in sig.args[0]
    assert len(viewer.layers) == 0
    assert "Could not open" in widget.status.text()
    assert widget.open_button.isEnabled()


def test_sample_data_menu_opens_the_phantom(make_napari_viewer, monkeypatch):
    import napari_m1._sample_data as sd

    monkeypatch.setattr(sd, "SAMPLE_SLICES", 16)
    viewer = make_napari_viewer()
    viewer.open_sample("napari-m1", "m1_phantom_als")
    kinds = [ly.metadata[METADATA_KEY]["kind"] for ly in viewer.layers]
    assert kinds[0] == "gre" and "qsm" in kinds and kinds.count("mrsi") == 4
    truth = json.loads((sd.phantom_case_dir("als", n_slices=16) / "truth.json").read_text())
    assert truth["group"] == "als"


def test_open_file_as_a_chosen_kind(make_napari_viewer, real_gre_dir, tmp_path, qtbot):
    """Real data: magnitude as the reference, then the phase file, chosen explicitly."""
    import shutil

    viewer = make_napari_viewer()
    widget = _dock(viewer)
    assert widget.open_file(real_gre_dir / "Mag.nii.gz", kind="auto")
    # a phase image whose name says nothing: the user's choice decides
    renamed = tmp_path / "series7.nii.gz"
    shutil.copy(real_gre_dir / "Phase.nii.gz", renamed)
    assert widget.open_file(renamed, kind="phase")
    mag, ph = viewer.layers
    assert mag.metadata[METADATA_KEY]["kind"] == "gre"
    assert ph.metadata[METADATA_KEY]["kind"] == "phase"
    assert ph.name == "GRE phase"
    assert float(np.nanmax(ph.data)) <= np.pi + 1e-6
    assert float(np.nanmin(ph.data)) >= -np.pi - 1e-6
    np.testing.assert_allclose(ph.scale, mag.scale)
    np.testing.assert_allclose(ph.translate, mag.translate)
    assert widget.table.rowCount() == 2
    # a file that cannot be loaded: one-line error, nothing added
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00broken")
    with qtbot.waitSignal(widget.load_failed) as sig:
        assert not widget.open_file(bad, kind="qsm")
    assert "broken.nii.gz" in sig.args[0]
    assert len(viewer.layers) == 2


def test_messages_clear_when_a_later_action_succeeds(make_napari_viewer, tmp_path, qtbot):
    """An old error does not stay on screen; "Open file as…" makes the file the case."""
    from conftest import make_nifti

    viewer = make_napari_viewer()
    widget = _dock(viewer)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "case.json").write_text('{"gre": "missing.nii.gz"}')
    with qtbot.waitSignal(widget.load_failed, timeout=10_000):
        widget.open_case(tmp_path / "bad")
    assert "Could not open" in widget.status.text()
    assert widget.case_label.text() == "No case open"
    aff = np.diag([0.5, 0.5, 1.0, 1.0])
    mag = make_nifti(tmp_path / "sub-01_T2starw.nii.gz", np.ones((8, 8, 4), np.float32), aff)
    assert widget.open_file(mag, kind="gre")
    assert widget.status.text() == ""  # the old red error is gone
    assert widget.case_label.text() != "No case open"
    assert widget.case_label.text().startswith("Case: ")
    viewer.layers.clear()
    assert widget.case_label.text() == "No case open"
