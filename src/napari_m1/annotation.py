"""The one annotation model: ROIs and calipers in scanner RAS mm, with undo and storage.

An :class:`Annotation` is one filled protocol slot. Its geometry is stored in
scanner RAS millimetres only (voxel indices are derived for export):

* ROI (an oval on one slice): ``points_ras = (centre, centre + u, centre + v)``
  where ``u`` and ``v`` are the two perpendicular semi-axis vectors, in-plane.
* caliper: ``points_ras = (p1, p2)``, the two end points.
* MRSI voxel: ``points_ras = (centre, centre + u, centre + v)`` as a ROI (the voxel's
  in-plane square on the slice it was clicked on, for display) and ``voxel_ijk``, the
  voxel on the MRSI grid (measured through that grid's affine, not the square).
* midline (slot ``"midline"``, outside any protocol): ``points_ras = (p,)``, a point on
  the interhemispheric fissure chosen by the reader; hemispheres are judged against
  the sagittal plane RAS x = p.x.

:class:`AnnotationSet` holds one case's annotations for one protocol and reader,
applies every change through :meth:`AnnotationSet.apply` (so undo/redo is exact),
and notifies listeners. The Shapes layer in napari only *displays* this model;
an :class:`AnnotationStore` persists it (write-ahead: storage first, then the model);
measurement and export read it.

Files are JSON Lines (``*.m1ann.jsonl``): line 1 is a header (schema, case
fingerprint, protocol, reader), each further line one annotation. A malformed
line is rejected with its line number.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import M1Error
from .formats import ANNOTATION_SCHEMA
from .protocol import Protocol

if TYPE_CHECKING:
    from ._annotation_store import AnnotationStore

__all__ = [
    "ANNOTATION_SCHEMA",
    "MIDLINE_SLOT",
    "Annotation",
    "AnnotationFileError",
    "AnnotationSet",
    "AnnotationStore",
    "CaseMismatchError",
    "Change",
    "FileAnnotationStore",  # noqa: F822 (lazy, see __getattr__)
    "caliper_annotation",
    "case_fingerprint",
    "case_mismatch",
    "load_annotations",  # noqa: F822
    "midline_annotation",
    "mrsi_voxel_annotation",
    "roi_annotation",
    "save_annotations",  # noqa: F822
    "slice_plane_problem",
]

#: Largest |RAS coordinate| accepted, mm.
MAX_COORD_MM = 1e5
#: Largest |cos| of the angle between an ROI's semi-axes (0.02: 88.9°-91.1°; the area
#: error of pi*|u|*|v| is then below 0.02 %).
MAX_AXIS_COS = 0.02
#: Largest out-of-slice-plane share of a semi-axis (sin of its tilt).
MAX_TILT_SIN = 0.02


#: Slot id of the reader's midline (not a protocol slot; stored with the annotations).
MIDLINE_SLOT = "midline"


class AnnotationFileError(M1Error):
    """An annotations file cannot be used (other case, malformed line, duplicate slot)."""


class CaseMismatchError(AnnotationFileError):
    """An annotations file written for another case (see :func:`case_mismatch`)."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Annotation:
    """One filled protocol slot; immutable (edits make a new object).

    Attributes
    ----------
    slot : str
        Protocol slot id.
    kind : {'roi', 'caliper', 'midline'}
    points_ras : tuple of (x, y, z) tuples
        RAS mm; see the module docstring.
    author : str
    created_at, modified_at : str
        ISO 8601 UTC.
    source : str
        How the geometry was made: ``placed``, ``edited``, ``suggested`` (caliper
        end points accepted from the profile), ``loaded``.
    voxel_ijk : (i, j, k) or None
        ``mrsi_voxel`` only: the voxel's indices on the MRSI grid (its file order).
    """

    slot: str
    kind: str
    points_ras: tuple[tuple[float, float, float], ...]
    author: str = ""
    created_at: str = ""
    modified_at: str = ""
    source: str = "placed"
    voxel_ijk: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        pts = np.asarray(self.points_ras, dtype=float)
        want = {"roi": 3, "caliper": 2, "midline": 1, "mrsi_voxel": 3}.get(self.kind)
        if want is None:
            raise ValueError(f"{self.slot}: unknown annotation kind {self.kind!r}")
        if pts.shape != (want, 3) or not np.all(np.isfinite(pts)):
            raise ValueError(f"{self.slot}: {self.kind} needs {want} finite RAS points")
        if self.kind == "caliper" and np.linalg.norm(pts[1] - pts[0]) < 1e-3:
            raise ValueError(f"{self.slot}: zero-length caliper (its end points coincide)")
        if np.abs(pts).max() > MAX_COORD_MM:
            raise ValueError(
                f"{self.slot}: RAS coordinates beyond ±{MAX_COORD_MM:g} mm (not in a scanner)"
            )
        if (self.kind == "mrsi_voxel") != (self.voxel_ijk is not None):
            raise ValueError(f"{self.slot}: voxel indices belong to (and only to) an MRSI voxel")
        if self.voxel_ijk is not None:
            ijk = self.voxel_ijk
            ok = isinstance(ijk, (list, tuple)) and len(ijk) == 3
            if not ok or not all(isinstance(i, (int, np.integer)) and i >= 0 for i in ijk):
                raise ValueError(f"{self.slot}: voxel indices must be 3 integers >= 0")
            object.__setattr__(self, "voxel_ijk", tuple(int(i) for i in ijk))  # JSON lists
        if self.kind in ("roi", "mrsi_voxel"):
            u, v = pts[1] - pts[0], pts[2] - pts[0]
            nu, nv = np.linalg.norm(u), np.linalg.norm(v)
            if nu < 1e-3 or nv < 1e-3:
                raise ValueError(f"{self.slot}: ROI with a zero axis")
            # pi*|u|*|v| is the oval's area only when u is perpendicular to v
            cos = abs(float(u @ v)) / (nu * nv)
            if cos > MAX_AXIS_COS:
                what = "collinear" if cos > 0.999 else "not perpendicular"
                raise ValueError(
                    f"{self.slot}: ROI semi-axes are {what} (angle "
                    f"{math.degrees(math.acos(min(cos, 1.0))):.1f}° from each other, "
                    "must be 90°)"
                )

    # --------------------------------------------------------------- geometry
    @property
    def points(self) -> NDArray[np.float64]:
        """``points_ras`` as a float array, shape (n, 3)."""
        return np.asarray(self.points_ras, dtype=float)

    @property
    def centre_ras(self) -> NDArray[np.float64]:
        """ROI centre, caliper midpoint or the midline's point, RAS mm, shape (3,)."""
        p = self.points
        return p[0] if self.kind != "caliper" else (p[0] + p[1]) / 2

    @property
    def semi_axes_ras(self) -> NDArray[np.float64]:
        """ROI (or MRSI voxel square) semi-axis vectors ``(u, v)`` in RAS mm, shape (2, 3)."""
        p = self.points
        return p[1:] - p[0]

    @property
    def area_mm2(self) -> float:
        """True area of the oval, ``pi * |u| * |v|`` (ROIs); 0 for calipers."""
        if self.kind != "roi":
            return 0.0
        u, v = self.semi_axes_ras
        return float(math.pi * np.linalg.norm(u) * np.linalg.norm(v))

    @property
    def length_mm(self) -> float:
        """3D length of a caliper in mm; 0 for ROIs."""
        if self.kind != "caliper":
            return 0.0
        p = self.points
        return float(np.linalg.norm(p[1] - p[0]))

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable dict (points as lists)."""
        d = asdict(self)
        d["points_ras"] = [list(map(float, p)) for p in self.points_ras]
        if self.voxel_ijk is None:
            del d["voxel_ijk"]  # files without MRSI voxels stay as they were
        else:
            d["voxel_ijk"] = [int(i) for i in self.voxel_ijk]
        return d


def _pts(points: ArrayLike) -> tuple[tuple[float, float, float], ...]:
    return tuple(tuple(float(c) for c in p) for p in np.asarray(points, dtype=float))


def roi_annotation(
    slot: str,
    centre_ras: ArrayLike,
    u_ras: ArrayLike,
    v_ras: ArrayLike,
    *,
    author: str = "",
    source: str = "placed",
) -> Annotation:
    """An oval ROI from its centre and semi-axis vectors (RAS mm)."""
    c = np.asarray(centre_ras, dtype=float)
    t = _now()
    return Annotation(
        slot, "roi", _pts([c, c + np.asarray(u_ras), c + np.asarray(v_ras)]), author, t, t, source
    )


def caliper_annotation(
    slot: str, p1_ras: ArrayLike, p2_ras: ArrayLike, *, author: str = "", source: str = "placed"
) -> Annotation:
    """A caliper from its two end points (RAS mm)."""
    t = _now()
    return Annotation(slot, "caliper", _pts([p1_ras, p2_ras]), author, t, t, source)


def mrsi_voxel_annotation(
    slot: str,
    voxel_ijk: Sequence[int],
    centre_ras: ArrayLike,
    u_ras: ArrayLike,
    v_ras: ArrayLike,
    *,
    author: str = "",
    source: str = "placed",
) -> Annotation:
    """An MRSI voxel: its grid indices and its in-plane square (centre, half-edges; RAS mm)."""
    c = np.asarray(centre_ras, dtype=float)
    t = _now()
    pts = _pts([c, c + np.asarray(u_ras), c + np.asarray(v_ras)])
    ijk = tuple(int(i) for i in voxel_ijk)
    return Annotation(slot, "mrsi_voxel", pts, author, t, t, source, ijk)  # type: ignore[arg-type]


def midline_annotation(point_ras: ArrayLike, *, author: str = "") -> Annotation:
    """The reader's midline: a point (RAS mm) on the interhemispheric fissure."""
    t = _now()
    return Annotation(MIDLINE_SLOT, "midline", _pts([point_ras]), author, t, t, "placed")


def case_fingerprint(label: str, shape: Sequence[int], ras_affine: ArrayLike) -> dict[str, Any]:
    """Identity of a case: its label and reference grid (shape, RAS affine, short hash).

    ``hash`` covers the grid only (it names the per-case autosave folder together with
    the label, so it stays as it was); a file belongs to a case when both its
    ``label`` and its ``hash`` match (:func:`case_mismatch`). Two loads of the same
    case give the same fingerprint; another case on an identical grid differs by label.
    """
    aff = np.round(np.asarray(ras_affine, dtype=float), 4) + 0.0  # no -0.0
    shp = [int(s) for s in shape]
    h = hashlib.sha256(json.dumps([shp, aff.tolist()]).encode()).hexdigest()[:16]
    return {"label": str(label), "shape": shp, "ras_affine": aff.tolist(), "hash": h}


def case_mismatch(file_case: dict[str, Any], case: dict[str, Any]) -> str | None:
    """Why annotations written for ``file_case`` do not belong to ``case`` (None if they do).

    Both the case label and the grid hash must match. In a blinded study the label
    is the read's pseudonym, so a file saved during a blinded read names the
    pseudonym, not the case: moving it onto the unblinded case is a deliberate
    transfer (``measure --force``), never silent.
    """
    diff = [
        what
        for key, what in (("label", "label"), ("hash", "grid"))
        if str(file_case.get(key, "")) != str(case.get(key, "")) or key not in file_case
    ]
    if not diff:
        return None
    return (
        f"written for another case ({_short(file_case.get('label', '?'))!r}, grid "
        f"{_short(file_case.get('hash', '?'))}); this case is {_short(case.get('label'))!r}, "
        f"grid {case.get('hash')} (different {' and '.join(diff)})"
    )


def _short(v: object, n: int = 60) -> str:
    s = str(v)
    return s if len(s) <= n else s[:n] + "…"


def slice_plane_problem(ann: Annotation, ras_affine: ArrayLike) -> str | None:
    """Why an ROI does not lie in a slice of the grid (None when it does, or no grid).

    Parameters
    ----------
    ann : Annotation
    ras_affine : (4, 4)
        Reference grid's napari index -> RAS mm; slices are planes of constant index 0,
        so both semi-axes must be perpendicular to ``A[:, 1] x A[:, 2]`` (within
        :data:`MAX_TILT_SIN`). An oval tilted out of the slice is measured on its
        projection, so its ``area_mm2`` would not be what is measured.
    """
    if ann.kind != "roi":
        return None
    try:
        a = np.asarray(ras_affine, dtype=float)[:3, :3]
    except (TypeError, ValueError, IndexError):
        return None
    if a.shape != (3, 3) or not np.all(np.isfinite(a)):
        return None
    n = np.cross(a[:, 1], a[:, 2])
    if np.linalg.norm(n) == 0:
        return None
    n = n / np.linalg.norm(n)
    for name, w in zip("uv", ann.semi_axes_ras, strict=True):
        tilt = abs(float(w @ n)) / float(np.linalg.norm(w))
        if tilt > MAX_TILT_SIN:
            return (
                f"{ann.slot}: ROI is not in a slice plane (semi-axis {name} tilts "
                f"{math.degrees(math.asin(min(tilt, 1.0))):.1f}° out of it)"
            )
    return None


@dataclass(frozen=True)
class Change:
    """One undoable change of one slot: ``before`` -> ``after`` (None = empty)."""

    slot: str
    before: Annotation | None
    after: Annotation | None
    action: str = "edit"

    def inverse(self) -> Change:
        """The change that undoes this one."""
        return Change(self.slot, self.after, self.before, f"undo {self.action}")


@dataclass
class AnnotationSet:
    """One reader's annotations of one case under one protocol.

    Every modification goes through :meth:`apply`: the ``store`` saves it first
    (a refusal or failure leaves the set unchanged), then it is recorded for
    undo/redo and the listeners (``listener(change)``) are called — the measurement
    engine and the display subscribe here.
    """

    protocol: Protocol
    case: dict[str, Any]
    reader: str = ""
    items: dict[str, Annotation] = field(default_factory=dict)
    #: A submitted read: every change is refused.
    locked: bool = False
    #: Where changes are saved before they take effect (None: kept in memory only).
    store: AnnotationStore | None = field(default=None, repr=False)
    _undo: list[Change] = field(default_factory=list, repr=False)
    _redo: list[Change] = field(default_factory=list, repr=False)
    _listeners: list[Callable[[Change], None]] = field(default_factory=list, repr=False)

    # ------------------------------------------------------------------ queries
    def __contains__(self, slot: str) -> bool:
        return slot in self.items

    def get(self, slot: str) -> Annotation | None:
        """The annotation of a slot, or None."""
        return self.items.get(slot)

    def missing(self) -> list[str]:
        """Slot ids not yet filled, in protocol order."""
        return [s for s in self.protocol.slot_ids if s not in self.items]

    def done(self) -> list[str]:
        """Slot ids filled, in protocol order."""
        return [s for s in self.protocol.slot_ids if s in self.items]

    @property
    def can_undo(self) -> bool:
        """True when there is a change to undo."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """True when there is an undone change to redo."""
        return bool(self._redo)

    # ------------------------------------------------------------------ changes
    def subscribe(self, listener: Callable[[Change], None]) -> None:
        """Call ``listener(change)`` after every applied change (including undo/redo)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[Change], None]) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    def _check(self, ann: Annotation) -> None:
        if ann.slot == MIDLINE_SLOT or ann.kind == "midline":
            if (ann.slot, ann.kind) != (MIDLINE_SLOT, "midline"):
                raise M1Error(f"only slot {MIDLINE_SLOT!r} holds the midline")
            return
        slot = self.protocol.slot(ann.slot)
        if slot.kind != ann.kind:
            raise M1Error(f"slot {ann.slot} takes a {slot.kind}, not a {ann.kind}")
        problem = slice_plane_problem(ann, self.case.get("ras_affine"))
        if problem:
            raise M1Error(problem)

    def apply(self, change: Change, *, record: bool = True) -> Change:
        """Apply a change, record it for undo (clearing redo), notify listeners."""
        if self.locked:
            raise M1Error("this read is submitted and locked; annotations cannot change")
        if change.after is not None:
            self._check(change.after)
        after = dict(self.items)
        if change.after is None:
            after.pop(change.slot, None)
        else:
            after[change.slot] = change.after
        if self.store is not None:
            try:
                self.store.save(self, after, change)
            except OSError as exc:
                why = exc.strerror or str(exc)
                raise M1Error(f"could not save the annotation ({why}); not changed") from None
        self.items = after
        if record:
            self._undo.append(change)
            self._redo.clear()
        for cb in list(self._listeners):
            cb(change)
        return change

    def put(self, ann: Annotation, *, action: str | None = None) -> Change:
        """Fill or replace a slot (undoable)."""
        before = self.items.get(ann.slot)
        if before is not None:
            ann = replace(ann, created_at=before.created_at or ann.created_at, modified_at=_now())
        act = action or ("add" if before is None else "edit")
        return self.apply(Change(ann.slot, before, ann, act))

    def delete(self, slot: str) -> Change | None:
        """Empty a slot (undoable); None when it was empty."""
        before = self.items.get(slot)
        if before is None:
            return None
        return self.apply(Change(slot, before, None, "delete"))

    def undo(self) -> Change | None:
        """Undo the last change; None when there is nothing to undo."""
        if not self._undo:
            return None
        ch = self._undo[-1]
        inv = ch.inverse()
        self.apply(inv, record=False)  # may raise (storage refused): history unchanged
        self._undo.pop()
        self._redo.append(ch)
        return inv

    def redo(self) -> Change | None:
        """Redo the last undone change; None when there is nothing to redo."""
        if not self._redo:
            return None
        ch = self._redo[-1]
        self.apply(ch, record=False)
        self._redo.pop()
        self._undo.append(ch)
        return ch

    def load(self) -> None:
        """Replace the items with what the store holds for this case (no notification).

        Raises what the store raises (:class:`M1Error` for a bad file); the set is then
        unchanged.
        """
        if self.store is not None:
            self.items = dict(self.store.load(self.case, self.protocol))

    def replace_all(self, annotations: Iterable[Annotation]) -> None:
        """Load a stored state (not undoable; clears history; notifies once per slot)."""
        new = {a.slot: a for a in annotations}
        old = dict(self.items)
        self.items = new
        self._undo.clear()
        self._redo.clear()
        for slot in sorted(set(old) | set(new)):
            if old.get(slot) != new.get(slot):
                for cb in list(self._listeners):
                    cb(Change(slot, old.get(slot), new.get(slot), "load"))

    # ------------------------------------------------------------------ storage
    def header(self) -> dict[str, Any]:
        """The file header (line 1)."""
        from . import __version__

        return {
            "schema": ANNOTATION_SCHEMA,
            "software_version": __version__,
            "saved_at_utc": _now(),
            "protocol": self.protocol.id,
            "reader": self.reader,
            "case": self.case,
        }


_FILE_API = ("AnnotationStore", "FileAnnotationStore", "load_annotations", "save_annotations")


def __getattr__(name: str) -> Any:
    # The file format and the stores live in ._annotation_store (beside this model,
    # which they import); re-exported here lazily so there is no import cycle.
    if name in _FILE_API:
        from . import _annotation_store

        return getattr(_annotation_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
