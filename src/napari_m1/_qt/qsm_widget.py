"""Dock widget "QSM": reconstruct susceptibility from the open case's multi-echo GRE.

Parameters are a magicgui form (preset, B0 — taken from the case's sidecars or case.json
when they give it —, unwrapping, background removal, inversion, reference, TV weight, ...);
the reconstruction (:func:`napari_m1.qsm.run_qsm`) runs in a napari worker thread with a
progress bar (pipeline steps plus a 0.5 s elapsed-time tick) and a Cancel button that
stops the worker at its next slice / sphere / iteration and frees the dock at once.
The result appears as an image layer ``qsm`` on the GRE grid and the brain mask as an
editable Labels layer ``qsm mask`` (1 = final mask, 2 = rim removed by V-SHARP); with
"use mask layer" ticked the next run uses the edited mask. The *roi* reference is the
region painted in the Labels layer ``qsm reference`` (added, empty, when it is picked).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..errors import M1Error
from ..io import LayerMeta
from ..io._meta import METADATA_KEY

if TYPE_CHECKING:
    import napari

    from ..qsm import QSMInput, QSMResult

__all__ = ["QSMWidget"]

log = logging.getLogger(__name__)

QSM_LAYER = "qsm"
MASK_LAYER = "qsm mask"
REFERENCE_LAYER = "qsm reference"
#: B0 the form shows when the case does not say (the project's scanners are 7 T).
DEFAULT_B0_T = 7.0


def _find_layer(viewer: Any, kind: str) -> Any:
    for layer in viewer.layers:
        md = LayerMeta.of(layer)
        if md is not None and md.kind == kind:
            return layer
    return None


class QSMWidget(QWidget):
    """Reconstruct QSM from the GRE magnitude + phase layers of the open case.

    Signals
    -------
    finished(object)
        The :class:`napari_m1.qsm.QSMResult` after its layers were added.
    failed(str)
        One-line message when the run could not start or stopped with an error.
    cancelled()
        The run was cancelled (emitted as soon as the user asks).
    """

    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    _progress_sig = Signal(float, str)

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox

        from ..qsm import PRESETS

        self.viewer = napari_viewer
        d = PRESETS["default"]
        self.preset = ComboBox(label="preset", choices=["default", "fast"], value="default")
        self.b0 = FloatSpinBox(label="B0 (T)", value=DEFAULT_B0_T, min=0.1, max=20.0, step=0.5)
        self.b0.tooltip = "Taken from the case (sidecar MagneticFieldStrength / case.json)"
        self._b0_case: tuple[float, str] | None = None  # (tesla, where) from the open case
        self.unwrap = ComboBox(label="unwrapping", choices=["path", "laplacian", "path3d"])
        self.background = ComboBox(label="background", choices=["vsharp", "resharp", "pdf"])
        self.dipole = ComboBox(
            label="inversion",
            choices=[("tv", "tv"), ("tkd", "tkd"), ("iswim (research)", "iswim")],
        )
        self.reference = ComboBox(label="reference", choices=["mean", "csf", "roi", "none"])
        self.reference.tooltip = (
            "χ = 0 at: mean = the whole final mask; csf = CSF (long T2*); roi = the region "
            f"painted in the '{REFERENCE_LAYER}' Labels layer; none = not referenced"
        )
        self.tv_lambda = FloatSpinBox(
            label="TV λ", value=d.tv_lambda, min=1e-6, max=1e-2, step=1e-5
        )
        self.tv_lambda.native.setDecimals(6)
        self.tv_iterations = SpinBox(label="TV iterations", value=d.tv_iterations, min=1, max=500)
        self.tkd_threshold = FloatSpinBox(
            label="TKD threshold", value=d.tkd_threshold, min=0.01, max=0.5, step=0.01
        )
        self.vsharp_radius = FloatSpinBox(
            label="V-SHARP radius (mm)", value=d.vsharp_max_radius_mm, min=1.0, max=25.0
        )
        self.use_mask = CheckBox(label="use mask layer", value=False)
        self.use_mask.tooltip = f"Use the (edited) '{MASK_LAYER}' Labels layer as the brain mask"
        self.form = Container(
            widgets=[
                self.preset,
                self.b0,
                self.unwrap,
                self.background,
                self.dipole,
                self.reference,
                self.tv_lambda,
                self.tv_iterations,
                self.tkd_threshold,
                self.vsharp_radius,
                self.use_mask,
            ]
        )
        self.preset.changed.connect(self._on_preset)
        self.reference.changed.connect(self._on_reference)

        self.run_button = QPushButton("Reconstruct QSM")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.save_button = QPushButton("Save…")
        self.save_button.setEnabled(False)
        self.save_button.setToolTip("Write Chimap.nii.gz, mask, fields and qsm.json to a folder")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("Open a case with GRE phase, then press Reconstruct.")
        self.status.setWordWrap(True)

        lay = QVBoxLayout(self)
        lay.addWidget(self.form.native)
        row = QHBoxLayout()
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.save_button)
        lay.addLayout(row)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self.result: QSMResult | None = None
        self._input: QSMInput | None = None
        self._worker: Any = None
        self._cancel_event = threading.Event()
        self._t0 = 0.0
        self._last_msg = ""
        self._timer = QTimer(self)
        self._timer.setInterval(500)
        self._timer.timeout.connect(self._on_tick)
        self._progress_sig.connect(self._on_progress)
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button.clicked.connect(lambda: self.save())
        self._on_preset(self.preset.value)
        self.viewer.layers.events.inserted.connect(self._on_layers_changed)
        self._on_layers_changed()

    # ------------------------------------------------------------------ parameters
    def _on_preset(self, name: str) -> None:
        from ..qsm import PRESETS

        p = PRESETS[name]
        self.unwrap.value = p.unwrap
        self.background.value = p.background
        self.dipole.value = p.dipole
        self.reference.value = p.reference

    def _on_layers_changed(self, event: Any = None) -> None:
        """A case was opened: show its B0 (sidecar MagneticFieldStrength / case.json)."""
        gre = _find_layer(self.viewer, "gre")
        raw = LayerMeta.of(gre).raw if gre is not None else {}
        if gre is None:
            return
        b0 = raw.get("b0_tesla")
        if isinstance(b0, (int, float)) and 0.1 <= b0 <= 20:
            case = (float(b0), str(raw.get("b0_from", "the case")))
            if case != self._b0_case:
                self._b0_case = case
                self.b0.value = case[0]
                self.b0.tooltip = f"{case[0]:g} T from {case[1]}"
        elif self._b0_case is not None:  # another case, which does not say: the default
            self._b0_case = None
            self.b0.value = DEFAULT_B0_T
            self.b0.tooltip = f"Not in the case: {DEFAULT_B0_T:g} T assumed"

    def _on_reference(self, value: str) -> None:
        """'roi' picked: make sure there is a Labels layer to paint the reference region in."""
        if value != "roi" or REFERENCE_LAYER in self.viewer.layers:
            return
        gre = _find_layer(self.viewer, "gre")
        if gre is None:
            return
        shape = tuple(gre.data.shape[-3:])
        self.viewer.add_labels(
            np.zeros(shape, dtype=np.uint8),
            name=REFERENCE_LAYER,
            scale=tuple(gre.scale[-3:]),
            translate=tuple(gre.translate[-3:]),
            opacity=0.5,
            axis_labels=("S-I", "A-P", "R-L"),
            units=("mm", "mm", "mm"),
        )
        self.status.setText(
            f"Paint the reference region in the '{REFERENCE_LAYER}' layer, then Reconstruct."
        )

    def params(self) -> Any:
        """The :class:`napari_m1.qsm.QSMParams` the form describes."""
        from ..qsm import PRESETS

        base = PRESETS[self.preset.value]
        changed = {
            "unwrap": self.unwrap.value,
            "background": self.background.value,
            "dipole": self.dipole.value,
            "reference": self.reference.value,
            "tv_lambda": float(self.tv_lambda.value),
            "tv_iterations": int(self.tv_iterations.value),
            "tkd_threshold": float(self.tkd_threshold.value),
            "vsharp_max_radius_mm": float(self.vsharp_radius.value),
        }
        same = all(getattr(base, k) == v for k, v in changed.items())
        return base if same else base.replace(**changed)

    def current_input(self) -> QSMInput:
        """Magnitude + phase of the open case as a :class:`napari_m1.qsm.QSMInput`.

        Raises
        ------
        M1Error
            No GRE or no phase layer, echo times unknown, or the grids differ.
        """
        from ..qsm import input_from_arrays

        gre = _find_layer(self.viewer, "gre")
        phase = _find_layer(self.viewer, "phase")
        if gre is None:
            raise M1Error("no GRE magnitude layer: open a case first")
        if phase is None:
            raise M1Error("the open case has no GRE phase layer; QSM needs phase")
        g, p = LayerMeta.of(gre), LayerMeta.of(phase)
        if gre.data.shape != phase.data.shape or not np.allclose(g.ras_affine, p.ras_affine):
            raise M1Error("GRE magnitude and phase layers are not on the same grid")
        tes = g.echo_times_ms or p.echo_times_ms
        if not tes:
            raise M1Error("echo times unknown (no EchoTime in the sidecars)")
        b0 = float(self.b0.value)
        case_b0 = self._b0_case
        b0_from = case_b0[1] if case_b0 is not None and case_b0[0] == b0 else "QSM dock"
        return input_from_arrays(
            np.asarray(gre.data),
            np.asarray(phase.data),
            tes,
            b0,
            g.ras_affine,
            phase_scaling=p.raw.get("phase_scaling"),
            source={
                "case": g.case_label,
                "magnitude_files": list(g.raw.get("sources", [])),
                "phase_files": list(p.raw.get("sources", [])),
                "b0_from": b0_from,
                "source_axcodes": list(g.raw.get("source_axcodes", [])),
            },
        )

    def _mask_from_layer(self, shape: tuple[int, ...]) -> np.ndarray | None:
        if not self.use_mask.value or MASK_LAYER not in self.viewer.layers:
            return None
        data = np.asarray(self.viewer.layers[MASK_LAYER].data)
        if data.shape != shape:
            raise M1Error(f"'{MASK_LAYER}' layer is {data.shape}, the GRE grid is {shape}")
        return data > 0

    def _reference_from_layer(self, shape: tuple[int, ...]) -> np.ndarray | None:
        if self.reference.value != "roi":
            return None
        if REFERENCE_LAYER not in self.viewer.layers:
            raise M1Error(f"reference 'roi': paint the region in a '{REFERENCE_LAYER}' layer")
        data = np.asarray(self.viewer.layers[REFERENCE_LAYER].data)
        if data.shape != shape:
            raise M1Error(f"'{REFERENCE_LAYER}' layer is {data.shape}, the GRE grid is {shape}")
        if not data.any():
            raise M1Error(f"reference 'roi': the '{REFERENCE_LAYER}' layer is empty")
        return data > 0

    # ------------------------------------------------------------------ running
    def run(self, *, block: bool = False) -> None:
        """Start a reconstruction (in a worker thread unless ``block``)."""
        from napari.qt.threading import create_worker

        from ..qsm import run_qsm

        if self._worker is not None:
            return
        try:
            inp = self.current_input()
            mask = self._mask_from_layer(inp.shape)
            ref_roi = self._reference_from_layer(inp.shape)
        except M1Error as exc:
            self._fail(str(exc))
            return
        params = self.params()
        self._input = inp
        self._cancel_event = threading.Event()
        cancel_event = self._cancel_event

        def job() -> Any:
            return run_qsm(
                inp,
                params,
                mask=mask,
                reference_roi=ref_roi,
                progress=self._progress_sig.emit,
                cancel=cancel_event.is_set,
            )

        self._set_running(True)
        if block:
            try:
                res = job()
            except Exception as exc:
                self._on_error(exc, cancel_event)
                return
            self._on_done(res, cancel_event)
            return
        worker = create_worker(job, _ignore_errors=True)
        worker.returned.connect(lambda res, ev=cancel_event: self._on_done(res, ev))
        worker.errored.connect(lambda exc, ev=cancel_event: self._on_error(exc, ev))
        self._worker = worker
        worker.start()

    def cancel(self) -> None:
        """Ask the worker to stop at its next check and free the dock now."""
        if not self.cancel_button.isEnabled():
            return
        self._cancel_event.set()
        self._worker = None  # the old worker's late result is ignored (its event is set)
        self._set_running(False)
        self.status.setText("Cancelled.")
        self.cancelled.emit()

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.form.enabled = not running
        if running:
            self._t0 = time.perf_counter()
            self._last_msg = "starting"
            self.progress.setValue(0)
            self.status.setText("Reconstructing… 0 s")
            self._timer.start()
        else:
            self._timer.stop()

    def _on_progress(self, frac: float, msg: str) -> None:
        if self._cancel_event.is_set():
            return
        self.progress.setValue(int(1000 * frac))
        self._last_msg = msg
        self._on_tick()

    def _on_tick(self) -> None:
        dt = time.perf_counter() - self._t0
        self.status.setText(f"Reconstructing… {dt:.0f} s · {self._last_msg}")

    def _on_error(self, exc: BaseException, event: threading.Event) -> None:
        from ..qsm import Cancelled

        if event.is_set() or isinstance(exc, Cancelled):
            return  # cancel() already freed the dock
        self._worker = None
        self._set_running(False)
        if isinstance(exc, M1Error):
            self._fail(str(exc))
        else:
            log.error("QSM failed", exc_info=exc)
            self._fail(f"QSM failed: {type(exc).__name__}: {exc}")

    def _fail(self, msg: str) -> None:
        self.status.setText(msg)
        self.failed.emit(msg)

    def _on_done(self, res: QSMResult, event: threading.Event) -> None:
        if event.is_set():
            return
        self._worker = None
        self._set_running(False)
        self.result = res
        self._show(res)
        self.progress.setValue(1000)
        kept = 100.0 * res.mask.sum() / max(1, res.input_mask.sum())
        ref = res.info["reference"]["subtracted_ppm"]
        secs = sum(res.timings_s.values())
        self.status.setText(
            f"Done in {secs:.1f} s ({res.params.preset}: {res.info['background']['method']} + "
            f"{res.info['dipole']['method']}). The final mask keeps {kept:.0f} % of the brain "
            f"mask (label 2 = eroded rim: ROIs there are not reconstructed). Reference "
            f"{ref:+.4f} ppm subtracted ({res.info['reference']['method']})."
        )
        outside = self.roi_outside()
        if outside:
            parts = ", ".join(f"{slot} {100 * f:.0f} %" for slot, f in outside.items())
            self.status.setText(self.status.text() + f" ROI area outside the QSM mask: {parts}.")
        self.save_button.setEnabled(True)
        self.finished.emit(res)

    def roi_outside(self) -> dict[str, float]:
        """Per annotated ROI: the area fraction outside the final QSM mask (M1 lies at the
        brain surface, where V-SHARP erodes the mask). Empty without annotations."""
        from .._annotate import _CONTROLLERS
        from ..qsm import roi_fraction_outside

        ctl = _CONTROLLERS.get(self.viewer)
        annset = getattr(ctl, "annset", None)
        gre = _find_layer(self.viewer, "gre")
        if self.result is None or annset is None or gre is None:
            return {}
        ras = LayerMeta.of(gre).ras_affine
        return {
            slot: roi_fraction_outside(a.centre_ras, a.semi_axes_ras, self.result.mask, ras)
            for slot, a in sorted(annset.items.items())
            if a.kind == "roi"
        }

    def _show(self, res: QSMResult) -> None:
        from ..io._layers import QSM_COLORMAP

        gre = _find_layer(self.viewer, "gre")
        g = LayerMeta.of(gre)
        scale = tuple(gre.scale[-3:])
        translate = tuple(gre.translate[-3:])
        md = {
            "kind": "qsm",
            "ras_affine": np.asarray(g.ras_affine).tolist(),
            "source_affine": None if g.source_affine is None else g.source_affine.tolist(),
            "source_axcodes": list(g.raw.get("source_axcodes", [])),
            "voxel_size_mm": list(g.raw.get("voxel_size_mm", [])),
            "echo_times_ms": None,
            "has_echo_axis": False,
            "resampled": False,
            "sources": ["reconstructed in napari-m1"],
            "case_label": g.case_label,
            "units": "ppm",
            "qsm_params": res.params.preset,
        }
        chi = res.chi_ppm
        inside = chi[res.mask]
        m = float(np.percentile(np.abs(inside), 99)) if inside.size else 0.1
        if QSM_LAYER in self.viewer.layers:
            layer = self.viewer.layers[QSM_LAYER]
            layer.data = chi
            layer.metadata = {METADATA_KEY: md}
            layer.contrast_limits = (-m, m)
        else:
            self.viewer.add_image(
                chi,
                name=QSM_LAYER,
                scale=scale,
                translate=translate,
                colormap=QSM_COLORMAP,
                contrast_limits=(-max(m, 1e-6), max(m, 1e-6)),
                interpolation2d="nearest",
                metadata={METADATA_KEY: md},
                axis_labels=("S-I", "A-P", "R-L"),
                units=("mm", "mm", "mm"),
            )
        labels = np.where(res.mask, 1, np.where(res.input_mask, 2, 0)).astype(np.uint8)
        if MASK_LAYER in self.viewer.layers:
            self.viewer.layers[MASK_LAYER].data = labels
        else:
            self.viewer.add_labels(
                labels,
                name=MASK_LAYER,
                scale=scale,
                translate=translate,
                opacity=0.25,
                axis_labels=("S-I", "A-P", "R-L"),
                units=("mm", "mm", "mm"),
            )
            self.viewer.layers[MASK_LAYER].visible = False
        # keep the GRE selected, the map on top of it
        self.viewer.layers.selection.active = self.viewer.layers[QSM_LAYER]

    # ------------------------------------------------------------------ saving
    def save(self, folder: str | Path | None = None, *, ask_path: bool = True) -> Path | None:
        """Write the last result (Chimap.nii.gz, mask, fields, qsm.json) into ``folder``."""
        from ..qsm import write_qsm_outputs

        if self.result is None or self._input is None:
            return None
        if folder is None:
            if not ask_path:
                return None
            folder = QFileDialog.getExistingDirectory(self, "Save QSM into a folder")
            if not folder:
                return None
        try:
            out = write_qsm_outputs(
                self.result, folder, affine=self._input.affine, source=self._input.source
            )
        except M1Error as exc:
            self._fail(str(exc))
            return None
        self.status.setText(f"Saved to {out}")
        return out
