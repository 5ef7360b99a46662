"""One batch task, run where the scheduler puts it (this process or a dask worker).

:func:`execute_task` is a plain top-level function of picklable arguments, so
dask.distributed can ship it to any worker. Its outputs are written atomically in
the task's own folder, and its record (inputs fingerprint, outputs' hashes, times)
last: a task killed half-way leaves no record, and ``--resume`` redoes it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["RECORD_NAME", "execute_task", "record_matches"]

RECORD_NAME = "record.json"
MEASURE_CSV = "measurements.csv"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _one_line(exc: BaseException) -> str:
    from ..errors import M1Error

    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, M1Error):
        return msg or type(exc).__name__
    # A bug, not bad input: keep the type and where it happened.
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(exc).__name__}: {msg}{where}"


def _measure(task: dict[str, Any], folder: Path, timings: dict[str, float]) -> dict[str, Any]:
    t0 = time.perf_counter()
    from ..annotation import Annotation, AnnotationSet, load_annotations
    from ..io import load_case
    from ..measure import case_fingerprint_of, engine_for_case, write_measurements_csv
    from ..protocol import get_protocol

    timings["import_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    case = load_case(task["case_dir"])
    if task.get("label"):
        case.files.label = task["label"]
    timings["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if "annotations_file" in task:
        annset = load_annotations(task["annotations_file"], case=case_fingerprint_of(case))
    else:
        proto = get_protocol(task["protocol"])
        annset = AnnotationSet(proto, case_fingerprint_of(case), task.get("reader", ""))
        annset.items = {
            a.slot: a
            for a in (
                Annotation(**{**d, "points_ras": tuple(map(tuple, d["points_ras"]))})
                for d in task["annotations"]
            )
        }
    engine = engine_for_case(case, annset.protocol, reader=task.get("reader") or annset.reader)
    engine.set_all(annset.items.values())
    rows = engine.rows()
    timings["measure_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_measurements_csv(folder / MEASURE_CSV, rows)
    timings["write_s"] = time.perf_counter() - t0
    return {"rows": len(rows), "outputs": [MEASURE_CSV]}


def _qsm(task: dict[str, Any], folder: Path, timings: dict[str, float]) -> dict[str, Any]:
    t0 = time.perf_counter()
    from ..qsm import OUTPUT_FILES, PRESETS, load_case_input, run_qsm, write_qsm_outputs

    timings["import_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    params = task.get("params", {})
    inp = load_case_input(task["case_dir"], b0_tesla=params.get("b0_tesla"))
    timings["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = run_qsm(inp, PRESETS[params.get("preset", "default")])
    timings["qsm_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_qsm_outputs(res, folder, affine=inp.affine, source=dict(inp.source))
    timings["write_s"] = time.perf_counter() - t0
    return {"outputs": [n for n in (*OUTPUT_FILES, "qsm.json") if (folder / n).is_file()]}


_STEPS = {"measure": _measure, "qsm": _qsm}


def execute_task(task: dict[str, Any], out_dir: str, inputs: dict[str, Any], run_id: str) -> dict:
    """Run one task; never raises for a failing case (the result says why).

    Parameters
    ----------
    task : dict
        From :mod:`napari_m1.batch._plan`.
    out_dir : str
        The batch's output folder; the task writes into ``out_dir/<task key>/``.
    inputs : dict
        The task's input fingerprint, stored in its record.
    run_id : str
        Which batch run executed it (kept in the record: ``--resume`` never redoes a
        task whose record matches).

    Returns
    -------
    dict
        ``key``, ``status`` (``ok``/``failed``), ``reason``, ``outputs`` (name -> sha256),
        ``timings_s``, ``pid``.
    """
    from .._atomic import atomic_write_text
    from ..formats import BATCH_RECORD_SCHEMA
    from ._plan import sha256_file

    folder = Path(out_dir) / task["key"]
    timings: dict[str, float] = {}
    started = _now()
    result: dict[str, Any] = {"key": task["key"], "step": task["step"], "pid": os.getpid()}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        info = _STEPS[task["step"]](task, folder, timings)
    except Exception as exc:  # one case failing never stops the others
        return {**result, "status": "failed", "reason": _one_line(exc), "timings_s": timings}
    outputs = {name: sha256_file(folder / name) for name in info.pop("outputs")}
    record = {
        "schema": BATCH_RECORD_SCHEMA,
        "key": task["key"],
        "step": task["step"],
        "case_id": task["case_id"],
        "source": task.get("source", ""),
        "inputs": inputs,
        "outputs": outputs,
        "run_id": run_id,
        "started_at_utc": started,
        "finished_at_utc": _now(),
        "timings_s": timings,
        **info,
    }
    atomic_write_text(folder / RECORD_NAME, json.dumps(record, indent=1, sort_keys=True))
    return {**result, "status": "ok", "reason": "", "outputs": outputs, "timings_s": timings}


def record_matches(out_dir: str | os.PathLike[str], key: str, inputs: dict[str, Any]) -> bool:
    """True when ``key``'s record exists, was made from these inputs, and its outputs are
    still there unchanged (so ``--resume`` may skip the task)."""
    from ._plan import sha256_file

    folder = Path(out_dir) / key
    try:
        rec = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(rec, dict) or rec.get("inputs") != inputs:
        return False
    outputs = rec.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return False
    for name, digest in outputs.items():
        f = folder / name
        if not f.is_file() or sha256_file(f) != digest:
            return False
    return True
