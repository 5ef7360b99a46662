"""Cohort re-measurement: ``napari-m1 batch --workers 2`` vs one ``napari-m1 measure``
process per case, measured in the same run on the same cohort.

    .venv/bin/python benchmarks/bench_batch.py [--cases 100] [--repeats 1]

The cohort is the phantom (16 slices) hard-linked under N labels with annotations at
the truth positions (tests/data/cohort.py). Prints the wall time of each side, their
ratio, and the per-case cost of the batch broken into import, load, measure and write
(medians of the task records).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "data"))
from cohort import make_cohort


def _baseline(cases_csv: Path, out: Path) -> float:
    root = cases_csv.parent
    rows = cases_csv.read_text(encoding="utf-8").splitlines()[1:]
    t0 = time.perf_counter()
    for line in rows:
        cid, path, ann = line.split(",")
        subprocess.run(
            [sys.executable, "-m", "napari_m1.cli", "measure", str(root / path),
             str(root / ann), "--out", str(out / f"{cid}.csv")],
            check=True, capture_output=True,
        )  # fmt: skip
    return time.perf_counter() - t0


def _batch(cases_csv: Path, out: Path, workers: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "napari_m1.cli", "batch", "measure", "--cases", str(cases_csv),
         "--out", str(out), "--workers", str(workers), "--no-progress"],
        check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="m1-bench-batch-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        cases_csv = make_cohort(root / "cohort", args.cases)
        print(f"cohort: {args.cases} cases written in {time.perf_counter() - t0:.1f} s")
        base, batch = [], []
        for k in range(args.repeats):
            (root / f"base{k}").mkdir()
            base.append(_baseline(cases_csv, root / f"base{k}"))
            batch.append(_batch(cases_csv, root / f"batch{k}", args.workers))
        timings = [
            json.loads(f.read_text())["timings_s"]
            for f in (root / "batch0" / "measure").glob("*/record.json")
        ]
        b, s = statistics.median(base), statistics.median(batch)
        print(f"baseline: {args.cases} sequential `napari-m1 measure` processes: {b:.1f} s "
              f"({b / args.cases:.2f} s/case)")  # fmt: skip
        print(f"batch --workers {args.workers}: {s:.1f} s ({s / args.cases:.2f} s/case)")
        for part in ("import_s", "load_s", "measure_s", "write_s"):
            vals = [t[part] for t in timings if part in t]
            if vals:
                print(f"  per case {part[:-2]:>7}: median {1000 * statistics.median(vals):.0f} ms")
        print(f"batch vs sequential measure: {s / b:.2f}x the time ({b / s:.1f}x faster)")


if __name__ == "__main__":
    main()
