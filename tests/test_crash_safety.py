"""Crash safety of reader sessions: SIGKILL a scripted session at many random points.

The worker (``tests/_crash_worker.py``) reads through ``ReaderSession`` and journals
(fsync'ed) every operation after its call returned. After every kill this test
opens the database with ``sqlite3`` itself and checks that it is sound and holds
exactly what the journal says is committed — or at most the one scripted operation
after it (killed between a commit and its journal line) — with the audit log
moving in step with the data. The worker then resumes from the store alone.
"""

from __future__ import annotations

import importlib.util
import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from napari_m1.cli import main
from napari_m1.session import Study

WORKER = Path(__file__).with_name("_crash_worker.py")
N_KILLS = 120
SEED = 20240611
MAX_DELAY_S = 0.035
READERS = [f"R{i}" for i in range(1, 31)]  # plenty: a fast machine gets further per run
AUDITED = ("answer", "annotation", "submit")  # scripted ops logged under the same event name


def _load_worker():
    spec = importlib.util.spec_from_file_location("_crash_worker", WORKER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


W = _load_worker()


def _make_study(tmp_path: Path, n_cases: int = 8) -> Path:
    lines = ["case_id,path"]
    for i in range(n_cases):
        (tmp_path / "cases" / f"scan{i:02d}").mkdir(parents=True)
        lines.append(f"case{i:02d},cases/scan{i:02d}")
    (tmp_path / "cases.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    study = tmp_path / "study"
    rc = main(
        ["study", "init", str(study), "--cases", str(tmp_path / "cases.csv"), "--readers",
         ",".join(READERS), "--seed", "5", "--repeat-fraction", "0.25"]
    )  # fmt: skip
    assert rc == 0
    return study


class _Server:
    """The worker's fork server: one child per (re)started reader session."""

    def __init__(self, study: Path, journals: Path) -> None:
        self.err = journals / "worker-stderr.txt"
        self._errf = self.err.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(study), str(journals)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errf,
            text=True,
        )

    def _send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        assert line, f"worker server died: {self.err.read_text()[-3000:]}"
        return line.strip()

    def start(self, reader: str) -> None:
        """Fork a session for ``reader`` and return once it is working."""
        self._send(reader)
        if (line := self._line()) != "ready":
            self._send("wait")
            raise AssertionError(f"worker {line}: {self.err.read_text()[-3000:]}")

    def end(self, *, kill: bool) -> int:
        """SIGKILL the session (or wait for it); its exit status (-9: killed)."""
        self._send("kill" if kill else "wait")
        while not (line := self._line()).startswith("exit "):
            assert line == "done", line
        status = int(line.split()[1])
        assert status in (0, -signal.SIGKILL), f"worker: {self.err.read_text()[-3000:]}"
        return status

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self._errf.close()


def _stored(db: Path, reader: str) -> tuple[str, dict[int, tuple[str, dict]], Counter]:
    """integrity_check, {read_no: (pseudonym, state)} and audit event counts, via sqlite3."""
    con = sqlite3.connect(db)
    try:
        integrity = "\n".join(r[0] for r in con.execute("PRAGMA integrity_check"))
        anns: dict[int, dict] = {}
        for read_id, slot, data in con.execute("SELECT read_id, slot, data FROM annotations"):
            anns.setdefault(read_id, {})[slot] = json.loads(data)
        reads = {}
        for row in con.execute(
            "SELECT read_id, read_no, pseudonym, status, locked, hypointensity, thinning, "
            "als_consistent, confidence, comment, active_time_s FROM reads WHERE reader = ?",
            (reader,),
        ):
            state = {
                "status": row[3],
                "locked": bool(row[4]),
                **dict(zip(W.ANSWERS, row[5:9], strict=True)),
                "comment": row[9],
                "active_time_s": float(row[10]),
                "annotations": anns.get(row[0], {}),
            }
            reads[row[1]] = (row[2], state)
        events = Counter(
            dict(con.execute("SELECT event, count(*) FROM audit WHERE actor = ? GROUP BY event",
                             (reader,)))
        )  # fmt: skip
    finally:
        con.close()
    return integrity, reads, events


def _check(db: Path, journal: Path, reader: str) -> str:
    """Compare the store with the journal; returns where the worker was killed."""
    integrity, reads, events = _stored(db, reader)
    assert integrity == "ok", integrity
    plan = [(n, s) for n in sorted(reads) for s in range(1, len(W.read_ops(n)) + 1)]
    lines = []
    if journal.exists():
        text = journal.read_text(encoding="utf-8")
        lines = [json.loads(x) for x in text[: text.rfind("\n") + 1].splitlines()]
    recs = [r for r in lines if "intent" not in r]
    in_call = bool(lines) and "intent" in lines[-1]
    # the journal is the script's prefix: nothing skipped, nothing done twice
    assert [(r["read_no"], r["step"]) for r in recs] == plan[: len(recs)]
    expected = {n: W.initial_state() for n in reads}
    committed = Counter()
    for r in recs:
        n, op = r["read_no"], r["op"]
        assert op == W.read_ops(n)[r["step"] - 1]
        assert r["pseudonym"] == reads[n][0]
        expected[n] = W.apply_op(expected[n], op)
        committed[op["op"]] += 1
    nxt = plan[len(recs)] if len(recs) < len(plan) else None
    ahead = None
    for n, (_, state) in reads.items():
        if state == expected[n]:
            continue
        # killed after a commit, before its journal line: exactly the next scripted op
        assert nxt is not None and n == nxt[0], f"read {n}: {state} != journal {expected[n]}"
        ahead = W.read_ops(n)[nxt[1] - 1]
        assert state == W.apply_op(expected[n], ahead), f"read {n}: {state}"
        committed[ahead["op"]] += 1
    # every data change was committed together with its audit entry, and only once
    for op in AUDITED:
        assert events[op] == committed[op], (op, events[op], committed[op])
    assert events["refused"] == 0
    if ahead is not None:
        return f"{ahead['op']} (committed, not journaled)"
    if in_call:
        return f"{W.read_ops(nxt[0])[nxt[1] - 1]['op']} (in the call)"
    return "between calls"


def test_sigkill_at_random_points_loses_nothing_committed(tmp_path, record_property):
    t0 = time.monotonic()
    study = _make_study(tmp_path)
    db = study / "study.sqlite"
    journals = tmp_path / "journals"
    journals.mkdir()
    rng = random.Random(SEED)
    kills, where, finished = 0, Counter(), []
    readers = iter(READERS)
    reader = next(readers)
    server = _Server(study, journals)
    try:
        while kills < N_KILLS:
            server.start(reader)
            time.sleep(rng.uniform(0.0, MAX_DELAY_S))
            if server.end(kill=True) == -signal.SIGKILL:
                kills += 1
                where[_check(db, journals / f"{reader}.jsonl", reader)] += 1
                st = Study(study)
                res = st.verify()
                st.close()
                assert res.ok, res.problems
                continue
            _check(db, journals / f"{reader}.jsonl", reader)  # finished before the kill
            finished.append(reader)
            reader = next(readers, None)
            assert reader is not None, f"ran out of readers after {kills} kill points"
        server.start(reader)  # let the interrupted reader finish undisturbed
        assert server.end(kill=False) == 0
        finished.append(reader)
    finally:
        server.close()

    for r in finished:
        _check(db, journals / f"{r}.jsonl", r)
        _, reads, _ = _stored(db, r)
        for n, (_, state) in reads.items():
            assert state == W.scripted_states(n)[-1], (r, n)
    st = Study(study)
    try:
        res = st.verify()
    finally:
        st.close()
    assert res.ok, res.problems
    elapsed = time.monotonic() - t0
    summary = (
        f"{kills} SIGKILL points over {len(finished)} reader session(s) in {elapsed:.1f} s; "
        f"killed: {dict(sorted(where.items()))}"
    )
    print("\n" + summary)
    record_property("kill_points", kills)
    record_property("crash_summary", summary)
    assert kills >= 40, summary


@pytest.mark.parametrize("torn", [False, True])
def test_worker_resumes_from_the_store_alone(tmp_path, torn):
    """No kill: the journal may lag one op (or end in a torn line); the worker catches up."""
    study = _make_study(tmp_path, n_cases=2)
    journals = tmp_path / "journals"
    journals.mkdir()
    server = _Server(study, journals)
    try:
        server.start("R1")
        assert server.end(kill=False) == 0
        jp = journals / "R1.jsonl"
        lines = jp.read_text(encoding="utf-8").splitlines(keepends=True)
        # pretend the last submit was committed but never journaled (or half-journaled)
        jp.write_text("".join(lines[:-1]) + (lines[-1][:20] if torn else ""), encoding="utf-8")
        server.start("R1")
        assert server.end(kill=False) == 0
    finally:
        server.close()
    assert jp.read_text(encoding="utf-8").splitlines(keepends=True) == lines
    assert _check(study / "study.sqlite", jp, "R1") == "between calls"


# ----------------------------------------------------------------------------- unblinding


def _unblind(study: Path, out: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), "--unblind", str(study),
         str(study.parent / "cases.csv"), str(out), mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _coordinator_events(db: Path) -> list[tuple[str, dict]]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT event, details FROM audit WHERE actor = 'coordinator'")
        return [(e, json.loads(d)) for e, d in rows.fetchall()]
    finally:
        con.close()


def test_sigkill_after_the_unblinded_file_appears_is_visible_to_verify(tmp_path, capsys):
    study = _make_study(tmp_path, n_cases=3)
    out = tmp_path / "unblinded.csv"
    proc = _unblind(study, out, "kill")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err
    assert out.is_file()  # the complete file was published ...
    events = _coordinator_events(study / "study.sqlite")
    assert [e for e, _ in events] == ["study_init", "unblind_started"]  # ... after its intent
    assert events[1][1]["file"] == "unblinded.csv"
    st = Study(study)
    res = st.verify()
    st.close()
    assert res.ok  # the log is intact and honest ...
    (warning,) = res.warnings  # ... and says what happened
    assert warning.startswith("unblind started (entry 2, file unblinded.csv), no completion")
    capsys.readouterr()
    assert main(["study", "verify", str(study)]) == 0
    assert "warning: unblind started (entry 2" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_at_random_points_of_unblinding_never_leaves_an_unlogged_file(tmp_path):
    study = _make_study(tmp_path, n_cases=3)
    db = study / "study.sqlite"
    rng = random.Random(SEED)
    seen = Counter()
    for i in range(12):
        out = tmp_path / f"u{i}.csv"
        proc = _unblind(study, out, "run")
        assert proc.stdout.readline().strip() == "ready"  # imports done, study open
        time.sleep(rng.uniform(0.0, 0.05))
        proc.kill()
        proc.communicate(timeout=60)
        started = {d["file"] for e, d in _coordinator_events(db) if e == "unblind_started"}
        done = {d["file"] for e, d in _coordinator_events(db) if e == "unblind"}
        if out.exists():
            assert out.name in started  # a file never exists without its intent entry
        seen["file" if out.exists() else "no file"] += 1
        seen["completed" if out.name in done else "not completed"] += 1
        st = Study(study)
        res = st.verify()
        st.close()
        assert res.ok, res.problems
        n_open = len(started - done)
        assert len(res.warnings) == n_open
    assert sum(seen.values()) == 24, seen
