"""The study store: the only module that talks SQL (SQLAlchemy Core).

SQLite in the study folder by default (WAL journal, ``synchronous=FULL``, every
change committed in its own transaction together with its audit-log entry), or
any SQLAlchemy URL (e.g. PostgreSQL for a multi-site study). Nothing outside
this module writes SQL.

Tables
------
meta(key, value)                        schema_version, study_id, settings (JSON)
cases(case_key, case_id, path, pseudonym)
readers(reader)
reads(read_id, reader, case_key, pseudonym, read_no, is_repeat, repeat_of, status, locked,
      hypointensity, thinning, als_consistent, confidence, comment, active_time_s,
      opened_at, submitted_at)
annotations(read_id, slot, data, modified_at)
audit(seq, at, actor, event, pseudonym, details, prev_hash, hash)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import M1Error

__all__ = ["SCHEMA_VERSION", "StudyStore", "audit_hash", "utc_now"]

SCHEMA_VERSION = 1
GENESIS = "0" * 64


def utc_now() -> str:
    """ISO 8601 UTC timestamp with milliseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def audit_hash(
    prev_hash: str, seq: int, at: str, actor: str, event: str, pseudonym: str | None, details: str
) -> str:
    """SHA-256 of the previous hash and this entry's canonical fields."""
    payload = json.dumps(
        [prev_hash, seq, at, actor, event, pseudonym or "", details],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _tables():
    import sqlalchemy as sa

    md = sa.MetaData()
    t = {}
    t["meta"] = sa.Table(
        "meta",
        md,
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    t["cases"] = sa.Table(
        "cases",
        md,
        sa.Column("case_key", sa.Integer, primary_key=True),
        sa.Column("case_id", sa.String, nullable=False, unique=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("pseudonym", sa.String, nullable=False, unique=True),
    )
    t["readers"] = sa.Table("readers", md, sa.Column("reader", sa.String, primary_key=True))
    t["reads"] = sa.Table(
        "reads",
        md,
        sa.Column("read_id", sa.Integer, primary_key=True),
        sa.Column("reader", sa.String, sa.ForeignKey("readers.reader"), nullable=False),
        sa.Column("case_key", sa.Integer, sa.ForeignKey("cases.case_key"), nullable=False),
        sa.Column("pseudonym", sa.String, nullable=False),
        sa.Column("read_no", sa.Integer, nullable=False),
        sa.Column("is_repeat", sa.Integer, nullable=False, default=0),
        sa.Column("repeat_of", sa.Integer, nullable=True),
        sa.Column("status", sa.String, nullable=False, default="not_started"),
        sa.Column("locked", sa.Integer, nullable=False, default=0),
        sa.Column("hypointensity", sa.Integer),
        sa.Column("thinning", sa.Integer),
        sa.Column("als_consistent", sa.Integer),
        sa.Column("confidence", sa.Integer),
        sa.Column("comment", sa.Text, nullable=False, default=""),
        sa.Column("active_time_s", sa.Float, nullable=False, default=0.0),
        sa.Column("opened_at", sa.String),
        sa.Column("submitted_at", sa.String),
        sa.UniqueConstraint("reader", "read_no"),
        sa.UniqueConstraint("reader", "pseudonym"),
    )
    t["annotations"] = sa.Table(
        "annotations",
        md,
        sa.Column("read_id", sa.Integer, sa.ForeignKey("reads.read_id"), primary_key=True),
        sa.Column("slot", sa.String, primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("modified_at", sa.String, nullable=False),
    )
    t["audit"] = sa.Table(
        "audit",
        md,
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.String, nullable=False),
        sa.Column("actor", sa.String, nullable=False),
        sa.Column("event", sa.String, nullable=False),
        sa.Column("pseudonym", sa.String),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String, nullable=False),
        sa.Column("hash", sa.String, nullable=False),
    )
    return md, t


class StudyStore:
    """Data access for one study database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///STUDY_DIR/study.sqlite``.
    create : bool
        Create the tables (new study); otherwise the schema version is checked.
    """

    def __init__(self, url: str, *, create: bool = False) -> None:
        import sqlalchemy as sa

        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        self.engine = sa.create_engine(url, **kwargs)
        if self.is_sqlite:
            self._sqlite_pragmas()
        self.md, self.t = _tables()
        if create:
            self.md.create_all(self.engine)
            with self.tx() as c:
                c.execute(
                    self.t["meta"].insert(),
                    [{"key": "schema_version", "value": str(SCHEMA_VERSION)}],
                )
        else:
            self._check_schema()

    def _sqlite_pragmas(self) -> None:
        from sqlalchemy import event

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_conn: Any, record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Any) -> None:
            # IMMEDIATE: take the write lock at once, so the audit chain's
            # read-last-hash-then-append can never interleave with another writer.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def _check_schema(self) -> None:
        import sqlalchemy as sa

        try:
            with self.engine.connect() as c:
                row = c.execute(
                    sa.select(self.t["meta"].c.value).where(
                        self.t["meta"].c.key == "schema_version"
                    )
                ).first()
        except sa.exc.DatabaseError as exc:
            raise M1Error(f"not a napari-m1 study database ({str(exc).splitlines()[0]})") from None
        if row is None:
            raise M1Error("not a napari-m1 study database (no schema version)")
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise M1Error(
                f"study database has schema version {version}, newer than this napari-m1 "
                f"supports ({SCHEMA_VERSION}); update napari-m1"
            )

    @contextmanager
    def tx(self) -> Iterator[Any]:
        """One transaction, committed on exit (rolled back on error)."""
        with self.engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------ audit
    def append_audit(
        self, conn: Any, actor: str, event: str, pseudonym: str | None = None, **details: Any
    ) -> int:
        """Append an audit entry inside the caller's transaction; returns its seq."""
        import sqlalchemy as sa

        a = self.t["audit"]
        last = conn.execute(sa.select(a.c.seq, a.c.hash).order_by(a.c.seq.desc()).limit(1)).first()
        prev = last.hash if last else GENESIS
        seq = (last.seq + 1) if last else 1
        at = utc_now()
        det = json.dumps(details, sort_keys=True, ensure_ascii=False, default=str)
        h = audit_hash(prev, seq, at, actor, event, pseudonym, det)
        conn.execute(
            a.insert().values(
                seq=seq,
                at=at,
                actor=actor,
                event=event,
                pseudonym=pseudonym,
                details=det,
                prev_hash=prev,
                hash=h,
            )
        )
        return seq

    def audit_rows(self) -> list[dict[str, Any]]:
        """Every audit entry in order."""
        import sqlalchemy as sa

        with self.engine.connect() as c:
            return [
                dict(r._mapping)
                for r in c.execute(sa.select(self.t["audit"]).order_by(self.t["audit"].c.seq))
            ]

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """A meta value."""
        import sqlalchemy as sa

        m = self.t["meta"]
        with self.engine.connect() as c:
            row = c.execute(sa.select(m.c.value).where(m.c.key == key)).first()
        return row[0] if row else default

    def set_meta(self, conn: Any, key: str, value: str) -> None:
        """Insert or replace a meta value (in the caller's transaction)."""
        import sqlalchemy as sa

        m = self.t["meta"]
        if conn.execute(sa.select(m.c.key).where(m.c.key == key)).first():
            conn.execute(m.update().where(m.c.key == key).values(value=value))
        else:
            conn.execute(m.insert().values(key=key, value=value))

    # ------------------------------------------------------------------ queries
    def readers(self) -> list[str]:
        """Reader ids, sorted."""
        import sqlalchemy as sa

        with self.engine.connect() as c:
            return sorted(r[0] for r in c.execute(sa.select(self.t["readers"].c.reader)))

    def reads_of(self, reader: str) -> list[dict[str, Any]]:
        """Every read of one reader, in reading order (no case ids or paths)."""
        import sqlalchemy as sa

        r = self.t["reads"]
        cols = [c for c in r.c if c.name != "case_key"]
        with self.engine.connect() as c:
            rows = c.execute(sa.select(*cols).where(r.c.reader == reader).order_by(r.c.read_no))
            return [dict(x._mapping) for x in rows]

    def read_of(self, reader: str, pseudonym: str) -> dict[str, Any] | None:
        """One read, only if it belongs to ``reader``."""
        import sqlalchemy as sa

        r = self.t["reads"]
        cols = [c for c in r.c if c.name != "case_key"]
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(*cols).where(r.c.reader == reader, r.c.pseudonym == pseudonym)
            ).first()
        return dict(row._mapping) if row else None

    def case_path_of_read(self, read_id: int) -> str:
        """The case folder behind a read (used to load images; never displayed)."""
        import sqlalchemy as sa

        r, cs = self.t["reads"], self.t["cases"]
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(cs.c.path).select_from(r.join(cs)).where(r.c.read_id == read_id)
            ).first()
        if row is None:
            raise M1Error("read not found")
        return row[0]

    def annotations_of_read(self, read_id: int) -> list[dict[str, Any]]:
        """Stored annotation JSON dicts of a read."""
        import sqlalchemy as sa

        a = self.t["annotations"]
        with self.engine.connect() as c:
            rows = c.execute(sa.select(a.c.slot, a.c.data).where(a.c.read_id == read_id))
            return [json.loads(r.data) for r in rows]

    def all_reads(self) -> list[dict[str, Any]]:
        """Coordinator: every read joined with its case (case_id, path)."""
        import sqlalchemy as sa

        r, cs = self.t["reads"], self.t["cases"]
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(r, cs.c.case_id, cs.c.path)
                .select_from(r.join(cs))
                .order_by(r.c.reader, r.c.read_no)
            )
            return [dict(x._mapping) for x in rows]

    def cases(self) -> list[dict[str, Any]]:
        """Coordinator: every case (case_id, path, pseudonym)."""
        import sqlalchemy as sa

        with self.engine.connect() as c:
            return [dict(x._mapping) for x in c.execute(sa.select(self.t["cases"]))]

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` result (``ok`` when sound)."""
        if not self.is_sqlite:
            return "ok"
        with self.engine.connect() as c:
            return str(c.exec_driver_sql("PRAGMA integrity_check").scalar())

    # ------------------------------------------------------------------ writes
    # Every write below is one transaction that includes its audit entry.

    def log(self, actor: str, event: str, pseudonym: str | None = None, **details: Any) -> None:
        """An audit entry on its own (exports, unblinding)."""
        with self.tx() as c:
            self.append_audit(c, actor, event, pseudonym, **details)

    def create_study(
        self,
        study_id: str,
        settings: dict[str, Any],
        cases: list[dict[str, Any]],
        reads: list[dict[str, Any]],
        readers: list[str],
        details: dict[str, Any],
    ) -> None:
        """Write a new study's cases, readers and reads (``case_key`` 1-based) at once."""
        t = self.t
        with self.tx() as c:
            self.set_meta(c, "study_id", study_id)
            self.set_meta(c, "settings", json.dumps(settings))
            c.execute(t["cases"].insert(), cases)
            c.execute(t["readers"].insert(), [{"reader": r} for r in readers])
            c.execute(t["reads"].insert(), reads)
            self.append_audit(c, "coordinator", "study_init", None, **details)

    def mark_opened(self, reader: str, pseudonym: str) -> None:
        """Log an open; a not-started read becomes in progress with its open time."""
        r = self.t["reads"]
        where = (r.c.reader == reader) & (r.c.pseudonym == pseudonym)
        with self.tx() as c:
            c.execute(
                r.update()
                .where(where & (r.c.status == "not_started"))
                .values(status="in_progress", opened_at=utc_now())
            )
            self.append_audit(c, reader, "open", pseudonym)

    def guarded_write(
        self,
        reader: str,
        pseudonym: str,
        what: str,
        event: str,
        *,
        values: dict[str, Any] | None = None,
        annotation: tuple[str, str | None] | None = None,
        details: dict[str, Any] | None = None,
    ) -> bool:
        """A reader's change, refused when the read is locked — checked in the same
        transaction as the write, so an unlock or a second window cannot race it.

        ``values`` update the read row; ``annotation`` is ``(slot, json or None)``.
        A refusal is logged as ``refused``. Returns False when refused.
        """
        import sqlalchemy as sa

        r, a = self.t["reads"], self.t["annotations"]
        with self.tx() as c:
            row = c.execute(
                sa.select(r.c.read_id, r.c.locked, r.c.status).where(
                    r.c.reader == reader, r.c.pseudonym == pseudonym
                )
            ).first()
            if row is None:
                raise M1Error(f"no read {pseudonym!r} for reader {reader!r}")
            if row.locked:
                self.append_audit(c, reader, "refused", pseudonym, attempt=what)
                return False
            vals = dict(values or {})
            if row.status == "not_started" and "status" not in vals:
                vals["status"] = "in_progress"
            if vals:
                c.execute(r.update().where(r.c.read_id == row.read_id).values(vals))
            if annotation is not None:
                slot, data = annotation
                c.execute(a.delete().where(a.c.read_id == row.read_id, a.c.slot == slot))
                if data is not None:
                    c.execute(
                        a.insert().values(
                            read_id=row.read_id, slot=slot, data=data, modified_at=utc_now()
                        )
                    )
            self.append_audit(c, reader, event, pseudonym, **(details or {}))
        return True

    def add_active_time(self, reader: str, pseudonym: str, seconds: float) -> None:
        """Add active seconds to an unlocked read (not audited: it is bookkeeping)."""
        r = self.t["reads"]
        with self.tx() as c:
            c.execute(
                r.update()
                .where(r.c.reader == reader, r.c.pseudonym == pseudonym, r.c.locked == 0)
                .values(active_time_s=r.c.active_time_s + float(seconds))
            )

    def unlock(self, reader: str, pseudonym: str, reason: str) -> None:
        """Coordinator: unlock a read, logged with the reason."""
        r = self.t["reads"]
        with self.tx() as c:
            c.execute(
                r.update()
                .where(r.c.reader == reader, r.c.pseudonym == pseudonym)
                .values(locked=0, status="in_progress")
            )
            self.append_audit(c, "coordinator", "unlock", pseudonym, reader=reader, reason=reason)

    def all_annotations(self) -> list[dict[str, Any]]:
        """Coordinator: every stored annotation with its read's reader and pseudonym."""
        import sqlalchemy as sa

        r, a = self.t["reads"], self.t["annotations"]
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(r.c.reader, r.c.pseudonym, a.c.slot, a.c.data).select_from(a.join(r))
            )
            return [dict(x._mapping) for x in rows]
