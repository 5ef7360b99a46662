"""The reader's side of a study: a reader session, its locking error, the active-time counter.

A :class:`ReaderSession` is one reader's view: their own reads, by pseudonym only.
It holds a :class:`~._reader_store.ReaderStore` bound to the reader (privately) and
nothing that reaches the coordinator's side: no case ids, no other reader's rows, no
audit log, no unlock or export. (What someone with the raw database file can still
do is written in docs/study-guide.md, "What a study promises".)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import M1Error
from ._common import ANSWER_FIELDS, annotation_digest, open_db, validate_annotation
from ._db import canonical_json, utc_now
from ._reader_store import ReaderStore

if TYPE_CHECKING:
    from ..protocol import Protocol

__all__ = ["ActiveTimer", "LockedError", "ReadInfo", "ReaderSession"]


class LockedError(M1Error):
    """A submitted (locked) read cannot be changed."""


@dataclass(frozen=True)
class ReadInfo:
    """What a reader may know about one of their reads."""

    read_no: int
    pseudonym: str
    status: str
    locked: bool


class ActiveTimer:
    """Active time from activity events: gaps longer than ``idle_s`` count as idle.

    ``touch(t)`` (monotonic seconds) returns the active seconds added since the last
    touch: the whole gap when it is at most ``idle_s``, nothing otherwise (a lunch break
    is not reading time).
    """

    def __init__(self, idle_s: float = 120.0) -> None:
        self.idle_s = float(idle_s)
        self._last: float | None = None
        self.pending = 0.0

    def touch(self, t: float) -> float:
        """Record activity at time ``t``; returns the active seconds this adds."""
        added = 0.0
        if self._last is not None:
            gap = t - self._last
            if 0 < gap <= self.idle_s:
                added = gap
        self._last = t
        self.pending += added
        return added

    def take(self) -> float:
        """Accumulated, not yet stored active seconds (and reset them)."""
        out, self.pending = self.pending, 0.0
        return out

    def reset(self) -> None:
        """Forget the last activity (a new case starts)."""
        self._last = None
        self.pending = 0.0


class ReaderSession:
    """One reader's view of a study: only their reads, only pseudonyms.

    Every method that changes something commits at once (with its audit entry).
    Asking for a read that is not this reader's raises :class:`M1Error`; a database
    that cannot take a change (read-only, disk full) raises
    :class:`~napari_m1.session.StoreUnavailableError` and nothing is written.

    Attributes
    ----------
    reader, study_id : str
    settings : dict
        The study's settings (a copy): ``back_navigation``, ``idle_threshold_s``,
        ``protocol``, ``incomplete_protocol`` (``block`` or ``ask``), ``hide_numbers``.
    """

    def __init__(self, study_dir: str | os.PathLike[str], reader: str) -> None:
        d, db, settings = open_db(study_dir)
        if reader not in db.readers():
            db.dispose()
            raise M1Error(f"reader {reader!r} is not in this study")
        self.dir = d
        self.reader = reader
        self.settings = dict(settings)
        self.study_id = db.get_meta("study_id", "") or ""
        self._store = ReaderStore(db, reader)
        self._protocol: Protocol | None = None

    @property
    def protocol(self) -> Protocol:
        """The study's annotation protocol."""
        if self._protocol is None:
            from ..protocol import get_protocol

            self._protocol = get_protocol(self.settings["protocol"])
        return self._protocol

    def __repr__(self) -> str:
        return f"ReaderSession(reader={self.reader!r}, study_id={self.study_id!r})"

    def close(self) -> None:
        """Release the database."""
        self._store._db.dispose()

    # ------------------------------------------------------------------ reads
    def reads(self) -> list[ReadInfo]:
        """This reader's reads in order."""
        return [
            ReadInfo(r["read_no"], r["pseudonym"], r["status"], bool(r["locked"]))
            for r in self._store.reads()
        ]

    def _row(self, pseudonym: str) -> dict[str, Any]:
        row = self._store.read(pseudonym)
        if row is None:
            raise M1Error(f"no read {pseudonym!r} for reader {self.reader!r}")
        return row

    def resume_point(self) -> ReadInfo | None:
        """Where to continue: the first read not yet submitted (None when all are)."""
        for r in self.reads():
            if r.status != "submitted":
                return r
        return None

    def can_open(self, pseudonym: str) -> bool:
        """Back-navigation rule: submitted reads reopen (read-only) only if the study allows."""
        row = self._row(pseudonym)
        return row["status"] != "submitted" or bool(self.settings["back_navigation"])

    def open_read(self, pseudonym: str) -> ReadInfo:
        """Start or resume a read (logged)."""
        if not self.can_open(pseudonym):
            raise M1Error(f"{pseudonym} is submitted; going back is not allowed in this study")
        self._store.mark_opened(pseudonym)
        row = self._row(pseudonym)
        return ReadInfo(row["read_no"], pseudonym, row["status"], bool(row["locked"]))

    def case_folder(self, pseudonym: str) -> Path:
        """The case folder to load (internal: never show it)."""
        return Path(self._store.case_path(pseudonym))

    def is_locked(self, pseudonym: str) -> bool:
        """True once submitted (until the coordinator unlocks)."""
        return bool(self._row(pseudonym)["locked"])

    def active_time_s(self, pseudonym: str) -> float:
        """Active reading time stored for this read, seconds."""
        return float(self._row(pseudonym)["active_time_s"])

    def _write(self, pseudonym: str, what: str, event: str, **kwargs: Any) -> None:
        if not self._store.guarded_write(pseudonym, what, event, **kwargs):
            raise LockedError(f"{pseudonym} is submitted and locked; {what} refused")

    # ------------------------------------------------------------------ answers
    def answers(self, pseudonym: str) -> dict[str, Any]:
        """The form's answers (None where not answered yet) and the comment."""
        row = self._row(pseudonym)
        return {k: row[k] for k in (*ANSWER_FIELDS, "comment")}

    def set_answer(
        self, pseudonym: str, field: str, value: Any, *, change_id: str | None = None
    ) -> None:
        """Store one answer (validated) and log it; refused (and logged) when locked.

        ``change_id``: a client-made id of this change; retrying with the same id after
        a failure never applies the change twice.
        """
        self._row(pseudonym)
        if field == "comment":
            value = str(value or "")
        elif field in ANSWER_FIELDS:
            if value is not None:
                value = int(value)
                if value not in ANSWER_FIELDS[field]:
                    raise M1Error(f"{field} must be one of {ANSWER_FIELDS[field]}, got {value}")
        else:
            raise M1Error(f"unknown answer field {field!r}")
        self._write(
            pseudonym,
            f"changing {field}",
            "answer",
            values={field: value},
            details={"field": field, "value": value},
            change_id=change_id,
        )

    # ------------------------------------------------------------------ annotations
    def annotations(self, pseudonym: str) -> list[dict[str, Any]]:
        """Stored annotation dicts (the :class:`~napari_m1.annotation.Annotation` JSON form)."""
        self._row(pseudonym)
        return self._store.annotations(pseudonym)

    def save_annotation(
        self,
        pseudonym: str,
        slot: str,
        data: dict[str, Any] | None,
        action: str = "edit",
        *,
        change_id: str | None = None,
    ) -> None:
        """Upsert (``data``) or delete (``None``) one slot's annotation, logged.

        ``data`` is validated first (keys, slot and kind against the study's protocol,
        geometry): a malformed annotation is refused with a message naming the slot and
        nothing is stored or logged.
        """
        self._row(pseudonym)
        if data is not None:
            data = validate_annotation(slot, data, self.protocol)
        text = canonical_json(data) if data is not None else None
        self._write(
            pseudonym,
            f"annotation change of {slot}",
            "annotation",
            annotation=(slot, text),
            details={
                "slot": slot,
                "action": action,
                "deleted": data is None,
                "digest": annotation_digest(data),
            },
            change_id=change_id,
        )

    # ------------------------------------------------------------------ time, submit
    def add_active_time(self, pseudonym: str, seconds: float) -> None:
        """Add active reading time (the widget counts only non-idle intervals)."""
        if seconds <= 0 or not math.isfinite(seconds):
            return
        self._row(pseudonym)
        self._store.add_active_time(pseudonym, seconds)

    def missing_answers(self, pseudonym: str) -> list[str]:
        """Required form fields still unanswered."""
        ans = self.answers(pseudonym)
        return [f for f in ANSWER_FIELDS if ans[f] is None]

    def missing_slots(self, pseudonym: str) -> list[str]:
        """Protocol slots without a stored annotation, in protocol order."""
        done = {a.get("slot") for a in self.annotations(pseudonym)}
        return [s for s in self.protocol.slot_ids if s not in done]

    def submit(self, pseudonym: str) -> None:
        """Submit and lock the read.

        Every form field must be answered. When the study's ``incomplete_protocol``
        setting is ``block``, every protocol slot must be annotated too; with ``ask``
        (the default) the Reader dock asks the reader with the list of empty slots
        before it calls this, and the number of empty slots is logged with the submit.
        """
        row = self._row(pseudonym)
        if row["locked"]:
            self._write(pseudonym, "submitting again", "submit")  # logs the refusal, raises
        missing = self.missing_answers(pseudonym)
        if missing:
            raise M1Error(f"answer {', '.join(missing)} before submitting")
        empty = self.missing_slots(pseudonym)
        if empty and self.settings["incomplete_protocol"] == "block":
            raise M1Error(
                f"this study requires every protocol slot: {len(empty)} not annotated "
                f"({', '.join(empty)})"
            )
        self._write(
            pseudonym,
            "submitting",
            "submit",
            values={"status": "submitted", "locked": 1, "submitted_at": utc_now()},
            details={"empty_slots": len(empty)} if empty else None,
        )
