"""The study database: schema, transactions, the audit chain (SQLAlchemy Core).

SQLite in the study folder by default (WAL journal, ``synchronous=FULL``) or any
SQLAlchemy URL (e.g. PostgreSQL for a multi-site study). Only this module and the
two role stores (:mod:`._reader_store`, :mod:`._coordinator_store`) talk SQL.

Transactions
------------
- :meth:`StudyDB.tx` is a *write* transaction: on SQLite ``BEGIN IMMEDIATE`` takes the
  write lock at once, so the audit chain's read-last-hash-then-append never
  interleaves with another writer. Every change is committed in one such transaction
  together with its audit entry.
- :meth:`StudyDB.snapshot` is a *read* transaction (``BEGIN``, deferred): in WAL mode
  it sees one consistent snapshot of the whole database and takes no write lock, so a
  long read (``study verify``, an export) never blocks a reader's answer.
- PostgreSQL: every write transaction first takes one transaction-scoped advisory lock
  (``pg_advisory_xact_lock``), released at commit or rollback. Writes are therefore
  serialised exactly as SQLite's ``BEGIN IMMEDIATE`` serialises them: the lock check of
  a read, its change and its audit entry (next sequence number and previous hash) are
  never interleaved with another writer, so the chain's sequence stays dense and no
  update is lost. (SERIALIZABLE isolation with retries would also be correct, but every
  reader's write would then have to be retried on conflict; a reader study writes a few
  changes per minute, so one lock costs nothing.) Reads use ``REPEATABLE READ`` (one
  snapshot) and never wait for the lock.
- Idempotent writes: a reader's change may carry a client-side ``change_id``; the
  ``changes`` table remembers applied ids, so a change retried after a lost connection
  is applied once.

Schema versions
---------------
Versioned migrations (:data:`MIGRATIONS`), applied in one write transaction with an
audit entry when a database of an older version is opened: version 1 (the first
release) -> 2 adds ``changes``. Tests upgrade a version-1 database on SQLite and
PostgreSQL.

Tables
------
meta(key, value)                        schema_version, study_id, settings (JSON),
                                        coordinator_key_sha256
cases(case_key, case_id, path, pseudonym)
readers(reader)
reads(read_id, reader, case_key, pseudonym, read_no, is_repeat, repeat_of, status, locked,
      hypointensity, thinning, als_consistent, confidence, comment, active_time_s,
      opened_at, submitted_at)
annotations(read_id, slot, data, modified_at)      data: canonical JSON (sorted keys)
audit(seq, at, actor, event, pseudonym, details, prev_hash, hash)
changes(change_id, at)                              applied client change ids (v2)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import M1Error

__all__ = [
    "GENESIS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "StoreUnavailableError",
    "StudyDB",
    "audit_hash",
    "canonical_json",
    "utc_now",
]

SCHEMA_VERSION = 2
GENESIS = "0" * 64
#: Key of the advisory lock that serialises writers on PostgreSQL ("m1-study").
WRITE_LOCK_KEY = 0x6D312D7374756479
_encode_str = json.encoder.encode_basestring  # json.dumps(str, ensure_ascii=False)


class StoreUnavailableError(M1Error):
    """The study database cannot take a change now (read-only, disk full, busy).

    Nothing was written; the same change can be retried later.
    """


def utc_now() -> str:
    """ISO 8601 UTC timestamp with milliseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def canonical_json(data: Any) -> str:
    """The one JSON text of ``data`` that is stored and hashed (sorted keys)."""
    return json.dumps(data, sort_keys=True)


def audit_hash(
    prev_hash: str, seq: int, at: str, actor: str, event: str, pseudonym: str | None, details: str
) -> str:
    """SHA-256 of the previous hash and this entry's canonical fields.

    The hashed text is ``json.dumps([prev_hash, seq, at, actor, event, pseudonym or "",
    details], separators=(",", ":"), ensure_ascii=False)``, built here without the
    generic encoder (verify hashes every entry of the log).

    >>> h = audit_hash("0" * 64, 1, "2024-01-01T00:00:00.000+00:00", "R1", "open", None, "{}")
    >>> h == hashlib.sha256(json.dumps(["0" * 64, 1, "2024-01-01T00:00:00.000+00:00", "R1",
    ...     "open", "", "{}"], separators=(",", ":"), ensure_ascii=False).encode()).hexdigest()
    True
    """
    e = _encode_str
    payload = (
        f"[{e(prev_hash)},{int(seq)},{e(at)},{e(actor)},{e(event)},{e(pseudonym or '')},"
        f"{e(details)}]"
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _tables() -> tuple[Any, dict[str, Any]]:
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
        sa.Column("repeat_of", sa.String, nullable=True),  # the first read's pseudonym
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
    t["changes"] = sa.Table(
        "changes",
        md,
        sa.Column("change_id", sa.String, primary_key=True),
        sa.Column("at", sa.String, nullable=False),
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


def _explain(exc: BaseException, name: str) -> str:
    """One line for a database error the user can act on."""
    text = str(getattr(exc, "orig", exc)).splitlines()[0] if str(exc) else type(exc).__name__
    low = text.lower()
    if "readonly" in low or "read-only" in low:
        return (
            f"the study database {name} is read-only (file or folder not writable): "
            "nothing was saved"
        )
    if "disk is full" in low or "database or disk is full" in low or "no space" in low:
        return f"disk full: the study database {name} cannot grow; nothing was saved"
    if "locked" in low or "busy" in low:
        return f"the study database {name} is busy (held by another window): nothing was saved"
    if "unable to open" in low:
        return f"cannot open the study database {name} (folder missing or not writable)"
    if "connection" in low and ("refused" in low or "timeout" in low or "failed" in low):
        return (
            f"cannot reach the study database {name} (network or server down): nothing was saved"
        )
    if "password authentication failed" in low or "no password supplied" in low:
        return (
            f"the study database {name} refused the login: set PGPASSWORD or a pgpass "
            "file (see the study guide)"
        )
    return f"study database {name}: {text}"


class StudyDB:
    """Connection, schema and audit chain of one study database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:///STUDY_DIR/study.sqlite``.
    create : bool
        Create the tables (new study); otherwise the schema version is checked.
    immutable : bool
        SQLite only: open the file read-only as an immutable snapshot (a read-only
        study folder without a pending write-ahead log).
    """

    def __init__(self, url: str, *, create: bool = False, immutable: bool = False) -> None:
        import sqlalchemy as sa

        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.name = url.rsplit("/", 1)[-1].split("?")[0]
        else:
            u = sa.engine.make_url(url)
            self.name = f"{u.database} on {u.host or 'localhost'}"
        kwargs: dict[str, Any] = {} if self.is_sqlite else {"pool_pre_ping": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
            if immutable:
                path = url[len("sqlite:///") :]
                url = f"sqlite:///file:{path}?immutable=1&uri=true"
        self.read_only = immutable
        self.engine = sa.create_engine(url, **kwargs)
        if self.is_sqlite:
            self._sqlite_pragmas(wal=not immutable)
        self.md, self.t = _tables()
        if create:
            self._create()
        else:
            version = self._check_schema()
            if version < SCHEMA_VERSION and not self.read_only:
                self._upgrade()

    def _create(self) -> None:
        import sqlalchemy as sa

        try:
            if not self.is_sqlite and sa.inspect(self.engine).has_table("meta"):
                raise M1Error(
                    f"the database {self.name} already holds a napari-m1 study: use an empty "
                    "database for each study"
                )
            self.md.create_all(self.engine)
        except sa.exc.OperationalError as exc:
            raise StoreUnavailableError(_explain(exc, self.name)) from None
        with self.tx() as c:
            self.set_meta(c, "schema_version", str(SCHEMA_VERSION))

    def _upgrade(self) -> None:
        """Bring an older schema up to :data:`SCHEMA_VERSION` (one transaction, logged)."""
        import sqlalchemy as sa

        m = self.t["meta"]
        with self.tx() as c:
            old = int(c.execute(sa.select(m.c.value).where(m.c.key == "schema_version")).scalar())
            if old >= SCHEMA_VERSION:
                return  # another process upgraded it while we waited for the lock
            for v in range(old + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[v](self, c)
            self.set_meta(c, "schema_version", str(SCHEMA_VERSION))
            self.append_audit(
                c, "napari-m1", "schema_upgrade", None, from_version=old, to_version=SCHEMA_VERSION
            )

    def _sqlite_pragmas(self, *, wal: bool) -> None:
        from sqlalchemy import event

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_conn: Any, record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            if wal:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writes take the write lock at once (IMMEDIATE); reads are deferred and,
            # in WAL mode, read one snapshot without blocking any writer.
            write = conn.get_execution_options().get("m1_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    def _check_schema(self) -> int:
        import sqlalchemy as sa

        try:
            with self.snapshot() as c:
                row = c.execute(
                    sa.select(self.t["meta"].c.value).where(
                        self.t["meta"].c.key == "schema_version"
                    )
                ).first()
        except M1Error:
            raise
        except sa.exc.DatabaseError as exc:
            low = str(exc).lower()
            if any(w in low for w in ("readonly", "read-only", "unable to open", "locked")):
                raise StoreUnavailableError(_explain(exc, self.name)) from None
            raise M1Error(f"not a napari-m1 study database ({str(exc).splitlines()[0]})") from None
        if row is None:
            raise M1Error("not a napari-m1 study database (no schema version)")
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise M1Error(
                f"study database has schema version {version}, newer than this napari-m1 "
                f"supports ({SCHEMA_VERSION}); update napari-m1"
            )
        return version

    @contextmanager
    def tx(self) -> Iterator[Any]:
        """One write transaction, committed on exit (rolled back on error).

        Raises
        ------
        StoreUnavailableError
            The database is read-only, the disk is full or the database stayed busy;
            nothing of the transaction was written.
        """
        import sqlalchemy as sa

        if self.read_only:
            raise StoreUnavailableError(
                f"the study database {self.name} is read-only (file or folder not "
                "writable): nothing was saved"
            )
        try:
            with self.engine.connect() as conn:
                conn.execution_options(m1_write=True)
                with conn.begin():
                    if not self.is_sqlite:  # serialise writers (see the module docstring)
                        conn.execute(
                            sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK_KEY}
                        )
                    yield conn
        except sa.exc.OperationalError as exc:
            raise StoreUnavailableError(_explain(exc, self.name)) from None

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """One read transaction: every query inside sees the same committed state."""
        import sqlalchemy as sa

        try:
            with self.engine.connect() as conn:
                if not self.is_sqlite:  # a server: one snapshot for the whole transaction
                    conn.execution_options(
                        isolation_level="REPEATABLE READ", postgresql_readonly=True
                    )
                with conn.begin():
                    yield conn
        except sa.exc.OperationalError as exc:
            raise StoreUnavailableError(_explain(exc, self.name)) from None

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------ audit
    def append_audit(
        self, conn: Any, actor: str, event: str, pseudonym: str | None = None, **details: Any
    ) -> int:
        """Append an audit entry inside the caller's write transaction; returns its seq."""
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

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str, default: str | None = None, conn: Any = None) -> str | None:
        """A meta value (in ``conn``'s transaction when given)."""
        import sqlalchemy as sa

        m = self.t["meta"]
        q = sa.select(m.c.value).where(m.c.key == key)
        if conn is not None:
            row = conn.execute(q).first()
        else:
            with self.snapshot() as c:
                row = c.execute(q).first()
        return row[0] if row else default

    def set_meta(self, conn: Any, key: str, value: str) -> None:
        """Insert or replace a meta value (in the caller's write transaction)."""
        import sqlalchemy as sa

        m = self.t["meta"]
        if conn.execute(sa.select(m.c.key).where(m.c.key == key)).first():
            conn.execute(m.update().where(m.c.key == key).values(value=value))
        else:
            conn.execute(m.insert().values(key=key, value=value))

    def readers(self) -> list[str]:
        """Reader ids, sorted."""
        import sqlalchemy as sa

        with self.snapshot() as c:
            return sorted(r[0] for r in c.execute(sa.select(self.t["readers"].c.reader)))

    def integrity_check(self, conn: Any = None) -> str:
        """SQLite's ``PRAGMA integrity_check`` result (``ok`` when sound)."""
        if not self.is_sqlite:
            return "ok"
        if conn is not None:
            return "\n".join(str(r[0]) for r in conn.exec_driver_sql("PRAGMA integrity_check"))
        with self.snapshot() as c:
            return self.integrity_check(c)


# ----------------------------------------------------------------------------- migrations


def _v2_changes_table(db: StudyDB, conn: Any) -> None:
    """Version 2: the ``changes`` table of applied client change ids (idempotent writes)."""
    db.t["changes"].create(conn, checkfirst=True)


#: Schema version -> the migration that produces it from the version before.
MIGRATIONS = {2: _v2_changes_table}
