"""Answer-save latency of a reader: SQLite vs PostgreSQL, 1 and 4 concurrent readers.

    .venv/bin/python benchmarks/bench_study_db.py [--saves 200]

Starts a throw-away PostgreSQL server on 127.0.0.1 (tests/pgserver.py; installs Debian's
postgresql when missing), creates the same study on both backends, and times
``ReaderSession.set_answer`` (one committed transaction with its audit entry) from the
reader's side: one reader alone, then 4 reader processes saving at once. Prints the
median and p99 in ms of each, and PostgreSQL / SQLite ratios, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

CHILD = r"""
import json, sys, time
from napari_m1.session import ReaderSession
study, reader, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rs = ReaderSession(study, reader)
p = rs.reads()[0].pseudonym
rs.open_read(p)
out = []
for i in range(n):
    t0 = time.perf_counter()
    rs.set_answer(p, "comment", f"{reader} {i}")
    out.append(time.perf_counter() - t0)
rs.close()
print(json.dumps(out))
"""


def _study(root: Path, url_for) -> Path:
    from napari_m1.session import _setup as setup
    from napari_m1.session import create_study

    (root / "data" / "c0").mkdir(parents=True, exist_ok=True)
    (root / "cases.csv").write_text("case_id,path\nID0,data/c0\n", encoding="utf-8")
    if url_for is not None:
        setup.default_database_url = url_for
    study = root / "study"
    create_study(study, root / "cases.csv", ["R1", "R2", "R3", "R4"], seed=1).close()
    return study


def _run(study: Path, readers: list[str], n: int, env: dict[str, str]) -> list[float]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(study), r, str(n)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for r in readers
    ]
    lat: list[float] = []
    for p in procs:
        out, _ = p.communicate(timeout=1800)
        lat.extend(json.loads(out.strip().splitlines()[-1]))
    return lat


def _fmt(lat: list[float]) -> tuple[float, float]:
    lat = sorted(lat)
    return 1000 * statistics.median(lat), 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--saves", type=int, default=200, help="saves per reader")
    args = ap.parse_args()
    from pgserver import start_server

    srv = start_server()
    env = dict(os.environ, **srv.env())
    os.environ.update(srv.env())
    try:
        with tempfile.TemporaryDirectory(prefix="m1-bench-db-") as tmp:
            results = {}
            for backend in ("sqlite", "postgresql"):
                root = Path(tmp) / backend
                url_for = None
                if backend == "postgresql":
                    url_for = lambda d: srv.create_database("bench_" + str(time.time_ns()))  # noqa: E731
                study = _study(root, url_for)
                for k in (1, 4):
                    readers = ["R1", "R2", "R3", "R4"][:k]
                    results[(backend, k)] = _fmt(_run(study, readers, args.saves, env))
            for k in (1, 4):
                s_med, s_p99 = results[("sqlite", k)]
                p_med, p_p99 = results[("postgresql", k)]
                print(f"{k} reader(s): SQLite median {s_med:.1f} ms, p99 {s_p99:.1f} ms | "
                      f"PostgreSQL median {p_med:.1f} ms, p99 {p_p99:.1f} ms | "
                      f"ratio {p_med / s_med:.2f}x")  # fmt: skip
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
