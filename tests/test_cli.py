"""The napari-m1 command line: exit codes and one-line errors."""

from __future__ import annotations

import json

import pytest

from napari_m1.cli import main


def test_sample_writes_a_case_the_reader_opens(tmp_path, capsys):
    out = tmp_path / "case"
    assert main(["sample", str(out), "--group", "als", "--seed", "3", "--slices", "16"]) == 0
    truth = json.loads((out / "truth.json").read_text())
    assert truth["group"] == "als" and truth["seed"] == 3
    assert main(["info", str(out)]) == 0
    table = capsys.readouterr().out
    assert "GRE magnitude" in table and "MRSI NAA" in table and "reference" in table
    # a non-empty folder is refused without --force
    assert main(["sample", str(out), "--slices", "16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("napari-m1: error:")


@pytest.mark.parametrize("args", [["--slices", "15"], ["--slices", "4"]])
def test_sample_bad_arguments(tmp_path, capsys, args):
    assert main(["sample", str(tmp_path / "x"), *args]) == 2
    assert "napari-m1: error:" in capsys.readouterr().err


def test_info_on_a_folder_without_gre(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"napari-m1: error: {tmp_path.name}: no GRE magnitude found (expected "
        "*_part-mag_*.nii[.gz], *_MEGRE.nii[.gz] or a case.json)"
    ]


def test_measure_rejects_annotations_of_another_case(tmp_path, capsys, phantom_case):
    other = tmp_path / "other"
    assert main(["sample", str(other), "--slices", "16", "--seed", "9"]) == 0
    ann = tmp_path / "a.m1ann.jsonl"
    ann.write_text(
        json.dumps(
            {
                "schema": "napari-m1/annotations/1",
                "protocol": "m1-7t",
                "case": {"label": "x", "hash": "0000"},
            }
        )
        + "\n"
    )
    assert main(["measure", str(phantom_case), str(ann), "--out", str(tmp_path / "o.csv")]) == 2
    assert "written for another case" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
