"""Hostile inputs: every command either succeeds or says what is wrong in one line.

Each input of :mod:`_hostile_inputs` (damaged case folders, NIfTI headers, JSON
sidecars, case.json, annotation files, cases.csv, readings/clinical CSVs, outputs
that are inputs) runs ``napari-m1`` in a child process forked from this
pre-imported one, under an address-space cap. For every input:

* no traceback; exit status 0, or 2 with exactly one ``napari-m1: error:`` line
  (naming the file where the input says so);
* no partial output: on failure no file appears anywhere in the input's folder,
  on success only the declared output does;
* every input file is byte-identical afterwards.

A handful run through the real ``napari-m1`` executable too.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from hostile import INPUTS, Hostile, Work, write_base

pytestmark = pytest.mark.slow

#: Address space a child may add to the parent's (bytes): far below what an
#: unclipped 250 mm ROI (4.3 GiB) or a 100000^3 header would take.
MEMORY_BUDGET = 1536 << 20
TIMEOUT_S = 120


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    b = tmp_path_factory.mktemp("hostile-base")
    write_base(b)
    # the heavy modules the commands import, imported once here so children fork warm
    import napari_m1.cli
    import napari_m1.io
    import napari_m1.measure
    import napari_m1.session
    import napari_m1.stats._report  # noqa: F401

    return b


@dataclass
class Outcome:
    rc: int | None
    out: str
    err: str


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _child(argv: list[str], so: str, se: str, cap: int) -> None:  # pragma: no cover (child)
    import resource

    for fd, path in ((1, so), (2, se)):
        f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(f, fd)
        os.close(f)
    # like a real process: strict stdout, backslash-escaping stderr
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace"
    )
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    rc = 1
    try:
        from napari_m1.cli import main

        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def run_forked(argv: list[str], logs: Path) -> Outcome:
    """``napari-m1 argv`` in a forked child under an address-space cap."""
    logs.mkdir(parents=True, exist_ok=True)
    so, se = logs / "stdout", logs / "stderr"
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_child, args=(argv, str(so), str(se), _vm_size() + MEMORY_BUDGET))
    p.start()
    p.join(TIMEOUT_S)
    if p.is_alive():
        p.kill()
        p.join()
        return Outcome(None, so.read_text(errors="replace"), "timed out")
    return Outcome(p.exitcode, so.read_text(errors="replace"), se.read_text(errors="replace"))


def snapshot(root: Path) -> dict[bytes, str]:
    """Every file (sha256) and folder (``dir``) under ``root``; symlinks by target."""
    snap: dict[bytes, str] = {}
    for dirpath, dirs, files in os.walk(os.fsencode(root)):
        for d in dirs:
            full = os.path.join(dirpath, d)
            snap[full] = (
                "link:" + os.fsdecode(os.readlink(full)) if os.path.islink(full) else "dir"
            )
        for f in files:
            full = os.path.join(dirpath, f)
            if os.path.islink(full):
                snap[full] = "link:" + os.fsdecode(os.readlink(full))
            else:
                with open(full, "rb") as fh:
                    snap[full] = hashlib.sha256(fh.read()).hexdigest()
    return snap


def check(spec: Hostile, w: Work, argv: list[str], res: Outcome, before: dict, after: dict):
    """The suite's promises for one input; returns a list of broken ones."""
    bad = []
    err_lines = res.err.strip().splitlines()
    errors = [ln for ln in err_lines if ln.startswith("napari-m1: error:")]
    if "Traceback" in res.err or res.rc not in (0, 2):
        bad.append(f"exit {res.rc} with stderr:\n{res.err[-3000:]}")
    elif spec.expect is not None and res.rc != spec.expect:
        bad.append(f"exit {res.rc}, expected {spec.expect}: {res.err.strip()[-500:]}")
    if res.rc == 2:
        usage = err_lines and err_lines[-1].startswith("napari-m1") and ": error:" in err_lines[-1]
        if len(errors) != 1 and not usage:
            bad.append(f"not one error line: {err_lines[-5:]}")
        if spec.match and not any(spec.match in ln for ln in err_lines[-1:]):
            bad.append(f"error does not mention {spec.match!r}: {err_lines[-1:]}")
        if any(len(ln) > 1000 for ln in err_lines):
            bad.append("an error line over 1000 characters")
    state = {os.fsencode(p) for p in w.state}
    before = {p: d for p, d in before.items() if p not in state}
    after = {p: d for p, d in after.items() if p not in state}
    for path, digest in before.items():
        if after.get(path) != digest:
            bad.append(f"input changed: {os.fsdecode(path)}")
    out = os.fsencode(w.out)
    new = [p for p in after if p not in before]
    if res.rc == 0:
        stray = [p for p in new if not (p == out or p.startswith(out + b"/"))]
        if stray:
            bad.append(f"files besides the output: {[os.fsdecode(p) for p in stray]}")
    elif new:
        bad.append(f"partial output after a failure: {[os.fsdecode(p) for p in new]}")
    return bad


@pytest.mark.parametrize("spec", INPUTS, ids=[s.id for s in INPUTS])
def test_hostile_input(spec: Hostile, base: Path, tmp_path: Path) -> None:
    w = Work(tmp_path / "in", base)
    w.root.mkdir()
    argv = spec.build(w)
    before = snapshot(w.root)
    res = run_forked(argv, tmp_path / "logs")
    after = snapshot(w.root)
    bad = check(spec, w, argv, res, before, after)
    assert not bad, f"{spec.id} ({spec.why or 'hostile input'}): " + "; ".join(bad)


def test_the_suite_is_big_enough() -> None:
    ids = [s.id for s in INPUTS]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 130
    kinds = {i.split("-")[0] for i in ids}
    assert {"info", "casejson", "hdr", "sidecar", "ann", "roi", "out", "cases", "report"} <= kinds


REAL = [
    "casejson-deep-list",
    "ann-header-case-string",
    "out-is-annotations",
    "measure-case-not-utf8",
    "cases-200kB-id",
    "sidecar-echotime-dict",
]


@pytest.mark.parametrize("input_id", REAL)
def test_real_executable(input_id: str, base: Path, tmp_path: Path) -> None:
    """The same promises through the installed ``napari-m1`` command (a real process)."""
    exe = shutil.which("napari-m1", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("napari-m1 executable not installed next to this Python")
    spec = next(s for s in INPUTS if s.id == input_id)
    w = Work(tmp_path / "in", base)
    w.root.mkdir()
    argv = spec.build(w)
    before = snapshot(w.root)
    env = dict(os.environ, LC_ALL="C.UTF-8")
    p = subprocess.run(
        [os.fsencode(exe), *map(os.fsencode, argv)], capture_output=True, timeout=300, env=env
    )
    res = Outcome(
        p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    )
    bad = check(spec, w, argv, res, before, snapshot(w.root))
    assert not bad, f"{spec.id}: " + "; ".join(bad)
