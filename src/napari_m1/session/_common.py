"""What both roles share: the study folder layout, settings, the answer form, annotation
validation and digests. No SQL here (see :mod:`._db`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import M1Error
from ._db import StoreUnavailableError, StudyDB, canonical_json

if TYPE_CHECKING:
    from ..protocol import Protocol

__all__ = [
    "ANSWER_FIELDS",
    "DEFAULT_SETTINGS",
    "INCOMPLETE_CHOICES",
    "annotation_digest",
    "open_db",
    "text_digest",
    "validate_annotation",
]

STUDY_JSON = "study.json"
DB_NAME = "study.sqlite"
#: The visual judgement form: field -> allowed values.
ANSWER_FIELDS: dict[str, tuple[Any, ...]] = {
    "hypointensity": (0, 1),
    "thinning": (0, 1),
    "als_consistent": (0, 1),
    "confidence": (1, 2, 3, 4, 5),
}
#: What submit does when protocol slots are still empty: refuse, or ask the reader.
INCOMPLETE_CHOICES = ("block", "ask")
DEFAULT_SETTINGS: dict[str, Any] = {
    "back_navigation": False,
    "idle_threshold_s": 120.0,
    "protocol": "m1-7t",
    "incomplete_protocol": "ask",
    "hide_numbers": False,
}


def text_digest(text: str) -> str:
    """Short SHA-256 of a stored (canonical) annotation JSON text."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def annotation_digest(data: dict[str, Any] | None) -> str:
    """Short SHA-256 of an annotation's canonical JSON (kept in the audit log)."""
    if data is None:
        return ""
    return text_digest(canonical_json(data))


def validate_annotation(slot: str, data: dict[str, Any], protocol: Protocol) -> dict[str, Any]:
    """Check one annotation dict before it is stored; return its normalised JSON form.

    Raises
    ------
    M1Error
        One line naming the slot: unknown or missing keys, a slot the study's protocol
        does not have, the wrong kind for the slot, bad geometry (e.g. a 2-point ROI).
    """
    from dataclasses import fields

    from ..annotation import Annotation

    if not isinstance(data, dict):
        raise M1Error(f"annotation for {slot} refused: not a JSON object")
    known = {f.name for f in fields(Annotation)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise M1Error(f"annotation for {slot} refused: unknown key(s) {', '.join(unknown)}")
    missing = [k for k in ("slot", "kind", "points_ras") if k not in data]
    if missing:
        raise M1Error(f"annotation for {slot} refused: missing {', '.join(missing)}")
    if data["slot"] != slot:
        raise M1Error(f"annotation for {slot} refused: it says slot {data['slot']!r}")
    from .. import annotation as _ann

    proto = protocol
    midline = getattr(_ann, "MIDLINE_SLOT", None)  # the reader's midline: not a protocol slot
    if midline is not None and slot == midline:
        want = "midline"
    elif slot not in proto.slot_ids:
        raise M1Error(f"annotation for {slot} refused: protocol {proto.id} has no such slot")
    else:
        want = proto.slot(slot).kind
    if data["kind"] != want:
        raise M1Error(
            f"annotation for {slot} refused: the slot takes a {want}, not {data['kind']!r}"
        )
    try:
        pts = tuple(tuple(float(c) for c in p) for p in data["points_ras"])
        ann = Annotation(**{**data, "points_ras": pts})
    except (TypeError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise M1Error(f"annotation for {slot} refused: {msg}") from None
    return ann.to_json()


def open_db(study_dir: str | os.PathLike[str]) -> tuple[Path, StudyDB, dict[str, Any]]:
    """Open a study folder's database: ``(folder, db, settings)``.

    A read-only SQLite study (folder or file not writable) opens as an immutable
    snapshot when it has no pending write-ahead log; every write then fails with
    :class:`~._db.StoreUnavailableError` saying so.
    """
    d = Path(study_dir)
    sj = d / STUDY_JSON
    if not sj.is_file():
        raise M1Error(f"{d.name}: not a napari-m1 study folder (no {STUDY_JSON})")
    try:
        info = json.loads(sj.read_text(encoding="utf-8"))
        if not isinstance(info, dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise M1Error(f"{d.name}: {STUDY_JSON} is malformed") from None
    url = info.get("database_url") or f"sqlite:///{d / str(info.get('database', DB_NAME))}"
    if not isinstance(url, str):
        raise M1Error(f"{d.name}: {STUDY_JSON} is malformed (database_url)")
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        raise M1Error(f"{d.name}: study database missing")
    try:
        db = StudyDB(url)
    except StoreUnavailableError as exc:
        db = _open_read_only(url, exc)
    try:
        stored = json.loads(db.get_meta("settings", "{}") or "{}")
    except ValueError:
        db.dispose()
        raise M1Error(f"{d.name}: study settings in the database are malformed") from None
    return d, db, dict(DEFAULT_SETTINGS, **stored)


def _open_read_only(url: str, exc: StoreUnavailableError) -> StudyDB:
    """A read-only SQLite study as an immutable snapshot, if that is safe."""
    if not url.startswith("sqlite:///") or not any(
        w in str(exc) for w in ("read-only", "cannot open")
    ):
        raise exc
    path = Path(url[len("sqlite:///") :])
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise StoreUnavailableError(
            f"the study folder is read-only and {wal.name} holds changes not yet in "
            f"{path.name}: copy the whole study folder to a writable place and use the copy"
        )
    return StudyDB(url, immutable=True)
