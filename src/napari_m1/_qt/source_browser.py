"""Sub-widget of the "M1 case" dock: browse a BIDS dataset or a DICOM folder, pick one.

* BIDS root -> one row per subject/session (GRE, phase, QSM, MRSI found);
* DICOM folder -> one row per magnitude series (the series picker; series that
  cannot be loaded are shown greyed with the reason);
* any other folder (case folder, bare NIfTI folder) -> one row.

Double-click or "Open" emits :attr:`SourceBrowser.open_requested` with a
callable that loads the chosen case (the dock runs it in a worker with its
progress). :func:`fill_missing_echo_times` asks once for echo times a bare NIfTI
folder does not hold and remembers them beside a copy (never in the user's data).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..errors import M1Error

__all__ = ["SourceBrowser", "fill_missing_echo_times"]

log = logging.getLogger(__name__)

_ROLE = Qt.ItemDataRole.UserRole


class SourceBrowser(QWidget):
    """List the cases a folder offers and request one to be opened.

    Signals
    -------
    open_requested(object)
        A callable ``() -> Case`` for the chosen row.
    listed(int)
        Emitted with the number of rows after a folder was listed.
    """

    open_requested = Signal(object)
    listed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder: Path | None = None
        self._worker: Any = None
        self.choose_button = QPushButton("Choose DICOM / BIDS / NIfTI folder…")
        self.folder_label = QLabel("")
        self.folder_label.setWordWrap(True)
        self.list = QListWidget()
        self.list.setMinimumHeight(90)
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.open_button = QPushButton("Open selected")
        self.open_button.setEnabled(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.choose_button)
        lay.addWidget(self.folder_label)
        lay.addWidget(self.list)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.open_button)
        lay.addLayout(row)
        self.choose_button.clicked.connect(self._on_choose_clicked)
        self.open_button.clicked.connect(self.open_selected)
        self.list.itemDoubleClicked.connect(lambda _item: self.open_selected())
        self.list.currentRowChanged.connect(self._on_row_changed)

    # ------------------------------------------------------------------ actions
    def set_folder(self, folder: str | Path, *, block: bool = False) -> None:
        """List what ``folder`` offers (DICOM headers are scanned in a worker)."""
        self.folder = Path(folder)
        self.list.clear()
        self.open_button.setEnabled(False)
        self.folder_label.setText(f"Reading {self.folder.name}…")
        job = _lister(self.folder)
        if block:
            try:
                rows = job()
            except M1Error as exc:
                self._on_failed(exc)
                return
            self._on_rows(rows)
            return
        from napari.qt.threading import create_worker

        self._worker = create_worker(job, _ignore_errors=True)
        self._worker.returned.connect(self._on_rows)
        self._worker.errored.connect(self._on_failed)
        self._worker.start()

    def open_selected(self) -> bool:
        """Emit :attr:`open_requested` for the selected row; False when none is usable."""
        item = self.list.currentItem()
        if item is None or not (item.flags() & Qt.ItemFlag.ItemIsEnabled):
            return False
        self.open_requested.emit(item.data(_ROLE))
        return True

    # ------------------------------------------------------------------ handlers
    def _on_choose_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a DICOM, BIDS or NIfTI folder")
        if folder:
            self.set_folder(folder)

    def _on_rows(self, rows: list[tuple[str, Callable[[], Any] | None, str]]) -> None:
        kind = rows[0][2] if rows else ""
        self.folder_label.setText(f"{self.folder.name if self.folder else ''}: {kind}")
        for text, job, _ in rows:
            item = QListWidgetItem(text)
            item.setToolTip(text)
            item.setData(_ROLE, job)
            if job is None:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.list.addItem(item)
        first = next((i for i, r in enumerate(rows) if r[1] is not None), -1)
        if first >= 0:
            self.list.setCurrentRow(first)
        self.listed.emit(len(rows))

    def _on_failed(self, exc: BaseException) -> None:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self.folder_label.setText(f"<span style='color:#e55'>{msg}</span>")
        self.listed.emit(0)

    def _on_row_changed(self, row: int) -> None:
        item = self.list.item(row) if row >= 0 else None
        self.open_button.setEnabled(
            item is not None and bool(item.flags() & Qt.ItemFlag.ItemIsEnabled)
        )


def _lister(folder: Path) -> Callable[[], list[tuple[str, Callable[[], Any] | None, str]]]:
    """A job listing a folder's cases: rows of (text, loader or None, folder kind)."""

    def job() -> list[tuple[str, Callable[[], Any] | None, str]]:
        from ..io import is_dicom_folder, load_case, load_dicom_case, scan_dicom
        from ..io._bids import is_bids_root, list_bids

        if is_bids_root(folder):
            from ..io import load_case_files

            rows: list[tuple[str, Callable[[], Any] | None, str]] = []
            for e in list_bids(folder):
                ok = bool(e.gre) and not e.problems
                rows.append(
                    (
                        e.summary(),
                        (lambda e=e, progress=None: load_case_files(e.case_files()))
                        if ok
                        else None,
                        "BIDS dataset",
                    )
                )
            return rows
        from ..io._case import _nifti_files

        if is_dicom_folder(folder) and not _nifti_files(folder):
            scan = scan_dicom(folder)
            rows = []
            for s in scan.by_kind("gre"):
                rows.append(
                    (
                        s.label(),
                        None
                        if s.problem
                        else (
                            lambda s=s, progress=None: load_dicom_case(
                                folder, scan=scan, gre=s.uid, progress=progress
                            )
                        ),
                        "DICOM series (magnitude)",
                    )
                )
            if not rows:
                raise M1Error(f"{folder.name}: no magnitude image series among the DICOM files")
            return rows
        return [
            (
                f"{folder.name} (NIfTI folder)",
                lambda progress=None: load_case(folder, progress=progress),
                "NIfTI folder",
            )
        ]

    return job


def _ask_dialog(parent: QWidget, n: int) -> list[float] | None:
    text, ok = QInputDialog.getText(
        parent,
        "Echo times",
        f"This folder does not say its echo times.\nEnter {n} echo time(s) in ms, "
        "comma-separated (kept in napari-m1's data folder, not in your files):",
    )
    if not ok or not text.strip():
        return None
    try:
        return [float(t) for t in text.replace(";", ",").split(",") if t.strip()]
    except ValueError:
        return None


def fill_missing_echo_times(
    parent: QWidget, case: Any, ask: Callable[[int], list[float] | None] | None = None
) -> Any:
    """Ask once for the echo times of a bare NIfTI folder; return the case reloaded.

    Only for folders without ``case.json``, DICOM or BIDS layout whose GRE has no
    echo times. The answer is written by :func:`~napari_m1.io.remember_echo_times`
    beside a copy in the user's data folder. Returns ``case`` unchanged otherwise
    (also when the user cancels or the answer does not fit the echoes).
    """
    from ..io import is_dicom_folder, load_case, remember_echo_times, remembered_copy
    from ..io._bids import is_bids_root
    from ..io._case import CASE_JSON

    folder = Path(case.files.folder)
    ref = case.volumes[0]
    if ref.echo_times_ms is not None or ref.kind != "gre":
        return case
    if (folder / CASE_JSON).is_file() or remembered_copy(folder) is not None:
        return case
    if is_bids_root(folder) or is_dicom_folder(folder):
        return case
    tes = ask(ref.n_echoes) if ask is not None else _ask_dialog(parent, ref.n_echoes)
    if not tes:
        return case
    try:
        remember_echo_times(folder, tes)
        return load_case(folder)
    except M1Error as exc:
        from napari.utils.notifications import show_warning

        show_warning(str(exc))
        return case
