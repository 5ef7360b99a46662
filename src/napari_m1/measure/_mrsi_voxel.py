"""Rows of an "MRSI voxel" slot: the clicked voxel's values on every MRSI map (pure numpy).

The voxel is found through the MRSI grid's own affine (``voxel_ijk`` of the annotation and
the ratio maps' file affine), never through the square drawn on screen: its centre in
scanner RAS mm is ``affine @ (i, j, k, 1)``; each MRSI map is read at that point (nearest
voxel of the map's grid). One row per MRSI map: ``mean`` is the voxel's value (NaN when QC
excluded it), and the overlap columns of :mod:`._mrsi_rows` apply with the voxel as the
only contributor (weight 1): unfiltered value, QC exclusion, tissue fractions, thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._mrsi_rows import mrsi_overlap_columns

__all__ = ["VOXEL_COLUMNS", "mrsi_grid_affine", "mrsi_voxel_rows"]

VOXEL_COLUMNS: tuple[str, ...] = ("mrsi_voxel_i", "mrsi_voxel_j", "mrsi_voxel_k", "mrsi_qc_reason")


def mrsi_grid_affine(sources: Sequence[Any]) -> np.ndarray | None:
    """The MRSI grid's voxel -> RAS affine: the file affine of the first QC'd ratio map
    (the fit's grid), else of the first MRSI map; None without MRSI."""
    mrsi = [s for s in sources if s.kind == "mrsi" and s.source_affine is not None]
    ratio = [s for s in mrsi if (s.meta or {}).get("mrsi_ratio")]
    pick = (ratio or mrsi or [None])[0]
    return None if pick is None else np.asarray(pick.source_affine, dtype=float)


def _qc_reason(src: Any, ijk: tuple[int, int, int]) -> str | None:
    """Failed QC tests of a ratio map at ``ijk`` (``"crlb+snr"``, ``""`` = kept) from its fit
    in memory; None when the map is not a QC'd ratio or its fit is not loaded."""
    meta = src.meta or {}
    if not meta.get("mrsi_ratio"):
        return None
    from ..mrsi import get_source, reason_names

    fit = get_source(meta.get("mrsi_source"))
    rmap = None if fit is None else next((r for r in fit.maps if r.name == src.metabolite), None)
    if rmap is None or any(not 0 <= i < n for i, n in zip(ijk, rmap.reason.shape, strict=True)):
        return None
    return "+".join(reason_names(int(rmap.reason[ijk])))


def mrsi_voxel_rows(
    ann: Any, sources: Sequence[Any], base: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per MRSI map for an ``mrsi_voxel`` annotation (see the module docstring).

    Parameters
    ----------
    ann : Annotation
        ``kind == "mrsi_voxel"`` with ``voxel_ijk``.
    sources : sequence of MapSource
        Every map of the case (non-MRSI ones are skipped).
    base : dict
        The row's common columns (slot, region, hemisphere, ...); the centre columns are
        replaced by the voxel centre.
    """
    aff = mrsi_grid_affine(sources)
    ijk = tuple(int(i) for i in ann.voxel_ijk)
    out = []
    if aff is None:
        return out
    centre = (aff @ np.array([*ijk, 1.0]))[:3]
    common = dict(base)
    common.update(
        centre_x_mm=float(centre[0]),
        centre_y_mm=float(centre[1]),
        centre_z_mm=float(centre[2]),
        mrsi_voxel_i=ijk[0],
        mrsi_voxel_j=ijk[1],
        mrsi_voxel_k=ijk[2],
        area_mm2=None,
    )
    for src in sources:
        if src.kind != "mrsi":
            continue
        row = dict(common)
        idx = np.floor(src.inv_affine @ np.array([*centre, 1.0]) + 0.5)[:3].astype(int)
        inside = bool(np.all(idx >= 0) and np.all(idx < np.asarray(src.spatial_shape)))
        at = tuple(idx)
        value = float(src.data[at]) if inside else None
        aux = {k: np.array([[float(a[at])]]) for k, a in (src.aux or {}).items()} if inside else {}
        row.update(
            layer_kind="mrsi",
            metabolite=src.metabolite or src.name,
            slice_index=int(idx[0]),
            mean=value if value is not None else float("nan"),
            n_voxels=1 if value is not None and np.isfinite(value) else 0,
        )
        row.update(
            mrsi_overlap_columns(
                None if value is None else np.array([[value]]),
                np.array([[1.0]]),
                aux,
                src.qc_thresholds(),
            )
        )
        row["mrsi_qc_reason"] = _qc_reason(src, ijk)
        out.append(row)
    return out
