"""Where an :class:`~napari_m1.annotation.AnnotationSet` keeps its annotations, and the file.

:class:`AnnotationStore` is the port (load the case's annotations; save one change
before it takes effect); :class:`FileAnnotationStore` is the JSON Lines autosave file.
The study database's store is :class:`napari_m1.session.SessionAnnotationStore`.
"""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path
from typing import Any

from ._atomic import atomic_write_text
from ._files import read_user_text
from .annotation import (
    MIDLINE_SLOT,
    Annotation,
    AnnotationFileError,
    AnnotationSet,
    CaseMismatchError,
    Change,
    _pts,
    _short,
    case_mismatch,
    slice_plane_problem,
)
from .errors import M1Error
from .formats import ANNOTATION_SCHEMA
from .protocol import Protocol, get_protocol

__all__ = ["AnnotationStore", "FileAnnotationStore", "load_annotations", "save_annotations"]


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
        # slot -> (annotation, its JSON line): annotations are immutable, so an edit
        # serialises the one changed annotation, not all of them
        self._lines: dict[str, tuple[Annotation, str]] = {}

    def __repr__(self) -> str:
        return f"FileAnnotationStore({str(self.path)!r})"

    def load(self, case: dict[str, Any], protocol: Protocol) -> dict[str, Annotation]:
        """Stored annotations (empty when the file does not exist yet)."""
        if not self.path.is_file():
            return {}
        return dict(load_annotations(self.path, case=case, protocol=protocol).items)

    def save(self, annset: AnnotationSet, items: dict[str, Annotation], change: Change) -> None:
        """Rewrite the file with the state after the change."""
        save_annotations(self.path, annset, items, line_cache=self._lines)


# ----------------------------------------------------------------------------- the file
def save_annotations(
    path: str | os.PathLike[str],
    annset: AnnotationSet,
    items: dict[str, Annotation] | None = None,
    *,
    line_cache: dict[str, tuple[Annotation, str]] | None = None,
) -> Path:
    """Write the set (or ``items`` under its header) as JSON Lines, atomically.

    A half-written file never replaces a good one. ``line_cache`` (slot -> (annotation,
    line)) reuses the lines of annotations serialised before (the same object).
    """
    items = annset.items if items is None else items
    cache: dict[str, tuple[Annotation, str]] = {} if line_cache is None else line_cache
    lines = [json.dumps(annset.header(), ensure_ascii=False)]
    for slot in (*annset.protocol.slot_ids, MIDLINE_SLOT):
        a = items.get(slot)
        if a is None:
            continue
        hit = cache.get(slot)
        if hit is None or hit[0] is not a:
            hit = cache[slot] = (a, json.dumps(a.to_json(), ensure_ascii=False))
        lines.append(hit[1])
    return atomic_write_text(path, "\n".join(lines) + "\n")


def load_annotations(
    path: str | os.PathLike[str],
    *,
    case: dict[str, Any] | None = None,
    protocol: Protocol | None = None,
    transfer: bool = False,
) -> AnnotationSet:
    """Read an annotations file, checking it against the case it is loaded onto.

    Parameters
    ----------
    path : path
        ``*.m1ann.jsonl``.
    case : dict, optional
        :func:`case_fingerprint` of the loaded case; when given, a file written for
        another case (different label or grid, :func:`case_mismatch`) is refused, and
        every ROI must lie in a slice of its grid (:func:`slice_plane_problem`).
        Refusals of another case raise :class:`CaseMismatchError`.
    protocol : Protocol, optional
        Defaults to the protocol named in the file.
    transfer : bool
        Accept a file of another case (a deliberate transfer, ``measure --force``);
        the set then belongs to ``case``. The geometry checks still apply.

    Raises
    ------
    AnnotationFileError
        One line: file name, line number and reason.
    """
    from ._files import parse_user_json, shown

    p = Path(path)
    name = shown(p.name)
    try:
        text = read_user_text(p)
    except M1Error as exc:
        raise AnnotationFileError(str(exc)) from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise AnnotationFileError(f"{name}: empty file")
    try:
        header = parse_user_json(lines[0], f"{name}, line 1: header")
    except M1Error as exc:
        raise AnnotationFileError(str(exc)) from None
    if not isinstance(header, dict) or header.get("schema") != ANNOTATION_SCHEMA:
        raise AnnotationFileError(
            f"{name}, line 1: not a napari-m1 annotations file (schema {ANNOTATION_SCHEMA})"
        )
    for key in ("protocol", "reader"):
        if not isinstance(header.get(key, ""), str):
            raise AnnotationFileError(f"{name}, line 1: '{key}' must be text")
    file_case = header.get("case")
    if not isinstance(file_case, dict) or not all(
        isinstance(file_case.get(k, ""), str) for k in ("label", "hash")
    ):
        raise AnnotationFileError(
            f"{name}, line 1: 'case' must be an object with text 'label' and 'hash'"
        )
    try:
        proto = protocol or get_protocol(header.get("protocol", ""))
    except M1Error as exc:
        raise AnnotationFileError(f"{name}, line 1: {exc}") from None
    if proto.id != header.get("protocol"):
        raise AnnotationFileError(
            f"{name}: written for protocol {_short(header.get('protocol'))!r}, not {proto.id!r}"
        )
    why = case_mismatch(file_case, case) if case is not None else None
    if why and not transfer:
        raise CaseMismatchError(f"{name}: {why}")
    anns: list[Annotation] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            d = parse_user_json(line, "")
            if not isinstance(d, dict):
                raise ValueError("not a JSON object")
            for key in ("slot", "kind", "author", "created_at", "modified_at", "source"):
                if not isinstance(d.get(key, ""), str):
                    raise ValueError(f"'{key}' must be text")
            ann = Annotation(
                slot=d["slot"],
                kind=d["kind"],
                points_ras=_pts(d["points_ras"]),
                author=d.get("author", ""),
                created_at=d.get("created_at", ""),
                modified_at=d.get("modified_at", ""),
                source=d.get("source", "loaded"),
                voxel_ijk=d.get("voxel_ijk"),  # MRSI voxels only (absent in older files)
            )
            if ann.slot == MIDLINE_SLOT or ann.kind == "midline":
                if (ann.slot, ann.kind) != (MIDLINE_SLOT, "midline"):
                    raise ValueError(f"only slot {MIDLINE_SLOT!r} holds the midline")
            elif (slot := proto.slot(ann.slot)).kind != ann.kind:
                raise ValueError(f"slot {ann.slot} takes a {slot.kind}, not a {ann.kind}")
            problem = slice_plane_problem(ann, case.get("ras_affine")) if case else None
            if problem:
                raise ValueError(problem)
        except (M1Error, KeyError, ValueError, TypeError, OverflowError) as exc:
            if isinstance(exc, KeyError):
                msg = str(exc.args[0]) if exc.args else "missing key"
            else:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise AnnotationFileError(
                f"{name}, line {lineno}: malformed annotation ({_short(msg, 200)})"
            ) from None
        if ann.slot in seen:
            raise AnnotationFileError(
                f"{name}, line {lineno}: slot {ann.slot} filled twice (first on line "
                f"{seen[ann.slot]})"
            )
        seen[ann.slot] = lineno
        anns.append(ann)
    aset = AnnotationSet(proto, case if case is not None else file_case, header.get("reader", ""))
    aset.items = {a.slot: a for a in anns}
    return aset
