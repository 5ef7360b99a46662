"""Worker for tests/test_crash_safety.py: one reader's scripted session, killable at any time.

Run as ``python _crash_worker.py STUDY_DIR JOURNAL_DIR``: a fork server (see
:func:`serve`) so that a restart costs milliseconds, not the ~0.5 s of importing
numpy and SQLAlchemy. Each forked child opens a fresh
:class:`~napari_m1.session.ReaderSession` and works through the reader's list: for
every read the scripted operations of :func:`read_ops` (open, answers, annotation
add/edit/delete, active time, submit). Before each call it notes the call (an ``intent`` line, not
fsync'ed); after each call returns (its transaction committed) it appends one
JSON line describing the operation to ``JOURNAL_DIR/<reader>.jsonl`` and fsyncs it.

On start it resumes from the store alone: :meth:`ReaderSession.resume_point` gives
the read, and the read's stored state is matched against the scripted states to
find how many of its operations are already committed. The journal only gets a
catch-up line when the store is one operation ahead of it (killed between a commit
and its journal line). The test imports this module for the script and the state
model, so worker and checker agree on both.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

ANSWERS = ("hypointensity", "thinning", "als_consistent", "confidence")
CALIPER, ROI = "L_hand_caliper", "R_hand_roi"
_T = "2024-05-0{d}T10:00:00.000+00:00"


def _caliper(n: int, version: int) -> dict[str, Any]:
    from napari_m1.annotation import Annotation

    x = -25.0 - 0.25 * n
    p2 = (x + 0.5 * version, -16.0 - 0.125 * n, 51.0)
    ann = Annotation(
        CALIPER,
        "caliper",
        ((x, -18.0, 51.0), p2),
        author="crash-worker",
        created_at=_T.format(d=1),
        modified_at=_T.format(d=1 + version),
        source="placed" if version == 0 else "edited",
    )
    return ann.to_json()


def _roi(n: int) -> dict[str, Any]:
    from napari_m1.annotation import Annotation

    c = (25.0 + 0.5 * n, -18.0, 51.0)
    pts = (c, (c[0] + 1.125, c[1], c[2]), (c[0], c[1] + 1.125, c[2]))
    ann = Annotation(ROI, "roi", pts, "crash-worker", _T.format(d=1), _T.format(d=1))
    return ann.to_json()


def read_ops(read_no: int) -> list[dict[str, Any]]:
    """The scripted operations of a reader's ``read_no``-th read (deterministic)."""
    n = read_no
    return [
        {"op": "open"},
        {"op": "answer", "field": "hypointensity", "value": n % 2},
        {"op": "answer", "field": "confidence", "value": 1 + n % 5},
        {"op": "annotation", "slot": CALIPER, "data": _caliper(n, 0), "action": "add"},
        {"op": "answer", "field": "thinning", "value": (n + 1) % 2},
        {"op": "annotation", "slot": ROI, "data": _roi(n), "action": "add"},
        {"op": "time", "seconds": 7.25 + n},
        {"op": "annotation", "slot": CALIPER, "data": _caliper(n, 1), "action": "edit"},
        {"op": "answer", "field": "als_consistent", "value": n % 2},
        {"op": "answer", "field": "comment", "value": f"read {n}: Ödem? — unclear"},
        {"op": "annotation", "slot": ROI, "data": None, "action": "delete"},
        {"op": "answer", "field": "confidence", "value": 1 + (n + 2) % 5},
        {"op": "time", "seconds": 3.5},
        {"op": "submit"},
    ]


def initial_state() -> dict[str, Any]:
    """A read that was never opened."""
    return {
        "status": "not_started",
        "locked": False,
        **dict.fromkeys(ANSWERS),
        "comment": "",
        "active_time_s": 0.0,
        "annotations": {},
    }


def apply_op(state: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    """The state a read has after ``op`` (a new dict; the model the store must follow)."""
    s = {**state, "annotations": dict(state["annotations"])}
    kind = op["op"]
    if kind == "open":
        if s["status"] == "not_started":
            s["status"] = "in_progress"
    elif kind == "answer":
        s[op["field"]] = op["value"]
    elif kind == "annotation":
        if op["data"] is None:
            s["annotations"].pop(op["slot"], None)
        else:
            s["annotations"][op["slot"]] = op["data"]
    elif kind == "time":
        s["active_time_s"] += op["seconds"]
    elif kind == "submit":
        s["status"], s["locked"] = "submitted", True
    else:
        raise ValueError(kind)
    return s


def scripted_states(read_no: int) -> list[dict[str, Any]]:
    """``states[j]``: the read's state after its first ``j`` operations (all distinct)."""
    states = [initial_state()]
    for op in read_ops(read_no):
        states.append(apply_op(states[-1], op))
    keys = [json.dumps(s, sort_keys=True) for s in states]
    assert len(set(keys)) == len(keys), "scripted states must be distinct to resume"
    return states


def stored_state(sess: Any, pseudonym: str) -> dict[str, Any]:
    """A read's state as the store has it (public session API + the stored active time)."""
    info = next(r for r in sess.reads() if r.pseudonym == pseudonym)
    ans = sess.answers(pseudonym)
    return {
        "status": info.status,
        "locked": info.locked,
        **{k: ans[k] for k in ANSWERS},
        "comment": ans["comment"],
        "active_time_s": sess.active_time_s(pseudonym),
        "annotations": {a["slot"]: a for a in sess.annotations(pseudonym)},
    }


def _run(sess: Any, pseudonym: str, op: dict[str, Any]) -> None:
    kind = op["op"]
    if kind == "open":
        sess.open_read(pseudonym)
    elif kind == "answer":
        sess.set_answer(pseudonym, op["field"], op["value"])
    elif kind == "annotation":
        sess.save_annotation(pseudonym, op["slot"], op["data"], op["action"])
    elif kind == "time":
        sess.add_active_time(pseudonym, op["seconds"])
    elif kind == "submit":
        sess.submit(pseudonym)


class Journal:
    """Append-only JSON Lines, each line written with one ``write`` and fsync'ed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.last: dict[int, int] = {}  # read_no -> last journaled step
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read()
            keep = data[: data.rfind(b"\n") + 1]  # drop a torn last line
            if keep != data:
                with open(path, "r+b") as f:
                    f.truncate(len(keep))
            for line in keep.decode("utf-8").splitlines():
                rec = json.loads(line)
                if "intent" not in rec:
                    self.last[rec["read_no"]] = rec["step"]
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def intent(self, read_no: int, step: int) -> None:
        """Note the call about to be made (not fsync'ed: only tells the test what was running)."""
        os.write(self.fd, (json.dumps({"intent": [read_no, step]}) + "\n").encode())

    def add(self, read_no: int, pseudonym: str, step: int, op: dict[str, Any]) -> None:
        rec = {"read_no": read_no, "pseudonym": pseudonym, "step": step, "op": op}
        os.write(self.fd, (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
        os.fsync(self.fd)
        self.last[read_no] = step


def work(study_dir: str, journal_dir: str, reader: str) -> int:
    """Resume ``reader``'s session from the store and run it to the end; exit status."""
    from napari_m1.session import ReaderSession

    journal = Journal(os.path.join(journal_dir, f"{reader}.jsonl"))
    sess = ReaderSession(study_dir, reader)
    # the store can be one op ahead of the journal (killed between a commit and its
    # journal line): only in the read of the op after the last journaled one
    n = max(journal.last, default=1)
    if n in journal.last and journal.last[n] == len(read_ops(n)):
        n += 1
    info = next((r for r in sess.reads() if r.read_no == n), None)
    if info is not None:
        states = scripted_states(n)
        cur = stored_state(sess, info.pseudonym)
        if cur not in states:
            print(f"read {n}: stored state matches no scripted state: {cur}", file=sys.stderr)
            return 3
        done, last = states.index(cur), journal.last.get(n, 0)
        if done < last or done > last + 1:
            print(f"read {n}: store at step {done}, journal at {last}", file=sys.stderr)
            return 4
        if done == last + 1:
            journal.add(n, info.pseudonym, done, read_ops(n)[done - 1])
    print("ready", flush=True)
    while (rp := sess.resume_point()) is not None:
        p, n = rp.pseudonym, rp.read_no
        ops = read_ops(n)
        done = scripted_states(n).index(stored_state(sess, p))  # what the store has
        if done >= 1:
            sess.open_read(p)  # reopening after a restart, as the dock does
        for step in range(done + 1, len(ops) + 1):
            journal.intent(n, step)
            _run(sess, p, ops[step - 1])
            journal.add(n, p, step, ops[step - 1])
    sess.close()
    print("done", flush=True)
    return 0


def serve(study_dir: str, journal_dir: str) -> None:
    """Fork server: numpy and SQLAlchemy are imported once, every session is a fresh child.

    Protocol on stdin/stdout, one line each: the test sends a reader id; the child
    prints ``ready`` (or ``failed``) and later ``done``; the test sends ``kill``
    (SIGKILL now) or ``wait``; this server reaps the child (so its pid cannot be
    reused before the kill) and prints ``exit <status>`` (negative: the signal).
    """
    import signal
    import traceback

    import sqlalchemy  # noqa: F401 - imported once, before forking

    import napari_m1.annotation
    import napari_m1.session  # noqa: F401

    while reader := sys.stdin.readline().strip():
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = work(study_dir, journal_dir, reader)
            except BaseException:
                traceback.print_exc()
            finally:
                if code:
                    print("failed", flush=True)
                sys.stderr.flush()
                os._exit(code)
        if sys.stdin.readline().strip() == "kill":
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


def unblind(study_dir: str, key_csv: str, out: str, kill_after_publish: bool) -> None:
    """Run ``Study.unblind``; with ``kill_after_publish`` SIGKILL this process the moment
    the output file has been renamed into place (before the completion entry)."""
    import signal

    import napari_m1.session._coordinator as coordinator
    from napari_m1.session import Study

    if kill_after_publish:
        real = coordinator.atomic_write_text

        def write_then_die(*args: Any, **kwargs: Any) -> Any:
            real(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)

        coordinator.atomic_write_text = write_then_die
    st = Study(study_dir)
    print("ready", flush=True)
    st.unblind(key_csv, out)
    st.close()


if __name__ == "__main__":
    if sys.argv[1] == "--unblind":
        unblind(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "kill")
    else:
        serve(sys.argv[1], sys.argv[2])
