"""``napari-m1 report`` end to end through napari_m1.stats._cli, and the HTML it writes."""

from __future__ import annotations

import argparse
import base64
import re
import sys
from pathlib import Path

import pandas as pd
import pytest

from data.m1_study import published_study, synthetic_study, write_study
from napari_m1.errors import M1Error
from napari_m1.stats._cli import register

ACCURACY_COLUMNS = (
    "reader,tp,fp,tn,fn,sensitivity,specificity,ppv,npv,accuracy,"
    "sensitivity_ci_low,sensitivity_ci_high,specificity_ci_low,specificity_ci_high,"
    "ppv_ci_low,ppv_ci_high,npv_ci_low,npv_ci_high,accuracy_ci_low,accuracy_ci_high,n,note"
)
AGREEMENT_COLUMNS = "measure,reader_a,reader_b,statistic,value,ci_low,ci_high,n,method,note"
COMPARISON_COLUMNS = (
    "comparison,variable,reader,group_a,group_b,n_a,n_b,median_a,q1_a,q3_a,median_b,q1_b,"
    "q3_b,mean_a,sd_a,mean_b,sd_b,u_statistic,p_value,method,note"
)
CORRELATION_COLUMNS = "variable,clinical,reader,area,hemisphere,rho,p_value,n,note"


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Parse ``argv`` with a parser the report sub-command is registered on, run it
    and handle M1Error as napari_m1.cli.main does (one line, exit status 2)."""
    parser = argparse.ArgumentParser(prog="napari-m1")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
    except M1Error as exc:
        print(f"napari-m1: error: {exc}", file=sys.stderr)
        code = 2
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict[str, Path]:
    return write_study(
        tmp_path_factory.mktemp("study"), synthetic_study(3, 50, seed=8)
    )  # no data issues


@pytest.mark.filterwarnings("error::RuntimeWarning", "error::UserWarning", "error::FutureWarning")
def test_report_end_to_end(study, tmp_path, capsys):
    out = tmp_path / "report"
    code, stdout, stderr = run_cli(
        [
            "report",
            "--readings",
            str(study["readings"]),
            "--measurements",
            str(study["measurements"]),
            "--clinical",
            str(study["clinical"]),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    assert f"wrote {out / 'report.html'} and 7 tables; no data issues" in stdout
    assert stderr == ""
    tables = sorted(p.name for p in (out / "tables").iterdir())
    assert tables == [
        "agreement.csv",
        "correlations.csv",
        "data_issues.csv",
        "diagnostic_accuracy.csv",
        "group_comparisons.csv",
        "per_subject.csv",
        "subjects.csv",
    ]
    headers = {
        "diagnostic_accuracy.csv": ACCURACY_COLUMNS,
        "agreement.csv": AGREEMENT_COLUMNS,
        "group_comparisons.csv": COMPARISON_COLUMNS,
        "correlations.csv": CORRELATION_COLUMNS,
        "data_issues.csv": "source,kind,severity,count,message,items",
    }
    for name, header in headers.items():
        raw = (out / "tables" / name).read_bytes()
        assert raw.decode("utf-8").split("\n", 1)[0] == header
        assert b"\r\n" not in raw
        for bad in (b",nan,", b",inf,", b",None,", b",NaN,"):
            assert bad not in raw, (name, bad)
    # Tables read back with the numbers computed (first reads: 50 cases per reader).
    acc = pd.read_csv(out / "tables" / "diagnostic_accuracy.csv")
    assert list(acc["reader"]) == ["R1", "R2", "R3"] and (acc["n"] == 50).all()
    assert ((acc["tp"] + acc["fp"] + acc["tn"] + acc["fn"]) == 50).all()
    assert acc["sensitivity"].between(0, 1).all()
    ag = pd.read_csv(out / "tables" / "agreement.csv")
    assert set(ag["statistic"]) == {
        "cohen_kappa",
        "fleiss_kappa",
        "intra_reader_kappa",
        "icc2_1",
        "icc3_1",
    }
    subjects = pd.read_csv(out / "tables" / "subjects.csv")
    assert len(subjects) == 50 and "dpr" in subjects.columns

    html = (out / "report.html").read_text(encoding="utf-8")
    for section in ("Data issues", "Diagnostic accuracy", "Reader agreement", "Group comparisons"):
        assert section in html
    assert "No data issues found." in html
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) == 4
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<script" not in html and "http://" not in html  # self-contained
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert figures == [
        "bland_altman.png",
        "clinical_scatter.png",
        "confusion_matrices.png",
        "group_boxplots.png",
    ]
    # No pyplot state: figures were drawn on their own canvases.
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []


def test_published_study_through_cli(tmp_path, capsys):
    readings, clinical = published_study()
    p = write_study(tmp_path / "in", {"readings": readings, "clinical": clinical})
    out = tmp_path / "out"
    code, stdout, _ = run_cli(
        [
            "report",
            "--readings",
            str(p["readings"]),
            "--clinical",
            str(p["clinical"]),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0 and "6 tables; no data issues" in stdout
    acc = pd.read_csv(out / "tables" / "diagnostic_accuracy.csv").set_index("reader")
    assert acc.loc["R1", ["tp", "fp", "tn", "fn"]].tolist() == [12, 3, 10, 6]
    assert acc.loc["R2", "specificity"] == 1.0
    assert acc.loc["R1", "npv"] == pytest.approx(0.625)
    ag = pd.read_csv(out / "tables" / "agreement.csv")
    k = ag.loc[(ag["statistic"] == "cohen_kappa") & (ag["measure"] == "als_consistent")]
    assert round(k.iloc[0]["value"], 2) == 0.61
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "67 % (" in html and "63 % (" in html  # R1 sensitivity and NPV, rounded
    assert html.count("data:image/png;base64,") == 1  # only the confusion matrices
    assert not (out / "tables" / "per_subject.csv").exists()


def test_data_issues_exit_zero_and_listed(tmp_path, capsys):
    readings, clinical = published_study()
    clinical.loc[clinical["case_id"] == "CTL02", "group"] = "healthy"
    clinical = clinical.loc[clinical["case_id"] != "ALS05"]
    p = write_study(tmp_path / "in", {"readings": readings, "clinical": clinical})
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        [
            "report",
            "--readings",
            str(p["readings"]),
            "--clinical",
            str(p["clinical"]),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    assert "2 data issues (listed in the report's 'Data issues' section)" in stdout
    assert "warning: clinical.csv: 1 case(s) with a group other than" in stderr
    assert "warning: readings.csv: 2 read case(s) have no usable row" in stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "2 issue(s)" in html and "ALS05, CTL02" in html and "healthy" in html
    issues = pd.read_csv(out / "tables" / "data_issues.csv")
    assert list(issues["kind"]) == ["bad-group", "no-clinical-row"]
    assert list(issues["count"]) == [1, 2]


@pytest.mark.parametrize(
    ("which", "content", "expected"),
    [
        (
            "clinical",
            "case_id,alsfrs_r\nC1,40\n",
            "clinical.csv: missing required column(s) group",
        ),
        ("readings", "reader,pseudonym\nR1,P1\n", "readings.csv: no 'case_id' column"),
        ("clinical", b"case_id,group\n\xff\xfeC1,als\n", "clinical.csv: not UTF-8 text"),
        (
            "readings",
            "reader,pseudonym,is_repeat,status,als_consistent,case_id\nR1,P1,0,submitted,1,C1\n"
            "R1,P2,0,submitted,1,C2,extra\n",
            "readings.csv: malformed CSV: Expected 6 fields in line 3, saw 7",
        ),
    ],
)
def test_unusable_input_exit_2(tmp_path, capsys, which, content, expected):
    readings, clinical = published_study()
    p = write_study(tmp_path / "in", {"readings": readings, "clinical": clinical})
    if isinstance(content, bytes):
        p[which].write_bytes(content)
    else:
        p[which].write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        [
            "report",
            "--readings",
            str(p["readings"]),
            "--clinical",
            str(p["clinical"]),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 2
    assert stderr.startswith("napari-m1: error: ") and expected in stderr
    assert stderr.count("\n") == 1 and stdout == ""
    assert not out.exists()  # nothing half-written


def test_failed_run_keeps_previous_report(tmp_path, capsys, study):
    out = tmp_path / "out"
    argv = ["report", "--readings", str(study["readings"]), "--clinical", str(study["clinical"])]
    assert (
        run_cli([*argv, "--measurements", str(study["measurements"]), "--out", str(out)], capsys)[
            0
        ]
        == 0
    )
    before = (out / "report.html").read_bytes()
    code, _, stderr = run_cli(
        [*argv, "--measurements", str(study["measurements"]), "--echo", "9", "--out", str(out)],
        capsys,
    )
    assert code == 2 and "no GRE ROI rows at echo 9 (echoes present: 1, 2)" in stderr
    assert (out / "report.html").read_bytes() == before
    # A later run without measurements removes the stale measurement tables and figures.
    assert run_cli([*argv, "--out", str(out)], capsys)[0] == 0
    assert not (out / "tables" / "per_subject.csv").exists()
    assert not (out / "figures" / "bland_altman.png").exists()
    assert (out / "figures" / "confusion_matrices.png").exists()


def test_echo_needs_measurements(study, tmp_path, capsys):
    code, _, stderr = run_cli(
        [
            "report",
            "--readings",
            str(study["readings"]),
            "--clinical",
            str(study["clinical"]),
            "--echo",
            "1",
            "--out",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 2 and "give --measurements too" in stderr


def test_echo_must_be_positive(capsys):
    parser = argparse.ArgumentParser(prog="napari-m1")
    register(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(
            ["report", "--readings", "r", "--clinical", "c", "--out", "o", "--echo", "0"]
        )
    assert exc.value.code == 2
    assert "must be 1 or more" in capsys.readouterr().err


def test_html_escapes_user_text(tmp_path, capsys):
    readings, clinical = published_study()
    readings.loc[readings["case_id"] == "ALS01", "case_id"] = "<b>x</b>"
    p = write_study(tmp_path / "in", {"readings": readings, "clinical": clinical})
    out = tmp_path / "out"
    assert (
        run_cli(
            [
                "report",
                "--readings",
                str(p["readings"]),
                "--clinical",
                str(p["clinical"]),
                "--out",
                str(out),
            ],
            capsys,
        )[0]
        == 0
    )
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def _edge(name: str):
    f = synthetic_study(2, 20, seed=1)
    m, r, c = f["measurements"], f["readings"], f["clinical"]
    if name == "one reader":
        f = synthetic_study(1, 20, seed=1)
    elif name == "patients only":
        c["group"] = "als"
    elif name == "no GRE rows":
        f["measurements"] = m.loc[m["annotation"] == "caliper"]
    elif name == "reference rows only":
        f["measurements"] = m.loc[m["region"] == "precuneus"]
    elif name == "nothing submitted":
        r["status"] = "not_started"
    elif name == "no calls":
        r["als_consistent"] = float("nan")
    elif name == "minimal clinical":
        f["clinical"] = c[["case_id", "group"]]
    return f


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("one reader", set()),
        ("patients only", {"zero-denominator", "small-n"}),
        ("no GRE rows", {"no-gre-rows", "small-n"}),
        ("reference rows only", {"no-gre-rows", "no-caliper-rows"}),
        ("nothing submitted", {"not-submitted", "never-read"}),  # never-read: a note
        ("no calls", {"no-call"}),
        ("minimal clinical", {"dpr-blank", "small-n"}),
    ],
)
def test_degenerate_studies_still_report(tmp_path, capsys, name, kinds):
    p = write_study(tmp_path / "in", _edge(name))
    out = tmp_path / "out"
    argv = ["report", "--readings", str(p["readings"]), "--clinical", str(p["clinical"])]
    code, stdout, _ = run_cli(
        [*argv, "--measurements", str(p["measurements"]), "--out", str(out)], capsys
    )
    assert code == 0 and (out / "report.html").is_file()
    issues = pd.read_csv(out / "tables" / "data_issues.csv")
    assert kinds <= set(issues["kind"]), set(issues["kind"])
    n = int((issues["severity"] == "issue").sum())
    assert (f"{n} data issue" in stdout) if n else ("no data issues" in stdout)


def test_report_leaves_pyplot_and_backend_alone(study, tmp_path):
    """No pyplot import (it would pick a GUI backend from napari's worker thread)."""
    import subprocess

    code = (
        "import sys, matplotlib\n"
        "from napari_m1.stats import build_report\n"
        f"build_report({str(study['readings'])!r}, {str(study['clinical'])!r}, "
        f"{str(tmp_path / 'out')!r}, measurements={str(study['measurements'])!r})\n"
        "print('matplotlib.pyplot' in sys.modules, any('qt' in m.lower() for m in sys.modules))\n"
        "print(isinstance(dict.__getitem__(matplotlib.rcParams, 'backend'), str))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert res.stdout.split() == ["False", "False", "False"]  # backend still unresolved
    assert (tmp_path / "out" / "figures" / "group_boxplots.png").is_file()


def test_notes_are_listed_but_not_counted(tmp_path, capsys):
    frames = synthetic_study(3, 50, seed=8)
    m, r = frames["measurements"], frames["readings"]
    rep = r.loc[r["is_repeat"] == 1].iloc[0]
    on_rep = m.loc[(m["case_label"] == rep["repeat_of"]) & (m["reader"] == rep["reader"])].copy()
    on_rep["case_label"] = rep["pseudonym"]
    frames["measurements"] = pd.concat([m, on_rep])
    p = write_study(tmp_path / "in", frames)
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(
        [
            "report",
            "--readings",
            str(p["readings"]),
            "--clinical",
            str(p["clinical"]),
            "--measurements",
            str(p["measurements"]),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0 and stdout.rstrip().endswith("no data issues; 1 note")
    # 26 rows per read, of which 24 in the Penfield areas (the reference rows are never used)
    assert stderr.startswith("note: measurements.csv: 24 measurement row(s) were made on hidden")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "No data issues found." in html and "Notes (expected in a normal study" in html


# --------------------------------------------------------------------------- issue 8
def _main(argv: list[str], capsys) -> tuple[int, str, str]:
    """The real ``napari-m1`` entry point (its error handling included)."""
    from napari_m1.cli import main

    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _report_argv(paths: dict[str, Path], out: Path) -> list[str]:
    argv = ["report", "--readings", str(paths["readings"]), "--clinical", str(paths["clinical"])]
    if "measurements" in paths:
        argv += ["--measurements", str(paths["measurements"])]
    return [*argv, "--out", str(out)]


def test_cli_warnings_name_the_affected_cases(tmp_path, capsys):
    readings, clinical = published_study()
    clinical.loc[clinical["case_id"] == "CTL02", "group"] = "healthy"
    dropped = [f"ALS{i:02d}" for i in range(5, 18)]  # 13 cases: more than the 10 listed
    clinical = clinical.loc[~clinical["case_id"].isin(dropped)]
    p = write_study(tmp_path / "in", {"readings": readings, "clinical": clinical})
    code, _, err = _main(_report_argv(p, tmp_path / "out"), capsys)
    assert code == 0
    lines = err.strip().splitlines()
    bad_group = next(ln for ln in lines if "group other than" in ln)
    assert bad_group.startswith("warning: clinical.csv: 1 case(s)")
    assert "[affected: CTL02 (row " in bad_group and "'healthy'" in bad_group
    no_clin = next(ln for ln in lines if "have no usable row" in ln)
    listed = ", ".join(["ALS05", "ALS06", "ALS07", "ALS08", "ALS09", "ALS10", "ALS11", "ALS12"])
    assert f"[affected: {listed}, ALS13, ALS14, … (+4 more)]" in no_clin  # 13 + CTL02
    assert all(ln.startswith(("warning: ", "note: ")) for ln in lines)


def test_reader_id_with_math_syntax_is_drawn_literally(tmp_path, capsys):
    from matplotlib.mathtext import MathTextParser

    hostile = r"R$\x$"
    with pytest.raises(ValueError):  # what matplotlib makes of it as mathtext
        MathTextParser("agg").parse(hostile)
    frames = synthetic_study(2, 20, seed=2)
    for name in ("readings", "measurements"):
        frames[name]["reader"] = frames[name]["reader"].replace("R1", hostile)
    p = write_study(tmp_path / "in", frames)
    out = tmp_path / "out"
    code, _, err = _main(_report_argv(p, out), capsys)
    assert code == 0, err
    assert "not drawn" not in err and "Traceback" not in err
    figures = sorted(f.stem for f in (out / "figures").glob("*.png"))
    assert figures == ["bland_altman", "clinical_scatter", "confusion_matrices", "group_boxplots"]
    acc = pd.read_csv(out / "tables" / "diagnostic_accuracy.csv")
    assert list(acc["reader"]) == ["R2", hostile]  # natural order: "R$" sorts after "R2"
    assert html_escape_free(hostile) in (out / "report.html").read_text(encoding="utf-8")


def html_escape_free(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_figure_failure_is_one_warning_line_and_the_report_is_written(
    tmp_path, capsys, monkeypatch
):
    from napari_m1.stats import _figures

    def broken(res):
        raise ValueError("boom\nsecond line of a long message")

    monkeypatch.setattr(_figures, "confusion_matrices", broken)
    readings, clinical = published_study()
    p = write_study(tmp_path / "in", {"readings": readings, "clinical": clinical})
    out = tmp_path / "out"
    code, stdout, err = _main(_report_argv(p, out), capsys)
    assert code == 0
    assert err.strip().splitlines() == [
        "warning: figures: figure confusion_matrices not drawn (ValueError: boom); "
        "the tables are complete [affected: confusion_matrices]"
    ]
    assert "1 data issue" in stdout
    assert (out / "report.html").exists() and not (out / "figures").exists()
    issues = pd.read_csv(out / "tables" / "data_issues.csv")
    assert list(issues["kind"]) == ["figure-failed"]


def test_report_tables_neutralise_formulas(tmp_path, capsys):
    import csv

    from napari_m1.formats import FORMULA_TRIGGERS

    link = '=HYPERLINK("http://example.org/?x","click")'
    readings, clinical = published_study()
    readings["reader"] = readings["reader"].replace({"R1": link, "R2": "'@R2"})
    for df in (readings, clinical):  # a case id that a spreadsheet would run
        df["case_id"] = df["case_id"].replace({"ALS01": "+ALS01", "CTL01": "-CTL01"})
    p = write_study(tmp_path / "in", {"readings": readings, "clinical": clinical})
    out = tmp_path / "out"
    code, _, err = _main(_report_argv(p, out), capsys)
    assert code == 0, err
    cells = []
    for path in sorted((out / "tables").glob("*.csv")):
        with open(path, encoding="utf-8", newline="") as fh:
            cells += [(path.name, c) for row in csv.reader(fh) for c in row]

    def is_number(c: str) -> bool:
        try:
            float(c)
        except ValueError:
            return False
        return True

    formulas = [(f, c) for f, c in cells if c[:1] in FORMULA_TRIGGERS and not is_number(c)]
    assert formulas == []
    acc = pd.read_csv(out / "tables" / "diagnostic_accuracy.csv", keep_default_na=False)
    # '@R2 was neutralised by the study export: the report reads R2's id back as @R2.
    assert list(acc["reader"]) == ["'" + link, "'@R2"]  # one apostrophe each
    assert acc["accuracy"].dtype.kind == "f"  # numbers stay numbers
    subjects = pd.read_csv(out / "tables" / "subjects.csv", keep_default_na=False)
    assert {"'+ALS01", "'-CTL01"} <= set(subjects["case_id"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "@R2" in html and "&#x27;@R2" not in html  # shown as the reader's id, escaped


def test_report_command_imports_neither_statsmodels_nor_scipy_stats(study, tmp_path):
    """The command's import cost (issue 17): the statistics use numpy and scipy.special."""
    import subprocess

    argv = _report_argv(study, tmp_path / "out")
    code = (
        "import sys\n"
        "from napari_m1.cli import main\n"
        f"assert main({argv!r}) == 0\n"
        "heavy = ('statsmodels', 'scipy.stats')\n"
        "print(sorted({m.split('.')[0] if m.startswith('statsmodels') else m\n"
        "              for m in sys.modules if m.startswith(heavy)}))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert res.stdout.split("\n")[-2] == "[]"
    assert (tmp_path / "out" / "tables" / "agreement.csv").is_file()
