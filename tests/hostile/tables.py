"""Hostile tables: cases.csv (``study init``), study export/unblind/verify, ``report``."""

from __future__ import annotations

import shutil
from pathlib import Path

from ._base import DEEP, MAG1, Work, _out, add

# ======================================================================= study init: cases.csv


def _cases(text: str | bytes, *extra: str, readers: str = "R1,R2", expect=2, match=""):
    return dict(
        fn=lambda w: w.study_init(text, *extra, readers=readers), expect=expect, match=match
    )


CSV = "cases.csv"
for _id, _kw in {
    "cases-valid": _cases("case_id,path\nK1,K1\nK2,K2\n", expect=0),
    "cases-empty": _cases("", match=CSV),
    "cases-header-only": _cases("case_id,path\n", match=CSV),
    "cases-no-columns": _cases("a,b\n1,2\n", match=CSV),
    "cases-200kB-id": _cases("case_id,path\n" + "K" * 200_000 + ",K1\n", match=CSV),
    "cases-200kB-path": _cases("case_id,path\nK1," + "p" * 200_000 + "\n", match=CSV),
    "cases-long-id": _cases("case_id,path\n" + "K" * 5000 + ",K1\nK2,K2\n", match=CSV),
    "cases-nul": _cases("case_id,path\nK\x001,K1\n", match=CSV),
    "cases-not-utf8": _cases(b"case_id,path\nK\xff,K1\n", match=CSV),
    "cases-utf16": _cases("case_id,path\nK1,K1\n".encode("utf-16"), match=CSV),
    "cases-dup-id": _cases("case_id,path\nK1,K1\nK1,K2\n", match=CSV),
    "cases-same-folder": _cases("case_id,path\nK1,K1\nK2,K1\n", match=CSV),
    "cases-empty-id": _cases("case_id,path\n,K1\n", match=CSV),
    "cases-missing-folder": _cases("case_id,path\nK1,nope\n", match=CSV),
    "cases-path-is-file": _cases("case_id,path\nK1,K1/" + MAG1 + "\n", match=CSV),
    "cases-formula-id": _cases('case_id,path\n"=HYPERLINK(""x"")",K1\nK2,K2\n', expect=None),
    "cases-newline-id": _cases('case_id,path\n"K\n1",K1\nK2,K2\n', match=CSV),
    "cases-unbalanced-quote": _cases('case_id,path\n"K1,K1\nK2,K2\n', match=CSV),
    "cases-bom-only": _cases("\ufeff", match=CSV),
    "cases-many-columns": _cases("case_id,path" + ",x" * 20000 + "\nK1,K1\nK2,K2\n", expect=None),
    "cases-deep-dirs": _cases("case_id,path\nK1," + "a/" * 2000 + "\n", match=CSV),
    "cases-short-row": _cases("case_id,path\nK1\nK2,K2\n", match=CSV),
    "readers-empty": _cases("case_id,path\nK1,K1\n", readers=""),
    "readers-commas": _cases("case_id,path\nK1,K1\n", readers=",,,"),
    "readers-dup": _cases("case_id,path\nK1,K1\n", readers="R1,R1"),
    "readers-huge": _cases("case_id,path\nK1,K1\n", readers="R" * 200_000, expect=None),
    "readers-formula": _cases("case_id,path\nK1,K1\n", readers="=cmd|' /C calc'!A0", expect=None),
    "repeat-negative": _cases("case_id,path\nK1,K1\n", "--repeat-fraction", "-1"),
    "repeat-two": _cases("case_id,path\nK1,K1\n", "--repeat-fraction", "2"),
    "repeat-nan": _cases("case_id,path\nK1,K1\n", "--repeat-fraction", "nan"),
    "seed-huge": _cases("case_id,path\nK1,K1\n", "--seed", "9" * 40, expect=None),
    "seed-negative": _cases("case_id,path\nK1,K1\n", "--seed", "-5", expect=None),
}.items():
    add(_id, _kw["fn"], expect=_kw["expect"], match=_kw["match"])


def _study_in_place(w: Work) -> list[str]:
    """cases.csv saved as the study's own study.json, then --force (item 6)."""
    argv = w.study_init()
    w.out.mkdir()
    cases = w.out / "study.json"
    cases.write_text(f"case_id,path\nK1,{w.root / 'K1'}\nK2,{w.root / 'K2'}\n")
    argv[argv.index("--cases") + 1] = str(cases)
    return [*argv, "--force"]


add("study-init-over-its-inputs", _study_in_place, expect=2, why="item 6")
add("study-dir-is-file", lambda w: _study_at(w, w.file("sfile", "x")), expect=2)
add("study-dir-is-case", lambda w: _study_at(w, w.root / "K1", "--force"))


def _study_at(w: Work, where: Path, *extra: str) -> list[str]:
    argv = w.study_init()
    argv[2] = str(where)
    w.out = where
    return argv + list(extra)


# ============================================================================ report: CSVs


R, CL = "readings.csv", "clinical.csv"
add("report-valid", lambda w: w.report(), expect=0)
add("report-measurements-valid", lambda w: w.report_m(), expect=0)
M = "measurements.csv"
add("report-measurements-empty", lambda w: w.report_m(""), expect=2, match=M)
add(
    "report-measurements-not-utf8",
    lambda w: w.report_m(b"schema,case_label\n\xff,x\n"),
    expect=2,
    match=M,
)
add(
    "report-measurements-200kB",
    lambda w: w.report_m(w.base_measurements() + "Z" * 200_000 + "\n"),
    expect=2,
    match=M,
)
add(
    "report-measurements-header-only",
    lambda w: w.report_m(w.base_measurements().splitlines()[0] + "\n"),
)
add("report-measurements-no-columns", lambda w: w.report_m("a,b\n1,2\n"), expect=2, match=M)
add(
    "report-measurements-nan-inf",
    lambda w: w.report_m(_cells(w.base_measurements(), "mean", ["nan", "inf", "-inf", "1e400"])),
)
add(
    "report-measurements-text-numbers",
    lambda w: w.report_m(_cells(w.base_measurements(), "mean", ["ten", "=1+2", "@SUM(A1)"])),
)
add(
    "report-measurements-formula-label",
    lambda w: w.report_m(_cells(w.base_measurements(), "case_label", ['=HYPERLINK("x")'])),
)
add("report-measurements-nul", lambda w: w.report_m(w.base_measurements() + "a\0b\n"))
add("report-measurements-is-folder", lambda w: _measurements_folder(w), expect=2)
add("report-measurements-echo-0", lambda w: [*w.report_m(), "--echo", "0"], expect=2)
add("report-measurements-echo-99", lambda w: [*w.report_m(), "--echo", "99"])
add("report-readings-empty", lambda w: w.report(""), expect=2, match=R)
add("report-clinical-empty", lambda w: w.report(None, ""), expect=2, match=CL)
add(
    "report-readings-not-utf8", lambda w: w.report(b"case_id,reader\n\xff,R1\n"), expect=2, match=R
)
add(
    "report-readings-200kB",
    lambda w: w.report(w.base_text(R) + "X" * 200_000 + "\n"),
    expect=2,
    match=R,
)
add("report-clinical-200kB", lambda w: w.report(None, w.base_text(CL) + "C" * 200_000 + ",als\n"))
add("report-readings-nul", lambda w: w.report(w.base_text(R) + "A\0B\n"), expect=2, match=R)
add(
    "report-readings-header-only",
    lambda w: w.report(w.base_text(R).splitlines()[0] + "\n"),
    expect=None,
)
add("report-out-is-readings", lambda w: _out(w.report(), str(w.root / R)), expect=2, why="item 6")
add("report-out-is-a-file", lambda w: _out(w.report(), str(w.file("f.txt", "x"))), expect=2)
add("report-readings-is-folder", lambda w: _report_folder(w), expect=2)


def _report_folder(w: Work) -> list[str]:
    argv = w.report()
    p = Path(argv[argv.index("--readings") + 1])
    p.unlink()
    p.mkdir()
    return argv


# ============================================================================ study export/unblind


def _export(*extra: str, out: str = "out/readings.csv"):
    def build(w: Work) -> list[str]:
        st = w.study()
        more = [str(w.root / x) if x.startswith("out/") else x for x in extra]
        key = ["--coordinator-key", str(w.root / "coordinator.key")]
        return ["study", "export", str(st), "--out", str(w.root / out), *key, *more]

    return build


def _unblind(key: str | None = None, out: str = "out/unblinded.csv", clinical: str | None = None):
    def build(w: Work) -> list[str]:
        st = w.study()
        k = w.file("key.csv", key) if key is not None else w.root / "cases.csv"
        argv = ["study", "unblind", str(st), "--key", str(k), "--out", str(w.root / out)]
        argv += ["--coordinator-key", str(w.root / "coordinator.key")]
        if clinical is not None:
            argv += ["--clinical", str(w.file("clin.csv", clinical))]
        return argv

    return build


add("export-valid", _export(), expect=0)
add("export-out-is-db", _export(out="study/study.sqlite"), expect=2, why="item 6")
add(
    "export-out-is-coordinator-key",
    _export(out="coordinator.key"),
    expect=2,
    match="coordinator.key: is an input of this command",
    why="item 6",
)
add("export-out-is-study-json", _export(out="study/study.json"), expect=2, why="item 6")
add(
    "export-out-equals-measurements",
    _export("--measurements", "out/readings.csv"),
    expect=2,
    why="item 6",
)
add("unblind-valid", _unblind(), expect=0)
add("unblind-out-is-key", _unblind(out="cases.csv"), expect=2, why="item 6")
add(
    "unblind-out-is-clinical",
    _unblind(clinical="case_id,group\nK1,als\n", out="clin.csv"),
    expect=2,
    why="item 6",
)
add("unblind-key-200kB", _unblind(key="case_id,path\n" + "K" * 200_000 + ",K1\n"), expect=2)
add("unblind-key-not-utf8", _unblind(key=b"case_id,path\n\xff,K1\n"), expect=2)
add("unblind-key-empty", _unblind(key=""), expect=2)
add("verify-not-a-study", lambda w: ["study", "verify", str(w.case())], expect=2)
add("verify-garbage-db", lambda w: ["study", "verify", str(_garbage_db(w))], expect=2)
add("verify-empty-db", lambda w: ["study", "verify", str(_garbage_db(w, b""))], expect=2)


def _garbage_db(w: Work, data: bytes = b"SQLite format 3\0" + b"\x07" * 4000) -> Path:
    st = w.study()
    (st / "study.sqlite").write_bytes(data)
    return st


def _report_in_tables(w: Work) -> list[str]:
    """readings.csv kept in the report's own tables/ folder (item 6)."""
    argv = w.report()
    r = Path(argv[argv.index("--readings") + 1])
    (w.out / "tables").mkdir(parents=True)
    dst = w.out / "tables" / "subjects.csv"
    r.rename(dst)
    argv[argv.index("--readings") + 1] = str(dst)
    return argv


add("report-readings-in-its-tables", _report_in_tables, expect=2, match="tables", why="item 6")


# ============================================================================ import


def _bids(w: Work) -> Path:
    """A one-subject BIDS folder made from the base case's magnitudes."""
    anat = w.root / "bids" / "sub-T1" / "anat"
    anat.mkdir(parents=True)
    for f in (w.base / "case").glob("sub-T1_echo-*"):
        shutil.copy(f, anat / f.name)
    return w.root / "bids"


add("import-valid", lambda w: ["import", str(_bids(w)), str(w.out)], expect=0)
add(
    "import-out-is-source",
    lambda w: ["import", str(_bids(w)), str(w.root / "bids"), "--force"],
    expect=2,
    why="item 6: --force would replace the source",
)
add(
    "import-out-holds-source",
    lambda w: ["import", str(_bids(w)), str(w.root), "--force"],
    expect=2,
    why="item 6: --force would replace the folder holding the source",
)
add(
    "import-sidecar-deep",
    lambda w: ["import", str(_deep_sidecar(_bids(w))), str(w.out)],
    expect=2,
)


def _deep_sidecar(bids: Path) -> Path:
    side = next((bids / "sub-T1" / "anat").glob("*echo-1*.json"))
    side.write_text("[" * DEEP + "]" * DEEP)
    return bids


def _cells(text: str, column: str, values: list[str]) -> str:
    """``text`` (a CSV) with the first rows' ``column`` set to ``values`` (CSV-quoted)."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(text)))
    j = rows[0].index(column)
    for i, v in enumerate(values, start=1):
        rows[i][j] = v
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def _measurements_folder(w: Work) -> list[str]:
    argv = w.report_m()
    p = Path(argv[argv.index("--measurements") + 1])
    p.unlink()
    p.mkdir()
    return argv
