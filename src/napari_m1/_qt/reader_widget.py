"""Dock widget "Reader session": one reader's blinded pass through a study.

The reader enters the study folder and their reader id; the dock shows "case k of
N" and the pseudonym only, loads the case with identifiers stripped, stores every
answer and annotation change in the study database at once, counts active time
(idle gaps over the study's threshold are not counted), and locks a case when it
is submitted. Closing napari and reopening the session resumes where it stopped.
"""

from __future__ import annotations

import functools
import logging
import time
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
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from .._annotate import get_controller
from .._viewer import add_case_layers, get_orientation, m1_layers
from ..errors import M1Error
from ..session import (
    ActiveTimer,
    LockedError,
    ReaderSession,
    Redactor,
    SessionAnnotationStore,
    blind_case,
    identifying_tokens,
)

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


def _on_destroyed(redactor: Redactor, *args: Any) -> None:
    redactor.uninstall()


class ReaderWidget(QWidget):
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
        self.session: ReaderSession | None = None
        self.pseudonym: str | None = None
        self.redactor = Redactor()
        self.timer = ActiveTimer()
        self._loading_form = False

        self.study_edit = QLineEdit()
        self.study_edit.setPlaceholderText("study folder")
        self.browse_button = QPushButton("Browse…")
        self.reader_edit = QLineEdit()
        self.reader_edit.setPlaceholderText("your reader id, e.g. R1")
        self.start_button = QPushButton("Start / resume")
        self.header = QLabel("No session")
        self.header.setStyleSheet("font-weight: bold; font-size: 14px")
        self.state_label = QLabel("")
        self.state_label.setWordWrap(True)

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
            g.idClicked.connect(lambda v, f=field: self._on_answer(f, v))
        g = QButtonGroup(self)
        row = QHBoxLayout()
        for value in range(1, 6):
            b = QRadioButton(str(value))
            g.addButton(b, value)
            row.addWidget(b)
        row.addStretch(1)
        form.addRow("Confidence (1 low – 5 high)", row)
        self.groups["confidence"] = g
        g.idClicked.connect(lambda v: self._on_answer("confidence", v))
        self.comment = QPlainTextEdit()
        self.comment.setPlaceholderText("comment (optional)")
        self.comment.setMaximumHeight(70)
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

        top = QHBoxLayout()
        top.addWidget(self.study_edit)
        top.addWidget(self.browse_button)
        who = QHBoxLayout()
        who.addWidget(self.reader_edit)
        who.addWidget(self.start_button)
        nav = QHBoxLayout()
        nav.addWidget(self.prev_button)
        nav.addWidget(self.submit_button)
        nav.addWidget(self.next_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(who)
        lay.addWidget(self.header)
        lay.addWidget(self.state_label)
        lay.addWidget(form_box)
        lay.addLayout(nav)
        lay.addStretch(1)

        self.browse_button.clicked.connect(self._on_browse)
        self.start_button.clicked.connect(lambda: self.start())
        self.submit_button.clicked.connect(lambda: self.submit())
        self.next_button.clicked.connect(lambda: self.go(+1))
        self.prev_button.clicked.connect(lambda: self.go(-1))
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self.flush_time)
        self.destroyed.connect(functools.partial(_on_destroyed, self.redactor))
        self.viewer.mouse_move_callbacks.append(self._on_activity)
        self.viewer.dims.events.current_step.connect(self._on_activity)
        self._refresh()

    # ------------------------------------------------------------------ session
    def start(
        self, study_dir: str | Path | None = None, reader: str | None = None, *, block: bool = True
    ) -> bool:
        """Open the study as ``reader`` and go to the first case not yet submitted."""
        study = str(study_dir or self.study_edit.text()).strip()
        who = (reader or self.reader_edit.text()).strip()
        self.study_edit.setText(study)
        self.reader_edit.setText(who)
        try:
            session = ReaderSession(study, who)
        except M1Error as exc:
            self._error(str(exc))
            return False
        self.close_session()
        self.session = session
        self.redactor.install()
        self.timer = ActiveTimer(float(session.settings["idle_threshold_s"]))
        self._flush_timer.start()
        nxt = session.resume_point()
        if nxt is None:
            self.header.setText(f"All {len(session.reads())} cases submitted — thank you")
            self._refresh()
            self.finished.emit()
            return True
        return self.open(nxt.pseudonym)

    def close_session(self) -> None:
        """Store pending time and leave the study (layers of the case are removed)."""
        if self.session is None:
            return
        self.flush_time()
        self._save_comment()
        self._clear_case()
        self.session.close()
        self.session = None
        self.pseudonym = None
        self._flush_timer.stop()
        self.redactor.uninstall()
        self._refresh()

    def open(self, pseudonym: str) -> bool:
        """Load one read's case (blinded) with its stored answers and annotations."""
        s = self._require()
        self.flush_time()
        self._save_comment()
        try:
            s.open_read(pseudonym)
            folder = s.case_folder(pseudonym)
            self.redactor.set_tokens(identifying_tokens(folder))
            from ..io import load_case

            case = blind_case(load_case(folder), pseudonym, self.redactor)
        except M1Error as exc:
            self._error(self.redactor.redact(str(exc)))
            return False
        self._clear_case()
        self.pseudonym = pseudonym
        add_case_layers(self.viewer, case)
        self.orientation.apply()
        from napari.utils.notifications import show_warning

        for w in case.warnings:
            show_warning(w)
        # Locked reads are refused (and the attempt logged) by the study database itself.
        self.ctl.reconfigure(reader=s.reader, store=SessionAnnotationStore(s, pseudonym))
        self.timer.reset()
        self._load_form()
        self._refresh()
        self.case_opened.emit(pseudonym)
        return True

    def _clear_case(self) -> None:
        self.ctl.detach()
        for ly in m1_layers(self.viewer):
            self.viewer.layers.remove(ly)

    # ------------------------------------------------------------------ form
    def _load_form(self) -> None:
        s = self._require()
        ans = s.answers(self.pseudonym)
        self._loading_form = True
        try:
            for field, g in self.groups.items():
                g.setExclusive(False)
                for b in g.buttons():
                    b.setChecked(False)
                g.setExclusive(True)
                if ans[field] is not None:
                    g.button(int(ans[field])).setChecked(True)
            self.comment.setPlainText(ans["comment"] or "")
        finally:
            self._loading_form = False

    def _on_answer(self, field: str, value: int) -> None:
        if self._loading_form or self.session is None or self.pseudonym is None:
            return
        self._on_activity()
        try:
            self.session.set_answer(self.pseudonym, field, value)
        except LockedError as exc:
            self._error(str(exc))
            self._load_form()
            return
        self._refresh()

    def set_answer(self, field: str, value: int) -> None:
        """Click the form's button for ``field`` = ``value`` (as the reader would)."""
        self.groups[field].button(int(value)).click()

    def _on_comment_changed(self) -> None:
        if not self._loading_form:
            self._comment_timer.start()

    def _save_comment(self) -> None:
        self._comment_timer.stop()
        if self.session is None or self.pseudonym is None or self._loading_form:
            return
        text = self.comment.toPlainText()
        if text == (self.session.answers(self.pseudonym)["comment"] or ""):
            return
        try:
            self.session.set_answer(self.pseudonym, "comment", text)
        except LockedError as exc:
            self._error(str(exc))

    # ------------------------------------------------------------------ navigation
    def submit(self, *, confirm: bool = True) -> bool:
        """Submit the current case (locks it) and go to the next one."""
        s = self._require()
        self._save_comment()
        missing = s.missing_answers(self.pseudonym)
        if missing:
            self._error(
                "Answer " + ", ".join(m.replace("_", " ") for m in missing) + " before submitting."
            )
            return False
        if (
            confirm
            and QMessageBox.question(
                self, "Submit case", "Submit this case? It is locked afterwards."
            )
            != QMessageBox.StandardButton.Yes
        ):
            return False
        self.flush_time()
        try:
            s.submit(self.pseudonym)
        except M1Error as exc:
            self._error(str(exc))
            return False
        nxt = s.resume_point()
        if nxt is None:
            self._clear_case()
            self.pseudonym = None
            self.header.setText(f"All {len(s.reads())} cases submitted — thank you")
            self._refresh()
            self.finished.emit()
            return True
        return self.open(nxt.pseudonym)

    def go(self, step: int) -> bool:
        """Previous/next read in this reader's list (submitted ones only if allowed)."""
        s = self._require()
        reads = s.reads()
        names = [r.pseudonym for r in reads]
        i = names.index(self.pseudonym) if self.pseudonym in names else -1
        j = i + step
        while 0 <= j < len(reads):
            if s.can_open(reads[j].pseudonym):
                return self.open(reads[j].pseudonym)
            j += step
        return False

    # ------------------------------------------------------------------ time
    def _on_activity(self, *args: Any) -> None:
        if self.session is not None and self.pseudonym is not None:
            self.timer.touch(time.monotonic())

    def flush_time(self) -> None:
        """Store the active time counted since the last flush."""
        secs = self.timer.take()
        if secs and self.session is not None and self.pseudonym is not None:
            self.session.add_active_time(self.pseudonym, secs)

    # ------------------------------------------------------------------ helpers
    def _require(self) -> ReaderSession:
        if self.session is None:
            raise M1Error("no reader session: enter the study folder and your reader id")
        return self.session

    def _error(self, msg: str) -> None:
        from napari.utils.notifications import show_error

        msg = self.redactor.redact(msg)
        self.state_label.setText(f"<span style='color:#ff6b5e'>{msg}</span>")
        show_error(msg)

    def _on_browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Open study folder")
        if d:
            self.study_edit.setText(d)

    def _refresh(self) -> None:
        s = self.session
        active = s is not None and self.pseudonym is not None
        for w in (self.form_box, self.submit_button):
            w.setEnabled(active)
        self.prev_button.setEnabled(active and bool(s and s.settings["back_navigation"]))
        self.next_button.setEnabled(active)
        if not active:
            if s is None:
                self.header.setText("No session")
                self.state_label.setText("")
            self.viewer.title = "napari-m1"
            return
        reads = s.reads()
        k = [r.pseudonym for r in reads].index(self.pseudonym) + 1
        locked = s.is_locked(self.pseudonym)
        self.header.setText(f"Case {k} of {len(reads)} · {self.pseudonym}")
        self.state_label.setText(
            f"Reader {s.reader} · " + ("submitted (locked)" if locked else "in progress")
        )
        self.form_box.setEnabled(not locked)
        self.submit_button.setEnabled(not locked)
        self.viewer.title = f"napari-m1 — reader {s.reader} — case {k} of {len(reads)}"
