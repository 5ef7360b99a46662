"""Opening what the scanner gives in a real napari window: folders dropped on the
viewer (npe2 reader), the DICOM/BIDS browser in the "M1 case" dock, echo times asked once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_m1.io import METADATA_KEY, remembered_copy
from napari_m1.io._dicom_synth import orientation_iop, write_dicom_series

pytestmark = pytest.mark.gui

SIEMENS = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom-gre-siemens" / "In"


def _dock(viewer):
    _dw, widget = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    return widget


def test_drop_real_gre_folder_opens_without_hand_work(
    make_napari_viewer, real_gre_dir, shots, monkeypatch
):
    """The real patch folder (read-only in ../shared) opens as dropped: no case.json."""
    from napari._qt.dialogs.qt_reader_dialog import QtReaderDialog
    from napari.plugins._npe2 import get_readers

    viewer = make_napari_viewer(show=True)
    # A drop goes through QtViewer._qt_open (no plugin named). napari's builtin reader
    # also claims every folder, so napari shows its "choose reader" dialog once per
    # folder (with "remember"): napari-m1 must be offered and must read the folder.
    readers = get_readers(str(real_gre_dir))
    assert "napari-m1" in readers
    offered: list[str] = []

    def choose(dialog):
        offered.extend(b.text() for b in dialog.reader_btn_group.buttons())
        return readers["napari-m1"], False

    monkeypatch.setattr(QtReaderDialog, "get_user_choices", choose)
    viewer.window._qt_viewer._qt_open([str(real_gre_dir)], stack=False)
    assert readers["napari-m1"] in offered
    assert [ly.name for ly in viewer.layers] == ["GRE magnitude", "GRE phase"]
    viewer.layers.clear()
    viewer.open(str(real_gre_dir), plugin="napari-m1")  # the same, from a script
    assert [ly.name for ly in viewer.layers] == ["GRE magnitude", "GRE phase"]
    gre = viewer.layers["GRE magnitude"]
    assert gre.data.shape == (3, 41, 51, 51)
    md = gre.metadata[METADATA_KEY]
    assert md["kind"] == "gre" and md["voxel_size_mm"] == pytest.approx([1.0, 0.46875, 0.46875])
    assert viewer.layers["GRE phase"].metadata[METADATA_KEY]["kind"] == "phase"
    viewer.dims.set_current_step(1, 20)
    viewer.window.screenshot(str(shots / "drop_real_gre.png"), canvas_only=False)


def test_drop_dicom_folder_and_bad_dicom(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    if SIEMENS.is_dir():
        viewer.open(str(SIEMENS), plugin="napari-m1")
        assert [ly.name for ly in viewer.layers] == ["GRE magnitude", "GRE phase difference"]
        viewer.layers.clear()
    files = write_dicom_series(
        tmp_path / "bad",
        np.ones((1, 4, 6, 6), np.uint16),
        iop=orientation_iop("axial"),
        echo_times_ms=[5.0],
    )
    files[1].unlink()  # a slice missing
    with pytest.raises(Exception, match="slice missing"):
        viewer.open(str(tmp_path / "bad"), plugin="napari-m1")
    assert len(viewer.layers) == 0  # nothing half-loaded


@pytest.mark.slow
def test_browser_lists_dicom_series_and_opens_the_chosen_one(
    make_napari_viewer, tmp_path, qtbot, shots
):
    viewer = make_napari_viewer(show=True)
    widget = _dock(viewer)
    src = tmp_path / "dicom"
    rng = np.random.default_rng(0)
    write_dicom_series(
        src,
        rng.integers(1, 3000, (4, 12, 40, 40)).astype(np.uint16),
        iop=orientation_iop("axial"),
        echo_times_ms=[4, 8, 12, 16],
        series_number=5,
        pixel_spacing=(0.5, 0.5),
    )
    write_dicom_series(
        src,
        rng.integers(1, 4095, (4, 12, 40, 40)).astype(np.uint16),
        iop=orientation_iop("axial"),
        echo_times_ms=[4, 8, 12, 16],
        series_number=6,
        component="P",
        pixel_spacing=(0.5, 0.5),
    )
    write_dicom_series(
        src,
        rng.integers(1, 3000, (1, 10, 32, 32)).astype(np.uint16),
        iop=orientation_iop("coronal"),
        echo_times_ms=[6],
        series_number=9,
        pixel_spacing=(0.7, 0.7),
    )
    widget.show_browser(src, block=True)
    b = widget.browser
    texts = [b.list.item(i).text() for i in range(b.list.count())]
    assert len(texts) == 2 and "series 5" in texts[0] and "4 echoes (4, 8, 12, 16 ms)" in texts[0]
    assert "series 9" in texts[1]
    b.list.setCurrentRow(1)
    viewer.window._qt_window.resize(1600, 1000)
    qtbot.waitUntil(lambda: b.list.isVisible())
    viewer.window.screenshot(str(shots / "dicom_series_picker.png"), canvas_only=False)
    with qtbot.waitSignal(widget.case_loaded, timeout=60_000):
        assert b.open_selected()
    gre = viewer.layers["GRE magnitude"]
    assert gre.data.shape == (32, 10, 32)  # the coronal series: 10 slices along A-P
    viewer.layers.clear()
    b.list.setCurrentRow(0)
    seen: list[tuple[int, int]] = []
    widget.load_progress.connect(lambda d, t: seen.append((d, t)))
    with qtbot.waitSignal(widget.case_loaded, timeout=60_000):
        assert b.open_selected()
    # file-count progress from the worker: the picked series' 48 magnitude + 48 phase files
    # (headers were scanned by the browser already)
    assert seen and seen[-1] == (96, 96)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert not widget.progress.isVisible()
    assert [ly.name for ly in viewer.layers] == ["GRE magnitude", "GRE phase"]
    assert widget.table.item(0, 4).text() == "4, 8, 12, 16"
    viewer.window.screenshot(str(shots / "dicom_opened.png"), canvas_only=False)


def test_bids_root_through_open_case_lists_subjects(
    make_napari_viewer, tmp_path, qtbot, phantom_case
):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    root = tmp_path / "bids"
    (root).mkdir()
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    for sub in ("01", "02"):
        anat = root / f"sub-{sub}" / "anat"
        anat.mkdir(parents=True)
        for p in phantom_case.glob("*MEGRE*"):
            shutil.copy(p, anat / p.name.replace("sub-phantomcontrol1", f"sub-{sub}"))
    widget.open_case(root, block=True)  # a dataset: the browser lists it
    b = widget.browser
    assert not b.isHidden()
    assert [b.list.item(i).text().split(" · ")[0] for i in range(b.list.count())] == [
        "sub-01",
        "sub-02",
    ]
    b.list.setCurrentRow(1)
    with qtbot.waitSignal(widget.case_loaded, timeout=60_000):
        b.open_selected()
    assert widget.case_label.text() == "Case: 02"
    assert viewer.layers["GRE magnitude"].data.shape[0] == 2


def test_echo_times_asked_once_and_kept_out_of_user_data(
    make_napari_viewer, real_gre_dir, tmp_path, qtbot
):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    src = tmp_path / "patch"
    shutil.copytree(real_gre_dir, src)
    before = sorted(p.name for p in src.iterdir())
    asked: list[int] = []
    widget.ask_echo_times = lambda n: asked.append(n) or [4.0, 8.0, 12.0]
    widget.open_case(src, block=True)
    assert asked == [3]
    assert widget.table.item(0, 4).text() == "4, 8, 12"
    assert sorted(p.name for p in src.iterdir()) == before  # no case.json in the source
    assert remembered_copy(src) is not None
    viewer.layers.clear()
    widget.open_case(src, block=True)  # remembered: not asked again
    assert asked == [3]
    assert widget.table.item(0, 4).text() == "4, 8, 12"


def test_cancel_a_dicom_load_opens_nothing(make_napari_viewer, tmp_path, qtbot):
    viewer = make_napari_viewer()
    widget = _dock(viewer)
    data = np.random.default_rng(2).integers(1, 3000, (4, 60, 64, 64)).astype(np.uint16)
    write_dicom_series(
        tmp_path / "big", data, iop=orientation_iop("axial"), echo_times_ms=[4, 8, 12, 16]
    )
    with qtbot.waitSignal(widget.load_failed, timeout=60_000) as blocker:
        widget.open_case(tmp_path / "big")  # worker thread, file-count progress
        assert widget.cancel_button.isVisibleTo(widget)
        widget.cancel_load()
    assert blocker.args == ["loading was cancelled"]
    assert len(viewer.layers) == 0
    assert not widget.cancel_button.isVisibleTo(widget)
    with qtbot.waitSignal(widget.case_loaded, timeout=60_000):
        widget.open_case(tmp_path / "big")  # a later load is not cancelled
    assert viewer.layers["GRE magnitude"].data.shape == (4, 60, 64, 64)
