"""Where an :class:`~napari_m1.annotation.AnnotationSet` keeps its annotations.

:class:`AnnotationStore` is the port (load the case's annotations; save one change
before it takes effect); :class:`FileAnnotationStore` is the JSON Lines autosave file.
The study database's store is :class:`napari_m1.session.SessionAnnotationStore`.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

from .annotation import (
    Annotation,
    AnnotationSet,
    Change,
    load_annotations,
    save_annotations,
)
from .protocol import Protocol

__all__ = ["AnnotationStore", "FileAnnotationStore"]


@typing.runtime_checkable
class AnnotationStore(typing.Protocol):
    """Where an :class:`AnnotationSet` keeps its annotations (a file, a study database).

    The set calls :meth:`save` *before* a change takes effect; if it raises, the change
    is not applied (storage first, then model), so what is shown is what is stored.
    """

    def load(self, case: dict[str, Any], protocol: Protocol) -> dict[str, Annotation]:
        """The stored annotations of this case (slot -> annotation; empty when none)."""
        ...

    def save(self, annset: AnnotationSet, items: dict[str, Annotation], change: Change) -> None:
        """Persist ``change``; ``items`` is the set's state after it. Raise to refuse."""
        ...


class FileAnnotationStore:
    """Annotations autosaved to a JSON Lines file (each change rewrites it atomically).

    Parameters
    ----------
    path : path
        ``*.m1ann.jsonl`` (see :func:`save_annotations`); need not exist yet.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileAnnotationStore({str(self.path)!r})"

    def load(self, case: dict[str, Any], protocol: Protocol) -> dict[str, Annotation]:
        """Stored annotations (empty when the file does not exist yet)."""
        if not self.path.is_file():
            return {}
        return dict(load_annotations(self.path, case=case, protocol=protocol).items)

    def save(self, annset: AnnotationSet, items: dict[str, Annotation], change: Change) -> None:
        """Rewrite the file with the state after the change."""
        save_annotations(self.path, annset, items)
