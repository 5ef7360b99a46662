"""measurements.csv: written atomically, in a stable column order.

Cells follow :mod:`napari_m1.formats` (numbers as numbers, formulas neutralised).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from ..formats import csv_text, format_cell
from ._engine import MEASUREMENT_COLUMNS

__all__ = ["format_cell", "write_measurements_csv"]


def write_measurements_csv(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    """Write rows in the :data:`~napari_m1.formats.MEASUREMENT_SCHEMA` schema, atomically."""
    return atomic_write_text(path, csv_text(rows, MEASUREMENT_COLUMNS))
