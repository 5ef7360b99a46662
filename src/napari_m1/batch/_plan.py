"""Batch planning: which tasks a cohort run has, and the fingerprint of each task's inputs.

A task is one step (``measure``, ``qsm``) of one case (or of one study read). It is a
plain, picklable dict so that it can be shipped to a dask worker; its ``inputs``
fingerprint decides whether ``--resume`` may reuse an earlier result.

Fingerprints
------------
* annotation files and stored study annotations: SHA-256 of their bytes/canonical JSON;
* case folders: every file's relative name, size and modification time (ns), and the
  SHA-256 of the small text files (``case.json``, sidecars). Image files are *not*
  hashed: reading every NIfTI of a cohort to hash it costs as much as the step itself;
  a file replaced in place changes its size or mtime;
* the code: SHA-256 of the napari-m1 sources the step runs (protocols, I/O,
  measurement; plus QSM for ``qsm``) and the versions of numpy, scipy and nibabel, so
  a changed protocol, QC rule or method redoes the tasks it affects.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .._files import read_user_text
from ..errors import M1Error, M1InputError

__all__ = [
    "STEPS",
    "case_fingerprint_files",
    "code_fingerprint",
    "input_fingerprint",
    "plan_from_bids",
    "plan_from_cases_csv",
    "plan_from_study",
    "sha256_file",
    "task_key",
]

#: Steps a batch can run, in the order they run for one case.
STEPS: tuple[str, ...] = ("measure", "qsm")
_STEP_SOURCES = {
    "measure": ("protocol.py", "annotation.py", "geometry.py", "formats.py", "io", "measure"),
    "qsm": ("geometry.py", "io", "qsm"),
}
_SMALL_SUFFIXES = (".json", ".txt", ".csv", ".tsv")


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def case_fingerprint_files(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Fingerprint of a case folder (see the module docstring); ``{}`` when it is missing."""
    root = Path(folder)
    if not root.is_dir():
        return {}
    out: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.name.startswith("."):
            continue
        st = p.stat()
        entry: dict[str, Any] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if p.suffix.lower() in _SMALL_SUFFIXES and st.st_size < (1 << 20):
            entry["sha256"] = sha256_file(p)
        out[p.relative_to(root).as_posix()] = entry
    return out


def code_fingerprint(step: str) -> dict[str, str]:
    """Versions and a hash of the napari-m1 sources that ``step`` runs."""
    import nibabel
    import numpy
    import scipy

    from .. import __version__

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for name in _STEP_SOURCES.get(step, ()):
        target = root / name
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
        for f in files:
            if f.is_file():
                h.update(f.relative_to(root).as_posix().encode())
                h.update(f.read_bytes())
    return {
        "napari_m1": __version__,
        "code_sha256": h.hexdigest(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "nibabel": nibabel.__version__,
    }


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text) or "_"


def task_key(step: str, *parts: str) -> str:
    """A task's id and output folder name: ``measure/C001`` or ``measure/R1/M1-ABCDEF``."""
    return "/".join([step, *(_safe(p) for p in parts)])


def _check_steps(steps: Sequence[str]) -> list[str]:
    bad = [s for s in steps if s not in STEPS]
    if bad or not steps:
        raise M1InputError(
            f"unknown step(s) {', '.join(bad) or '(none)'}: choose from {', '.join(STEPS)}"
        )
    return [s for s in STEPS if s in steps]  # run order, no duplicates


def plan_from_cases_csv(
    cases_csv: str | os.PathLike[str], steps: Iterable[str], *, reader: str = ""
) -> list[dict[str, Any]]:
    """Tasks for every row of ``CASES.csv`` (``case_id,path[,annotations]``).

    ``path`` (a case folder) and ``annotations`` (a ``*.m1ann.jsonl``) are relative to
    the CSV. The ``measure`` step needs the ``annotations`` column; a row without one is
    skipped for ``measure`` (it still gets its other steps).

    Raises
    ------
    M1Error
        Unreadable CSV, missing columns, empty or duplicate case ids (CSV line number).
    """
    steps = _check_steps(list(steps))
    p = Path(cases_csv)
    rd = csv.DictReader(io.StringIO(read_user_text(p)))
    cols = [c.strip() for c in (rd.fieldnames or [])]
    missing = [c for c in ("case_id", "path") if c not in cols]
    if missing:
        raise M1Error(f"{p.name}, line 1: missing column(s) {', '.join(missing)}")
    if "measure" in steps and "annotations" not in cols:
        raise M1Error(f"{p.name}, line 1: the measure step needs an 'annotations' column")
    tasks: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for lineno, rec in enumerate(rd, start=2):
        rec = {(k or "").strip(): (v or "").strip() for k, v in rec.items() if k is not None}
        cid = rec.get("case_id", "")
        if not cid:
            raise M1Error(f"{p.name}, line {lineno}: empty case_id")
        if cid in seen:
            raise M1Error(f"{p.name}, line {lineno}: duplicate case_id {cid!r}")
        seen[cid] = lineno
        folder = p.parent / rec.get("path", "")
        for step in steps:
            task: dict[str, Any] = {
                "key": task_key(step, cid),
                "step": step,
                "case_id": cid,
                "case_dir": str(folder.resolve()),
                "label": None,
                "reader": reader,
                "source": f"{p.name}, line {lineno}",
            }
            if step == "measure":
                ann = rec.get("annotations", "")
                if not ann:
                    continue
                task["annotations_file"] = str((p.parent / ann).resolve())
            tasks.append(task)
    if not seen:
        raise M1Error(f"{p.name}: no cases")
    return tasks


def plan_from_bids(
    bids_root: str | os.PathLike[str], steps: Iterable[str], *, reader: str = ""
) -> list[dict[str, Any]]:
    """Tasks for every subject/session of a BIDS dataset with a MEGRE magnitude.

    ``case_id`` is ``sub-<S>[_ses-<T>]``. The ``measure`` step takes the annotation file
    ``derivatives/napari-m1/sub-<S>[/ses-<T>]/*.m1ann.jsonl`` when there is exactly one
    (cases without one get only their other steps).
    """
    import tempfile

    from ..io._bids import write_bids_cases_csv

    root = Path(bids_root).resolve()
    steps = _check_steps(list(steps))
    with tempfile.TemporaryDirectory(prefix="napari-m1-bids-") as tmp:
        cases = Path(tmp) / "cases.csv"
        write_bids_cases_csv(root, cases)
        rows = [line.split(",", 1) for line in cases.read_text("utf-8").splitlines()[1:]]
    lines = ["case_id,path,annotations"]
    for cid, path in rows:
        sub = root / "derivatives" / "napari-m1" / Path(*cid.replace("_ses-", "/ses-").split("/"))
        found = sorted(sub.glob("*.m1ann.jsonl")) if sub.is_dir() else []
        lines.append(f"{cid},{path},{found[0] if len(found) == 1 else ''}")
    with tempfile.TemporaryDirectory(prefix="napari-m1-bids-") as tmp:
        plan_csv = Path(tmp) / "cases.csv"
        plan_csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tasks = plan_from_cases_csv(plan_csv, steps, reader=reader)
    for t in tasks:
        t["source"] = f"{root.name}: {t['case_id']}"
    return tasks


def plan_from_study(
    study_dir: str | os.PathLike[str], steps: Iterable[str]
) -> list[dict[str, Any]]:
    """``measure`` tasks for every *submitted* read of a study (coordinator access).

    Each task carries the read's stored annotations and its pseudonym as the case
    label, exactly as ``napari-m1 study export --measurements`` labels its rows (the
    output stays blinded). Other steps run once per case (labelled by pseudonym).
    """
    from ..session import Study

    steps = _check_steps(list(steps))
    st = Study(study_dir)
    try:
        reads = _submitted_reads(st)
    finally:
        st.close()
    tasks: list[dict[str, Any]] = []
    done_cases: set[str] = set()
    for r in reads:
        for step in steps:
            if step == "measure":
                if not r["annotations"]:
                    continue
                tasks.append(
                    {
                        "key": task_key(step, r["reader"], r["pseudonym"]),
                        "step": step,
                        "case_id": r["pseudonym"],
                        "case_dir": r["path"],
                        "label": r["pseudonym"],
                        "reader": r["reader"],
                        "protocol": r["protocol"],
                        "annotations": r["annotations"],
                        "source": f"read {r['pseudonym']} of {r['reader']}",
                    }
                )
            elif r["case_pseudonym"] not in done_cases:
                tasks.append(
                    {
                        "key": task_key(step, r["case_pseudonym"]),
                        "step": step,
                        "case_id": r["case_pseudonym"],
                        "case_dir": r["path"],
                        "label": r["case_pseudonym"],
                        "reader": "",
                        "source": f"case {r['case_pseudonym']}",
                    }
                )
        done_cases.add(r["case_pseudonym"])
    return tasks


def _submitted_reads(st: Any) -> list[dict[str, Any]]:
    """Every submitted read with its case folder and stored annotations (coordinator)."""
    case_pseudonym = {c["case_id"]: c["pseudonym"] for c in st.cases()}
    annotations = st.annotations_by_read()
    out = []
    for r in st.readings_rows():
        if r["status"] != "submitted":
            continue
        out.append(
            {
                "reader": r["reader"],
                "pseudonym": r["pseudonym"],
                "case_pseudonym": case_pseudonym[r["_case_id"]],
                "path": r["_path"],
                "protocol": st.settings["protocol"],
                "annotations": annotations.get(r["_read_id"], []),
            }
        )
    return out


def input_fingerprint(task: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """What a task's result depends on (compared by ``--resume``)."""
    fp: dict[str, Any] = {
        "case_dir": task["case_dir"],
        "case_files": case_fingerprint_files(task["case_dir"]),
        "label": task.get("label"),
        "reader": task.get("reader", ""),
        "params": params,
        "code": code_fingerprint(task["step"]),
    }
    if "annotations_file" in task:
        f = Path(task["annotations_file"])
        fp["annotations_sha256"] = sha256_file(f) if f.is_file() else None
    if "annotations" in task:
        canon = json.dumps(task["annotations"], sort_keys=True).encode()
        fp["annotations_sha256"] = _sha256_bytes(canon)
    return fp
