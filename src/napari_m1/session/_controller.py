"""The Reader session dock's logic without Qt: start, open, answer, submit, go.

:class:`ReaderController` holds one :class:`~._reader.ReaderSession` and decides what
the dock shows (:class:`ReaderView`) and which case to open next; the dock
(``_qt/reader_widget.py``) only wires buttons and the napari viewer to it. Loading a
case (:meth:`ReaderController.load`) is thread-safe so the dock can run it in a
worker thread, and the next case can be prefetched meanwhile.

Answers the database cannot take (read-only, disk full) stay *pending*: they are kept
on screen, retried by :meth:`ReaderController.retry_pending`, and block moving on
until they are stored.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psygnal import Signal

from ..errors import M1Error
from ._blind import Redactor, blind_case, identifying_tokens
from ._db import StoreUnavailableError
from ._reader import ActiveTimer, LockedError, ReaderSession

__all__ = ["ReaderController", "ReaderView", "SubmitCheck"]

log = logging.getLogger(__name__)

UNSAVED = "Answers are not saved yet: the study database refused them; retrying every 5 s."


@dataclass(frozen=True)
class ReaderView:
    """What the dock shows. ``level`` of the message: ``""``, ``info`` or ``error``."""

    header: str = "No session"
    state: str = ""
    message: str = ""
    level: str = ""
    form_enabled: bool = False
    submit_enabled: bool = False
    prev_enabled: bool = False
    next_enabled: bool = False
    title: str = "napari-m1"
    hide_numbers: bool = False


@dataclass(frozen=True)
class SubmitCheck:
    """Whether the current read can be submitted now.

    ``error``: why not (answers missing, required slots empty, unsaved answers).
    ``missing_slots``: empty protocol slots; with no ``error`` the reader must be asked.
    """

    error: str = ""
    missing_slots: tuple[str, ...] = field(default_factory=tuple)


def _label(s: str) -> str:
    return s.replace("_", " ")


class ReaderController:
    """One reader's pass through a study (see the module docstring).

    Signals
    -------
    changed()
        The view changed (call :meth:`view`).
    """

    changed = Signal()

    def __init__(self) -> None:
        self.session: ReaderSession | None = None
        self.pseudonym: str | None = None
        self.finished = False
        self.redactor = Redactor()
        self.timer = ActiveTimer()
        #: answers the database did not take yet: field -> (value, change id)
        self.pending: dict[str, tuple[Any, str]] = {}
        self._message = ("", "")
        self._tokens: set[str] = set()
        self._cache: dict[str, Any] = {}
        self._inflight: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ session
    def start(self, study_dir: str | os.PathLike[str], reader: str) -> str | None:
        """Open the study as ``reader``; the pseudonym to open (None: finished or failed)."""
        study, who = str(study_dir).strip(), str(reader).strip()
        try:
            if not study or not who:
                raise M1Error("enter the study folder and your reader id")
            session = ReaderSession(study, who)
        except M1Error as exc:
            self._say(str(exc), "error")
            return None
        self.close()
        self.session = session
        self.redactor.install()
        self.timer = ActiveTimer(float(session.settings["idle_threshold_s"]))
        self._message = ("", "")
        nxt = session.resume_point()
        self.finished = nxt is None
        self.changed.emit()
        return None if nxt is None else nxt.pseudonym

    def close(self) -> None:
        """Store pending time and leave the study."""
        if self.session is None:
            return
        self.flush_time()
        self.retry_pending()
        for t in self._threads:
            t.join(timeout=60)
        self._threads.clear()
        self.session.close()
        self.session = None
        self.pseudonym = None
        self.finished = False
        self.pending.clear()
        with self._lock:
            self._cache.clear()
        self.redactor.uninstall()
        self._tokens.clear()
        self._message = ("", "")
        self.changed.emit()

    def require(self) -> ReaderSession:
        """The open session (M1Error when there is none)."""
        if self.session is None:
            raise M1Error("no reader session: enter the study folder and your reader id")
        return self.session

    # ------------------------------------------------------------------ opening
    def case_folder(self, pseudonym: str) -> Path:
        """Check the read may be opened; its folder (identifiers join the redactor)."""
        s = self.require()
        if not s.can_open(pseudonym):
            raise M1Error(f"{pseudonym} is submitted; going back is not allowed in this study")
        folder = s.case_folder(pseudonym)
        self._tokens.update(identifying_tokens(folder))
        self.redactor.set_tokens(self._tokens)
        return folder

    def load(self, pseudonym: str, folder: Path) -> Any:
        """The blinded case of a read (prefetched or loaded now). Thread-safe; no database."""
        with self._lock:
            busy = self._inflight.get(pseudonym)
        if busy is not None:  # being prefetched: wait for it rather than load twice
            busy.wait()
        with self._lock:
            case = self._cache.pop(pseudonym, None)
        if case is not None:
            return case
        from ..io import load_case

        return blind_case(load_case(folder), pseudonym, self.redactor)

    def prefetch(self, pseudonym: str, folder: Path) -> None:
        """Load a read's case ahead of time (run it in a worker thread); errors wait for
        the real open."""
        from ..io import load_case

        with self._lock:
            if pseudonym in self._cache or pseudonym in self._inflight:
                return
            done = self._inflight[pseudonym] = threading.Event()
        try:
            case = blind_case(load_case(folder), pseudonym, self.redactor)
            with self._lock:
                self._cache = {pseudonym: case}  # one case ahead at most
        except M1Error:
            pass  # the real open reports it
        finally:
            with self._lock:
                self._inflight.pop(pseudonym, None)
            done.set()

    def prefetch_next(self, after: str | None = None) -> threading.Thread | None:
        """Start loading the case Submit would open after ``after`` (default: the case
        open now), in a background thread."""
        nxt = self.next_to_prefetch(after)
        if nxt is None:
            return None
        t = threading.Thread(target=self.prefetch, args=nxt, name="m1-prefetch", daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()
        return t

    def next_to_prefetch(self, after: str | None = None) -> tuple[str, Path] | None:
        """The read Submit would open after ``after`` (default: the current one), and
        its folder."""
        s = self.session
        after = after or self.pseudonym
        if s is None or after is None:
            return None
        reads = s.reads()
        names = [r.pseudonym for r in reads]
        i = names.index(after) if after in names else -1
        for r in reads[i + 1 :] + reads[: max(i, 0)]:
            if r.status != "submitted":
                try:
                    return r.pseudonym, self.case_folder(r.pseudonym)
                except M1Error:
                    return None
        return None

    def opened(self, pseudonym: str) -> None:
        """The case is on screen: log the open, reset the timer and the messages."""
        s = self.require()
        self.flush_time()
        self.pseudonym = pseudonym
        self.finished = False
        self.pending.clear()
        self._message = ("", "")  # old errors belong to the old case
        try:
            s.open_read(pseudonym)
        except StoreUnavailableError as exc:
            self._message = (f"{exc} (the case is shown; answers cannot be stored)", "error")
        self.timer.reset()
        self.changed.emit()

    def closed_case(self) -> None:
        """The case left the screen (finished, or the dock shows nothing)."""
        self.flush_time()
        self.pseudonym = None
        self.changed.emit()

    def failed(self, message: str) -> None:
        """A case could not be opened: say so (redacted)."""
        self._say(message, "error")

    # ------------------------------------------------------------------ answers
    def answers(self) -> dict[str, Any]:
        """Stored answers of the current read with the pending ones on top."""
        s = self.require()
        if self.pseudonym is None:
            return {}
        return {**s.answers(self.pseudonym), **{k: v for k, (v, _) in self.pending.items()}}

    def answer(self, field: str, value: Any) -> bool:
        """Store one answer; False when refused (locked) or kept pending (database)."""
        s = self.require()
        if self.pseudonym is None:
            return False
        self.touch()
        change_id = uuid.uuid4().hex  # the same id on every retry: applied at most once
        try:
            s.set_answer(self.pseudonym, field, value, change_id=change_id)
        except StoreUnavailableError as exc:
            self.pending[field] = (value, change_id)
            self._say(f"Not saved: {exc}. Your answer is kept on screen and retried.", "error")
            return False
        except LockedError as exc:
            self._say(str(exc), "error")
            return False
        if field in self.pending:
            del self.pending[field]
        self.changed.emit()
        return True

    def retry_pending(self) -> bool:
        """Try to store pending answers again; True when none is left."""
        if not self.pending or self.session is None or self.pseudonym is None:
            return not self.pending
        for name, (value, change_id) in list(self.pending.items()):
            try:
                self.session.set_answer(self.pseudonym, name, value, change_id=change_id)
            except StoreUnavailableError:
                return False
            except M1Error as exc:  # locked meanwhile: the answer cannot be stored
                self._say(str(exc), "error")
                self.pending.clear()
                return True
            del self.pending[name]
        self._say("Saved: the answers kept on screen are now stored.", "info")
        return True

    # ------------------------------------------------------------------ submit, go
    def submit_check(self) -> SubmitCheck:
        """Can the current read be submitted, and must the reader be asked first?"""
        s = self.require()
        p = self.pseudonym
        if p is None:
            return SubmitCheck("no case open")
        if self.pending:
            return SubmitCheck(UNSAVED)
        missing = s.missing_answers(p)
        if missing:
            return SubmitCheck(
                "Answer " + ", ".join(_label(m) for m in missing) + " before submitting."
            )
        empty = tuple(s.missing_slots(p))
        if empty and s.settings["incomplete_protocol"] == "block":
            return SubmitCheck(
                f"This study requires every protocol slot; {len(empty)} not annotated: "
                + ", ".join(empty),
                empty,
            )
        return SubmitCheck("", empty)

    def submit(self) -> str | None:
        """Submit (lock) the current read; the next pseudonym to open (None: none/failed).

        Call :meth:`submit_check` first (and ask the reader about empty slots).
        """
        s = self.require()
        p = self.pseudonym
        check = self.submit_check()
        if check.error:
            self._say(check.error, "error")
            return None
        self.flush_time()
        try:
            s.submit(p)
        except M1Error as exc:
            self._say(str(exc), "error")
            return None
        nxt = s.resume_point()
        if nxt is None:
            self.finished = True
            self.pseudonym = None
            self._message = ("", "")
            self.changed.emit()
            return None
        return nxt.pseudonym

    def step(self, step: int) -> str | None:
        """The previous/next read to open (submitted ones only if allowed), or None with
        a message saying why not."""
        s = self.require()
        if self.pending:
            self._say(UNSAVED, "error")
            return None
        reads = s.reads()
        names = [r.pseudonym for r in reads]
        i = names.index(self.pseudonym) if self.pseudonym in names else -1
        j = i + step
        while 0 <= j < len(reads):
            if s.can_open(reads[j].pseudonym):
                return reads[j].pseudonym
            j += step
        if step > 0:
            left = [k + 1 for k, r in enumerate(reads) if r.status != "submitted" and k != i]
            self._say(
                "This is the last case of your list."
                + (f" Not submitted yet: case {', '.join(map(str, left))}." if left else ""),
                "info",
            )
        else:
            self._say("This is the first case you can go back to.", "info")
        return None

    # ------------------------------------------------------------------ time
    def touch(self) -> None:
        """Reader activity now (mouse, slice change, answer)."""
        if self.session is not None and self.pseudonym is not None:
            self.timer.touch(time.monotonic())

    def flush_time(self) -> None:
        """Store the active time counted since the last flush (best effort)."""
        secs = self.timer.take()
        if secs and self.session is not None and self.pseudonym is not None:
            try:
                self.session.add_active_time(self.pseudonym, secs)
            except StoreUnavailableError:
                self.timer.pending += secs  # kept for the next flush

    # ------------------------------------------------------------------ view
    def _say(self, text: str, level: str) -> None:
        self._message = (self.redactor.redact(text), level)
        self.changed.emit()

    @property
    def message(self) -> tuple[str, str]:
        """``(text, level)`` of the dock's message line."""
        return self._message

    def view(self) -> ReaderView:
        """What the dock shows now."""
        s = self.session
        text, level = self._message
        if s is None:
            return ReaderView(message=text, level=level)
        reads = s.reads()
        hide = bool(s.settings.get("hide_numbers", False))
        if self.finished:
            return ReaderView(
                header=f"All {len(reads)} cases submitted — thank you",
                state=f"Reader {s.reader}",
                message=text,
                level=level,
                hide_numbers=hide,
            )
        if self.pseudonym is None:
            return ReaderView(
                header="No case open", state=f"Reader {s.reader}", message=text, level=level
            )
        names = [r.pseudonym for r in reads]
        k = names.index(self.pseudonym) + 1
        locked = reads[k - 1].locked
        return ReaderView(
            header=f"Case {k} of {len(reads)} · {self.pseudonym}",
            state=f"Reader {s.reader} · " + ("submitted (locked)" if locked else "in progress"),
            message=text,
            level=level,
            form_enabled=not locked,
            submit_enabled=not locked,
            prev_enabled=bool(s.settings["back_navigation"]),
            next_enabled=True,
            title=f"napari-m1 — reader {s.reader} — case {k} of {len(reads)}",
            hide_numbers=hide,
        )
