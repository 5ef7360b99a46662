"""Benchmark: the ``napari-m1 report`` command for 20 readers × 1,000 cases, as a user runs it.

Run:

    .venv/bin/python benchmarks/bench_report.py [--repeats 5] [--readers 20] [--cases 1000]

Data: ``tests/data/m1_study.py::synthetic_study`` — every reader reads every case
(plus 20 % hidden repeats) and measures it: calipers and GRE ROIs at 2 echoes in
4 Penfield areas × 2 hemispheres plus the precuneus reference, i.e. 26 rows of the
full 42-column measurements schema per first read (520,000 rows, ~95 MiB at the default
size).

Both sides run as fresh processes (interpreter start, imports, work, exit), interleaved
in the same run, after one untimed warm-up of each (page cache):

* baseline: ``python -c "import pandas; pandas.read_csv(...)"`` of the same three files
  with default options — no validation, no statistics, no output;
* napari-m1: the ``napari-m1 report`` console script (``python -m napari_m1.cli`` when
  the script is not installed) — reading and validating the CSVs, every statistic
  (incl. the Fleiss' κ bootstrap), the four figures, the HTML and the atomic writes.

Targets (issues 16/17): median report ≤ 5 s and ≤ 3× the baseline on a 2-core machine.
The last line is ``report: median N s = R× pandas read_csv (median M s)``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

_READ_CSV = "import sys, pandas as pd\nfor p in sys.argv[1:]:\n    pd.read_csv(p)\n"


def _report_command() -> list[str]:
    script = Path(sys.executable).with_name("napari-m1")
    if script.exists():
        return [str(script)]
    found = shutil.which("napari-m1")
    return [found] if found else [sys.executable, "-m", "napari_m1.cli"]


def _timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--readers", type=int, default=20)
    ap.add_argument("--cases", type=int, default=1000)
    args = ap.parse_args()

    from data.m1_study import synthetic_study, write_study

    tmp = Path(tempfile.mkdtemp(prefix="m1-bench-report-"))
    try:
        t0 = time.perf_counter()
        frames = synthetic_study(args.readers, args.cases, seed=0)
        paths = write_study(tmp / "in", frames)
        t_gen = time.perf_counter() - t0
        sizes = {k: p.stat().st_size for k, p in paths.items()}
        n_meas = len(frames["measurements"])
        del frames

        files = [str(paths[k]) for k in ("readings", "clinical", "measurements")]
        base_cmd = [sys.executable, "-c", _READ_CSV, *files]
        report_cmd = [
            *_report_command(),
            "report",
            "--readings",
            files[0],
            "--clinical",
            files[1],
            "--measurements",
            files[2],
            "--out",
            str(tmp / "report"),
        ]
        _timed(base_cmd)  # warm the page cache and the interpreter's files for both
        _timed(report_cmd)
        t_base, t_ours = [], []
        for _ in range(args.repeats):
            t_base.append(_timed(base_cmd))
            t_ours.append(_timed(report_cmd))
        med_b, med_o = statistics.median(t_base), statistics.median(t_ours)
        n_files = sum(1 for _ in (tmp / "report").rglob("*") if _.is_file())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"study: {args.readers} readers x {args.cases} cases; readings "
        f"{sizes['readings'] / 2**20:.1f} MiB, measurements {n_meas} rows "
        f"{sizes['measurements'] / 2**20:.0f} MiB (generated in {t_gen:.1f} s); "
        f"{os.cpu_count()} CPUs; {args.repeats} runs each, interleaved, as subprocesses"
    )
    print(f"command: {' '.join(report_cmd[:2])} ... ({n_files} files written)")
    print(
        "baseline: python -c 'pandas.read_csv' of the 3 files   median "
        f"{med_b:6.2f} s  (runs: " + ", ".join(f"{t:.2f}" for t in t_base) + ")"
    )
    print(
        "napari-m1 report                                    median "
        f"{med_o:6.2f} s  (runs: " + ", ".join(f"{t:.2f}" for t in t_ours) + ")"
    )
    print("targets: report <= 5 s and <= 3x the baseline")
    ratio = med_o / med_b
    print(f"report: median {med_o:.2f} s = {ratio:.2f}x pandas read_csv (median {med_b:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
