"""The Reader dock's logic without a display: start, messages, submit rules, prefetch,
answers kept and retried when the database cannot take them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event

from napari_m1.annotation import caliper_annotation
from napari_m1.session import ReaderController, ReaderSession, create_study

FULL_FORM = {"hypointensity": 1, "thinning": 0, "als_consistent": 1, "confidence": 4}


def _study(tmp_path: Path, n: int = 3, **kw) -> Path:
    for i in range(n):
        (tmp_path / f"c{i}").mkdir()
    (tmp_path / "cases.csv").write_text(
        "case_id,path\n" + "".join(f"id{i},c{i}\n" for i in range(n)), encoding="utf-8"
    )
    create_study(tmp_path / "st", tmp_path / "cases.csv", ["R1"], seed=3, **kw).close()
    return tmp_path / "st"


def _open(rc: ReaderController, p: str) -> None:
    rc.case_folder(p)
    rc.opened(p)


def _fill(rc: ReaderController) -> None:
    for k, v in FULL_FORM.items():
        assert rc.answer(k, v)


def test_start_resumes_and_the_view_never_says_two_things(tmp_path):
    study = _study(tmp_path, 2)
    rc = ReaderController()
    seen = []
    rc.changed.connect(lambda: seen.append(rc.view()))
    assert rc.start(tmp_path / "nowhere", "R1") is None
    assert "not a napari-m1 study folder" in rc.view().message
    first = rc.start(study, "R1")
    assert rc.view().message == ""  # the old error went with the failed start
    assert first == rc.session.reads()[0].pseudonym
    _open(rc, first)
    v = rc.view()
    assert v.header == f"Case 1 of 2 · {first}" and v.state == "Reader R1 · in progress"
    assert v.form_enabled and v.submit_enabled and v.next_enabled and not v.prev_enabled
    for p in [first, rc.session.reads()[1].pseudonym]:
        if p != first:
            _open(rc, p)
        _fill(rc)
        nxt = rc.submit()
    assert nxt is None and rc.finished
    v = rc.view()
    assert v.header == "All 2 cases submitted — thank you"
    assert "in progress" not in v.state + v.header + v.message
    assert all(not ("All " in x.header and "in progress" in x.state) for x in seen)
    rc.close()
    assert rc.view().header == "No session"


def test_messages_are_cleared_at_a_case_change_and_next_on_the_last_case_says_so(tmp_path):
    study = _study(tmp_path, 3)
    rc = ReaderController()
    p = rc.start(study, "R1")
    _open(rc, p)
    rc.failed("could not load something")
    assert rc.view().level == "error"
    q = rc.step(+1)
    _open(rc, q)
    assert rc.view().message == ""  # not carried over to the next case
    r = rc.step(+1)
    _open(rc, r)
    assert rc.step(+1) is None
    v = rc.view()
    assert v.level == "info" and v.message.startswith("This is the last case of your list.")
    assert "Not submitted yet: case 1, 2." in v.message
    assert rc.pseudonym == r  # nothing moved
    rc.close()


@pytest.mark.parametrize("mode", ["ask", "block"])
def test_submit_with_empty_protocol_slots_asks_or_blocks(tmp_path, mode):
    study = _study(tmp_path, 1, incomplete_protocol=mode)
    rc = ReaderController()
    p = rc.start(study, "R1")
    _open(rc, p)
    rc.answer("hypointensity", 1)
    check = rc.submit_check()
    assert check.error == "Answer thinning, als consistent, confidence before submitting."
    _fill(rc)
    cal = caliper_annotation("L_hand_caliper", [-25, -18, 51], [-25, -16, 51])
    rc.session.save_annotation(p, "L_hand_caliper", cal.to_json(), "add")
    check = rc.submit_check()
    n_slots = len(rc.session.protocol.slot_ids)
    assert len(check.missing_slots) == n_slots - 1 and "L_hand_caliper" not in check.missing_slots
    if mode == "ask":
        assert check.error == ""  # the dock asks the reader with this list
        assert rc.submit() is None and rc.finished
        assert rc.session.reads()[0].locked
    else:
        assert check.error.startswith("This study requires every protocol slot;")
        assert rc.submit() is None and not rc.finished
        assert rc.view().message == check.error
        assert not rc.session.is_locked(p)
        sess = ReaderSession(study, "R1")  # the API refuses as well
        with pytest.raises(Exception, match="requires every protocol slot"):
            sess.submit(p)
        sess.close()
    rc.close()


def _break_db(session: ReaderSession, pragma: str) -> object:
    """Make every new connection of ``session`` refuse writes as SQLite itself does."""
    engine = session._store._db.engine

    def on_connect(dbapi_conn, record):
        if pragma == "full":  # SQLITE_FULL: the database may not grow by one page
            n = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
            dbapi_conn.execute(f"PRAGMA max_page_count = {n}")
        else:  # SQLITE_READONLY
            dbapi_conn.execute("PRAGMA query_only = ON")

    event.listen(engine, "connect", on_connect)
    engine.dispose()
    return on_connect


def _heal_db(session: ReaderSession, listener: object) -> None:
    engine = session._store._db.engine
    event.remove(engine, "connect", listener)
    engine.dispose()


@pytest.mark.parametrize(
    ("broken", "words"), [("readonly", "is read-only"), ("full", "disk full")]
)
def test_an_answer_the_database_cannot_take_is_kept_and_retried(tmp_path, broken, words):
    study = _study(tmp_path, 2)
    rc = ReaderController()
    p = rc.start(study, "R1")
    _open(rc, p)
    rc.answer("thinning", 0)
    if broken == "full":  # fill the last free pages so that one more row needs a new one
        rc.answer("comment", "x" * 3000)
    listener = _break_db(rc.session, broken)
    assert not rc.answer("confidence", 5)
    v = rc.view()
    assert v.level == "error" and words in v.message and "kept on screen and retried" in v.message
    assert v.message.count("\n") == 0
    assert {k: v for k, (v, _) in rc.pending.items()} == {"confidence": 5}
    assert rc.answers()["confidence"] == 5  # what the dock shows
    assert rc.submit_check().error.startswith("Answers are not saved yet")
    assert rc.step(+1) is None and rc.pseudonym == p  # not moving on with unsaved answers
    assert not rc.retry_pending()
    _heal_db(rc.session, listener)
    assert rc.retry_pending() and rc.pending == {}
    assert rc.view().message.startswith("Saved")
    con = sqlite3.connect(study / "study.sqlite")
    assert con.execute("SELECT confidence FROM reads WHERE pseudonym = ?", (p,)).fetchone() == (5,)
    con.close()
    rc.close()


def test_prefetch_loads_the_next_case_once_in_the_background(tmp_path, phantom_case, monkeypatch):
    import shutil

    for i in range(2):
        shutil.copytree(phantom_case, tmp_path / f"c{i}")
    (tmp_path / "cases.csv").write_text("case_id,path\nid0,c0\nid1,c1\n", encoding="utf-8")
    create_study(tmp_path / "st", tmp_path / "cases.csv", ["R1"], seed=1).close()
    import napari_m1.io as io

    calls = []
    real = io.load_case
    monkeypatch.setattr(
        io, "load_case", lambda f, *a, **k: calls.append(Path(f)) or real(f, *a, **k)
    )
    rc = ReaderController()
    p = rc.start(tmp_path / "st", "R1")
    folder = rc.case_folder(p)
    case = rc.load(p, folder)
    assert case.files.label == p  # blinded: the pseudonym, not the folder name
    q = rc.session.reads()[1].pseudonym
    assert rc.next_to_prefetch() is None  # nothing open yet ...
    assert rc.next_to_prefetch(after=p)[0] == q  # ... but the dock names the case shown
    rc.opened(p)
    t = rc.prefetch_next()
    t.join(timeout=60)
    assert len(calls) == 2
    nxt = rc.load(q, rc.case_folder(q))  # served from the prefetch: no third load
    assert len(calls) == 2 and nxt.files.label == q
    assert all(v.sources == [] for v in nxt.volumes)
    rc.close()
