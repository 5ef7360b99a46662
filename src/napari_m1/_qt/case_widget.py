"""Dock widget "M1 case": open a case folder or the sample, list its layers, orientation."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._mrsi_view import get_mrsi_view
from .._reading import get_reading_tools
from .._viewer import (
    StagedCaseLayers,
    add_case_layers,
    get_orientation,
    hemisphere_at_world,
    m1_layers,
    reference_layer,
    world_to_ras_in_viewer,
)
from ..errors import M1Error
from ..io import KINDS, Case, LayerMeta, load_case
from .source_browser import SourceBrowser, fill_missing_echo_times

if TYPE_CHECKING:
    import napari

__all__ = ["CaseWidget"]

log = logging.getLogger(__name__)

COLUMNS = ("Layer", "Kind", "Grid", "Voxel (mm)", "TE (ms)")


class CaseWidget(QWidget):
    """Open a 7T M1 case and control its display.

    Signals
    -------
    first_frame(str)
        Emitted with the case label when the GRE (echo 1) is shown, before the rest of
        the case is read (staged loading, the default for a click).
    load_progress(int, int)
        Bytes read so far and in all, while a case streams in.
    case_loaded(str)
        Emitted with the case label when the case is *ready*: every layer added and
        every array completely read. Measure only after this (or use
        :func:`napari_m1._viewer.case_is_complete`).
    load_failed(str)
        Emitted with the one-line error message when a case could not be opened.
    """

    first_frame = Signal(str)
    load_progress = Signal(int, int)
    _file_progress = Signal(int, int)  # DICOM/folder loads: worker thread -> GUI thread
    case_loaded = Signal(str)
    load_failed = Signal(str)

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.orientation = get_orientation(napari_viewer)
        get_reading_tools(napari_viewer)  # slice keys, window/level drag, hover readout
        # MRSI ratio layers get their hidden "excluded (reason)" layer after the first frame
        get_mrsi_view(napari_viewer).defer = lambda f: QTimer.singleShot(0, f)
        self._worker: Any = None
        self._staged: StagedCaseLayers | None = None

        self.open_button = QPushButton("Open case folder…")
        self.browse_button = QPushButton("DICOM / BIDS…")
        self.browse_button.setToolTip(
            "Browse a DICOM folder (series picker), a BIDS dataset (subjects/sessions) or a "
            "NIfTI folder, and open one case"
        )
        self.browser = SourceBrowser()
        self.browser.setVisible(False)
        # Seam for tests: callable(n_echoes) -> list of ms, instead of the dialog.
        self.ask_echo_times: Any = None
        self.sample_button = QPushButton("Open sample")
        self.sample_group = QComboBox()
        self.sample_group.addItems(["control", "als"])
        self.sample_group.setToolTip("Synthetic 7T M1 phantom: healthy control or ALS")
        self.file_button = QPushButton("Open file as…")
        self.kind_box = QComboBox()
        self.kind_box.addItems(["auto", *KINDS])
        self.kind_box.setToolTip(
            "What the file is: 'auto' guesses from the name (BIDS part-phase, Chimap, met-…); "
            "choose 'phase' for a phase image with another name."
        )
        self.case_label = QLabel("No case open")
        self.case_label.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.progress.setToolTip(
            "The GRE is shown as soon as echo 1 is read; later echoes and the maps follow. "
            "Measurements wait for the data they need."
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop reading this folder; nothing is opened")
        self.cancel_button.setVisible(False)
        self._cancel_requested = False
        self.radiological = QCheckBox("Radiological view (patient's left on screen right)")
        self.radiological.setChecked(True)
        self.cursor_label = QLabel("")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.setMaximumHeight(170)

        row = QHBoxLayout()
        row.addWidget(self.sample_button)
        row.addWidget(self.sample_group)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(3)
        row0 = QHBoxLayout()
        row0.addWidget(self.open_button, 1)
        row0.addWidget(self.browse_button)
        lay.addLayout(row0)
        lay.addWidget(self.browser)
        lay.addLayout(row)
        row2 = QHBoxLayout()
        row2.addWidget(self.file_button)
        row2.addWidget(self.kind_box)
        lay.addLayout(row2)
        lay.addWidget(self.case_label)
        lay.addWidget(self.table)
        lay.addWidget(self.radiological)
        lay.addWidget(self.cursor_label)
        row_p = QHBoxLayout()
        row_p.addWidget(self.progress, 1)
        row_p.addWidget(self.cancel_button)
        lay.addLayout(row_p)
        lay.addWidget(self.status)
        lay.addStretch(1)

        self.open_button.clicked.connect(self._on_open_clicked)
        self.browse_button.clicked.connect(lambda: self.show_browser())
        self.browser.open_requested.connect(lambda job: self._start(job, block=False))
        self.sample_button.clicked.connect(self._on_sample_clicked)
        self.file_button.clicked.connect(lambda: self.open_file())
        self.radiological.toggled.connect(self._on_radiological_toggled)
        self.viewer.layers.events.inserted.connect(self._refresh_table)
        self.viewer.layers.events.removed.connect(self._refresh_table)
        self.viewer.cursor.events.position.connect(self._on_cursor)
        self._file_progress.connect(self._on_file_progress)
        self.cancel_button.clicked.connect(self.cancel_load)
        self._refresh_table()

    # ------------------------------------------------------------------ actions
    def open_case(
        self, folder: str | Path | None = None, *, block: bool = False, ask_path: bool = True
    ) -> None:
        """Load a case folder and add its layers; a dialog asks for it when ``folder`` is None.

        ``block=True`` loads in the calling thread (tests, scripts). Otherwise the case
        streams in from a worker thread: the GRE appears as soon as echo 1 is read
        (:attr:`first_frame`), later echoes and the hidden maps follow with progress,
        and :attr:`case_loaded` says when everything is complete.
        """
        if folder is None:
            if not ask_path:
                return
            folder = QFileDialog.getExistingDirectory(self, "Open a 7T M1 case folder")
            if not folder:
                return
        from ..io._bids import is_bids_root

        if is_bids_root(folder):  # a dataset, not a case: list its subjects/sessions
            self.show_browser(folder, block=block)
            return
        if block or not _streamable(folder):
            # DICOM and bare NIfTI folders are converted/organised first: loaded whole
            self._start(lambda progress=None: load_case(folder, progress=progress), block=block)
        else:
            self._start_staged(folder)

    def show_browser(self, folder: str | Path | None = None, *, block: bool = False) -> None:
        """Show the DICOM/BIDS browser (listing ``folder`` when given)."""
        self.browser.setVisible(True)
        if folder is not None:
            self.browser.set_folder(folder, block=block)

    def open_sample(self, group: str | None = None, *, block: bool = False) -> None:
        """Open the synthetic phantom (writing it to the per-user sample cache once)."""
        from .._sample_data import phantom_case_dir

        g = group or self.sample_group.currentText()
        self.sample_group.setCurrentText(g)
        if block:
            self._start(lambda: load_case(phantom_case_dir(g)), block=True)
        else:
            self._start_staged(None, sample_group=g)

    def open_file(self, path: str | Path | None = None, kind: str | None = None) -> bool:
        """Add one NIfTI file as a layer, as the chosen kind, on the open case's grid.

        With no case open the file becomes its own reference grid. A rotated grid is
        resampled onto the reference; a file that misses it entirely is refused.
        """
        from ..geometry import reference_placement
        from ..io import Volume, load_nifti, place_on_reference, volume_to_layer_data

        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self, "Open a NIfTI file", "", "NIfTI (*.nii *.nii.gz)"
            )
            if not path:
                return False
        choice = kind or self.kind_box.currentText()
        try:
            vol = load_nifti(path, kind=None if choice == "auto" else choice)
            ref = reference_layer(self.viewer)
            if ref is None:
                place = reference_placement(vol.ras_affine, vol.spatial_shape)
            else:
                md = LayerMeta.of(ref)
                ref_vol = Volume(ref.data, md.ras_affine, md.source_affine, (), md.kind, ref.name)
                place = place_on_reference([ref_vol, vol])[1]
        except M1Error as exc:
            self._on_failed(exc)
            return False
        label = LayerMeta.of(ref).case_label if ref is not None else ""
        data, kwargs, _ = volume_to_layer_data(vol, place, visible=True, case_label=label)
        self.viewer.add_image(data, **kwargs)
        self.orientation.apply()
        self.status.setText("")  # an earlier error no longer applies
        self._refresh_case_label()
        from napari.utils.notifications import show_warning

        for w in vol.warnings:
            show_warning(w)
        return True

    def _start(self, job: Any, *, block: bool) -> None:
        import inspect

        self._cancel_requested = False
        if "progress" in inspect.signature(job).parameters:  # file-count progress
            job = partial(job, progress=self._report_progress)
            self.cancel_button.setVisible(not block)
        self.status.setText("Loading…")
        self.open_button.setEnabled(False)
        self.sample_button.setEnabled(False)
        if block:
            try:
                case = job()
            except M1Error as exc:
                self._on_failed(exc)
                return
            self._on_loaded(case)
            return
        from napari.qt.threading import create_worker

        self._worker = create_worker(job, _ignore_errors=True)
        self._worker.returned.connect(self._on_loaded)
        self._worker.errored.connect(self._on_failed)
        self._worker.start()

    def _start_staged(self, folder: str | Path | None, *, sample_group: str = "") -> None:
        """Stream a case in from a worker thread; layers appear as their data arrive."""
        from napari.qt.threading import create_worker

        from ..io import CaseLoad, LoadEvent

        def job():
            if folder is None:
                from .._sample_data import phantom_case_dir

                load = CaseLoad(phantom_case_dir(sample_group))
            else:
                load = CaseLoad(folder)
            yield LoadEvent("planned", 0, load.nbytes, 0, load.files.label)
            return (yield from load.steps())

        self.status.setText("Loading…")
        self.open_button.setEnabled(False)
        self.sample_button.setEnabled(False)
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self._worker = create_worker(job, _ignore_errors=True)
        self._worker.yielded.connect(self._on_load_event)
        self._worker.returned.connect(self._on_staged_done)
        self._worker.errored.connect(self._on_staged_failed)
        self._worker.start()

    # ------------------------------------------------------------------ handlers
    def _on_load_event(self, event: Any) -> None:
        if event.kind == "planned":
            self._staged = StagedCaseLayers(self.viewer, event.payload)
            self.status.setText(f"Loading {_gb(event.total)}…")
            return
        staged = self._staged
        if staged is None:
            return
        if event.total:
            self.progress.setValue(int(1000 * event.done / event.total))
            self.status.setText(f"Loading… {_gb(event.done)} of {_gb(event.total)}")
            self.load_progress.emit(int(event.done), int(event.total))
        staged.handle(event)
        if event.kind == "first":
            self.orientation.apply()
            self.case_label.setText(f"Case: {staged.label} (loading)")
            self.first_frame.emit(staged.label)
            self._draw_now()

    def _draw_now(self) -> None:
        """Draw the canvas now. The loader's later events (echoes, maps) are often
        queued already; Qt would handle them all, adding every map's layer, before it
        paints, so the first frame would wait for the whole case."""
        from .workstation import _private

        qt_viewer = _private(getattr(self.viewer, "window", None), "_qt_viewer")
        native = getattr(getattr(qt_viewer, "canvas", None), "native", None)
        if native is not None and native.isVisible():
            native.repaint()

    def _on_staged_done(self, case: Case) -> None:
        self.progress.setVisible(False)
        staged, self._staged = self._staged, None
        asked = fill_missing_echo_times(self, case, self.ask_echo_times)
        if asked is not case and staged is not None:
            staged.discard()  # reloaded with the echo times the user gave
            self._on_loaded(asked, add_layers=True)
            return
        self._on_loaded(case, add_layers=False)

    def _on_staged_failed(self, exc: BaseException) -> None:
        self.progress.setVisible(False)
        if self._staged is not None:
            self._staged.discard()  # all or nothing: no half-loaded case stays open
            self._staged = None
        self._on_failed(exc)

    def _on_loaded(self, case: Case, *, add_layers: bool = True) -> None:
        if add_layers:
            case = fill_missing_echo_times(self, case, self.ask_echo_times)
        self._enable()
        if add_layers:
            add_case_layers(self.viewer, case)
        self.orientation.apply()
        self.case_label.setText(f"Case: {case.files.label}")
        self.status.setText("")
        from napari.utils.notifications import show_warning

        for w in case.warnings:
            show_warning(w)
        self.case_loaded.emit(case.files.label)

    def cancel_load(self) -> None:
        """Stop a DICOM/folder load at its next file; nothing is opened."""
        self._cancel_requested = True

    def _report_progress(self, done: int, total: int) -> None:
        """Worker-thread progress callback: cancels by raising, reports by signal."""
        if self._cancel_requested:
            from ..errors import M1LoadError

            raise M1LoadError("loading was cancelled")
        self._file_progress.emit(done, total)

    def _on_file_progress(self, done: int, total: int) -> None:
        self.progress.setVisible(done < total)
        if total:
            self.progress.setValue(int(1000 * done / total))
            self.status.setText(f"Reading DICOM… {done} of {total} files")
            self.load_progress.emit(done, total)

    def _on_failed(self, exc: BaseException) -> None:
        self.progress.setVisible(False)
        self._enable()
        msg = str(exc) if isinstance(exc, M1Error) else f"{type(exc).__name__}: {exc}"
        msg = msg.splitlines()[0] if msg else type(exc).__name__
        self.status.setText(f"<span style='color:#e55'>Could not open: {msg}</span>")
        from napari.utils.notifications import show_error

        show_error(msg)
        self.load_failed.emit(msg)

    def _enable(self) -> None:
        self.cancel_button.setVisible(False)
        self.open_button.setEnabled(True)
        self.sample_button.setEnabled(True)

    def _on_open_clicked(self) -> None:
        self.open_case()

    def _on_sample_clicked(self) -> None:
        self.open_sample()

    def _on_radiological_toggled(self, checked: bool) -> None:
        self.orientation.radiological = checked

    def _on_cursor(self, event: Any = None) -> None:
        ref = reference_layer(self.viewer)
        if ref is None:
            self.cursor_label.setText("")
            return
        pos = self.viewer.cursor.position
        ras = world_to_ras_in_viewer(ref, pos)
        hemi = hemisphere_at_world(self.viewer, pos)
        self.cursor_label.setText(
            f"Cursor RAS ({ras[0]:.1f}, {ras[1]:.1f}, {ras[2]:.1f}) mm · hemisphere {hemi}"
        )

    def _refresh_case_label(self) -> None:
        ref = reference_layer(self.viewer)
        if ref is None:
            self.case_label.setText("No case open")
            return
        meta = LayerMeta.of(ref)
        label = (meta.case_label if meta is not None else "") or ref.name
        self.case_label.setText(f"Case: {label}")

    def _refresh_table(self, event: Any = None) -> None:
        self._refresh_case_label()
        layers = m1_layers(self.viewer)
        self.table.setRowCount(len(layers))
        for r, ly in enumerate(layers):
            md = LayerMeta.of(ly).raw
            te = md.get("echo_times_ms")
            vals = (
                ly.name,
                md.get("kind", ""),
                "resampled" if md.get("resampled") else "native",
                " × ".join(f"{v:.3g}" for v in md.get("voxel_size_mm", [])),
                ", ".join(f"{t:g}" for t in te) if te else "",
            )
            for c, v in enumerate(vals):
                item = QTableWidgetItem(str(v))
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.table.setItem(r, c, item)


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def _streamable(folder: str | Path) -> bool:
    """A case folder that streams in stages (case.json or BIDS-like names)."""
    from ..io import is_case_folder
    from ..io._case import CASE_JSON

    f = Path(folder)
    return (f / CASE_JSON).is_file() or is_case_folder(f)
