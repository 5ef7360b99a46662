"""Dock widget "Reader session": one reader's blinded pass through a study.

The reader enters the study folder and their reader id; the dock shows "case k of
N" and the pseudonym only. All decisions (which case, may it be submitted, what the
message line says) are made by the Qt-free
:class:`~napari_m1.session.ReaderController`; this module wires it to buttons and to
the viewer. Cases load in a worker thread with a busy bar, and the next case is
prefetched while the reader works; the case swap itself (``reader_swap.py``) reuses the
layers shown and runs in short steps, so the window stays responsive at a case change.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .._annotate import get_controller
from .._mrsi_view import get_mrsi_view
from .._viewer import get_orientation
from ..errors import M1Error
from ..session import ReaderController, ReaderSession, Redactor
from .reader_swap import CaseSwapMixin, _load_layers

if TYPE_CHECKING:
    import napari

__all__ = ["ReaderWidget"]

log = logging.getLogger(__name__)

YES_NO_QUESTIONS = (
    ("hypointensity", "Deep-layer M1 hypointensity"),
    ("thinning", "Deep-layer M1 thinning"),
    ("als_consistent", "Consistent with ALS / UMN involvement"),
)
FLUSH_MS = 10_000
RETRY_MS = 5_000
COLOURS = {"error": "#ff6b5e", "info": "#9fd0ff"}


def _on_destroyed(redactor: Redactor, *args: Any) -> None:
    redactor.uninstall()


class ReaderWidget(CaseSwapMixin, QWidget):
    """The reader's side of a blinded study (see the module docstring).

    Signals
    -------
    case_opened(str)
        The pseudonym of the case now shown.
    finished()
        Every read of this reader is submitted.
    """

    case_opened = Signal(str)
    finished = Signal()

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.ctl = get_controller(napari_viewer)
        self.orientation = get_orientation(napari_viewer)
        self.reader_ctl = ReaderController()
        self._loading_form = False
        self._worker: Any = None
        self._adding = False
        #: reuse the case's layers at a case change (False: remove and add them, as before)
        self._reuse_layers = True

        self.study_edit = QLineEdit()
        self.study_edit.setPlaceholderText("study folder")
        self.browse_button = QPushButton("Browse…")
        self.reader_edit = QLineEdit()
        self.reader_edit.setPlaceholderText("reader id, e.g. R1")
        self.start_button = QPushButton("Start / resume")
        self.header = QLabel("No session")
        self.header.setStyleSheet("font-weight: bold; font-size: 14px")
        self.state_label = QLabel("")
        self.state_label.setWordWrap(True)
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        # its room is kept while hidden: showing it at a case change must not re-lay out
        # the window (that resizes and redraws the canvas: ~60 ms under software GL)
        policy = self.progress.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress.setSizePolicy(policy)
        self.progress.hide()

        self.groups: dict[str, QButtonGroup] = {}
        form_box = QGroupBox("Visual judgement")
        form = QFormLayout(form_box)
        for field, text in YES_NO_QUESTIONS:
            g = QButtonGroup(self)
            row = QHBoxLayout()
            for value, label in ((1, "yes"), (0, "no")):
                b = QRadioButton(label)
                g.addButton(b, value)
                row.addWidget(b)
            row.addStretch(1)
            form.addRow(text, row)
            self.groups[field] = g
            g.idClicked.connect(functools.partial(self._on_answer, field))
        g = QButtonGroup(self)
        row = QHBoxLayout()
        for value in range(1, 6):
            b = QRadioButton(str(value))
            g.addButton(b, value)
            row.addWidget(b)
        row.addStretch(1)
        form.addRow("Confidence (1 low – 5 high)", row)
        self.groups["confidence"] = g
        g.idClicked.connect(functools.partial(self._on_answer, "confidence"))
        self.comment = QPlainTextEdit()
        self.comment.setPlaceholderText("comment (optional)")
        self.comment.setMaximumHeight(48)
        form.addRow("Comment", self.comment)
        self._comment_timer = QTimer(self)
        self._comment_timer.setSingleShot(True)
        self._comment_timer.setInterval(800)
        self._comment_timer.timeout.connect(self._save_comment)
        self.comment.textChanged.connect(self._on_comment_changed)
        self.form_box = form_box

        self.prev_button = QPushButton("◀ Previous")
        self.submit_button = QPushButton("Submit case")
        self.next_button = QPushButton("Next ▶")

        top = QHBoxLayout()  # one row: study, reader, start (height for the workstation)
        top.addWidget(self.study_edit, 3)
        top.addWidget(self.browse_button)
        top.addWidget(self.reader_edit, 1)
        top.addWidget(self.start_button)
        nav = QHBoxLayout()
        nav.addWidget(self.prev_button)
        nav.addWidget(self.submit_button)
        nav.addWidget(self.next_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.header)
        state = QHBoxLayout()  # the busy bar beside the state line, not a row of its own
        state.addWidget(self.state_label, 3)
        state.addWidget(self.progress, 1)
        lay.addLayout(state)
        lay.addWidget(self.message_label)
        lay.addWidget(form_box)
        lay.addLayout(nav)
        lay.addStretch(1)
        # no taller than its content: the M1 workstation docked below gets the rest
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        self.browse_button.clicked.connect(self._on_browse)
        self.start_button.clicked.connect(lambda: self.start())
        self.submit_button.clicked.connect(lambda: self.submit())
        self.next_button.clicked.connect(lambda: self.go(+1))
        self.prev_button.clicked.connect(lambda: self.go(-1))
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self.flush_time)
        self._retry_timer = QTimer(self)
        self._retry_timer.setInterval(RETRY_MS)
        self._retry_timer.timeout.connect(self._on_retry)
        self.destroyed.connect(functools.partial(_on_destroyed, self.reader_ctl.redactor))
        self.viewer.mouse_move_callbacks.append(self._on_activity)
        self.viewer.dims.events.current_step.connect(self._on_activity)
        self.reader_ctl.changed.connect(self._refresh)
        self._refresh()

    # ------------------------------------------------------------------ compat
    @property
    def session(self) -> ReaderSession | None:
        """The open reader session."""
        return self.reader_ctl.session

    @property
    def pseudonym(self) -> str | None:
        """The pseudonym of the case on screen."""
        return self.reader_ctl.pseudonym

    @property
    def loading(self) -> bool:
        """True while a case is being loaded or put on screen."""
        return self._worker is not None or self._adding

    # ------------------------------------------------------------------ session
    def start(
        self,
        study_dir: str | Path | None = None,
        reader: str | None = None,
        *,
        block: bool = False,
    ) -> bool:
        """Open the study as ``reader`` and open the first case not yet submitted."""
        study = str(study_dir or self.study_edit.text()).strip()
        who = (reader or self.reader_edit.text()).strip()
        self.study_edit.setText(study)
        self.reader_edit.setText(who)
        self._save_comment()
        before = self.reader_ctl.session
        nxt = self.reader_ctl.start(study, who)  # a failed start keeps the old session
        if self.reader_ctl.session is None or self.reader_ctl.session is before:
            return False
        self._clear_case()
        self._flush_timer.start()
        if nxt is None:
            self.finished.emit()
            return True
        return self.open(nxt, block=block)

    def close_session(self) -> None:
        """Store pending time and leave the study (layers of the case are removed)."""
        if self.reader_ctl.session is None:
            return
        self._save_comment()
        self._clear_case()
        self.reader_ctl.close()
        self._apply_hide_numbers(False)  # the study's setting ends with the session
        get_mrsi_view(self.viewer).blinded = False
        self._flush_timer.stop()
        self._retry_timer.stop()

    def open(self, pseudonym: str, *, block: bool = False) -> bool:
        """Load one read's case (blinded) in a worker thread and show it with its stored
        answers and annotations (``block``: load in this thread)."""
        rc = self.reader_ctl
        self._save_comment()
        get_mrsi_view(self.viewer).blinded = True  # the spectrum dock: data only
        try:
            folder = rc.case_folder(pseudonym)
        except M1Error as exc:
            rc.failed(str(exc))
            return False
        if block:
            try:
                case = rc.load(pseudonym, folder)
            except M1Error as exc:
                rc.failed(str(exc))
                return False
            self._show(pseudonym, case)
            return True
        from napari.qt.threading import create_worker

        self._set_busy(True)
        worker = create_worker(_load_layers, rc, pseudonym, folder, _ignore_errors=True)
        worker.returned.connect(functools.partial(self._on_loaded, worker, pseudonym))
        worker.errored.connect(functools.partial(self._on_load_failed, worker))
        self._worker = worker
        worker.start()
        return True

    def _on_loaded(self, worker: Any, pseudonym: str, loaded: tuple[Any, list[Any]]) -> None:
        if worker is not self._worker:
            return  # superseded by a later open
        self._worker = None
        if self.reader_ctl.session is None:
            self._set_busy(False)
            return
        case, todo = loaded
        self._show(pseudonym, case, block=False, todo=todo)

    def _on_load_failed(self, worker: Any, exc: BaseException) -> None:
        if worker is not self._worker:
            return
        self._worker = None
        self._set_busy(False)
        msg = str(exc) if isinstance(exc, M1Error) else f"{type(exc).__name__}: {exc}"
        self.reader_ctl.failed(msg.splitlines()[0] if msg else type(exc).__name__)

    def _apply_hide_numbers(self, hidden: bool) -> None:
        from .measurement_widget import set_numbers_hidden

        set_numbers_hidden(self.viewer, hidden)  # also for a measurement dock opened later

    # ------------------------------------------------------------------ form
    def _load_form(self) -> None:
        ans = self.reader_ctl.answers()
        self._loading_form = True
        try:
            for field, g in self.groups.items():
                g.setExclusive(False)
                for b in g.buttons():
                    b.setChecked(False)
                g.setExclusive(True)
                if ans.get(field) is not None:
                    g.button(int(ans[field])).setChecked(True)
            self.comment.setPlainText(ans.get("comment") or "")
        finally:
            self._loading_form = False

    def _on_answer(self, field: str, value: int) -> None:
        if self._loading_form or self.reader_ctl.pseudonym is None:
            return
        if self.reader_ctl.answer(field, value):
            return
        if self.reader_ctl.pending:
            self._retry_timer.start()  # the answer stays checked on screen
        else:
            self._load_form()  # refused (locked): show what is stored

    def set_answer(self, field: str, value: int) -> None:
        """Click the form's button for ``field`` = ``value`` (as the reader would)."""
        self.groups[field].button(int(value)).click()

    def _on_comment_changed(self) -> None:
        if not self._loading_form:
            self._comment_timer.start()

    def _save_comment(self) -> None:
        self._comment_timer.stop()
        rc = self.reader_ctl
        if rc.session is None or rc.pseudonym is None or self._loading_form:
            return
        text = self.comment.toPlainText()
        if text == (rc.answers().get("comment") or ""):
            return
        if not rc.answer("comment", text) and rc.pending:
            self._retry_timer.start()

    def _on_retry(self) -> None:
        if self.reader_ctl.retry_pending():
            self._retry_timer.stop()

    # ------------------------------------------------------------------ navigation
    def submit(self, *, confirm: bool = True, block: bool = False) -> bool:
        """Submit the current case (locks it) and open the next one."""
        rc = self.reader_ctl
        rc.require()
        self._save_comment()
        check = rc.submit_check()
        if check.error:
            rc.failed(check.error)
            return False
        if check.missing_slots:
            text = (
                f"{len(check.missing_slots)} protocol slot(s) are not annotated:\n"
                + ", ".join(check.missing_slots)
                + "\n\nSubmit anyway? The case is locked afterwards."
            )
        else:
            text = "Submit this case? It is locked afterwards."
        if (confirm or check.missing_slots) and QMessageBox.question(
            self, "Submit case", text
        ) != QMessageBox.StandardButton.Yes:
            return False
        nxt = rc.submit()
        if nxt is None:
            if rc.finished:
                self._clear_case()
                self.finished.emit()
                return True
            return False
        return self.open(nxt, block=block)

    def go(self, step: int, *, block: bool = False) -> bool:
        """Previous/next read in this reader's list (submitted ones only if allowed)."""
        self._save_comment()
        nxt = self.reader_ctl.step(step)
        return False if nxt is None else self.open(nxt, block=block)

    # ------------------------------------------------------------------ time
    def _on_activity(self, *args: Any) -> None:
        self.reader_ctl.touch()

    def flush_time(self) -> None:
        """Store the active time counted since the last flush."""
        self.reader_ctl.flush_time()

    # ------------------------------------------------------------------ view
    def _on_browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Open study folder")
        if d:
            self.study_edit.setText(d)

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        if busy:
            self.message_label.setText("Loading the next case…")
        for w in (self.submit_button, self.next_button, self.prev_button, self.start_button):
            w.setEnabled(not busy)
        if not busy:
            self._refresh()

    def _refresh(self) -> None:
        v = self.reader_ctl.view()
        self.header.setText(v.header)
        self.state_label.setText(v.state)
        if v.message:
            from napari.utils.notifications import show_error

            colour = COLOURS.get(v.level, "")
            self.message_label.setText(f"<span style='color:{colour}'>{v.message}</span>")
            if v.level == "error" and v.message != getattr(self, "_shown_error", None):
                show_error(v.message)
            self._shown_error = v.message if v.level == "error" else None
        else:
            self.message_label.setText("")
            self._shown_error = None
        busy = self.loading
        self.form_box.setEnabled(v.form_enabled)
        self.submit_button.setEnabled(v.submit_enabled and not busy)
        self.prev_button.setEnabled(v.prev_enabled and not busy)
        self.next_button.setEnabled(v.next_enabled and not busy)
        self.start_button.setEnabled(not busy)
        self.viewer.title = v.title
