"""A read's annotations stored in the study database (the study side of
:class:`~napari_m1.annotation.AnnotationStore`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..annotation import Annotation, AnnotationSet, Change

if TYPE_CHECKING:
    from ..protocol import Protocol
    from ._reader import ReaderSession

__all__ = ["SessionAnnotationStore"]


class SessionAnnotationStore:
    """The annotations of one read, each change committed (and audited) at once.

    Parameters
    ----------
    reader_session : ReaderSession
        The reader's open session.
    pseudonym : str
        The read (case pseudonym) whose annotations these are.

    A locked (submitted) read refuses every change in the database itself; the
    refusal is logged there and raised here, so the annotation set stays unchanged.
    """

    def __init__(self, reader_session: ReaderSession, pseudonym: str) -> None:
        self.session = reader_session
        self.pseudonym = pseudonym

    def __repr__(self) -> str:
        return f"SessionAnnotationStore(reader={self.session.reader!r}, read={self.pseudonym!r})"

    def load(self, case: dict[str, Any], protocol: Protocol) -> dict[str, Annotation]:
        """The read's stored annotations."""
        out = {}
        for d in self.session.annotations(self.pseudonym):
            a = Annotation(**{**d, "points_ras": tuple(tuple(p) for p in d["points_ras"])})
            out[a.slot] = a
        return out

    def save(self, annset: AnnotationSet, items: dict[str, Annotation], change: Change) -> None:
        """Upsert or delete the changed slot (refused, and logged, when the read is locked)."""
        self.session.save_annotation(
            self.pseudonym,
            change.slot,
            change.after.to_json() if change.after is not None else None,
            change.action,
        )
