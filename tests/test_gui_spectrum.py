"""The "M1 spectrum" dock in a real napari window: hover an MRSI voxel with real mouse
events, see that voxel's spectrum (data, fit, baseline, residual) and its QC; thresholds
re-mask the ratio maps live; the "excluded (reason)" layers; blinded sessions."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest
from qtpy.QtCore import QEvent, Qt
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication, QLabel

from canvas_input import canvas_xy, send_mouse
from napari_m1._mrsi_view import get_mrsi_view
from napari_m1._viewer import camera_of, reference_layer
from napari_m1.geometry import ras_to_world
from napari_m1.io import LayerMeta
from napari_m1.mrsi import QCThresholds, ratio_maps, read_fsl_mrsi
from napari_m1.mrsi._synth import write_fit_spectra, write_fsl_mrsi_folder

pytestmark = pytest.mark.gui

SF = 297.2  # MHz (write_fit_spectra's default)
DWELL = 2.5e-4  # s
N = 512


def _spectrum_from_file(path, ijk):
    """Independent reference: the real part of the file's voxel spectrum on its ppm axis."""
    img = nib.load(path)
    fid = np.asarray(img.dataobj)[ijk]
    spec = np.fft.fftshift(np.fft.fft(fid))
    ppm = 4.65 - np.fft.fftshift(np.fft.fftfreq(N, d=DWELL)) / SF
    return ppm, spec.real


@pytest.fixture
def mrsi_case(tmp_path, phantom_case):
    case = tmp_path / "case"
    shutil.copytree(phantom_case, case)
    grid = nib.load(next(case.glob("*_met-NAA_mrsi.nii.gz")))
    syn = write_fsl_mrsi_folder(case / "mrsi", grid.shape, seed=2, affine=grid.affine)
    write_fit_spectra(syn.folder, grid.shape, grid.affine)
    return case, syn


class Mouse:
    """Real Qt mouse-move events on napari's canvas at scanner RAS points."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.canvas = viewer.window._qt_viewer.canvas
        self.ref = reference_layer(viewer)

    def world(self, ras):
        md = LayerMeta.of(self.ref)
        return np.asarray(ras_to_world(ras, md.ras_affine, self.ref.scale, self.ref.translate))

    def goto(self, ras, zoom=6.0):
        w = self.world(ras)
        self.viewer.dims.set_point(self.viewer.dims.ndim - 3, w[-3])
        cam = camera_of(self.viewer)
        cam.center = tuple(w[-3:])
        cam.zoom = zoom
        QApplication.processEvents()

    def move(self, ras):
        x, y = canvas_xy(self.viewer, self.world(ras)[-3:])
        send_mouse(self.viewer, QEvent.Type.MouseMove, x, y, Qt.MouseButton.NoButton)
        QTest.qWait(10)  # napari throttles mouse moves (one per 5 ms)
        QApplication.processEvents()


def _open(make_napari_viewer, case, qtbot):
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1600, 1000)
    _, cw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    _, sw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 spectrum")
    with qtbot.waitSignal(sw.spectra_ready, timeout=60_000):
        cw.open_case(case, block=True)
    qtbot.waitUntil(lambda: any("excluded (reason)" in ly.name for ly in viewer.layers))
    return viewer, sw


def test_hover_shows_that_voxels_spectrum_and_qc(make_napari_viewer, mrsi_case, qtbot, shots):
    case, syn = mrsi_case
    viewer, sw = _open(make_napari_viewer, case, qtbot)
    fit = read_fsl_mrsi(syn.folder)
    layer = viewer.layers["MRSI tNAA/tCr"]
    layer.visible = True
    mouse = Mouse(viewer)
    nx, ny, nz = fit.shape
    planted = np.argwhere(syn.planted[("snr", "Glx")])[0]
    voxels = [(nx // 2, ny // 2, nz // 2), (nx // 2 + 2, ny // 2 - 3, nz // 2), tuple(planted)]
    for ijk in voxels:
        centre = (fit.affine @ np.array([*ijk, 1.0]))[:3]
        # a point inside the voxel but off its centre (a quarter voxel towards +i)
        ras = centre + 0.25 * fit.affine[:3, 0]
        mouse.goto(centre)
        mouse.move(ras)
        qtbot.waitUntil(lambda ijk=ijk: sw.hit is not None and sw.hit.ijk == ijk, timeout=3000)
        # the plotted data are that voxel's spectrum: fit + residual of the files
        ppm, fit_re = _spectrum_from_file(syn.folder / "fit" / "fit.nii.gz", ijk)
        _, res_re = _spectrum_from_file(syn.folder / "fit" / "residual.nii.gz", ijk)
        _, base_re = _spectrum_from_file(syn.folder / "fit" / "baseline.nii.gz", ijk)
        x, y = (np.asarray(a) for a in sw.lines["data"].get_data())
        assert x[0] > x[-1] and 4.2 >= x[0] and x[-1] >= 0.2  # ppm descending, in the window
        want = np.interp(x, ppm[::-1], (fit_re + res_re)[::-1])
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-3 * np.abs(want).max())
        xf, yf = (np.asarray(a) for a in sw.lines["fit"].get_data())
        np.testing.assert_allclose(
            yf, np.interp(xf, ppm[::-1], fit_re[::-1]), rtol=1e-4, atol=1e-3
        )
        xb, yb = (np.asarray(a) for a in sw.lines["baseline"].get_data())
        np.testing.assert_allclose(yb, np.interp(xb, ppm[::-1], base_re[::-1]), atol=1e-3)
        assert len(sw.lines["residual"].get_data()[0]) == len(x)
        # the tallest data peak is NAA at 2.01 ppm (physical check of the axis direction)
        assert abs(x[np.argmax(y)] - 2.01) < 0.05
        # QC numbers as the files hold them
        qc = {
            sw.qc_table.item(r, 0).text(): [sw.qc_table.item(r, c).text() for c in (1, 2, 3)]
            for r in range(sw.qc_table.rowCount())
        }
        for met, stem in (("tNAA", "NAA+NAAG"), ("Glx", "Glu+Gln")):
            snr = nib.load(syn.folder / "qc" / f"{stem}_snr.nii.gz").get_fdata()[ijk]
            fwhm_hz = nib.load(syn.folder / "qc" / f"{stem}_fwhm.nii.gz").get_fdata()[ijk]
            sd = nib.load(syn.folder / "uncertainties" / f"{stem}_sd.nii.gz").get_fdata()[ijk]
            assert float(qc[met][2]) == pytest.approx(snr, abs=0.051)
            assert float(qc[met][1]) == pytest.approx(fwhm_hz / SF, abs=0.0006)
            assert float(qc[met][0]) == pytest.approx(sd, abs=0.51)  # %SD, as fsl_mrsi
        verdicts = _verdicts(sw.verdict_label.text())
        if tuple(ijk) == tuple(planted):
            assert verdicts["Glx/tCr"] == "excluded (snr)"
            assert float(qc["Glx"][2]) == pytest.approx(3.0, abs=0.05)
        for r in ratio_maps(fit):
            want = "kept" if r.reason[ijk] == 0 else "excluded ("
            assert verdicts[r.name].startswith(want), (ijk, r.name, verdicts)
    viewer.window.screenshot(str(shots / "mrsi-spectrum.png"), canvas_only=False, flash=False)


def test_thresholds_remask_live_and_excluded_layer(make_napari_viewer, mrsi_case, qtbot, shots):
    case, syn = mrsi_case
    viewer, sw = _open(make_napari_viewer, case, qtbot)
    fit = read_fsl_mrsi(syn.folder)
    layer = viewer.layers["MRSI tNAA/tCr"]
    ex = viewer.layers["MRSI tNAA/tCr excluded (reason)"]
    assert not ex.visible  # hidden by default
    assert viewer.layers.index(ex) == viewer.layers.index(layer) + 1
    assert ex.translate.tolist() == layer.translate.tolist()
    assert ex.scale.tolist() == layer.scale.tolist()
    default = {r.name: r for r in ratio_maps(fit)}["tNAA/tCr"]
    # the labels are the reason bits, voxel for voxel (same layer grid as the ratio map)
    assert int(np.count_nonzero(ex.data)) == default.summary["n_excluded"]
    assert np.isnan(layer.data).sum() == default.summary["n_excluded"]
    ijk = tuple(np.argwhere(syn.planted[("crlb", "tNAA")])[0])
    ras = (fit.affine @ np.array([*ijk, 1.0]))[:3]
    idx = tuple(np.rint(np.linalg.inv(LayerMeta.of(layer).ras_affine) @ [*ras, 1])[:3].astype(int))
    assert ex.data[idx] == 1 and np.isnan(layer.data[idx])  # crlb
    ex.visible = True  # hover text of the label (napari's status bar: its features row)
    world = np.asarray(ex.data_to_world(idx))
    viewer.dims.set_point(viewer.dims.ndim - 3, world[0])
    status = ex.get_status(world, world=True)
    assert "reason: crlb" in str(status)
    ex.visible = False
    # an ROI over the planted voxel: its measurement rows carry the thresholds
    from napari_m1._annotate import get_controller

    ctl = get_controller(viewer)
    assert ctl.has_case
    ctl.place_roi_at(_world_of(viewer, fit, ijk), slot="L_hand_roi", area_mm2=4.0)

    def naa_row():
        rows = [r for r in ctl.export_rows() if r["slot"] == "L_hand_roi"]
        return next(r for r in rows if r["metabolite"] == "tNAA/tCr")

    assert naa_row()["qc_min_snr"] == 5.0 and naa_row()["mrsi_n_excluded_voxels"] == 1
    # a stricter S/N threshold through the form: more voxels excluded, live
    sw.thresholds.min_snr.value = 30.0
    strict = {r.name: r for r in ratio_maps(fit, QCThresholds(min_snr=30.0))}["tNAA/tCr"]
    assert strict.summary["n_excluded"] > default.summary["n_excluded"]
    assert np.isnan(layer.data).sum() == strict.summary["n_excluded"]
    assert int(np.count_nonzero(ex.data)) == strict.summary["n_excluded"]
    assert layer.metadata["napari_m1"]["qc"]["thresholds"]["min_snr"] == 30.0
    # re-measured after the frame (once per burst of changes): the export carries them
    qtbot.waitUntil(lambda: naa_row()["qc_min_snr"] == 30.0, timeout=3000)
    kept = ~np.isnan(layer.data)
    assert np.all(ex.data[kept] == 0)
    # looser %SD: the planted CRLB voxel comes back
    sw.thresholds.min_snr.value = 5.0
    sw.thresholds.max_sd.value = 40.0
    assert ex.data[idx] == 0 and np.isfinite(layer.data[idx])
    sw.thresholds.max_sd.value = 20.0
    ex.visible = True
    viewer.window.screenshot(str(shots / "mrsi-excluded.png"), canvas_only=False, flash=False)


def test_blinded_session_shows_data_only(make_napari_viewer, tmp_path, phantom_case, qtbot):
    case = tmp_path / "case"
    shutil.copytree(phantom_case, case)
    grid = nib.load(next(case.glob("*_met-NAA_mrsi.nii.gz")))
    syn = write_fsl_mrsi_folder(case / "Doe_Jane_MRSI", grid.shape, seed=4, affine=grid.affine)
    token = {"PatientName": "Doe^Jane", "InstitutionAddress": "Secret Clinic 12"}
    write_fit_spectra(syn.folder, grid.shape, grid.affine, extra_header=token)
    viewer = make_napari_viewer(show=True)
    get_mrsi_view(viewer).blinded = True  # as the reader dock sets it for a session
    _, cw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    _, sw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 spectrum")
    with qtbot.waitSignal(sw.spectra_ready, timeout=60_000):
        cw.open_case(case, block=True)
    fit = read_fsl_mrsi(syn.folder)
    ijk = tuple(np.array(fit.shape) // 2)
    sw.show_voxel(get_mrsi_view(viewer).voxel_at(_world_of(viewer, fit, ijk)))
    assert len(sw.lines["data"].get_data()[0]) > 0  # the data are shown
    texts = [w.text() for w in sw.findChildren(QLabel)] + [
        w.toolTip() for w in sw.findChildren(QLabel)
    ]
    blob = "\n".join(texts)
    for tok in ("Doe", "Jane", "Secret", "MHz", "fit.nii", "Doe_Jane_MRSI"):
        assert tok not in blob, tok
    assert "Voxel (" in blob
    assert sw.qc_table.rowCount() == 4 and "tNAA/tCr" in sw.verdict_label.text()
    # a study that hides live numbers: no QC numbers, no ratio values; the verdict stays
    from napari_m1._qt.measurement_widget import set_numbers_hidden

    set_numbers_hidden(viewer, True)
    sw.show_voxel(sw.hit)
    assert sw.qc_table.rowCount() == 0
    text = sw.verdict_label.text()
    assert "hidden" in text and "tNAA/tCr" not in text and text.startswith("QC ")
    set_numbers_hidden(viewer, False)
    get_mrsi_view(viewer).blinded = False
    sw._show_source_text()
    assert "Doe_Jane_MRSI" in sw.source_label.text()  # outside a session the folder is named


def _verdicts(text: str) -> dict[str, str]:
    """``"QC kept. tNAA/tCr 0.94: kept · ..."`` -> ``{"tNAA/tCr": "kept", ...}``."""
    body = text.split(". ", 1)[1]
    out = {}
    for part in body.split(" · "):
        head, state = part.split(": ", 1)
        out[head.split(" ")[0]] = state
    return out


def _world_of(viewer, fit, ijk):
    ref = reference_layer(viewer)
    ras = (fit.affine @ np.array([*ijk, 1.0]))[:3]
    md = LayerMeta.of(ref)
    return ras_to_world(ras, md.ras_affine, ref.scale, ref.translate)


def test_workstation_mrsi_tab_fits_1920x1080(make_napari_viewer, mrsi_case, qtbot, shots):
    from test_gui_workstation import _on_screen

    case, syn = mrsi_case
    viewer = make_napari_viewer(show=True)
    _, ws = viewer.window.add_plugin_dock_widget("napari-m1", "M1 workstation")
    sw = ws.spectrum
    with qtbot.waitSignal(sw.spectra_ready, timeout=60_000):
        ws.case.open_case(case, block=True)
    viewer.window._qt_window.resize(1920, 1080)
    ws.tabs.setCurrentIndex(ws.tabs.indexOf(ws.tabs.widget(3)))
    assert ws.tabs.tabText(ws.tabs.currentIndex()) == "MRSI"
    QApplication.processEvents()
    fit = read_fsl_mrsi(syn.folder)
    ijk = tuple(np.argwhere(syn.planted[("fwhm", "tCho")])[0])
    viewer.layers["MRSI tCho/tCr"].visible = True
    mouse = Mouse(viewer)
    centre = (fit.affine @ np.array([*ijk, 1.0]))[:3]
    mouse.goto(centre, zoom=3.0)
    mouse.move(centre)
    qtbot.waitUntil(lambda: sw.hit is not None and sw.hit.ijk == ijk, timeout=3000)
    assert _verdicts(sw.verdict_label.text())["tCho/tCr"] == "excluded (fwhm)"
    needed = {
        "plot": sw.canvas,
        "QC table": sw.qc_table,
        "verdict": sw.verdict_label,
        "max %SD": sw.thresholds.max_sd.native,
        "min S/N": sw.thresholds.min_snr.native,
    }
    off = [name for name, w in needed.items() if not _on_screen(w)]
    assert off == [], f"not visible without scrolling at 1920x1080: {off}"
    # the summary of measurements stays under the tabs
    assert _on_screen(ws.measurements.summary)
    viewer.window.screenshot(str(shots / "mrsi-workstation.png"), canvas_only=False, flash=False)


def _click(mouse, ras):
    """A real left click (press + release) on the canvas at a RAS point."""
    x, y = canvas_xy(mouse.viewer, mouse.world(ras)[-3:])
    send_mouse(mouse.viewer, QEvent.Type.MouseButtonPress, x, y)
    send_mouse(mouse.viewer, QEvent.Type.MouseButtonRelease, x, y)
    QApplication.processEvents()


def test_mrsi_voxel_slots_clicked_stored_and_measured(
    make_napari_viewer, mrsi_case, qtbot, tmp_path, shots
):
    from napari_m1.annotation import load_annotations
    from napari_m1.io import load_case
    from napari_m1.measure import engine_for_case
    from napari_m1.protocol import get_protocol

    case, syn = mrsi_case
    viewer, _sw = _open(make_napari_viewer, case, qtbot)
    _, aw = viewer.window.add_plugin_dock_widget("napari-m1", "M1 annotation")
    ctl = aw.ctl
    ctl.reconfigure(protocol="mrsi-m1")
    assert ctl.active == "L_hand_mrsi_voxel"
    fit = read_fsl_mrsi(syn.folder)
    maps = {r.name: r for r in ratio_maps(fit)}
    # the planted tNAA %SD voxel (left of the midline: RAS x < 0) and a kept voxel
    planted = tuple(int(i) for i in np.argwhere(syn.planted[("crlb", "tNAA")])[0])
    kept = next(
        (i, j, planted[2])
        for i in range(fit.shape[0])
        for j in range(fit.shape[1])
        if all(m.reason[i, j, planted[2]] == 0 for m in maps.values())
    )
    mouse = Mouse(viewer)
    ctl.toggle_placing(True)
    targets = {"L_hand_mrsi_voxel": planted, "L_precentral_mrsi_voxel": kept}
    for slot, ijk in targets.items():
        ctl.active = slot
        centre = (fit.affine @ np.array([*ijk, 1.0]))[:3]
        click = centre + 0.3 * fit.affine[:3, 1]  # inside the voxel, off its centre
        mouse.goto(centre, zoom=4.0)
        _click(mouse, click)
        qtbot.waitUntil(lambda slot=slot: slot in ctl.annset, timeout=3000)
        ann = ctl.annset.get(slot)
        assert ann.kind == "mrsi_voxel" and ann.voxel_ijk == ijk
        rows = {r["metabolite"]: r for r in ctl.export_rows() if r["slot"] == slot}
        for name, m in maps.items():
            r = rows[name]
            assert (r["mrsi_voxel_i"], r["mrsi_voxel_j"], r["mrsi_voxel_k"]) == ijk
            assert [r["centre_x_mm"], r["centre_y_mm"], r["centre_z_mm"]] == pytest.approx(
                centre.tolist()
            )
            assert r["mean_unfiltered"] == pytest.approx(m.unfiltered[ijk], rel=1e-6)
            want = m.values[ijk]
            assert (np.isnan(r["mean"]) and np.isnan(want)) or r["mean"] == pytest.approx(
                want, rel=1e-6
            )
            bits = int(m.reason[ijk])
            assert r["mrsi_qc_reason"] == "+".join(
                k for k, b in (("crlb", 1), ("fwhm", 2), ("snr", 4), ("mask", 8)) if bits & b
            )
            assert r["mrsi_n_excluded_voxels"] == (1 if bits else 0)
            assert r["qc_max_sd_pct"] == 20.0
    rows = {r["metabolite"]: r for r in ctl.export_rows() if r["slot"] == "L_hand_mrsi_voxel"}
    assert rows["tNAA/tCr"]["mrsi_qc_reason"] == "crlb" and np.isnan(rows["tNAA/tCr"]["mean"])
    # the square is drawn on the slice, and the checklist went on to the next slot
    shapes = viewer.layers["M1 annotations"]
    assert "rectangle" in shapes.shape_type
    viewer.window.screenshot(str(shots / "mrsi-voxel-slots.png"), canvas_only=False, flash=False)
    # stored with the annotations; reloaded identical; the CLI engine measures the same
    path = ctl.save_as(tmp_path / "voxels.m1ann.jsonl")
    text = path.read_text()
    assert '"voxel_ijk": [' in text
    loaded = load_annotations(path, protocol=get_protocol("mrsi-m1"))
    assert loaded.items["L_hand_mrsi_voxel"].voxel_ijk == planted
    eng = engine_for_case(load_case(case), get_protocol("mrsi-m1"), reader="r")
    for slot in targets:
        eng.update(slot, loaded.items[slot])
        cli = {r["metabolite"]: r for r in eng.rows_for(slot) if r["layer_kind"] == "mrsi"}
        gui = {r["metabolite"]: r for r in ctl.export_rows() if r["slot"] == slot}
        for name in maps:
            for col in ("mean", "mean_unfiltered", "mrsi_qc_reason", "mrsi_voxel_i"):
                a, b = cli[name][col], gui[name][col]
                assert a == b or (np.isnan(a) and np.isnan(b)), (slot, name, col)
