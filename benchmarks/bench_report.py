"""Benchmark: the whole study report for 20 readers × 1,000 cases with measurements.

Run:

    .venv/bin/python benchmarks/bench_report.py [--repeats 3] [--readers 20] [--cases 1000]

Data: ``tests/data/m1_study.py::synthetic_study`` — every reader reads every case
(plus 20 % hidden repeats) and measures it: calipers and GRE ROIs at 2 echoes in
4 Penfield areas × 2 hemispheres plus the precuneus reference, i.e. 26 rows of the
full 42-column measurements schema per first read (520,000 rows, ~95 MiB at the default
size). Both sides are measured in the same run, interleaved:

* baseline: ``pandas.read_csv`` of the three files with default options (no
  validation, no statistics);
* napari-m1: ``build_report`` end to end — reading and validating the CSVs, every
  statistic (incl. the Fleiss' κ bootstrap), the four figures, the HTML and the
  atomic writes of every file.

Target: median report time <= 5 s on a 2-core machine. Medians are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--readers", type=int, default=20)
    ap.add_argument("--cases", type=int, default=1000)
    args = ap.parse_args()

    import pandas as pd

    from data.m1_study import synthetic_study, write_study
    from napari_m1.stats import build_report

    tmp = Path(tempfile.mkdtemp(prefix="m1-bench-report-"))
    t0 = time.perf_counter()
    frames = synthetic_study(args.readers, args.cases, seed=0)
    paths = write_study(tmp / "in", frames)
    t_gen = time.perf_counter() - t0
    sizes = {k: p.stat().st_size for k, p in paths.items()}
    n_meas = len(frames["measurements"])
    del frames

    def base() -> float:
        t = time.perf_counter()
        for p in paths.values():
            pd.read_csv(p)
        return time.perf_counter() - t

    result = None

    def ours() -> float:
        nonlocal result
        t = time.perf_counter()
        result = build_report(
            paths["readings"],
            paths["clinical"],
            tmp / "report",
            measurements=paths["measurements"],
        )
        return time.perf_counter() - t

    base()  # warm the page cache and the imports for both
    ours()
    t_base, t_ours = [], []
    for _ in range(args.repeats):
        t_base.append(base())
        t_ours.append(ours())
    med_b, med_o = statistics.median(t_base), statistics.median(t_ours)

    print(
        f"study: {args.readers} readers x {args.cases} cases; readings "
        f"{sizes['readings'] / 2**20:.1f} MiB, measurements {n_meas} rows "
        f"{sizes['measurements'] / 2**20:.0f} MiB (generated in {t_gen:.1f} s); "
        f"{os.cpu_count()} CPUs"
    )
    print(
        "pandas read_csv x3   median "
        f"{med_b:7.2f} s  (runs: " + ", ".join(f"{t:.2f}" for t in t_base) + ")"
    )
    print(
        "napari-m1 report     median "
        f"{med_o:7.2f} s  (runs: " + ", ".join(f"{t:.2f}" for t in t_ours) + ")"
    )
    print(f"ratio report / read_csv = {med_o / med_b:.2f}; target: report <= 5 s")
    if result is not None:
        print(f"{result.summary()}")
        print(
            "figures: scatter/strip plots draw at most 1500 points per panel "
            "(random subset; statistics use every subject)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
