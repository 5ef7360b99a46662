"""``napari-m1 batch STEPS --cases CASES.csv | --study STUDY_DIR | --bids ROOT --out OUT_DIR``.

Registered by :mod:`napari_m1.cli` through :func:`register`. Exit status 0 when every
task succeeded, 1 when some failed (listed in ``OUT_DIR/failures.csv``), 2 for
unusable options or inputs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register"]

_HELP = "re-measure (and reconstruct) every case of a cohort or study, on this machine or dask"


def _run(args: argparse.Namespace) -> int:
    from . import plan_from_bids, plan_from_cases_csv, plan_from_study, run_batch

    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if args.cases:
        tasks = plan_from_cases_csv(args.cases, steps, reader=args.reader)
    elif args.bids:
        tasks = plan_from_bids(args.bids, steps, reader=args.reader)
    else:
        tasks = plan_from_study(args.study, steps)
    params = {}
    if "qsm" in steps:
        params = {"preset": args.preset, "b0_tesla": args.b0}
    res = run_batch(
        tasks,
        args.out,
        workers=args.workers,
        scheduler=args.scheduler,
        resume=args.resume,
        params=params,
        progress=not args.no_progress,
    )
    print(f"napari-m1 batch: {res.summary()}")
    if res.measurements_csv is not None:
        print(f"measurements: {res.measurements_csv}")
    if res.failed:
        for f in res.failed[:10]:
            print(f"failed: {f['task']}: {f['reason']}", file=sys.stderr)
        more = len(res.failed) - 10
        print(
            f"{len(res.failed)} task(s) failed"
            + (f" ({more} more not shown)" if more > 0 else "")
            + f"; see {res.failures_csv}",
            file=sys.stderr,
        )
        return 1
    return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``batch`` to ``subparsers``."""
    p = subparsers.add_parser("batch", help=_HELP, description=_HELP + ". See docs/batch.md.")
    p.add_argument("steps", help="comma-separated steps: measure, qsm")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--cases", metavar="CSV", help="case_id,path[,annotations] (relative paths)")
    src.add_argument("--study", metavar="STUDY_DIR", help="every submitted read of a study")
    src.add_argument(
        "--bids",
        metavar="BIDS_ROOT",
        help="every subject/session with a MEGRE (annotations from derivatives/napari-m1/)",
    )
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="output folder")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=int, default=1, help="local dask workers (1: run in this process)"
    )
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing dask scheduler")
    p.add_argument("--resume", action="store_true", help="reuse tasks whose record matches")
    p.add_argument("--reader", default="", help="reader id for the rows (default: the file's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--preset", choices=("fast", "default"), default="default", help="QSM preset (qsm step)"
    )
    p.add_argument("--b0", type=float, metavar="TESLA", help="field strength (qsm step)")
    p.set_defaults(func=_run)
    return p
