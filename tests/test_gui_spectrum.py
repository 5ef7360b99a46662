"""The "M1 spectrum" dock in a real napari window: hover an MRSI voxel with real mouse
events, see that voxel's spectrum (data, fit, baseline, residual) and its QC; thresholds
re-mask the ratio maps live; the "excluded (reason)" layers; blinded sessions."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from qtpy.QtCore import QEvent, QPointF, Qt
from qtpy.QtGui import QMouseEvent
from qtpy.QtTest import QTest
from qtpy.QtWidgets import QApplication, QLabel

from napari_m1._mrsi_view import get_mrsi_view
from napari_m1._viewer import camera_of, reference_layer
from napari_m1.geometry import ras_to_world
from napari_m1.io import LayerMeta
from napari_m1.mrsi import QCThresholds, ratio_maps, read_fsl_mrsi
from napari_m1.mrsi._synth import write_fsl_mrsi_folder

pytestmark = pytest.mark.gui

SF = 297.2  # MHz
DWELL = 2.5e-4  # s
N = 512
PEAKS = {"NAA": 2.01, "Cr": 3.03, "Cho": 3.21}


def _amplitudes(shape):
    i, j, k = np.indices(shape, dtype=float)
    return {"NAA": 1.0 + 0.1 * i + 0.05 * j + 0.3 * k, "Cr": 0.8 + 0.02 * j, "Cho": 0.3 + 0.0 * i}


def _fid(amps: dict[str, np.ndarray], t2_s: float = 0.04) -> np.ndarray:
    """Lorentzian singlets (NIfTI-MRS frame: a peak at ppm p has +(4.65 - p)·SF Hz)."""
    t = np.arange(N) * DWELL
    out = 0
    for name, ppm in PEAKS.items():
        f = (4.65 - ppm) * SF
        out = out + amps[name][..., None] * np.exp((2j * np.pi * f - 1 / t2_s) * t)
    return out


def _save_mrs(data: np.ndarray, affine: np.ndarray, path, extra: dict | None = None) -> None:
    img = nib.Nifti2Image(data.astype(np.complex64), affine)
    img.header["pixdim"][4] = DWELL
    img.header["intent_name"] = b"mrs_v0_2"
    meta = {"SpectrometerFrequency": [SF], "ResonantNucleus": ["1H"], **(extra or {})}
    img.header.extensions.append(nib.nifti1.Nifti1Extension(44, json.dumps(meta).encode()))
    nib.save(img, str(path))


def write_fit_spectra(folder, shape, affine, *, extra_header: dict | None = None):
    """fit/{fit,residual,baseline}.nii.gz with a different spectrum in every voxel."""
    rng = np.random.default_rng(3)
    amps = _amplitudes(shape)
    fit = _fid(amps)
    t = np.arange(N) * DWELL
    baseline = 0.2 * np.exp(-t / 0.002)[None, None, None, :] * (1 + 0 * amps["NAA"][..., None])
    fit = fit + baseline
    residual = 0.05 * (rng.standard_normal(fit.shape) + 1j * rng.standard_normal(fit.shape))
    d = folder / "fit"
    d.mkdir(exist_ok=True)
    _save_mrs(fit, affine, d / "fit.nii.gz", extra_header)
    _save_mrs(residual, affine, d / "residual.nii.gz", extra_header)
    _save_mrs(baseline, affine, d / "baseline.nii.gz", extra_header)
    return amps


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
        w = self.world(ras)[-3:]
        view = self.canvas.view
        disp = [d - (self.viewer.dims.ndim - 3) for d in self.viewer.dims.displayed]
        x, y = (view.transform * view.scene.transform).map([w[disp[1]], w[disp[0]]])[:2]
        ev = QMouseEvent(
            QEvent.Type.MouseMove,
            QPointF(x, y),
            QPointF(x, y),
            Qt.MouseButton.NoButton,
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(self.canvas.native, ev)
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
            raw = nib.load(syn.folder / "concs" / "raw" / f"{stem}.nii.gz").get_fdata()[ijk]
            assert float(qc[met][2]) == pytest.approx(snr, abs=0.051)
            assert float(qc[met][1]) == pytest.approx(fwhm_hz / SF, abs=0.0006)
            assert float(qc[met][0]) == pytest.approx(100 * sd / raw, abs=0.51)
        verdict = sw.verdict_label.text()
        if tuple(ijk) == tuple(planted):
            assert "Glx/tCr" in verdict and "excluded (snr)" in verdict
            assert float(qc["Glx"][2]) == pytest.approx(3.0, abs=0.05)
        want_kept = [r.name for r in ratio_maps(fit) if r.reason[ijk] == 0]
        for name in want_kept:
            assert f"{name} " in verdict and verdict.split(f"{name} ")[1].split("\n")[0].endswith(
                "kept"
            )
    viewer.window.screenshot(str(shots / "mrsi-spectrum.png"), canvas_only=False)


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
    # a stricter S/N threshold through the form: more voxels excluded, live
    sw.thresholds.min_snr.value = 30.0
    strict = {r.name: r for r in ratio_maps(fit, QCThresholds(min_snr=30.0))}["tNAA/tCr"]
    assert strict.summary["n_excluded"] > default.summary["n_excluded"]
    assert np.isnan(layer.data).sum() == strict.summary["n_excluded"]
    assert int(np.count_nonzero(ex.data)) == strict.summary["n_excluded"]
    assert layer.metadata["napari_m1"]["qc"]["thresholds"]["min_snr"] == 30.0
    kept = ~np.isnan(layer.data)
    assert np.all(ex.data[kept] == 0)
    # looser %SD: the planted CRLB voxel comes back
    sw.thresholds.min_snr.value = 5.0
    sw.thresholds.max_sd.value = 40.0
    assert ex.data[idx] == 0 and np.isfinite(layer.data[idx])
    sw.thresholds.max_sd.value = 20.0
    ex.visible = True
    viewer.window.screenshot(str(shots / "mrsi-excluded.png"), canvas_only=False)


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
    get_mrsi_view(viewer).blinded = False
    sw._show_source_text()
    assert "Doe_Jane_MRSI" in sw.source_label.text()  # outside a session the folder is named


def _world_of(viewer, fit, ijk):
    ref = reference_layer(viewer)
    ras = (fit.affine @ np.array([*ijk, 1.0]))[:3]
    md = LayerMeta.of(ref)
    return ras_to_world(ras, md.ras_affine, ref.scale, ref.translate)
