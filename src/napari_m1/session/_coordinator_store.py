"""SQL of the coordinator's side: the whole study (every reader, the key, the audit log).

Only :class:`~napari_m1.session.Study` (which checks the coordinator role) and
:func:`~napari_m1.session.create_study` use this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._db import StudyDB

__all__ = ["AUDIT_COLUMNS", "CoordinatorStore", "Snapshot"]

#: Column order of :attr:`Snapshot.audit` tuples.
AUDIT_COLUMNS = ("seq", "at", "actor", "event", "pseudonym", "details", "prev_hash", "hash")


@dataclass(frozen=True)
class Snapshot:
    """Everything ``verify`` compares, read in ONE read transaction.

    ``audit``: tuples in :data:`AUDIT_COLUMNS` order. ``annotations`` rows carry the
    stored JSON text as is (``data``), not parsed.
    """

    audit: list[tuple[Any, ...]]
    reads: list[dict[str, Any]]
    annotations: list[dict[str, Any]]
    integrity: str


class CoordinatorStore:
    """Queries and writes across the whole study database."""

    def __init__(self, db: StudyDB) -> None:
        self._db = db

    # ------------------------------------------------------------------ reads
    def _all_reads(self, c: Any) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        r, cs = self._db.t["reads"], self._db.t["cases"]
        rows = c.execute(
            sa.select(r, cs.c.case_id, cs.c.path)
            .select_from(r.join(cs))
            .order_by(r.c.reader, r.c.read_no)
        )
        return [dict(x._mapping) for x in rows]

    def _all_annotations(self, c: Any) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        r, a = self._db.t["reads"], self._db.t["annotations"]
        rows = c.execute(
            sa.select(r.c.read_id, r.c.reader, r.c.pseudonym, a.c.slot, a.c.data)
            .select_from(a.join(r))
            .order_by(r.c.read_id, a.c.slot)
        )
        return [dict(x._mapping) for x in rows]

    def _audit(self, c: Any) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        a = self._db.t["audit"]
        return [dict(r._mapping) for r in c.execute(sa.select(a).order_by(a.c.seq))]

    def all_reads(self) -> list[dict[str, Any]]:
        """Every read joined with its case (``case_id``, ``path``), by reader and read_no."""
        with self._db.snapshot() as c:
            return self._all_reads(c)

    def all_annotations(self) -> list[dict[str, Any]]:
        """Every stored annotation (``read_id``, ``reader``, ``pseudonym``, ``slot``,
        ``data`` as stored JSON text)."""
        with self._db.snapshot() as c:
            return self._all_annotations(c)

    def reads_with_annotations(self) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
        """Every read and the stored annotation texts by ``read_id``, one snapshot."""
        with self._db.snapshot() as c:
            reads = self._all_reads(c)
            anns: dict[int, list[str]] = {}
            for a in self._all_annotations(c):
                anns.setdefault(a["read_id"], []).append(a["data"])
        return reads, anns

    def cases(self) -> list[dict[str, Any]]:
        """Every case (``case_key``, ``case_id``, ``path``, ``pseudonym``)."""
        import sqlalchemy as sa

        with self._db.snapshot() as c:
            return [dict(x._mapping) for x in c.execute(sa.select(self._db.t["cases"]))]

    def audit_rows(self) -> list[dict[str, Any]]:
        """Every audit entry in order."""
        with self._db.snapshot() as c:
            return self._audit(c)

    def snapshot(self) -> Snapshot:
        """Audit log, reads, annotations and the integrity check, one consistent snapshot.

        A read transaction (no write lock): readers keep answering meanwhile, and what
        they commit after the snapshot began is simply not part of it. Audit entries are
        tuples in :data:`AUDIT_COLUMNS` order (the log can have millions of entries).
        """
        with self._db.snapshot() as c:
            audit = _fetch_audit(c)
            reads = self._all_reads(c)
            anns = _fetch_annotations(c)
            integ = self._db.integrity_check(c)
        return Snapshot(audit, reads, anns, integ)

    # ------------------------------------------------------------------ writes
    def log(self, actor: str, event: str, pseudonym: str | None = None, **details: Any) -> int:
        """An audit entry on its own (committed at once); returns its seq."""
        with self._db.tx() as c:
            return self._db.append_audit(c, actor, event, pseudonym, **details)

    def create_study(
        self,
        meta: dict[str, str],
        cases: list[dict[str, Any]],
        reads: list[dict[str, Any]],
        readers: list[str],
        details: dict[str, Any],
    ) -> None:
        """Write a new study's meta, cases, readers and reads (``case_key`` 1-based) at once."""
        t = self._db.t
        with self._db.tx() as c:
            for k, v in meta.items():
                self._db.set_meta(c, k, v)
            c.execute(t["cases"].insert(), cases)
            c.execute(t["readers"].insert(), [{"reader": r} for r in readers])
            c.execute(t["reads"].insert(), reads)
            self._db.append_audit(c, "coordinator", "study_init", None, **details)

    def unlock(self, reader: str, pseudonym: str, reason: str) -> bool:
        """Unlock a read, logged with the reason; False when there is no such read."""
        import sqlalchemy as sa

        r = self._db.t["reads"]
        where = (r.c.reader == reader) & (r.c.pseudonym == pseudonym)
        with self._db.tx() as c:
            if c.execute(sa.select(r.c.read_id).where(where)).first() is None:
                return False
            c.execute(r.update().where(where).values(locked=0, status="in_progress"))
            self._db.append_audit(
                c, "coordinator", "unlock", pseudonym, reader=reader, reason=reason
            )
        return True

    def settings(self) -> dict[str, Any]:
        """The study's stored settings (JSON in meta)."""
        return json.loads(self._db.get_meta("settings", "{}") or "{}")


def _fetch_audit(conn: Any) -> list[tuple[Any, ...]]:
    """Every audit entry as a plain tuple (:data:`AUDIT_COLUMNS` order), by seq.

    Read through the DB-API cursor of ``conn``'s own transaction (so inside its
    snapshot): row objects built per entry cost verify a second per 200k entries.
    Every column is text or integer, so there is no type conversion to lose.
    """
    cols = ", ".join(f'"{n}"' for n in AUDIT_COLUMNS)
    return [tuple(r) for r in _raw_rows(conn, f"SELECT {cols} FROM audit ORDER BY seq")]


def _fetch_annotations(conn: Any) -> list[dict[str, Any]]:
    """Every stored annotation (read_id, reader, pseudonym, slot, data) by read and slot,
    read like :func:`_fetch_audit` (the same rows as ``CoordinatorStore._all_annotations``)."""
    keys = ("read_id", "reader", "pseudonym", "slot", "data")
    sql = (
        "SELECT r.read_id, r.reader, r.pseudonym, a.slot, a.data FROM annotations a "
        "JOIN reads r ON a.read_id = r.read_id ORDER BY r.read_id, a.slot"
    )
    return [dict(zip(keys, r, strict=True)) for r in _raw_rows(conn, sql)]


def _raw_rows(conn: Any, sql: str) -> list[Any]:
    cur = conn.connection.dbapi_connection.cursor()
    try:
        cur.execute(sql)
        return cur.fetchall()
    finally:
        cur.close()
