"""Benchmark: ``study verify`` on a large audit log, and what it costs a reader meanwhile.

Run (after `bash scripts/test.sh` has set up .venv):

    .venv/bin/python benchmarks/bench_verify.py [--entries 480000] [--repeats 3]

Builds a study database whose audit log has ``--entries`` entries (opens, answers and
annotation changes of 20 readers, consistent with the stored data), then measures:

* ``verify``: napari-m1's :meth:`Study.verify` (one read snapshot; audit rows read through
  the DB-API cursor; the chain hashed inline over the stored text; stored annotations
  hashed as stored) against the **baseline** of verify as it worked before: every stored
  annotation parsed and re-serialised to JSON, audit and annotation rows fetched through
  SQLAlchemy, ``audit_hash`` and ``json.loads`` called per entry;
* a reader's answer while verify runs: the longest time ``set_answer`` waited, against the
  baseline of verify's reads taking the write lock (``BEGIN IMMEDIATE``, as before).

Medians are printed with their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path


def build(root: Path, n_entries: int) -> Path:
    """A study whose log has about ``n_entries`` entries, consistent with its data."""
    import sqlite3

    from napari_m1.annotation import roi_annotation
    from napari_m1.session import create_study
    from napari_m1.session._common import annotation_digest
    from napari_m1.session._db import audit_hash, canonical_json

    readers = [f"R{i}" for i in range(20)]
    per_read = 8  # open, 4 answers, 3 annotation changes
    n_cases = max(1, n_entries // (per_read * len(readers)))
    for i in range(n_cases):
        (root / "c" / str(i)).mkdir(parents=True)
    (root / "cases.csv").write_text(
        "case_id,path\n" + "".join(f"K{i},c/{i}\n" for i in range(n_cases)), encoding="utf-8"
    )
    create_study(root / "study", root / "cases.csv", readers, seed=1).close()
    con = sqlite3.connect(root / "study" / "study.sqlite")
    seq, prev = con.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    audit, anns, answers = [], [], []
    t = "2024-05-01T10:00:00.000+00:00"
    slots = ("L_hand_roi", "R_hand_roi", "L_foot_roi")
    for read_id, reader, pseudo in con.execute("SELECT read_id, reader, pseudonym FROM reads"):
        events = [("open", "{}")]
        for f, v in (("hypointensity", 1), ("thinning", 0), ("als_consistent", 1)):
            events.append(("answer", json.dumps({"field": f, "value": v}, sort_keys=True)))
        events.append(("answer", json.dumps({"field": "confidence", "value": 4}, sort_keys=True)))
        for k, slot in enumerate(slots):
            x = -25.0 if slot.startswith("L") else 25.0
            a = roi_annotation(slot, [x, -18 + k, 51], [1.1, 0, 0], [0, 1.1, 0]).to_json()
            anns.append((read_id, slot, canonical_json(a), t))
            det = {"action": "add", "deleted": False, "digest": annotation_digest(a), "slot": slot}
            events.append(("annotation", json.dumps(det, sort_keys=True)))
        answers.append((read_id,))
        for ev, det in events:
            seq += 1
            h = audit_hash(prev, seq, t, reader, ev, pseudo, det)
            audit.append((seq, t, reader, ev, pseudo, det, prev, h))
            prev = h
    con.executemany("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)", audit)
    con.executemany("INSERT INTO annotations VALUES (?,?,?,?)", anns)
    con.executemany(
        "UPDATE reads SET hypointensity=1, thinning=0, als_consistent=1, confidence=4, "
        "status='in_progress' WHERE read_id=?",
        answers,
    )
    con.commit()
    con.close()
    return root / "study"


def _reader_waits(study: Path, stop: threading.Event, waits: list[float]) -> None:
    from napari_m1.session import ReaderSession

    s = ReaderSession(study, "R0")
    p = s.reads()[0].pseudonym
    i = 0
    while not stop.is_set():
        t0 = time.perf_counter()
        s.set_answer(p, "comment", f"c{i}")
        waits.append(time.perf_counter() - t0)
        i += 1
        time.sleep(0.02)
    s.close()


def _chain_before(rows):
    """The chain check as verify did it before: ``audit_hash`` called per entry."""
    from napari_m1.session._db import GENESIS, audit_hash

    problems, prev = [], GENESIS
    for i, (seq, at, actor, event, pseudonym, details, prev_hash, hash_) in enumerate(rows, 1):
        if seq != i:
            problems.append(f"entry {i}: sequence number {seq}")
        if prev_hash != prev:
            problems.append(f"entry {seq}: previous-hash link broken")
        if audit_hash(prev_hash, seq, at, actor, event, pseudonym, details) != hash_:
            problems.append(f"entry {seq} ({event}): content does not match its hash")
        prev = hash_
    return problems


def _fetch_before(conn):
    """Audit rows as verify read them before: a SQLAlchemy select, a tuple per row."""
    import sqlalchemy as sa

    from napari_m1.session._coordinator_store import AUDIT_COLUMNS

    a = sa.table("audit", *(sa.column(n) for n in AUDIT_COLUMNS))
    return [tuple(r) for r in conn.execute(sa.select(*a.c).order_by(a.c.seq))]


def timed_verify(study: Path, *, old: bool) -> tuple[float, float, bool]:
    """(verify seconds, longest reader wait during it, ok)."""
    from napari_m1.session import Study, _verify
    from napari_m1.session import _coordinator_store as _cs
    from napari_m1.session._common import annotation_digest

    st = Study(study)
    if old:  # the previous verify: re-serialise every annotation, reads lock writers,
        # rows through SQLAlchemy, audit_hash() and json.loads() per entry
        saved = (_verify._digest, _verify._check_chain, _verify._loads)
        saved_cs = (_cs._fetch_audit, _cs._fetch_annotations)
        _verify._digest = lambda text, logged: annotation_digest(json.loads(text)) == logged
        _verify._check_chain = _chain_before
        _verify._loads = json.loads
        _cs._fetch_audit = _fetch_before
        _cs._fetch_annotations = st._store._all_annotations
        st._db.snapshot = st._db.tx  # its reads under the write lock (BEGIN IMMEDIATE)

    stop, waits = threading.Event(), []
    t = threading.Thread(target=_reader_waits, args=(study, stop, waits))
    t.start()
    time.sleep(0.3)
    n0 = len(waits)
    t0 = time.perf_counter()
    res = st.verify()
    dt = time.perf_counter() - t0
    during = waits[n0:]
    stop.set()
    t.join()
    st.close()
    if old:
        _verify._digest, _verify._check_chain, _verify._loads = saved
        _cs._fetch_audit, _cs._fetch_annotations = saved_cs
    return dt, max(during, default=0.0), res.ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=480_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("NAPARI_M1_DATA_DIR", tempfile.mkdtemp(prefix="m1-bench-data-"))
    study = build(Path(tempfile.mkdtemp(prefix="m1-bench-verify-")), args.entries)
    res: dict[str, list[tuple[float, float, bool]]] = {"baseline": [], "napari-m1": []}
    for _ in range(args.repeats):
        for name in res:
            res[name].append(timed_verify(study, old=name == "baseline"))
    from napari_m1.session import Study

    st = Study(study)
    n = st.verify().n_entries
    st.close()
    med = {k: (statistics.median(v[0] for v in r), statistics.median(v[1] for v in r))
           for k, r in res.items()}  # fmt: skip
    assert all(ok for r in res.values() for *_, ok in r)
    for k, (dt, wait) in med.items():
        print(f"{k:10s} verify {dt:6.2f} s; longest reader answer during it {wait * 1000:7.0f} ms")
    (bt, bw), (nt, nw) = med["baseline"], med["napari-m1"]
    print(
        f"study verify, {n} audit entries: median {nt:.2f} s (baseline {bt:.2f} s, ratio "
        f"{nt / bt:.2f}); reader answer during verify: {nw * 1000:.0f} ms (baseline "
        f"{bw * 1000:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
