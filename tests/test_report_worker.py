"""The report's figures drawn in a forked worker (``napari-m1 report``): the same files as
drawn in-process, errors reported in one line, nothing left running."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from data.m1_study import synthetic_study, write_study
from napari_m1.errors import M1Error
from napari_m1.stats import _figure_worker, _figures, build_report, compute_study, load_study
from napari_m1.stats._figure_worker import FigureWorker, FigureWorkerError

pytestmark = pytest.mark.skipif(
    not FigureWorker.available(), reason="the figure worker needs fork (Linux)"
)


def _notes_study(folder: Path) -> dict[str, Path]:
    """A small study whose analysis notes come from accuracy, agreement and comparisons
    (their order in the issues must not depend on when the figures are drawn)."""
    frames = synthetic_study(3, 8, seed=1)
    r = frames["readings"]
    r.loc[r["reader"] == "R1", "als_consistent"] = 1  # a single class: κ and NPV undefined
    return write_study(folder, frames)


def _report(paths: dict[str, Path], out: Path, **kw) -> dict[str, bytes]:
    build_report(
        paths["readings"], paths["clinical"], out, measurements=paths["measurements"], **kw
    )
    files = {str(f.relative_to(out)): f.read_bytes() for f in out.rglob("*") if f.is_file()}
    html = files.pop("report.html").decode()
    files["report.html"] = "\n".join(  # the time stamp aside
        ln for ln in html.splitlines() if "class='meta'>Generated" not in ln
    ).encode()
    return files


def _live_workers() -> list[multiprocessing.Process]:
    return [p for p in multiprocessing.active_children() if p.name == "napari-m1-figures"]


def test_worker_writes_the_same_files_as_in_process(tmp_path):
    paths = _notes_study(tmp_path / "in")
    here = _report(paths, tmp_path / "here")
    there = _report(paths, tmp_path / "there", figure_process=True)
    assert sorted(here) == sorted(there)
    assert len([f for f in here if f.startswith("figures")]) == 4
    assert {f: here[f] == there[f] for f in here} == {f: True for f in here}
    issues = pd.read_csv(tmp_path / "there" / "tables" / "data_issues.csv")
    assert list(issues["kind"]) == ["zero-denominator", "single-class", "small-n"]
    assert _live_workers() == []


def test_failed_figures_are_reported_in_report_order(tmp_path, monkeypatch):
    """One figure of each request fails: the issues come in report order, as in-process."""

    def broken(res, **kw):
        raise ValueError("boom\nsecond line")

    monkeypatch.setattr(_figures, "group_boxplots", broken)  # needs group_comparisons
    monkeypatch.setattr(_figures, "confusion_matrices", broken)  # drawn first
    paths = _notes_study(tmp_path / "in")
    here = _report(paths, tmp_path / "here")
    there = _report(paths, tmp_path / "there", figure_process=True)
    assert here == there
    issues = pd.read_csv(tmp_path / "there" / "tables" / "data_issues.csv")
    failed = issues.loc[issues["kind"] == "figure-failed", "items"].tolist()
    assert failed == ["group_boxplots", "confusion_matrices"]
    assert sorted(f.stem for f in (tmp_path / "there" / "figures").iterdir()) == [
        "bland_altman",
        "clinical_scatter",
    ]


def test_killed_worker_falls_back_to_drawing_in_process(tmp_path, monkeypatch, caplog):
    def die(conn, parent_end):
        os._exit(3)

    monkeypatch.setattr(_figure_worker, "_serve", die)
    paths = _notes_study(tmp_path / "in")
    here = _report(paths, tmp_path / "here")
    with caplog.at_level(logging.WARNING, logger="napari_m1.stats._report"):
        there = _report(paths, tmp_path / "there", figure_process=True)
    assert here == there  # all four figures, drawn here instead
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == [
        "the figure worker stopped (exit code 3) without a result; "
        "drawing the figures in this process"
    ]
    assert _live_workers() == []


def test_worker_error_is_one_line(tmp_path, monkeypatch):
    paths = _notes_study(tmp_path / "in")
    res = compute_study(load_study(paths["readings"], paths["clinical"], paths["measurements"]))

    def broken(*args, **kw):
        raise RuntimeError("out of fonts\nsecond line")

    monkeypatch.setattr(_figures, "render_figures", broken)  # the worker inherits it
    worker = FigureWorker(max_points=100)
    try:
        with pytest.raises(FigureWorkerError) as err:
            worker.result(res)
    finally:
        worker.close()
    assert str(err.value) == "the figure worker failed: RuntimeError: out of fonts"
    assert _live_workers() == []


def test_bad_input_stops_the_worker(tmp_path):
    paths = _notes_study(tmp_path / "in")
    (tmp_path / "in" / "readings.csv").write_text("reader;case_id\nR1;A\n", encoding="utf-8")
    with pytest.raises(M1Error, match="readings.csv: missing required column"):
        build_report(paths["readings"], paths["clinical"], tmp_path / "out", figure_process=True)
    assert _live_workers() == []
    assert not (tmp_path / "out" / "report.html").exists()


def test_partial_results_are_final_tables(tmp_path):
    """``compute_study(on_partial=...)``: the tables it calls final are, and the result
    does not change."""
    paths = _notes_study(tmp_path / "in")
    data = load_study(paths["readings"], paths["clinical"], paths["measurements"])
    plain = compute_study(data)
    seen = []

    def record(partial, final):
        seen.append((set(final), {k: getattr(partial, k).copy() for k in final}))

    staged = compute_study(data, on_partial=record)
    assert [s for s, _ in seen] == [
        {"subjects", "per_subject", "diagnostic_accuracy"},
        {"subjects", "per_subject", "diagnostic_accuracy", "group_comparisons", "correlations"},
    ]
    for _, tables in seen:
        for name, df in tables.items():
            pd.testing.assert_frame_equal(df, getattr(plain, name))
    for f in dataclasses.fields(plain):
        if f.name not in ("data", "issues"):
            pd.testing.assert_frame_equal(getattr(staged, f.name), getattr(plain, f.name))
    assert staged.issues == plain.issues and len(plain.issues) == 3


def test_command_draws_its_figures_in_another_process(tmp_path):
    """In a fresh ``napari-m1 report`` process matplotlib is never imported: the
    figures (all four written) come from the worker."""
    paths = _notes_study(tmp_path / "in")
    out = tmp_path / "out"
    argv = ["report", "--readings", str(paths["readings"]), "--clinical", str(paths["clinical"])]
    argv += ["--measurements", str(paths["measurements"]), "--out", str(out)]
    code = (
        "import sys\n"
        "from napari_m1.cli import main\n"
        f"assert main({argv!r}) == 0\n"
        "print('matplotlib' in sys.modules)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert res.stdout.splitlines()[-1] == "False"
    assert len(list((out / "figures").glob("*.png"))) == 4


def test_worker_exits_quietly_when_the_report_is_gone(tmp_path):
    """The command killed while the worker draws: the worker finds nobody to send the
    figures to and exits without a traceback."""
    paths = _notes_study(tmp_path / "in")
    code = (
        "import os\n"
        "from napari_m1.stats import compute_study, load_study\n"
        "from napari_m1.stats._figure_worker import FigureWorker\n"
        f"data = load_study({str(paths['readings'])!r}, {str(paths['clinical'])!r}, "
        f"{str(paths['measurements'])!r})\n"
        "res = compute_study(data)\n"
        "worker = FigureWorker(max_points=100)\n"
        "worker.draw_ready(res, frozenset({'per_subject', 'diagnostic_accuracy', "
        "'group_comparisons', 'correlations'}))\n"
        "print('asked', flush=True)\n"
        "os._exit(0)  # gone, like a killed process: nothing closed, nothing reaped\n"
    )
    # run() returns when every holder of the output pipes (the worker too) has exited
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0
    assert res.stdout.splitlines() == ["asked"]
    assert res.stderr == ""
