"""File formats: every schema id and the CSV cell rule, in one place.

Schema ids name the version of each file napari-m1 writes; readers refuse other
versions with a one-line error. The CSV cell rule is shared by every CSV writer
(measurements, readings, unblinded readings, report tables, demo tables) and by
every reader of those files.

CSV cells and spreadsheet formulas
----------------------------------
A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is run as a formula by spreadsheet programs (CSV / formula injection). On
write such a cell gets a leading apostrophe (OWASP's rule), which spreadsheets
show as plain text; a cell that is a number (``-1.5``, ``+3``) stays a number.
The rule is reversible: :func:`restore_cell` undoes :func:`neutralise_cell`
exactly (a text that already starts with apostrophes before a trigger character
gets one more), so napari-m1's own readers read back what was written.

>>> neutralise_cell('=HYPERLINK("http://x","y")')
'\\'=HYPERLINK("http://x","y")'
>>> neutralise_cell("-1.5"), neutralise_cell("left hand")
('-1.5', 'left hand')
>>> restore_cell(neutralise_cell("'=1+1")) == "'=1+1"
True
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "ANNOTATION_SCHEMA",
    "BATCH_RECORD_SCHEMA",
    "FORMULA_TRIGGERS",
    "MEASUREMENT_SCHEMA",
    "PHANTOM_TRUTH_SCHEMA",
    "QSM_JSON_SCHEMA",
    "READINGS_SCHEMA",
    "STUDY_FORMAT",
    "csv_text",
    "format_cell",
    "neutralise_cell",
    "restore_cell",
]

#: ``*.m1ann.jsonl`` annotation files (docs/annotation-files.md).
ANNOTATION_SCHEMA = "napari-m1/annotations/1"
#: measurements.csv (docs/csv-schemas.md).
MEASUREMENT_SCHEMA = "napari-m1/measurements/1"
#: readings.csv and unblinded.csv of a study (docs/csv-schemas.md).
READINGS_SCHEMA = "napari-m1/readings/1"
#: study.json of a study folder.
STUDY_FORMAT = "napari-m1-study/1"
#: truth.json of the synthetic phantom.
PHANTOM_TRUTH_SCHEMA = "napari-m1-phantom-truth/1"
#: record.json of one batch task (docs/batch.md).
BATCH_RECORD_SCHEMA = "napari-m1/batch-task/1"
#: qsm.json written next to a QSM reconstruction (docs/qsm.md).
QSM_JSON_SCHEMA = "napari-m1-qsm/1"

#: First characters that make a spreadsheet evaluate a cell.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_formula(text: str) -> bool:
    return bool(text) and text[0] in FORMULA_TRIGGERS and not _is_number(text)


def neutralise_cell(text: str) -> str:
    """``text`` made safe for a spreadsheet: a leading ``'`` before a formula.

    Texts that are numbers are returned unchanged. Texts made only of apostrophes
    followed by a formula get one more apostrophe, so :func:`restore_cell` is exact.
    """
    if _is_formula(text.lstrip("'")):
        return "'" + text
    return text


def restore_cell(text: str) -> str:
    """Inverse of :func:`neutralise_cell` (for napari-m1's own CSV readers)."""
    if text.startswith("'") and _is_formula(text.lstrip("'")):
        return text[1:]
    return text


def format_cell(value: Any) -> str:
    """CSV text of one value.

    ``None``, NaN and infinities -> empty; floats -> 10 significant digits;
    numpy scalars as Python numbers; booleans and integers as written; any other
    value as text, neutralised against formula injection (:func:`neutralise_cell`).
    """
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}" if math.isfinite(value) else ""
    if isinstance(value, (bool, int)):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        return format_cell(value.item())
    return neutralise_cell(str(value))


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """CSV text (header + rows, ``\\n`` line ends) with every cell through :func:`format_cell`.

    ``columns`` defaults to the keys of the first row; missing keys give empty cells.
    Returns ``""`` when there are no rows and no columns.
    """
    rows = list(rows)
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    if not cols:
        return ""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([neutralise_cell(str(c)) for c in cols])
    for r in rows:
        w.writerow([format_cell(r.get(c)) for c in cols])
    return buf.getvalue()
