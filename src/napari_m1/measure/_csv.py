"""measurements.csv: write (atomic, stable column order) and read back (validated)."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from .._files import read_user_text
from ..errors import M1Error
from ._engine import MEASUREMENT_COLUMNS, MEASUREMENT_SCHEMA

__all__ = ["format_cell", "read_measurements_csv", "write_measurements_csv"]

_INT_COLS = {"echo", "slice_index"}
_STR_COLS = {
    "schema", "software_version", "exported_at_utc", "case_label", "reader", "protocol", "slot",
    "region", "hemisphere", "hemisphere_from_affine", "annotation", "layer_kind", "metabolite",
    "normalised_si_note",
}  # fmt: skip


def format_cell(v: Any) -> str:
    """CSV text of a value: empty for None/NaN/inf, floats to 10 significant digits."""
    if v is None:
        return ""
    if isinstance(v, float):
        if not math.isfinite(v):
            return ""
        return f"{v:.10g}"
    if hasattr(v, "item"):  # numpy scalar
        return format_cell(v.item())
    return str(v)


def write_measurements_csv(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows in the ``napari-m1/measurements/1`` schema, atomically."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MEASUREMENT_COLUMNS)
    for r in rows:
        w.writerow([format_cell(r.get(c)) for c in MEASUREMENT_COLUMNS])
    return atomic_write_text(path, buf.getvalue())


def read_measurements_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a measurements CSV back into typed rows (None for empty cells).

    Raises
    ------
    M1Error
        Missing columns, wrong schema, or a malformed value (file name and line number).
    """
    p = Path(path)
    text = read_user_text(p)
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in MEASUREMENT_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise M1Error(f"{p.name}, line 1: missing column(s) {', '.join(missing[:5])}")
    out = []
    for lineno, rec in enumerate(reader, start=2):
        if None in rec:
            raise M1Error(f"{p.name}, line {lineno}: more cells than columns")
        row: dict[str, Any] = {}
        for c in MEASUREMENT_COLUMNS:
            cell = rec[c]
            if cell is None:
                raise M1Error(f"{p.name}, line {lineno}: fewer cells than columns")
            if cell == "":
                row[c] = None
            elif c in _STR_COLS:
                row[c] = cell
            else:
                try:
                    row[c] = int(cell) if c in _INT_COLS else float(cell)
                except ValueError:
                    raise M1Error(
                        f"{p.name}, line {lineno}: column {c} has {cell!r}, not a number"
                    ) from None
        if row["schema"] != MEASUREMENT_SCHEMA:
            raise M1Error(
                f"{p.name}, line {lineno}: schema {row['schema']!r} is not {MEASUREMENT_SCHEMA}"
            )
        out.append(row)
    return out
