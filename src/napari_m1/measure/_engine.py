"""Measurements of a case's annotations on every loaded map, incrementally.

The same :class:`MeasurementEngine` runs behind the GUI's live table and behind
``napari-m1 measure``, so both give identical numbers. Each slot's finished rows
are cached; an edit recomputes only the edited slot on a small window (and, when
the reference ROI changed, only the cheap normalisation of the other ROIs), and
:meth:`MeasurementEngine.update` says which slots' rows changed so a table can
redraw just those (:meth:`MeasurementEngine.rows_for`).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..annotation import MIDLINE_SLOT, Annotation, AnnotationSet
from ..formats import MEASUREMENT_SCHEMA
from ..geometry import hemisphere, ras_to_index, ras_vectors_to_index, voxel_sizes
from ..protocol import Protocol
from ._caliper import in_plane_length
from ._mrsi_rows import MRSI_COLUMNS, mrsi_overlap_columns
from ._mrsi_voxel import VOXEL_COLUMNS, mrsi_voxel_rows
from ._roi import ellipse_weights, weighted_stats_many

__all__ = ["MEASUREMENT_COLUMNS", "MEASUREMENT_SCHEMA", "MapSource", "MeasurementEngine"]


MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "schema", "software_version", "exported_at_utc", "case_label", "reader", "protocol",
    "slot", "region", "hemisphere", "hemisphere_from_affine", "annotation", "layer_kind",
    "echo", "te_ms", "metabolite", "slice_index",
    "centre_x_mm", "centre_y_mm", "centre_z_mm", "centre_i", "centre_j", "centre_k",
    "p1_x_mm", "p1_y_mm", "p1_z_mm", "p2_x_mm", "p2_y_mm", "p2_z_mm",
    "voxel_x_mm", "voxel_y_mm", "voxel_z_mm",
    "area_mm2", "coverage_fraction", "n_voxels", "mean", "sd", "median",
    "normalised_si", "normalised_si_note", "chi_ppm", "thickness_mm", "thickness_3d_mm",
    *MRSI_COLUMNS, *VOXEL_COLUMNS,
)  # fmt: skip


@dataclass
class MapSource:
    """One map to measure on, in canonical napari order.

    Attributes
    ----------
    kind : {'gre', 'qsm', 'mrsi', ...}
    name : str
    data : array
        ``(n0, n1, n2)`` or ``(n_echoes, n0, n1, n2)`` (GRE).
    ras_affine : (4, 4)
        napari spatial index -> RAS mm.
    echo_times_ms : list of float, optional
    metabolite : str, optional
        MRSI map name.
    source_affine : (4, 4), optional
        The file's voxel -> RAS affine (reference GRE: for exported voxel indices).
    aux : dict of str -> array, optional
        Companion maps on the same grid and in the same order as ``data`` (MRSI:
        ``unfiltered``, ``f_gm``, ``f_wm``, ``f_csf``); read through the
        ROI's window for the MRSI overlap columns. Maps of another shape are ignored.
    meta : mapping, optional
        The map's napari-m1 metadata (a layer's live ``metadata['napari_m1']`` or a
        Volume's ``extra``), read when measuring: a QC'd ratio map's ``qc['thresholds']``
        are written into its rows (current after the GUI re-masks the layer in place).
    """

    kind: str
    name: str
    data: Any
    ras_affine: NDArray[np.float64]
    echo_times_ms: list[float] | None = None
    metabolite: str | None = None
    source_affine: NDArray[np.float64] | None = None
    aux: dict[str, Any] | None = None
    meta: Any = None
    inv_affine: NDArray[np.float64] = field(init=False, repr=False)
    _grid_key: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.ras_affine = np.asarray(self.ras_affine, dtype=float)
        self.inv_affine = np.linalg.inv(self.ras_affine)
        self._grid_key = (self.spatial_shape, tuple(np.round(self.ras_affine, 6).ravel()))
        if self.aux:
            self.aux = {k: a for k, a in self.aux.items() if np.shape(a) == self.spatial_shape}

    @property
    def has_echo_axis(self) -> bool:
        """True for a 4D (multi-echo) map."""
        return self.data.ndim == 4

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """Spatial shape (napari order)."""
        return tuple(self.data.shape[-3:])  # type: ignore[return-value]

    def volumes(self) -> list[tuple[int | None, Any]]:
        """``(echo number or None, 3D volume)`` pairs."""
        if self.has_echo_axis:
            return [(e + 1, self.data[e]) for e in range(self.data.shape[0])]
        return [(None, self.data)]

    def qc_thresholds(self) -> dict[str, float] | None:
        """The QC thresholds of a ratio map (from :attr:`meta`), or None."""
        qc = self.meta.get("qc") if self.meta is not None else None
        return qc.get("thresholds") if isinstance(qc, dict) else None

    def grid_key(self) -> tuple:
        """Identity of the grid (sources on one grid share ROI weights)."""
        return self._grid_key

    @classmethod
    def from_volume(cls, vol: Any) -> MapSource:
        """From a loaded :class:`napari_m1.io.Volume`."""
        return cls(
            vol.kind,
            vol.name,
            vol.data,
            vol.ras_affine,
            vol.echo_times_ms,
            vol.extra.get("metabolite"),
            vol.source_affine,
            getattr(vol, "aux", None) or None,
            vol.extra,
        )


def _roi_geometry(ann: Annotation, src: MapSource) -> tuple[int, NDArray, NDArray]:
    """Slice index, in-plane centre (row, col) and axes (2x2) of a ROI in a source's grid."""
    c = ras_to_index(ann.centre_ras, src.ras_affine, inverse=src.inv_affine)
    uv = ras_vectors_to_index(ann.semi_axes_ras, src.ras_affine, inverse=src.inv_affine)
    return int(np.rint(c[0])), c[1:], uv[:, 1:].T


@dataclass
class _SlotResult:
    ann: Annotation
    raw: list[dict[str, Any]]  # measured rows
    rows: list[dict[str, Any]] = field(default_factory=list)  # the same rows, once finished


class MeasurementEngine:
    """Live measurements for one case.

    Parameters
    ----------
    sources : sequence of MapSource
        The first GRE source is the reference grid (slice index, voxel indices,
        caliper plane). Phase maps are ignored.
    protocol : Protocol
    case_label, reader : str
        Written into every row.

    Notes
    -----
    Rows handed out by :meth:`rows` and :meth:`rows_for` are the engine's cached
    dicts: read them, do not modify them.
    """

    def __init__(
        self,
        sources: Sequence[MapSource],
        protocol: Protocol,
        *,
        case_label: str = "",
        reader: str = "",
    ) -> None:
        srcs = [s for s in sources if s.kind in ("gre", "qsm", "mrsi")]
        gres = [s for s in srcs if s.kind == "gre"]
        if not gres:
            raise ValueError("measurements need a GRE magnitude map")
        self.reference = gres[0]
        self.sources = [self.reference] + [s for s in srcs if s is not self.reference]
        self.protocol = protocol
        self.case_label = case_label
        self.reader = reader
        self._slots = {s.id: s for s in protocol.slots}
        self._order = {sid: i for i, sid in enumerate(protocol.slot_ids)}
        self._cache: dict[str, _SlotResult] = {}
        self._all_rows: list[dict[str, Any]] | None = None
        self._stamp = ""
        self.midline_x_mm = 0.0
        ref = self.reference
        vs = voxel_sizes(ref.ras_affine)  # per napari axis (S/I, A/P, R/L)
        self._voxel = {
            "voxel_x_mm": float(vs[2]),
            "voxel_y_mm": float(vs[1]),
            "voxel_z_mm": float(vs[0]),
        }
        self._file_inv = (
            np.linalg.inv(ref.source_affine) if ref.source_affine is not None else None
        )
        mets = {s.metabolite: s for s in self.sources if s.kind == "mrsi" and s.metabolite}
        self._cr = mets.get("Cr") or mets.get("tCr") or mets.get("Cr+PCr")
        # sources grouped by grid: one set of ellipse weights per grid and edit
        self._grids: dict[tuple, list[MapSource]] = {}
        self._pos = {id(src): i for i, src in enumerate(self.sources)}
        for src in self.sources:
            self._grids.setdefault(src.grid_key(), []).append(src)
        self._const = {
            "schema": MEASUREMENT_SCHEMA,
            "case_label": case_label,
            "reader": reader,
            "protocol": protocol.id,
        }

    # ------------------------------------------------------------------ updates
    def set_all(self, annotations: Iterable[Annotation]) -> None:
        """Recompute every slot from scratch."""
        self._cache.clear()
        self._all_rows = None
        self.midline_x_mm = 0.0
        anns = list(annotations)
        for a in anns:  # the midline first: every row's hemisphere depends on it
            if a.slot == MIDLINE_SLOT:
                self.update(a.slot, a)
        for a in anns:
            if a.slot != MIDLINE_SLOT:
                self.update(a.slot, a)

    def update(self, slot: str, ann: Annotation | None) -> tuple[str, ...]:
        """Recompute one slot (``ann=None`` removes it).

        Returns
        -------
        tuple of str
            The slots whose rows changed, in protocol order: the slot itself, plus every
            other ROI when the reference ROI changed (their normalised SI) or every slot
            when the midline moved (``hemisphere_from_affine``). Empty when nothing changed.
        """
        if slot == MIDLINE_SLOT:
            x = float(ann.centre_ras[0]) if ann is not None else 0.0
            if x == self.midline_x_mm:
                return ()
            self.midline_x_mm = x
            for res in self._cache.values():
                h = hemisphere(res.ann.centre_ras, midline_x_mm=x)
                for r in res.raw:
                    r["hemisphere_from_affine"] = h
            return tuple(self._sorted(self._cache))
        cached = self._cache.get(slot)
        if ann is None:
            if cached is None:
                return ()
            del self._cache[slot]
            changed = [slot]
        else:
            if cached is not None and cached.ann == ann:
                return ()
            if ann.kind == "mrsi_voxel":  # the clicked MRSI voxel's values (_mrsi_voxel)
                raw = mrsi_voxel_rows(ann, self.sources, self._common(ann))
            else:
                raw = self._measure_roi(ann) if ann.kind == "roi" else self._measure_caliper(ann)
            self._cache[slot] = _SlotResult(ann, raw)
            changed = [slot]
        self._all_rows = None
        if slot == self.protocol.reference_slot:
            changed = list(self._cache) + ([slot] if ann is None else [])
            for sid in self._cache:
                self._finish(sid)
        elif ann is not None:
            self._finish(slot)
        return tuple(self._sorted(set(changed)))

    def _sorted(self, slots: Iterable[str]) -> list[str]:
        return sorted(slots, key=lambda s: self._order.get(s, len(self._order)))

    def attach(self, annset: AnnotationSet) -> None:
        """Follow an annotation set: measure its current state and every change."""
        self.set_all(annset.items.values())
        annset.subscribe(lambda ch: self.update(ch.slot, ch.after))

    # ------------------------------------------------------------------ output
    def rows(self, *, exported_at: str | None = None) -> list[dict[str, Any]]:
        """All measurement rows in protocol order, with normalised SI filled in.

        Incremental: the rows of unchanged slots are reused, so this is a list
        concatenation after an edit (plus a timestamp pass once per second).
        """
        stamp = exported_at or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        if self._all_rows is None:
            cache = self._cache
            self._all_rows = list(
                chain.from_iterable(cache[s].rows for s in self._order if s in cache)
            )
            # every cached row carries self._stamp (stamped when finished or restamped here)
        if stamp != self._stamp:
            for r in self._all_rows:
                r["exported_at_utc"] = stamp
            self._stamp = stamp
        return list(self._all_rows)

    def rows_for(self, slot: str) -> list[dict[str, Any]]:
        """The finished rows of one slot (empty when the slot is not filled)."""
        res = self._cache.get(slot)
        if res is None:
            return []
        if self._stamp:
            for r in res.rows:
                r["exported_at_utc"] = self._stamp
        return list(res.rows)

    def roi_means(self, slot: str) -> dict[int, float]:
        """GRE mean per echo of one ROI slot (empty when not measured)."""
        res = self._cache.get(slot)
        if res is None:
            return {}
        return {r["echo"]: r["mean"] for r in res.raw if r["layer_kind"] == "gre"}

    def _finish(self, slot_id: str) -> None:
        """Finished rows of a slot: constants, version, normalised SI (set in place)."""
        from .. import __version__

        res = self._cache[slot_id]
        ref_means, ref_note = self._reference_means()
        if not res.rows:  # first finish after measuring: the constant columns, once
            for r in res.raw:
                r.update(self._const, software_version=__version__, exported_at_utc=self._stamp)
            res.rows = res.raw
        for row in res.rows:
            if row["annotation"] == "roi" and row["layer_kind"] == "gre":
                row["normalised_si"] = row["normalised_si_note"] = None
                self._normalise(row, slot_id, ref_means, ref_note)

    def _reference_means(self) -> tuple[dict[int, float], str]:
        ref_slot = self.protocol.reference_slot
        if ref_slot is None:
            return {}, "protocol has no reference ROI"
        if ref_slot not in self._cache:
            return {}, "reference ROI missing"
        return self.roi_means(ref_slot), ""

    def _normalise(
        self, row: dict[str, Any], slot_id: str, ref_means: dict[int, float], note: str
    ) -> None:
        if slot_id == self.protocol.reference_slot:
            row["normalised_si_note"] = "this is the reference ROI"
            return
        if note:
            row["normalised_si_note"] = note
            return
        m_ref = ref_means.get(row["echo"], float("nan"))
        if not math.isfinite(m_ref):
            row["normalised_si_note"] = "reference ROI has no data"
        elif m_ref <= 0:
            row["normalised_si_note"] = "reference ROI mean <= 0"
        elif not math.isfinite(row["mean"]):
            row["normalised_si_note"] = "ROI has no data"
        else:
            row["normalised_si"] = row["mean"] / m_ref

    # ------------------------------------------------------------------ per slot
    def _common(self, ann: Annotation) -> dict[str, Any]:
        slot = self._slots[ann.slot]
        ref = self.reference
        c = ann.centre_ras
        idx = ras_to_index(c, ref.ras_affine, inverse=ref.inv_affine)
        row: dict[str, Any] = dict.fromkeys(MEASUREMENT_COLUMNS)
        row.update(
            slot=ann.slot,
            region=slot.region,
            hemisphere=slot.hemisphere,
            hemisphere_from_affine=hemisphere(c, midline_x_mm=self.midline_x_mm),
            annotation=ann.kind,
            slice_index=int(np.rint(idx[0])),
            centre_x_mm=float(c[0]),
            centre_y_mm=float(c[1]),
            centre_z_mm=float(c[2]),
            **self._voxel,
        )
        if self._file_inv is not None:
            ijk = ras_to_index(c, ref.source_affine, inverse=self._file_inv)
            row.update(centre_i=float(ijk[0]), centre_j=float(ijk[1]), centre_k=float(ijk[2]))
        return row

    def _measure_roi(self, ann: Annotation) -> list[dict[str, Any]]:
        base = self._common(ann)
        base["area_mm2"] = ann.area_mm2
        keyed: list[tuple[int, dict[str, Any]]] = []  # (source position, row)
        mrsi_means: dict[str, float] = {}
        for srcs in self._grids.values():
            src0 = srcs[0]
            k, c_rc, axes = _roi_geometry(ann, src0)
            shp = src0.spatial_shape
            w = ellipse_weights(c_rc, axes, (shp[1], shp[2]))
            inside = 0 <= k < shp[0] and w.weights.size > 0
            vols = [(src, echo, vol) for src in srcs for echo, vol in src.volumes()]
            if inside:  # every map on this grid read through one window
                vals = [np.asarray(vol[k, w.rows, w.cols]) for _s, _e, vol in vols]
                stats = weighted_stats_many(vals, w.weights)
            else:
                stats = weighted_stats_many([np.empty(0)] * len(vols), np.empty(0))
            for n_vol, ((src, echo, _vol), st) in enumerate(zip(vols, stats, strict=True)):
                row = dict(base)
                row.update(st)
                row["layer_kind"] = src.kind
                row["coverage_fraction"] = st["n_voxels"] / w.total if w.total > 0 else 0.0
                if src.kind == "gre":
                    row["echo"] = echo
                    tes = src.echo_times_ms
                    row["te_ms"] = tes[echo - 1] if tes and echo and echo <= len(tes) else None
                elif src.kind == "qsm":
                    row["chi_ppm"] = st["mean"]
                elif src.kind == "mrsi":
                    row["metabolite"] = src.metabolite or src.name
                    win = (k, w.rows, w.cols)
                    aux = (
                        {a: np.asarray(m[win]) for a, m in (src.aux or {}).items()}
                        if inside
                        else {}
                    )
                    row.update(
                        mrsi_overlap_columns(
                            vals[n_vol] if inside else None, w.weights, aux, src.qc_thresholds()
                        )
                    )
                rows_pos = self._pos[id(src)]
                keyed.append((rows_pos, row))
        keyed.sort(key=lambda t: t[0])  # stable: echoes stay in order; rows in source order
        rows = [r for _p, r in keyed]
        for r in rows:
            if r["layer_kind"] == "mrsi":
                mrsi_means[r["metabolite"]] = r["mean"]
        if self._cr is not None and self._cr.metabolite in mrsi_means:
            cr = mrsi_means[self._cr.metabolite]
            for met, m in mrsi_means.items():
                if met == self._cr.metabolite or "/" in met:  # a QC'd ratio map already
                    continue
                row = dict(base)
                row.update(
                    layer_kind="mrsi",
                    metabolite=f"{met}/{self._cr.metabolite}",
                    mean=m / cr if (math.isfinite(cr) and cr > 0) else float("nan"),
                )
                rows.append(row)
        return rows

    def _measure_caliper(self, ann: Annotation) -> list[dict[str, Any]]:
        row = self._common(ann)
        p1, p2 = ann.points
        row.update(
            layer_kind="",
            p1_x_mm=float(p1[0]),
            p1_y_mm=float(p1[1]),
            p1_z_mm=float(p1[2]),
            p2_x_mm=float(p2[0]),
            p2_y_mm=float(p2[1]),
            p2_z_mm=float(p2[2]),
            thickness_mm=in_plane_length(p1, p2, self.reference.ras_affine),
            thickness_3d_mm=ann.length_mm,
        )
        return [row]


def engine_for_case(case: Any, protocol: Protocol, *, reader: str = "") -> MeasurementEngine:
    """A MeasurementEngine over every map of a loaded :class:`napari_m1.io.Case`."""
    sources = [MapSource.from_volume(v) for v in case.volumes]
    return MeasurementEngine(sources, protocol, case_label=case.files.label, reader=reader)


def case_fingerprint_of(case: Any) -> dict[str, Any]:
    """:func:`napari_m1.annotation.case_fingerprint` of a loaded case's reference grid."""
    from ..annotation import case_fingerprint

    ref = case.reference
    return case_fingerprint(case.files.label, ref.spatial_shape, ref.ras_affine)
