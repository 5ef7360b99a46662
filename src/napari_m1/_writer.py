"""npe2 writer: the "M1 annotations" Shapes layer -> measurements.csv.

The annotation controller keeps the layer's current measurement rows in
``metadata['napari_m1']['rows']`` (recomputed on every edit), so the writer
needs no image data and writes exactly what the live table shows.
"""

from __future__ import annotations

from typing import Any

from .errors import M1Error
from .io import LayerMeta
from .measure import write_measurements_csv

__all__ = ["write_measurements"]


def write_measurements(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write the measurement rows of an "M1 annotations" layer as CSV; returns [path]."""
    md = LayerMeta.of(meta.get("metadata") or {})
    if md is None or md.kind != "annotations":
        raise M1Error("only the 'M1 annotations' layer can be saved as M1 measurements")
    return [str(write_measurements_csv(path, md.raw.get("rows") or []))]
