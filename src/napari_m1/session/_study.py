"""Blinded multi-reader studies: set-up (coordinator), reader sessions, export, audit.

A study folder holds ``study.sqlite`` (see :mod:`._store`) and ``study.json``
(the database URL and non-secret settings). Reader sessions see only their own
rows and only pseudonyms; the case id <-> pseudonym key is read back only by the
coordinator commands (export measurements, unblind), which are logged.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_text
from .._files import read_user_text
from ..errors import M1Error
from ..formats import READINGS_SCHEMA, STUDY_FORMAT, csv_text
from ._store import GENESIS, StudyStore, audit_hash, utc_now

__all__ = [
    "ANSWER_FIELDS",
    "LockedError",
    "ReaderSession",
    "Study",
    "VerifyResult",
    "create_study",
    "read_cases_csv",
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
DEFAULT_SETTINGS = {"back_navigation": False, "idle_threshold_s": 120.0, "protocol": "m1-7t"}
_PSEUDO_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class LockedError(M1Error):
    """A submitted (locked) read cannot be changed."""


# ----------------------------------------------------------------------------- set-up


def read_cases_csv(path: str | os.PathLike[str], *, check_paths: bool = True) -> list[dict]:
    """Read ``cases.csv`` (at least ``case_id,path``); relative paths are relative to it.

    Raises
    ------
    M1Error
        Wrong encoding, missing columns, empty or duplicate ids, missing folders
        (one line, with the CSV line number).
    """
    p = Path(path)
    text = read_user_text(p)
    rd = csv.DictReader(io.StringIO(text))
    try:
        cols = [c.strip() for c in (rd.fieldnames or [])]
        records = list(rd)
    except csv.Error as exc:  # e.g. a 200 kB cell: "field larger than field limit"
        raise M1Error(f"{p.name}, line {rd.line_num}: not a usable CSV row ({exc})") from None
    missing = [c for c in ("case_id", "path") if c not in cols]
    if missing:
        raise M1Error(
            f"{p.name}, line 1: missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(cols) or 'none'})"
        )
    out, seen, paths = [], {}, {}
    for lineno, rec in enumerate(records, start=2):
        rec = {(k or "").strip(): (v or "").strip() for k, v in rec.items() if isinstance(k, str)}
        cid, cpath = rec.get("case_id", ""), rec.get("path", "")
        if not cid:
            raise M1Error(f"{p.name}, line {lineno}: empty case_id")
        if len(cid) > 200 or any(ord(ch) < 32 or ord(ch) == 127 for ch in cid):
            raise M1Error(
                f"{p.name}, line {lineno}: case_id must be one line of at most 200 characters"
            )
        if cid in seen:
            raise M1Error(
                f"{p.name}, line {lineno}: duplicate case_id {cid!r} (first on line {seen[cid]})"
            )
        seen[cid] = lineno
        if not cpath or "\x00" in cpath:
            raise M1Error(f"{p.name}, line {lineno}: empty or unusable path for case {cid!r}")
        folder = Path(cpath) if Path(cpath).is_absolute() else (p.parent / cpath)
        if check_paths and not folder.is_dir():
            raise M1Error(f"{p.name}, line {lineno}: case folder for {cid!r} not found")
        resolved = str(folder.resolve())
        if resolved in paths:
            raise M1Error(
                f"{p.name}, line {lineno}: case {cid!r} uses the same folder as line "
                f"{paths[resolved]}"
            )
        paths[resolved] = lineno
        out.append({"case_id": cid, "path": resolved})
    if not out:
        raise M1Error(f"{p.name}: no cases")
    return out


def annotation_digest(data: dict[str, Any] | None) -> str:
    """Short SHA-256 of an annotation's canonical JSON (kept in the audit log)."""
    if data is None:
        return ""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _pseudonym(taken: set[str]) -> str:
    while True:
        p = "M1-" + "".join(secrets.choice(_PSEUDO_ALPHABET) for _ in range(6))
        if p not in taken:
            taken.add(p)
            return p


def _repeat_cases(order: list[int], n_rep: int, rng: np.random.Generator) -> list[int]:
    """Cases to read again, in the order they were first read.

    The cases read last in the first pass are avoided (when there are enough others),
    so that a hidden repeat never follows its first read closely.
    """
    if n_rep <= 0:
        return []
    gap = min(max(2, len(order) // 3), len(order) - n_rep)
    pool = order[: len(order) - gap] if gap > 0 else list(order)
    chosen = {int(k) for k in rng.choice(pool, n_rep, replace=False)}
    return [k for k in order if k in chosen]


def _reader_rng(seed: int, reader: str) -> np.random.Generator:
    h = int.from_bytes(hashlib.sha256(reader.encode()).digest()[:8], "big")
    return np.random.default_rng([seed, h])


def create_study(
    study_dir: str | os.PathLike[str],
    cases_csv: str | os.PathLike[str],
    readers: Sequence[str],
    *,
    seed: int = 0,
    repeat_fraction: float = 0.0,
    force: bool = False,
    back_navigation: bool = False,
    protocol: str = "m1-7t",
) -> Study:
    """Create a study (coordinator). See ``napari-m1 study init --help``.

    Each case gets a random pseudonym (``secrets``; not derived from id or path);
    each reader an independent order seeded by ``seed`` and the reader id; a hidden
    repeat read of ``repeat_fraction`` of the cases is appended to each reader's
    list under a new pseudonym.
    """
    d = Path(study_dir)
    rds = [r.strip() for r in readers if r.strip()]
    if not rds:
        raise M1Error("a study needs at least one reader")
    if len(set(rds)) != len(rds):
        raise M1Error(f"duplicate reader id in {', '.join(rds)}")
    for r in rds:
        if not all(ch.isalnum() or ch in "-_." for ch in r):
            raise M1Error(f"reader id {r!r}: use letters, digits, '-', '_' or '.'")
    if not 0.0 <= repeat_fraction <= 1.0:
        raise M1Error(f"--repeat-fraction must be between 0 and 1, got {repeat_fraction}")
    cases = read_cases_csv(cases_csv)
    db = d / DB_NAME
    if (d / STUDY_JSON).exists() or db.exists():
        if not force:
            raise M1Error(f"{d.name}: a study exists here already (use --force to replace it)")
        for f in (db, d / (DB_NAME + "-wal"), d / (DB_NAME + "-shm"), d / STUDY_JSON):
            f.unlink(missing_ok=True)
    d.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{db}"
    store = StudyStore(url, create=True)
    study_id = "S-" + secrets.token_hex(4)
    settings = dict(DEFAULT_SETTINGS, back_navigation=bool(back_navigation), protocol=protocol)
    taken: set[str] = set()
    cases_rows = [
        dict(case_key=i, case_id=c["case_id"], path=c["path"], pseudonym=_pseudonym(taken))
        for i, c in enumerate(cases, start=1)
    ]
    pseudo = {c["case_key"]: c["pseudonym"] for c in cases_rows}
    n_rep = round(repeat_fraction * len(cases))
    reads: list[dict[str, Any]] = []
    for reader in rds:
        rng = _reader_rng(seed, reader)
        order = [int(k) + 1 for k in rng.permutation(len(cases))]
        mine = [
            dict(
                reader=reader,
                case_key=k,
                pseudonym=pseudo[k],
                read_no=n,
                is_repeat=0,
                repeat_of=None,
            )
            for n, k in enumerate(order, start=1)
        ]
        for k in _repeat_cases(order, n_rep, rng):
            mine.append(
                dict(
                    reader=reader,
                    case_key=k,
                    pseudonym=_pseudonym(taken),
                    read_no=len(mine) + 1,
                    is_repeat=1,
                    repeat_of=pseudo[k],
                )
            )
        reads.extend(mine)
    store.create_study(
        study_id,
        settings,
        cases_rows,
        reads,
        rds,
        dict(n_cases=len(cases), readers=rds, seed=seed, repeat_fraction=repeat_fraction),
    )
    store.dispose()
    atomic_write_text(
        d / STUDY_JSON,
        json.dumps({"format": STUDY_FORMAT, "study_id": study_id, "database": DB_NAME}, indent=2),
    )
    return Study(d)


# ----------------------------------------------------------------------------- opening


def _open_store(study_dir: str | os.PathLike[str]) -> tuple[Path, StudyStore, dict[str, Any]]:
    d = Path(study_dir)
    sj = d / STUDY_JSON
    if not sj.is_file():
        raise M1Error(f"{d.name}: not a napari-m1 study folder (no {STUDY_JSON})")
    try:
        info = json.loads(sj.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise M1Error(f"{d.name}: {STUDY_JSON} is malformed") from None
    url = info.get("database_url") or f"sqlite:///{d / info.get('database', DB_NAME)}"
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        raise M1Error(f"{d.name}: study database missing")
    store = StudyStore(url)
    settings = dict(DEFAULT_SETTINGS, **json.loads(store.get_meta("settings", "{}") or "{}"))
    return d, store, settings


@dataclass(frozen=True)
class ReadInfo:
    """What a reader may know about one of their reads."""

    read_no: int
    pseudonym: str
    status: str
    locked: bool


class ReaderSession:
    """One reader's view of a study: only their reads, only pseudonyms.

    Every method that changes something commits at once (with its audit entry).
    Asking for a read that is not this reader's raises :class:`M1Error`.
    """

    def __init__(self, study_dir: str | os.PathLike[str], reader: str) -> None:
        self.dir, self.store, self.settings = _open_store(study_dir)
        if reader not in self.store.readers():
            self.store.dispose()
            raise M1Error(f"reader {reader!r} is not in this study")
        self.reader = reader
        self.study_id = self.store.get_meta("study_id", "") or ""

    def close(self) -> None:
        """Release the database."""
        self.store.dispose()

    # ------------------------------------------------------------------ reads
    def reads(self) -> list[ReadInfo]:
        """This reader's reads in order."""
        return [
            ReadInfo(r["read_no"], r["pseudonym"], r["status"], bool(r["locked"]))
            for r in self.store.reads_of(self.reader)
        ]

    def _row(self, pseudonym: str) -> dict[str, Any]:
        row = self.store.read_of(self.reader, pseudonym)
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
        row = self._row(pseudonym)
        if not self.can_open(pseudonym):
            raise M1Error(f"{pseudonym} is submitted; going back is not allowed in this study")
        self.store.mark_opened(self.reader, pseudonym)
        row = self._row(pseudonym)
        return ReadInfo(row["read_no"], pseudonym, row["status"], bool(row["locked"]))

    def case_folder(self, pseudonym: str) -> Path:
        """The case folder to load (internal: never show it)."""
        return Path(self.store.case_path_of_read(self._row(pseudonym)["read_id"]))

    def is_locked(self, pseudonym: str) -> bool:
        """True once submitted (until the coordinator unlocks)."""
        return bool(self._row(pseudonym)["locked"])

    def _write(self, pseudonym: str, what: str, event: str, **kwargs: Any) -> None:
        if not self.store.guarded_write(self.reader, pseudonym, what, event, **kwargs):
            raise LockedError(f"{pseudonym} is submitted and locked; {what} refused")

    # ------------------------------------------------------------------ answers
    def answers(self, pseudonym: str) -> dict[str, Any]:
        """The form's answers (None where not answered yet) and the comment."""
        row = self._row(pseudonym)
        return {k: row[k] for k in (*ANSWER_FIELDS, "comment")}

    def set_answer(self, pseudonym: str, field: str, value: Any) -> None:
        """Store one answer (validated) and log it; refused (and logged) when locked."""
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
        )

    # ------------------------------------------------------------------ annotations
    def annotations(self, pseudonym: str) -> list[dict[str, Any]]:
        """Stored annotation dicts (the :class:`~napari_m1.annotation.Annotation` JSON form)."""
        return self.store.annotations_of_read(self._row(pseudonym)["read_id"])

    def save_annotation(
        self, pseudonym: str, slot: str, data: dict[str, Any] | None, action: str = "edit"
    ) -> None:
        """Upsert (``data``) or delete (``None``) one slot's annotation, logged."""
        self._row(pseudonym)
        text = json.dumps(data) if data is not None else None
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
        )

    # ------------------------------------------------------------------ time, submit
    def add_active_time(self, pseudonym: str, seconds: float) -> None:
        """Add active reading time (the widget counts only non-idle intervals)."""
        if seconds <= 0 or not math.isfinite(seconds):
            return
        self._row(pseudonym)
        self.store.add_active_time(self.reader, pseudonym, seconds)

    def missing_answers(self, pseudonym: str) -> list[str]:
        """Required form fields still unanswered."""
        ans = self.answers(pseudonym)
        return [f for f in ANSWER_FIELDS if ans[f] is None]

    def submit(self, pseudonym: str) -> None:
        """Submit and lock the read (every form field must be answered)."""
        row = self._row(pseudonym)
        if row["locked"]:
            self._write(pseudonym, "submitting again", "submit")  # logs the refusal, raises
        missing = self.missing_answers(pseudonym)
        if missing:
            raise M1Error(f"answer {', '.join(missing)} before submitting")
        self._write(
            pseudonym,
            "submitting",
            "submit",
            values={"status": "submitted", "locked": 1, "submitted_at": utc_now()},
        )


# ----------------------------------------------------------------------------- coordinator


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :meth:`Study.verify`."""

    ok: bool
    n_entries: int
    problems: tuple[str, ...]
    integrity: str
    last_hash: str = ""


class Study:
    """Coordinator access to a study folder (unlock, export, unblind, verify)."""

    def __init__(self, study_dir: str | os.PathLike[str]) -> None:
        self.dir, self.store, self.settings = _open_store(study_dir)
        self.study_id = self.store.get_meta("study_id", "") or ""

    def close(self) -> None:
        """Release the database."""
        self.store.dispose()

    @property
    def readers(self) -> list[str]:
        """Reader ids."""
        return self.store.readers()

    def unlock(self, reader: str, pseudonym: str, reason: str) -> None:
        """Unlock a submitted read so the reader can change it (logged with the reason)."""
        if not reason.strip():
            raise M1Error("give a reason for unlocking")
        row = self.store.read_of(reader, pseudonym)
        if row is None:
            raise M1Error(f"no read {pseudonym!r} for reader {reader!r}")
        self.store.unlock(reader, pseudonym, reason)

    def verify(self) -> VerifyResult:
        """Re-compute the audit hash chain; report every broken link."""
        problems = []
        prev = GENESIS
        rows = self.store.audit_rows()
        if not rows:  # study init always writes entry 1; an empty log was emptied
            problems.append("audit log is empty (every entry is missing, even study_init)")
        for i, r in enumerate(rows, start=1):
            if r["seq"] != i:
                problems.append(f"entry {i}: sequence number {r['seq']} (entries missing?)")
            if r["prev_hash"] != prev:
                problems.append(f"entry {r['seq']}: previous-hash link broken")
            h = audit_hash(
                r["prev_hash"],
                r["seq"],
                r["at"],
                r["actor"],
                r["event"],
                r["pseudonym"],
                r["details"],
            )
            if h != r["hash"]:
                problems.append(
                    f"entry {r['seq']} ({r['event']}): content does not match its hash (edited)"
                )
            prev = r["hash"]
        if not problems:
            problems.extend(self._replay_check(rows))
        integ = self.store.integrity_check()
        if integ != "ok":
            problems.append(f"database integrity check: {integ}")
        return VerifyResult(not problems, len(rows), tuple(problems), integ, prev)

    def _replay_check(self, audit: list[dict[str, Any]]) -> list[str]:
        """Replay the log and compare with the stored answers, locks and annotations:
        a value changed in the database behind napari-m1's back shows up here."""
        answers: dict[tuple[str, str], dict[str, Any]] = {}
        locked: dict[tuple[str, str], bool] = {}
        anns: dict[tuple[str, str], dict[str, str]] = {}
        for e in audit:
            d = json.loads(e["details"] or "{}")
            key = (e["actor"], e["pseudonym"])
            if e["event"] == "answer":
                answers.setdefault(key, {})[d["field"]] = d["value"]
            elif e["event"] == "submit":
                locked[key] = True
            elif e["event"] == "unlock":
                locked[(d["reader"], e["pseudonym"])] = False
            elif e["event"] == "annotation":
                slots = anns.setdefault(key, {})
                if d.get("deleted"):
                    slots.pop(d["slot"], None)
                else:
                    slots[d["slot"]] = d.get("digest", "")
        problems = []
        for r in self.store.all_reads():
            key = (r["reader"], r["pseudonym"])
            who = f"read {r['pseudonym']} of {r['reader']}"
            logged = answers.get(key, {})
            for f in (*ANSWER_FIELDS, "comment"):
                want = logged.get(f, "" if f == "comment" else None)
                have = r[f] if f != "comment" else (r[f] or "")
                if have != want:
                    problems.append(
                        f"{who}: {f} in the database differs from the audit log "
                        "(changed outside napari-m1)"
                    )
            if bool(r["locked"]) != locked.get(key, False):
                problems.append(f"{who}: lock state differs from the audit log")
        stored: dict[tuple[str, str], dict[str, str]] = {}
        for a in self.store.all_annotations():
            stored.setdefault((a["reader"], a["pseudonym"]), {})[a["slot"]] = annotation_digest(
                json.loads(a["data"])
            )
        for key in set(stored) | set(anns):
            if stored.get(key, {}) != anns.get(key, {}):
                problems.append(
                    f"read {key[1]} of {key[0]}: annotations differ from the audit "
                    "log (changed outside napari-m1)"
                )
        return problems

    def _log(self, event: str, **details: Any) -> None:
        self.store.log("coordinator", event, None, **details)

    # ------------------------------------------------------------------ export
    def readings_rows(self) -> list[dict[str, Any]]:
        """Blinded readings (the readings schema, without case_id)."""
        out = []
        for r in self.store.all_reads():
            out.append(
                {
                    "schema": READINGS_SCHEMA,
                    "study_id": self.study_id,
                    "reader": r["reader"],
                    "pseudonym": r["pseudonym"],
                    "read_no": r["read_no"],
                    "is_repeat": r["is_repeat"],
                    "repeat_of": r["repeat_of"] or "",
                    "status": r["status"],
                    **{k: r[k] for k in ANSWER_FIELDS},
                    "comment": r["comment"],
                    "active_time_s": round(float(r["active_time_s"]), 3),
                    "opened_at_utc": r["opened_at"] or "",
                    "submitted_at_utc": r["submitted_at"] or "",
                    "_case_id": r["case_id"],
                    "_path": r["path"],
                    "_read_id": r["read_id"],
                }
            )
        return out

    def export_readings(self, out: str | os.PathLike[str]) -> Path:
        """Write the blinded readings.csv (logged)."""
        rows = [_public(r) for r in self.readings_rows()]
        path = _write_rows(out, rows)
        self._log("export", what="readings", rows=len(rows))
        return path

    def export_measurements(self, out: str | os.PathLike[str]) -> Path:
        """Recompute every read's measurements from its stored annotations (blinded labels)."""
        from ..annotation import Annotation
        from ..io import load_case
        from ..measure import engine_for_case, write_measurements_csv
        from ..protocol import get_protocol

        proto = get_protocol(self.settings["protocol"])
        rows: list[dict[str, Any]] = []
        cache: dict[str, Any] = {}
        for r in self.readings_rows():
            anns = self.store.annotations_of_read(r["_read_id"])
            if not anns:
                continue
            case = cache.get(r["_path"]) or load_case(r["_path"])
            cache = {r["_path"]: case}  # keep one case in memory
            case.files.label = r["pseudonym"]
            eng = engine_for_case(case, proto, reader=r["reader"])
            eng.set_all(
                Annotation(**{**a, "points_ras": tuple(map(tuple, a["points_ras"]))}) for a in anns
            )
            rows.extend(eng.rows())
        path = write_measurements_csv(out, rows)
        self._log("export", what="measurements", rows=len(rows))
        return path

    def unblind(
        self,
        key_csv: str | os.PathLike[str],
        out: str | os.PathLike[str],
        *,
        clinical_csv: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Join pseudonyms back to case ids (and clinical columns); coordinator only, logged.

        The key must list the same case ids as the study.
        """
        key = {c["case_id"] for c in read_cases_csv(key_csv, check_paths=False)}
        ours = {c["case_id"] for c in self.store.cases()}
        if key != ours:
            raise M1Error(
                f"{Path(key_csv).name}: case ids do not match this study "
                f"({len(key ^ ours)} differ)"
            )
        clinical: dict[str, dict[str, str]] = {}
        extra_cols: list[str] = []
        if clinical_csv is not None:
            cp = Path(clinical_csv)
            rd = csv.DictReader(io.StringIO(read_user_text(cp)))
            if "case_id" not in (rd.fieldnames or []):
                raise M1Error(f"{cp.name}, line 1: missing column case_id")
            extra_cols = [c for c in rd.fieldnames or [] if c != "case_id"]
            for rec in rd:
                clinical[rec["case_id"].strip()] = rec
        rows = []
        for r in self.readings_rows():
            row = _public(r)
            row["case_id"] = r["_case_id"]
            for c in extra_cols:
                # a clinical column named like a readings column (comment, status, ...)
                # must not overwrite the reader's value
                name = f"clinical_{c}" if c in row else c
                row[name] = clinical.get(r["_case_id"], {}).get(c, "")
            rows.append(row)
        path = _write_rows(out, rows)
        self._log("unblind", rows=len(rows), clinical=bool(clinical_csv))
        return path


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _write_rows(out: str | os.PathLike[str], rows: list[dict[str, Any]]) -> Path:
    return atomic_write_text(out, csv_text(rows))
