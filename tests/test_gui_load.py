"""Staged loading in a real napari window: GRE first, the rest streamed, ready signal."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_m1._viewer import case_is_complete
from napari_m1.io import CaseLoad, LoadingArray, load_case

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def phase_case(tmp_path_factory):
    from napari_m1.phantom import write_phantom_case

    out = tmp_path_factory.mktemp("staged") / "case"
    return write_phantom_case(out, "als", seed=2, n_slices=16, with_phase=True)


@pytest.fixture
def gate(monkeypatch):
    """Hold a staged load right after its first frame until the test releases it."""
    release = threading.Event()
    steps = CaseLoad.steps

    def held_steps(self, **kw):
        for ev in steps(self, **kw):
            yield ev
            if ev.kind == "first":
                assert release.wait(60), "test never released the load"
        return ev.payload

    monkeypatch.setattr(CaseLoad, "steps", held_steps)
    yield release
    release.set()


def _dock(viewer):
    _dock_widget, widget = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    return widget


def test_first_frame_then_the_rest_then_ready(make_napari_viewer, phase_case, gate, shots, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = _dock(viewer)
    order = []
    widget.first_frame.connect(lambda label: order.append(("first", label)))
    widget.case_loaded.connect(lambda label: order.append(("ready", label)))

    with qtbot.waitSignal(widget.first_frame, timeout=60_000):
        widget.open_case(phase_case)  # as a click: worker thread, staged
    # The reader sees the GRE at echo 1 on the middle slice while the rest is read.
    assert [ly.name for ly in viewer.layers] == ["GRE magnitude"]
    gre = viewer.layers[0]
    assert gre.visible and isinstance(gre.data, LoadingArray)
    assert not case_is_complete(viewer)
    assert viewer.dims.point[0] == 0  # echo 1
    assert widget.progress.isVisible() and 0 < widget.progress.value() < 1000
    assert "Loading" in widget.status.text()
    # Echo 2 is not read yet: a measurement-style read of it waits (here: times out).
    assert not gre.data[1].wait(timeout=0.05)
    # The reader can work: a slice move is drawn from echo 1.
    z = viewer.dims.point[1]
    viewer.dims.set_point(1, z + gre.scale[1])
    qtbot.waitUntil(lambda: np.asarray(gre._slice.image.view).any(), timeout=5000)
    viewer.window.screenshot(str(shots / "case_loading.png"), canvas_only=False)

    with qtbot.waitSignal(widget.case_loaded, timeout=60_000):
        gate.set()
    assert order == [("first", order[0][1]), ("ready", order[0][1])]
    names = [ly.name for ly in viewer.layers]
    assert names == [
        "GRE magnitude",
        "GRE phase",
        "QSM χ (ppm)",
        "MRSI NAA",
        "MRSI Cr",
        "MRSI Cho",
        "MRSI Glx",
    ]
    assert [ly.visible for ly in viewer.layers] == [True] + [False] * 6
    assert case_is_complete(viewer)
    assert all(isinstance(ly.data, np.ndarray) for ly in viewer.layers)
    assert not widget.progress.isVisible()
    # Same arrays as a blocking load.
    case = load_case(phase_case)
    for ly, vol in zip(viewer.layers, case.volumes, strict=True):
        np.testing.assert_array_equal(ly.data, vol.data)
    assert "n_nan" in viewer.layers[0].metadata["napari_m1"]


def test_failed_staged_load_leaves_nothing(make_napari_viewer, phase_case, tmp_path, qtbot):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(phase_case, bad)
    victim = sorted(bad.glob("*echo-2_part-phase*.nii.gz"))[0]
    victim.write_bytes(victim.read_bytes()[:-200])
    viewer = make_napari_viewer(show=True)
    widget = _dock(viewer)
    with qtbot.waitSignal(widget.load_failed, timeout=60_000) as sig:
        widget.open_case(bad)
    msg = sig.args[0]
    assert victim.name in msg and "\n" not in msg
    assert len(viewer.layers) == 0  # the GRE shown early is removed again: all or nothing
    assert widget.open_button.isEnabled() and not widget.progress.isVisible()
