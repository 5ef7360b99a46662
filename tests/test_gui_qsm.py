"""The "QSM" dock in a real napari window: reconstruct, show, edit the mask, cancel, save."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from napari_m1.geometry import ras_to_world
from napari_m1.io import METADATA_KEY

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture(scope="module")
def als_phase_case(tmp_path_factory):
    from napari_m1.phantom import write_phantom_case

    out = tmp_path_factory.mktemp("guiqsm") / "als"
    return write_phantom_case(out, "als", 4, n_slices=16, with_phase=True)


def _open(viewer, qtbot, case):
    _, case_widget = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    with qtbot.waitSignal(case_widget.case_loaded, timeout=120_000):
        case_widget.open_case(case)
    _, widget = viewer.window.add_plugin_dock_widget("napari-m1", "QSM")
    return widget


def _value_at(layer, ras_aff, ras):
    world = ras_to_world(ras, ras_aff, layer.scale, layer.translate)
    idx = np.round(layer.world_to_data(world)).astype(int)
    return float(layer.data[tuple(idx[-3:])])


def test_reconstruct_in_the_dock(make_napari_viewer, als_phase_case, shots, qtbot, tmp_path):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1600, 1000)
    widget = _open(viewer, qtbot, als_phase_case)
    widget.preset.value = "fast"
    assert widget.unwrap.value == "laplacian" and widget.dipole.value == "tkd"
    seen = []
    widget._progress_sig.connect(lambda f, m: seen.append(f))
    with qtbot.waitSignal(widget.finished, timeout=300_000):
        widget.run()  # worker thread, as the button does
        assert not widget.run_button.isEnabled() and widget.cancel_button.isEnabled()
    assert len(seen) > 10 and seen == sorted(seen)
    assert widget.progress.value() == 1000 and widget.run_button.isEnabled()

    gre = viewer.layers["GRE magnitude"]
    qsm = viewer.layers["qsm"]
    mask = viewer.layers["qsm mask"]
    assert qsm.data.shape == gre.data.shape[1:] and qsm.data.dtype == np.float32
    assert tuple(qsm.scale) == tuple(gre.scale[-3:])
    assert qsm.metadata[METADATA_KEY]["kind"] == "qsm"
    assert set(np.unique(mask.data)) == {0, 1, 2}

    # ALS M1 (deep layer, +0.060 ppm) is more paramagnetic than the control ROI (+0.010).
    truth = json.loads((als_phase_case / "truth.json").read_text())
    ras_aff = np.asarray(gre.metadata[METADATA_KEY]["ras_affine"])
    hand = next(r for r in truth["regions"] if r["area"] == "hand" and r["hemisphere"] == "L")
    ctl = next(c for c in truth["qsm_control"] if c["hemisphere"] == "L")
    assert (
        _value_at(qsm, ras_aff, hand["centre_ras_mm"])
        > _value_at(qsm, ras_aff, ctl["centre_ras_mm"]) + 0.02
    )

    # Per annotated ROI: the share outside the final mask (none for the hand knob; all of a
    # ROI on the fiducial marker outside the head).
    from types import SimpleNamespace

    from napari_m1._annotate import _CONTROLLERS
    from napari_m1.annotation import roi_annotation

    rois = {
        "L_m1_roi": roi_annotation("L_m1_roi", hand["centre_ras_mm"], [1.1, 0, 0], [0, 1.1, 0]),
        "R_control_roi": roi_annotation("R_control_roi", [50, 30, 51], [1.1, 0, 0], [0, 1.1, 0]),
    }
    _CONTROLLERS[viewer] = SimpleNamespace(annset=SimpleNamespace(items=rois), closed=False)
    try:
        out = widget.roi_outside()
    finally:
        del _CONTROLLERS[viewer]
    assert out["L_m1_roi"] == pytest.approx(0.0) and out["R_control_roi"] == pytest.approx(1.0)

    # Show the hand-knob slice, zoomed on the left M1, and look at it.
    world = ras_to_world(hand["centre_ras_mm"], ras_aff, gre.scale[-3:], gre.translate[-3:])
    viewer.dims.set_point(viewer.dims.ndim - 3, world[0])
    viewer.reset_view()
    viewer.camera.center = tuple(world[-2:])
    viewer.camera.zoom = viewer.camera.zoom * 3
    qsm.opacity = 0.7
    viewer.window.screenshot(str(shots / "qsm-dock.png"), canvas_only=False)

    # Edit the mask (erase a lateral stripe), rerun with it: chi is 0 there.
    edited = mask.data.copy()
    stripe = np.zeros(edited.shape, bool)
    stripe[..., edited.shape[-1] // 2 + 40 :] = True
    edited[stripe] = 0
    mask.data = edited
    widget.use_mask.value = True
    widget.run(block=True)
    assert np.all(viewer.layers["qsm"].data[stripe] == 0)
    assert widget.result.info["mask"]["source"] == "given"

    out = widget.save(tmp_path / "saved")
    assert (out / "Chimap.nii.gz").is_file() and (out / "qsm.json").is_file()


def test_cancel_frees_the_dock_at_once(make_napari_viewer, als_phase_case, qtbot):
    viewer = make_napari_viewer()
    widget = _open(viewer, qtbot, als_phase_case)
    widget.preset.value = "default"
    with qtbot.waitSignal(widget._progress_sig, timeout=120_000):
        widget.run()
    worker = widget._worker
    t0 = time.perf_counter()
    with qtbot.waitSignal(widget.cancelled, timeout=1000):
        widget.cancel_button.click()
    assert widget.run_button.isEnabled() and widget.status.text() == "Cancelled."
    with qtbot.waitSignal(worker.finished, timeout=30_000):
        pass
    print(f"worker stopped {time.perf_counter() - t0:.2f} s after Cancel")
    assert "qsm" not in viewer.layers and widget.result is None


def test_no_phase_is_a_one_line_message(make_napari_viewer, phantom_case, qtbot):
    viewer = make_napari_viewer()
    widget = _open(viewer, qtbot, phantom_case)
    with qtbot.waitSignal(widget.failed, timeout=5000) as blocker:
        widget.run_button.click()
    assert "no GRE phase" in blocker.args[0] and "qsm" not in viewer.layers


def test_b0_from_the_case_options_and_roi_reference(
    make_napari_viewer, als_phase_case, qtbot, tmp_path, shots
):
    """B0 comes from the case's sidecars (here edited to 3 T); the method options and the
    ROI reference painted in the 'qsm reference' layer reach the reconstruction."""
    import shutil

    case = tmp_path / "case3t"
    shutil.copytree(als_phase_case, case)
    for side in case.glob("*_MEGRE.json"):
        meta = json.loads(side.read_text())
        meta["MagneticFieldStrength"] = 3
        side.write_text(json.dumps(meta))
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1600, 1000)
    widget = _open(viewer, qtbot, case)
    assert widget.b0.value == 3.0 and "sidecar MagneticFieldStrength" in widget.b0.tooltip

    widget.preset.value = "fast"
    widget.background.value = "pdf"
    widget.dipole.value = "iswim"
    widget.reference.value = "roi"
    assert "qsm reference" in viewer.layers  # an empty Labels layer to paint in
    with qtbot.waitSignal(widget.failed, timeout=5000) as blocker:
        widget.run_button.click()
    assert "empty" in blocker.args[0]

    ref = viewer.layers["qsm reference"]
    painted = np.zeros(ref.data.shape, np.uint8)
    n0, n1, n2 = painted.shape
    c0, c1, c2 = n0 // 2, n1 // 2, n2 // 2
    painted[c0 - 2 : c0 + 2, c1 - 20 : c1 + 20, c2 - 20 : c2 + 20] = 1
    ref.data = painted
    widget.run(block=True)
    res = widget.result
    assert res is not None and res.params.background == "pdf" and res.params.dipole == "iswim"
    assert res.info["b0_tesla"] == 3.0 and res.info["reference"]["method"].startswith("ROI")
    sel = (painted > 0) & res.mask
    assert abs(float(res.chi_ppm[sel].mean())) < 1e-5
    assert "research" in res.info["dipole"]["method"] and "research" in widget.status.text()
    from qtpy.QtWidgets import QDockWidget

    dock = widget
    while dock is not None and not isinstance(dock, QDockWidget):
        dock = dock.parent()
    dock.raise_()  # the QSM dock is tabbed with the case dock: show it
    qtbot.wait(200)
    viewer.window.screenshot(str(shots / "qsm-dock-options.png"), canvas_only=False)
    out = widget.save(tmp_path / "saved")
    saved = json.loads((out / "qsm.json").read_text())
    assert saved["inputs"]["b0_from"].endswith("sidecar MagneticFieldStrength")
    assert saved["params"]["reference"] == "roi" and saved["stages"]["b0_tesla"] == 3.0
