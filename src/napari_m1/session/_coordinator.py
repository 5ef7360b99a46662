"""The coordinator's side of a study: unlock, export, unblind, verify.

:class:`Study` needs the study's coordinator key (:mod:`._role`). Every file it writes
is published in three steps, so that no output can exist without its audit entry:

1. the *intent* entry (``export_started`` / ``unblind_started``, with an operation id
   and the file name) is committed first — on a read-only or full database this
   fails and no file is written;
2. the file is written atomically (temporary file, fsync, rename);
3. the *completion* entry (``export`` / ``unblind``, same operation id, the file's
   SHA-256) is committed (``*_failed`` instead when the file could not be written).

A crash between 1 and 3 leaves an intent without completion, which ``study verify``
reports ("unblind started, no completion recorded").
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import secrets
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from .._files import read_user_text
from ..errors import M1Error
from ..formats import READINGS_SCHEMA, csv_text
from ._common import ANSWER_FIELDS, open_db, validate_annotation
from ._coordinator_store import CoordinatorStore
from ._db import StoreUnavailableError
from ._role import META_KEY, check_key
from ._setup import read_cases_csv
from ._verify import VerifyResult, verify_snapshot

__all__ = ["MeasurementsExport", "Study"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasurementsExport:
    """Outcome of :meth:`Study.export_measurements`.

    Attributes
    ----------
    path : Path
    rows : int
        Measurement rows written.
    skipped : tuple of str
        One line per read that could not be measured (named by pseudonym and reader).
    case_loads : int
        Case folders loaded (each case once, however many reads it has).
    """

    path: Path
    rows: int
    skipped: tuple[str, ...]
    case_loads: int


class Study:
    """Coordinator access to a study folder.

    Parameters
    ----------
    study_dir : path
    coordinator_key : path, optional
        The key file ``study init`` wrote (default: ``$NAPARI_M1_COORDINATOR_KEY``, then
        the coordinator's data folder). A reader does not have it.

    Raises
    ------
    M1Error
        Not a study, or no matching coordinator key.
    """

    def __init__(
        self,
        study_dir: str | os.PathLike[str],
        *,
        coordinator_key: str | os.PathLike[str] | None = None,
    ) -> None:
        d, db, settings = open_db(study_dir)
        try:
            self.study_id = db.get_meta("study_id", "") or ""
            check_key(d.name, self.study_id, db.get_meta(META_KEY), coordinator_key)
        except BaseException:
            db.dispose()
            raise
        self.dir = d
        self.settings = settings
        self._db = db
        self._store = CoordinatorStore(db)

    @property
    def read_only(self) -> bool:
        """True when the database was opened read-only (a read-only study folder)."""
        return self._db.read_only

    def close(self) -> None:
        """Release the database."""
        self._db.dispose()

    @property
    def readers(self) -> list[str]:
        """Reader ids."""
        return self._db.readers()

    def reads(self) -> list[dict[str, Any]]:
        """Every read with its case (``case_id``, ``path``), by reader and read_no."""
        return self._store.all_reads()

    def cases(self) -> list[dict[str, Any]]:
        """Every case: ``case_id``, ``path``, ``pseudonym``."""
        return self._store.cases()

    def annotations_by_read(self) -> dict[int, list[dict[str, Any]]]:
        """Stored annotation dicts of every read, by ``read_id`` (see :meth:`reads`)."""
        import json

        _, texts = self._store.reads_with_annotations()
        return {rid: [json.loads(t) for t in ts] for rid, ts in texts.items()}

    def audit_rows(self) -> list[dict[str, Any]]:
        """Every audit entry in order."""
        return self._store.audit_rows()

    def unlock(self, reader: str, pseudonym: str, reason: str) -> None:
        """Unlock a submitted read so the reader can change it (logged with the reason)."""
        if not reason.strip():
            raise M1Error("give a reason for unlocking")
        if not self._store.unlock(reader, pseudonym, reason):
            raise M1Error(f"no read {pseudonym!r} for reader {reader!r}")

    def verify(self) -> VerifyResult:
        """Check the audit chain and replay it against the data, on one snapshot."""
        return verify_snapshot(self._store.snapshot(), read_only=self.read_only)

    # ------------------------------------------------------------------ publishing
    def _publish(self, event: str, out: str | os.PathLike[str], text: str, **details: Any) -> Path:
        """Intent entry, atomic file, completion entry (see the module docstring)."""
        out = Path(out)
        op = secrets.token_hex(6)
        try:
            self._store.log(
                "coordinator", f"{event}_started", None, op=op, file=out.name, **details
            )
        except StoreUnavailableError as exc:
            raise StoreUnavailableError(f"{exc}; {out.name} not written") from None
        try:
            path = atomic_write_text(out, text)
        except OSError as exc:
            self._store.log("coordinator", f"{event}_failed", None, op=op, error=str(exc))
            raise
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self._store.log("coordinator", event, None, op=op, file=out.name, sha256=digest, **details)
        return path

    # ------------------------------------------------------------------ export
    def readings_rows(self, reads: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Blinded readings (the readings schema, without case_id); private ``_`` keys."""
        out = []
        for r in self._store.all_reads() if reads is None else reads:
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
        """Write the blinded readings.csv (intent, file, completion: logged)."""
        rows = [_public(r) for r in self.readings_rows()]
        return self._publish("export", out, csv_text(rows), what="readings", rows=len(rows))

    def export_measurements(self, out: str | os.PathLike[str]) -> MeasurementsExport:
        """Recompute every read's measurements from its stored annotations (blinded labels).

        Each case is loaded once, however many reads (readers, hidden repeats) it has.
        A read whose stored annotations cannot be measured, or whose case folder cannot
        be loaded, is left out and named in ``skipped``; the others are exported.
        """
        import json

        from ..annotation import Annotation
        from ..io import load_case
        from ..measure import MEASUREMENT_COLUMNS, MapSource, MeasurementEngine
        from ..protocol import get_protocol

        proto = get_protocol(self.settings["protocol"])
        reads, texts = self._store.reads_with_annotations()
        by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in reads:
            if texts.get(r["read_id"]):
                by_case[r["path"]].append(r)
        rows: list[dict[str, Any]] = []
        skipped: list[str] = []
        loads = 0
        for path, case_reads in by_case.items():
            who = ", ".join(f"{r['pseudonym']} of {r['reader']}" for r in case_reads)
            try:
                loads += 1
                case = load_case(path)
            except M1Error as exc:
                skipped.append(f"read(s) {who}: case images cannot be loaded ({_first(exc)})")
                continue
            sources = [MapSource.from_volume(v) for v in case.volumes]
            for r in case_reads:
                try:
                    anns = []
                    for text in texts[r["read_id"]]:
                        d = json.loads(text)
                        slot = d.get("slot") if isinstance(d, dict) else None
                        d = validate_annotation(str(slot), d, proto)
                        anns.append(Annotation(**{**d, "points_ras": _tuples(d["points_ras"])}))
                except (M1Error, ValueError) as exc:
                    skipped.append(f"read {r['pseudonym']} of {r['reader']}: {_first(exc)}")
                    continue
                eng = MeasurementEngine(
                    sources, proto, case_label=r["pseudonym"], reader=r["reader"]
                )
                eng.set_all(anns)
                rows.extend(eng.rows())
            del case, sources
        for s in skipped:
            log.warning("measurements export: %s (not exported)", s)
        p = self._publish(
            "export",
            out,
            csv_text(rows, MEASUREMENT_COLUMNS),
            what="measurements",
            rows=len(rows),
            skipped=len(skipped),
        )
        return MeasurementsExport(p, len(rows), tuple(skipped), loads)

    def unblind(
        self,
        key_csv: str | os.PathLike[str],
        out: str | os.PathLike[str],
        *,
        clinical_csv: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Join pseudonyms back to case ids (and clinical columns); logged before and after.

        The key must list the same case ids as the study.
        """
        key = {c["case_id"] for c in read_cases_csv(key_csv, check_paths=False)}
        ours = {c["case_id"] for c in self._store.cases()}
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
                clinical[(rec["case_id"] or "").strip()] = rec
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
        return self._publish(
            "unblind", out, csv_text(rows), rows=len(rows), clinical=bool(clinical_csv)
        )


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def _tuples(points: Any) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(c) for c in p) for p in points)


def _first(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
