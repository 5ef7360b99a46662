"""SQL of the reader's side: every query is bound to one reader's own rows.

:class:`ReaderStore` has no method that reaches another reader's rows, the case ids,
the audit log or a coordinator action (unlock, export): those live in
:mod:`._coordinator_store`. It is what a :class:`~napari_m1.session.ReaderSession`
holds (privately).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import M1Error
from ._db import StudyDB, utc_now

__all__ = ["ReaderStore"]


class ReaderStore:
    """One reader's rows of a study database.

    Parameters
    ----------
    db : StudyDB
    reader : str
        The reader id every query is restricted to.
    """

    def __init__(self, db: StudyDB, reader: str) -> None:
        self._db = db
        self.reader = reader

    def _cols(self) -> list[Any]:
        return [c for c in self._db.t["reads"].c if c.name != "case_key"]

    def reads(self) -> list[dict[str, Any]]:
        """Every read of this reader, in reading order (no case ids or paths)."""
        import sqlalchemy as sa

        r = self._db.t["reads"]
        with self._db.snapshot() as c:
            rows = c.execute(
                sa.select(*self._cols()).where(r.c.reader == self.reader).order_by(r.c.read_no)
            )
            return [dict(x._mapping) for x in rows]

    def read(self, pseudonym: str) -> dict[str, Any] | None:
        """One read, only if it belongs to this reader."""
        import sqlalchemy as sa

        r = self._db.t["reads"]
        with self._db.snapshot() as c:
            row = c.execute(
                sa.select(*self._cols()).where(
                    r.c.reader == self.reader, r.c.pseudonym == pseudonym
                )
            ).first()
        return dict(row._mapping) if row else None

    def case_path(self, pseudonym: str) -> str:
        """The case folder behind one of this reader's reads (to load images; never shown)."""
        import sqlalchemy as sa

        r, cs = self._db.t["reads"], self._db.t["cases"]
        with self._db.snapshot() as c:
            row = c.execute(
                sa.select(cs.c.path)
                .select_from(r.join(cs))
                .where(r.c.reader == self.reader, r.c.pseudonym == pseudonym)
            ).first()
        if row is None:
            raise M1Error(f"no read {pseudonym!r} for reader {self.reader!r}")
        return row[0]

    def annotations(self, pseudonym: str) -> list[dict[str, Any]]:
        """Stored annotation dicts of one of this reader's reads."""
        import sqlalchemy as sa

        r, a = self._db.t["reads"], self._db.t["annotations"]
        with self._db.snapshot() as c:
            rows = c.execute(
                sa.select(a.c.data)
                .select_from(a.join(r))
                .where(r.c.reader == self.reader, r.c.pseudonym == pseudonym)
                .order_by(a.c.slot)
            )
            return [json.loads(x.data) for x in rows]

    # ------------------------------------------------------------------ writes
    # Every write is one transaction that includes its audit entry.

    def mark_opened(self, pseudonym: str) -> None:
        """Log an open; a not-started read becomes in progress with its open time."""
        r = self._db.t["reads"]
        where = (r.c.reader == self.reader) & (r.c.pseudonym == pseudonym)
        with self._db.tx() as c:
            c.execute(
                r.update()
                .where(where & (r.c.status == "not_started"))
                .values(status="in_progress", opened_at=utc_now())
            )
            self._db.append_audit(c, self.reader, "open", pseudonym)

    def guarded_write(
        self,
        pseudonym: str,
        what: str,
        event: str,
        *,
        values: dict[str, Any] | None = None,
        annotation: tuple[str, str | None] | None = None,
        details: dict[str, Any] | None = None,
        change_id: str | None = None,
    ) -> bool:
        """A change, refused when the read is locked — checked in the same transaction as
        the write, so an unlock or a second window cannot race it.

        ``values`` update the read row; ``annotation`` is ``(slot, canonical JSON or
        None)``. A refusal is logged as ``refused``. Returns False when refused.
        ``change_id`` (client-made, unique per change) makes the write idempotent: a
        change whose id was applied already is not applied again (True is returned).
        """
        import sqlalchemy as sa

        r, a, ch = self._db.t["reads"], self._db.t["annotations"], self._db.t["changes"]
        with self._db.tx() as c:
            if (
                change_id is not None
                and c.execute(sa.select(ch.c.change_id).where(ch.c.change_id == change_id)).first()
            ):
                return True  # applied before (a retry after a lost connection)
            row = c.execute(
                sa.select(r.c.read_id, r.c.locked, r.c.status).where(
                    r.c.reader == self.reader, r.c.pseudonym == pseudonym
                )
            ).first()
            if row is None:
                raise M1Error(f"no read {pseudonym!r} for reader {self.reader!r}")
            if row.locked:
                self._db.append_audit(c, self.reader, "refused", pseudonym, attempt=what)
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
            if change_id is not None:
                c.execute(ch.insert().values(change_id=change_id, at=utc_now()))
            self._db.append_audit(c, self.reader, event, pseudonym, **(details or {}))
        return True

    def add_active_time(self, pseudonym: str, seconds: float) -> None:
        """Add active seconds to an unlocked read (not audited: it is bookkeeping)."""
        r = self._db.t["reads"]
        with self._db.tx() as c:
            c.execute(
                r.update()
                .where(r.c.reader == self.reader, r.c.pseudonym == pseudonym, r.c.locked == 0)
                .values(active_time_s=r.c.active_time_s + float(seconds))
            )
