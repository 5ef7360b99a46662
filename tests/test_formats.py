"""The CSV cell rule (formula injection) and the one home of schema ids."""

from __future__ import annotations

import csv
import doctest
import io

import pytest

import napari_m1.formats as formats
from napari_m1.formats import csv_text, format_cell, neutralise_cell, restore_cell

HOSTILE = [
    '=HYPERLINK("http://example.org/?x","click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "'=1+1",
    "''=1+1",
    "=",
    "-",
]
PLAIN = ["left hand", "R1", "M1-ABC234", "", "'quoted'", "1e-3", "-1.5", "+3", "a=b", "ß ü"]


@pytest.mark.parametrize("text", HOSTILE)
def test_formulas_are_neutralised_and_restored(text):
    out = neutralise_cell(text)
    assert out.startswith("'") and out[1:] == text
    assert restore_cell(out) == text


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_and_numbers_are_unchanged(text):
    assert neutralise_cell(text) == text
    assert restore_cell(text) == text


def test_format_cell_keeps_numbers_numbers():
    import numpy as np

    assert format_cell(-1.5) == "-1.5"
    assert format_cell(np.float32(-0.25)) == "-0.25"
    assert format_cell(np.int64(-3)) == "-3"
    assert format_cell(float("nan")) == "" and format_cell(None) == ""
    assert format_cell(True) == "True"
    assert format_cell("=1+1") == "'=1+1"


def test_csv_text_round_trips_through_the_csv_module():
    rows = [{"reader": "=evil()", "value": -2.5, "comment": "ok"}]
    text = csv_text(rows)
    back = list(csv.DictReader(io.StringIO(text)))
    assert back[0]["reader"] == "'=evil()"
    assert restore_cell(back[0]["reader"]) == "=evil()"
    assert back[0]["value"] == "-2.5"


def test_doctests():
    assert doctest.testmod(formats).failed == 0


def test_schema_ids_have_one_home():
    """No module other than formats.py spells a schema id."""
    from pathlib import Path

    import napari_m1

    root = Path(napari_m1.__file__).parent
    ids = [
        formats.ANNOTATION_SCHEMA,
        formats.MEASUREMENT_SCHEMA,
        formats.READINGS_SCHEMA,
        formats.STUDY_FORMAT,
        formats.PHANTOM_TRUTH_SCHEMA,
        formats.BATCH_RECORD_SCHEMA,
    ]
    offenders = [
        f"{py.relative_to(root)}: {i}"
        for py in root.rglob("*.py")
        if py.name != "formats.py"
        for i in ids
        if f'"{i}"' in py.read_text(encoding="utf-8")
    ]
    assert offenders == [], offenders
