"""Run a planned batch: skip what ``--resume`` may reuse, run the rest, collect the outputs.

Where tasks run
---------------
* ``workers=1`` and no scheduler: in this process, one after another (no dask needed).
* ``workers=N``: a dask.distributed ``LocalCluster`` of N single-threaded worker
  processes on 127.0.0.1 (its dashboard address is printed when bokeh is installed).
* ``scheduler="tcp://HOST:PORT"``: an existing dask scheduler (a cluster, or SLURM/PBS
  workers started by dask-jobqueue); workers must see the same paths.

Outputs
-------
``OUT_DIR/<step>/<case>/`` per task (its CSV or maps and ``record.json``),
``OUT_DIR/measurements.csv`` (every ``measure`` task's rows, in plan order, in the
measurements schema) and ``OUT_DIR/failures.csv`` (``task,step,case_id,source,reason``).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from ..errors import M1Error, M1InputError
from ._plan import input_fingerprint
from ._tasks import MEASURE_CSV, execute_task, record_matches

__all__ = ["BatchResult", "run_batch"]

log = logging.getLogger(__name__)

FAILURE_COLUMNS = ("task", "step", "case_id", "source", "reason")


@dataclass
class BatchResult:
    """What a batch run did."""

    run_id: str
    n_tasks: int
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)
    measurements_csv: Path | None = None
    failures_csv: Path | None = None
    dashboard: str = ""

    @property
    def ok(self) -> bool:
        """True when no task failed."""
        return not self.failed

    def summary(self) -> str:
        """One line for the terminal."""
        return (
            f"{len(self.done)} done, {len(self.skipped)} reused (--resume), "
            f"{len(self.failed)} failed of {self.n_tasks} task(s)"
        )


def _check_outputs_are_not_inputs(tasks: list[dict[str, Any]], out: Path) -> None:
    out = out.resolve()
    for t in tasks:
        for key in ("case_dir", "annotations_file"):
            if key not in t:
                continue
            p = Path(t[key]).resolve()
            if p == out or out in p.parents or (key == "case_dir" and p in out.parents):
                raise M1InputError(
                    f"--out {out.name} overlaps an input ({t['source']}: {p.name}); "
                    "choose an output folder outside the cases"
                )


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="task",
        file=sys.stderr,
        disable=not enabled,
        mininterval=0.5,
        dynamic_ncols=True,
        desc="napari-m1 batch",
    )


def _run_local(jobs: list[tuple], on_result: Callable[[dict], None]) -> None:
    for args in jobs:
        on_result(execute_task(*args))


def _run_dask(
    jobs: list[tuple],
    on_result: Callable[[dict], None],
    *,
    workers: int,
    scheduler: str | None,
    announce: Callable[[str], None],
) -> str:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise M1Error(
            "--workers > 1 and --scheduler need dask.distributed: "
            "pip install 'napari-m1[batch]' (or use --workers 1)"
        ) from None
    import importlib.util

    has_bokeh = importlib.util.find_spec("bokeh") is not None
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout="30s")
    else:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0" if has_bokeh else None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    dashboard = client.dashboard_link if has_bokeh else ""
    announce(
        f"dask scheduler {client.scheduler.address}"
        + (f"; dashboard {dashboard}" if dashboard else " (install bokeh for the dashboard)")
    )
    try:
        futures = [client.submit(execute_task, *args, pure=False) for args in jobs]
        for fut in as_completed(futures):
            on_result(fut.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return dashboard


def run_batch(
    tasks: list[dict[str, Any]],
    out_dir: str | os.PathLike[str],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    resume: bool = False,
    params: dict[str, Any] | None = None,
    progress: bool = True,
    announce: Callable[[str], None] | None = None,
) -> BatchResult:
    """Run ``tasks`` into ``out_dir``; see the module docstring.

    Parameters
    ----------
    tasks : list of dict
        From :func:`~napari_m1.batch.plan_from_cases_csv` or
        :func:`~napari_m1.batch.plan_from_study`.
    workers : int
        1 runs in this process; more start a dask ``LocalCluster``.
    scheduler : str, optional
        Address of an existing dask scheduler (``tcp://host:port``).
    resume : bool
        Reuse every task whose record matches its current inputs and outputs.
    params : dict, optional
        Step parameters (part of every task's fingerprint).

    Raises
    ------
    M1Error
        Bad options or an output folder that overlaps an input. Failing cases do not
        raise: they are listed in ``failures.csv`` and in the result.
    """
    if workers < 1:
        raise M1InputError(f"--workers must be 1 or more, got {workers}")
    announce = announce or (lambda msg: print(msg, file=sys.stderr))
    out = Path(out_dir)
    _check_outputs_are_not_inputs(tasks, out)
    out.mkdir(parents=True, exist_ok=True)
    params = dict(params or {})
    run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    res = BatchResult(run_id, len(tasks))
    jobs = []
    for t in tasks:
        step_params = params if t["step"] == "qsm" else {}  # measure takes none
        t.setdefault("params", step_params)
        inputs = json.loads(json.dumps(input_fingerprint(t, t["params"]), default=str))
        if resume and record_matches(out, t["key"], inputs):
            res.skipped.append(t["key"])
            continue
        jobs.append((t, str(out), inputs, run_id))
    bar = _progress(len(tasks), progress)
    bar.update(len(res.skipped))
    by_key = {t["key"]: t for t in tasks}

    def on_result(r: dict[str, Any]) -> None:
        if r["status"] == "ok":
            res.done.append(r["key"])
            res.timings.append(r.get("timings_s", {}))
        else:
            t = by_key[r["key"]]
            res.failed.append(
                {
                    "task": r["key"],
                    "step": t["step"],
                    "case_id": t["case_id"],
                    "source": t.get("source", ""),
                    "reason": r["reason"],
                }
            )
        bar.update(1)
        bar.set_postfix(done=len(res.done) + len(res.skipped), failed=len(res.failed))

    try:
        if jobs and (workers > 1 or scheduler):
            res.dashboard = _run_dask(
                jobs, on_result, workers=workers, scheduler=scheduler, announce=announce
            )
        else:
            _run_local(jobs, on_result)
    finally:
        bar.close()
    res.failures_csv = _write_failures(out, res.failed)
    res.measurements_csv = _write_combined(out, tasks, failed={f["task"] for f in res.failed})
    return res


def _write_failures(out: Path, failed: list[dict[str, Any]]) -> Path:
    from ..formats import csv_text

    order = sorted(failed, key=lambda f: f["task"])
    return atomic_write_text(out / "failures.csv", csv_text(order, FAILURE_COLUMNS))


def _write_combined(out: Path, tasks: list[dict[str, Any]], failed: set[str]) -> Path | None:
    """Every measure task's CSV rows, in plan order, under one header."""
    from ..formats import csv_text
    from ..measure import MEASUREMENT_COLUMNS

    keys = [t["key"] for t in tasks if t["step"] == "measure"]
    if not keys:
        return None
    header = csv_text([], MEASUREMENT_COLUMNS)
    parts = [header]
    for key in keys:
        if key in failed:
            continue
        f = out / key / MEASURE_CSV
        if not f.is_file():
            continue
        text = f.read_text(encoding="utf-8")
        first, _, body = text.partition("\n")
        if first + "\n" != header:
            raise M1Error(f"{key}/{MEASURE_CSV}: written by another napari-m1 version; rerun")
        parts.append(body)
    return atomic_write_text(out / "measurements.csv", "".join(parts))
