"""Studies under accident and attack (issue 8) and the cheaper coordinator commands
(issue 17): the coordinator role, verify on one snapshot, intent-first publishing on a
read-only database, hostile CSV cells, annotations validated on save, one load per case.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from sqlalchemy import event

from napari_m1.annotation import caliper_annotation, roi_annotation
from napari_m1.cli import main
from napari_m1.errors import M1Error
from napari_m1.formats import FORMULA_TRIGGERS, restore_cell
from napari_m1.session import ReaderSession, Study, create_study
from napari_m1.session._coordinator_store import CoordinatorStore

FULL_FORM = {"hypointensity": 1, "thinning": 0, "als_consistent": 1, "confidence": 4}


def _study(root: Path, n: int = 3, readers=("R1", "R2"), ids=None, **kw) -> Path:
    ids = ids or [f"id{i}" for i in range(n)]
    for i in range(len(ids)):
        (root / f"c{i}").mkdir(parents=True, exist_ok=True)
    rows = [[cid, f"c{i}"] for i, cid in enumerate(ids)]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["case_id", "path"], *rows])
    (root / "cases.csv").write_text(buf.getvalue(), encoding="utf-8")
    create_study(root / "st", root / "cases.csv", list(readers), seed=2, **kw).close()
    return root / "st"


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("napari-m1: error: "), err
    return err[0]


def _fill(sess: ReaderSession, p: str, **extra) -> None:
    sess.open_read(p)
    for k, v in {**FULL_FORM, **extra}.items():
        sess.set_answer(p, k, v)


# ----------------------------------------------------------------------------- roles


def test_a_reader_session_exposes_only_the_readers_own_view(tmp_path):
    study = _study(tmp_path)
    sess = ReaderSession(study, "R1")
    public = {n for n in dir(sess) if not n.startswith("_")}
    assert public == {
        "reader", "study_id", "settings", "dir", "protocol", "close", "reads", "resume_point",
        "can_open", "open_read", "case_folder", "is_locked", "active_time_s", "answers",
        "set_answer", "annotations", "save_annotation", "add_active_time", "missing_answers",
        "missing_slots", "submit",
    }  # fmt: skip
    assert not hasattr(sess, "store")
    # not even the private store has a coordinator power or another reader's rows
    powers = ("unlock", "all_reads", "all_annotations", "cases", "audit_rows", "log", "snapshot")
    assert not [p for p in powers if hasattr(sess._store, p)]
    p = sess.reads()[0].pseudonym
    _fill(sess, p)
    sess.submit(p)
    with pytest.raises(M1Error, match="locked"):
        sess.set_answer(p, "confidence", 1)
    sess.close()


def test_coordinator_commands_need_the_coordinator_key(tmp_path, monkeypatch, capsys):
    study = _study(tmp_path)
    st = Study(study)  # same account as init: the key is found in its data folder
    key_file = Path(os.environ["NAPARI_M1_DATA_DIR"]) / "coordinator-keys" / f"{st.study_id}.key"
    st.close()
    assert key_file.is_file() and (key_file.stat().st_mode & 0o777) == 0o600
    key = key_file.read_text().strip()
    assert not any(key in f.read_bytes().decode("latin-1") for f in study.iterdir())
    # another account (another data folder): no key, no coordinator powers
    monkeypatch.setenv("NAPARI_M1_DATA_DIR", str(tmp_path / "reader-account"))
    with pytest.raises(M1Error, match="need this study's coordinator key"):
        Study(study)
    sess = ReaderSession(study, "R1")  # ... while reading works
    p = sess.reads()[0].pseudonym
    _fill(sess, p)
    sess.submit(p)
    sess.close()
    for cmd in (
        ["unlock", str(study), "--reader", "R1", "--pseudonym", p, "--reason", "x"],
        ["export", str(study), "--out", str(tmp_path / "r.csv")],
        ["unblind", str(study), "--key", str(tmp_path / "cases.csv"), "--out",
         str(tmp_path / "u.csv")],
        ["verify", str(study)],
        ["init", str(study), "--cases", str(tmp_path / "cases.csv"), "--readers", "R1",
         "--force"],
    ):  # fmt: skip
        assert main(["study", *cmd]) == 2, cmd
        assert "coordinator key" in _error_line(capsys)
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "u.csv").exists()
    sess = ReaderSession(study, "R1")
    assert sess.is_locked(p)  # still locked: nobody unlocked it
    sess.close()
    # a wrong key is refused; the right key file works from anywhere
    wrong = tmp_path / "wrong.key"
    wrong.write_text("not-the-key\n")
    with pytest.raises(M1Error, match="is not this study's coordinator key"):
        Study(study, coordinator_key=wrong)
    assert main(["study", "verify", str(study), "--coordinator-key", str(key_file)]) == 0


# ----------------------------------------------------------------------------- verify


def _quick_timeout(session: ReaderSession, ms: int = 200) -> None:
    """The reader's connections give up after ``ms`` instead of 30 s when locked out."""

    @event.listens_for(session._store._db.engine, "connect")
    def _busy(dbapi_conn, record):
        dbapi_conn.execute(f"PRAGMA busy_timeout = {ms}")

    session._store._db.engine.dispose()


def test_verify_reads_one_snapshot_and_never_blocks_a_reader(tmp_path, monkeypatch):
    study = _study(tmp_path)
    sess = ReaderSession(study, "R1")
    _quick_timeout(sess)
    p = sess.reads()[0].pseudonym
    _fill(sess, p)
    st = Study(study)
    real = CoordinatorStore._all_reads
    answered = []

    def reader_answers_meanwhile(self, conn):
        # verify has read the audit log; a reader answers before it reads the data
        value = len(answered) % 2
        sess.set_answer(p, "thinning", value)  # must not wait for verify's transaction
        answered.append(value)
        return real(self, conn)

    monkeypatch.setattr(CoordinatorStore, "_all_reads", reader_answers_meanwhile)
    for _ in range(4):
        res = st.verify()
        assert res.ok, res.problems  # the snapshot: log and data from one moment
    monkeypatch.undo()
    assert len(answered) == 4 and sess.answers(p)["thinning"] == answered[-1]
    assert st.verify().ok and st.verify().n_entries == res.n_entries + 1
    st.close()
    sess.close()


def test_verify_while_readers_answer_in_another_thread(tmp_path):
    study = _study(tmp_path, readers=("R1",))
    stop, writing = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    written = [0]

    def answering():
        s = ReaderSession(study, "R1")
        p = s.reads()[0].pseudonym
        try:
            while not stop.is_set():
                s.set_answer(p, "comment", f"note {written[0]}")
                written[0] += 1
                writing.set()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            s.close()

    t = threading.Thread(target=answering)
    t.start()
    st = Study(study)
    try:
        assert writing.wait(30)
        before = written[0]
        results = [st.verify() for _ in range(8)]
        during = written[0] - before
    finally:
        stop.set()
        t.join()
        st.close()
    assert not errors, errors
    assert all(r.ok for r in results), [r.problems for r in results]
    assert during > 0  # the reader really was answering meanwhile


# ----------------------------------------------------------------------------- annotations


def test_save_annotation_validates_and_a_bad_stored_read_does_not_block_export(
    tmp_path, phantom_case, capsys
):
    shutil.copytree(phantom_case, tmp_path / "c0")
    shutil.copytree(phantom_case, tmp_path / "c1")
    (tmp_path / "cases.csv").write_text("case_id,path\na,c0\nb,c1\n", encoding="utf-8")
    create_study(tmp_path / "st", tmp_path / "cases.csv", ["R1"], seed=1).close()
    study = tmp_path / "st"
    sess = ReaderSession(study, "R1")
    p, q = (r.pseudonym for r in sess.reads())
    sess.open_read(p)
    n_audit = len(
        sqlite3.connect(study / "study.sqlite").execute("SELECT * FROM audit").fetchall()
    )
    roi = roi_annotation("L_hand_roi", [-25, -18, 51], [1.1, 0, 0], [0, 1.1, 0]).to_json()
    bad = {
        "2-point ROI": ({**roi, "points_ras": roi["points_ras"][:2]}, "roi needs 3 finite"),
        "unknown key": ({**roi, "colour": "red"}, "unknown key(s) colour"),
        "other slot": ({**roi, "slot": "R_hand_roi"}, "it says slot 'R_hand_roi'"),
        "wrong kind": ({**roi, "kind": "caliper"}, "the slot takes a roi"),
        "no points": ({k: v for k, v in roi.items() if k != "points_ras"}, "missing points_ras"),
    }
    for name, (data, words) in bad.items():
        with pytest.raises(M1Error, match="annotation for L_hand_roi refused") as exc:
            sess.save_annotation(p, "L_hand_roi", data, "add")
        assert words in str(exc.value), (name, str(exc.value))
    with pytest.raises(M1Error, match="protocol m1-7t has no such slot"):
        sess.save_annotation(p, "nose_roi", {**roi, "slot": "nose_roi"}, "add")
    con = sqlite3.connect(study / "study.sqlite")
    assert len(con.execute("SELECT * FROM audit").fetchall()) == n_audit  # nothing logged
    assert con.execute("SELECT count(*) FROM annotations").fetchone() == (0,)
    # good annotations for both reads; then one stored read is damaged behind our back
    cal = caliper_annotation("L_hand_caliper", [-25, -18, 51], [-25, -16, 51]).to_json()
    for x in (p, q):
        sess.open_read(x)
        sess.save_annotation(x, "L_hand_caliper", cal, "add")
        sess.save_annotation(x, "L_hand_roi", roi, "add")
    sess.close()
    broken = json.dumps({**roi, "points_ras": roi["points_ras"][:2]})
    con.execute(
        "UPDATE annotations SET data = ? WHERE slot = 'L_hand_roi' AND read_id = "
        "(SELECT read_id FROM reads WHERE pseudonym = ?)",
        (broken, p),
    )
    con.commit()
    con.close()
    out, meas = tmp_path / "r.csv", tmp_path / "m.csv"
    capsys.readouterr()
    assert main(["study", "export", str(study), "--out", str(out), "--measurements",
                 str(meas)]) == 0  # fmt: skip
    cap = capsys.readouterr()
    (warning,) = cap.err.strip().splitlines()
    assert warning.startswith(f"warning: read {p} of R1: annotation for L_hand_roi refused")
    assert warning.endswith("(not exported)")
    labels = {r["case_label"] for r in csv.DictReader(meas.open(encoding="utf-8"))}
    assert labels == {q}  # the other read is exported in full
    assert "2 case(s) loaded" in cap.out


def test_export_measurements_loads_each_case_once(tmp_path, phantom_case, monkeypatch):
    """10 readers, 5 cases, 20 % hidden repeats: 60 reads, 5 loads (12x fewer)."""
    import napari_m1.io as m1io

    readers = [f"R{i}" for i in range(10)]
    study = _study(tmp_path, 5, readers=readers, repeat_fraction=0.2)
    cal = caliper_annotation("L_hand_caliper", [-25, -18, 51], [-25, -16, 51]).to_json()
    n_reads = 0
    for r in readers:
        sess = ReaderSession(study, r)
        for info in sess.reads():
            sess.save_annotation(info.pseudonym, "L_hand_caliper", cal, "add")
            n_reads += 1
        sess.close()
    assert n_reads == 60
    case = m1io.load_case(phantom_case)
    loads: list[str] = []
    monkeypatch.setattr(m1io, "load_case", lambda path: loads.append(str(path)) or case)
    st = Study(study)
    res = st.export_measurements(tmp_path / "m.csv")
    st.close()
    assert res.case_loads == len(loads) == 5 and len(set(loads)) == 5
    rows = list(csv.DictReader((tmp_path / "m.csv").open(encoding="utf-8")))
    assert len({(r["reader"], r["case_label"]) for r in rows}) == 60  # every read
    assert res.skipped == ()


# ----------------------------------------------------------------------------- CSV cells


def _cells(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def _no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            if cell and cell[0] in FORMULA_TRIGGERS:
                float(cell)  # only numbers may start with - or +


def test_hostile_cells_are_neutralised_and_read_back(tmp_path, phantom_case):
    shutil.copytree(phantom_case, tmp_path / "c0")
    ids = ['=HYPERLINK("http://example.org/?x","click")', "@SUM(A1)"]
    (tmp_path / "c1").mkdir()
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([["case_id", "path"], [ids[0], "c0"],
                                                    [ids[1], "c1"]])  # fmt: skip
    (tmp_path / "cases.csv").write_text(buf.getvalue(), encoding="utf-8")
    create_study(tmp_path / "st", tmp_path / "cases.csv", ["-R1"], seed=1).close()
    study = tmp_path / "st"
    comments = ['=HYPERLINK("http://example.org/?x","click")', "+1+1", "'=already quoted"]
    sess = ReaderSession(study, "-R1")
    for info, comment in zip(sess.reads(), comments, strict=False):
        _fill(sess, info.pseudonym, comment=comment)
    p0 = sess.reads()[0].pseudonym
    cal = caliper_annotation("L_hand_caliper", [-25, -18, 51], [-25, -16, 51]).to_json()
    for info in sess.reads():
        if sess.case_folder(info.pseudonym).name == "c0":
            sess.save_annotation(info.pseudonym, "L_hand_caliper", cal, "add")
    sess.close()
    clinical = tmp_path / "clinical.csv"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(
        [["case_id", "group", "note"], [ids[0], "als", "-2+3"], [ids[1], "control", "=1"]]
    )
    clinical.write_text(buf.getvalue(), encoding="utf-8")
    out, meas, unbl = tmp_path / "r.csv", tmp_path / "m.csv", tmp_path / "u.csv"
    assert main(["study", "export", str(study), "--out", str(out), "--measurements",
                 str(meas)]) == 0  # fmt: skip
    assert main(["study", "unblind", str(study), "--key", str(tmp_path / "cases.csv"),
                 "--clinical", str(clinical), "--out", str(unbl)]) == 0  # fmt: skip
    for f in (out, meas, unbl):
        _no_formula(_cells(f))
    # the project's rule reads every cell back exactly
    back = [
        {k: restore_cell(v) for k, v in r.items()}
        for r in csv.DictReader(io.StringIO(unbl.read_text(encoding="utf-8")))
    ]
    assert {r["reader"] for r in back} == {"-R1"}
    assert {r["case_id"] for r in back} == set(ids)
    assert {r["comment"] for r in back} == set(comments[:2])
    assert {r["note"] for r in back} == {"-2+3", "=1"}
    assert "'=HYPERLINK(" in unbl.read_text(encoding="utf-8")
    # ... and so do the report's readers
    from napari_m1.stats._read import read_readings

    df = read_readings(unbl, [])
    assert set(df["reader"]) == {"-R1"} and set(df["case_id"]) == set(ids)
    m = [
        {k: restore_cell(v) for k, v in r.items()}
        for r in csv.DictReader(io.StringIO(meas.read_text(encoding="utf-8")))
    ]
    assert m and {r["reader"] for r in m} == {"-R1"}
    assert float(m[0]["thickness_mm"]) > 0  # numbers stayed numbers
    assert p0


# ----------------------------------------------------------------------------- read-only


def _unprivileged(argv: list[str]) -> subprocess.CompletedProcess:
    """Run the CLI as a user the file permissions apply to (root ignores them)."""
    code = "import sys; from napari_m1.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, *argv]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot make a file read-only")
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def readonly_study():
    """A study in a world-readable folder whose study folder is then made read-only."""
    root = Path(tempfile.mkdtemp(prefix="m1-readonly-"))
    os.chmod(root, 0o755)
    study = _study(root, 2, readers=("R1",))
    sess = ReaderSession(study, "R1")
    _fill(sess, sess.reads()[0].pseudonym)
    sess.close()
    st = Study(study)
    key = root / "coordinator.key"
    shutil.copy(
        Path(os.environ["NAPARI_M1_DATA_DIR"]) / "coordinator-keys" / f"{st.study_id}.key", key
    )
    st.close()
    out = root / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    if os.geteuid() == 0:
        os.chown(key, 65534, 65534)
    for f in study.iterdir():
        os.chmod(f, 0o444)
    os.chmod(study, 0o555)
    yield study, key, out
    os.chmod(study, 0o755)
    shutil.rmtree(root)


@pytest.mark.parametrize("command", ["unblind", "export"])
def test_read_only_database_one_line_and_no_output_file(readonly_study, command):
    study, key, out = readonly_study
    target = out / f"{command}.csv"
    extra = ["--key", str(study.parent / "cases.csv")] if command == "unblind" else []
    r = _unprivileged(["study", command, str(study), *extra, "--out", str(target),
                       "--coordinator-key", str(key)])  # fmt: skip
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("napari-m1: error: ") and "read-only" in line, line
    assert f"{command}.csv not written" in line
    assert list(out.iterdir()) == []  # no output, not even a temporary file


def test_verify_on_a_read_only_study_folder_says_so(readonly_study):
    study, key, _ = readonly_study
    r = _unprivileged(["study", "verify", str(study), "--coordinator-key", str(key)])
    assert r.returncode == 0, r.stderr
    assert "the study folder is read-only" in r.stderr
    assert "not a napari-m1 study database" not in r.stderr
    assert r.stdout.startswith("audit log OK:")
    n = int(r.stdout.split("audit log OK: ")[1].split()[0])
    # changes still in the write-ahead log (another window open): read through it
    os.chmod(study, 0o755)
    con = sqlite3.connect(study / "study.sqlite")  # keeps the WAL from being checkpointed
    con.execute("PRAGMA wal_autocheckpoint = 0")
    con.execute("SELECT count(*) FROM audit").fetchone()
    sess = ReaderSession(study, "R1")
    sess.set_answer(sess.reads()[0].pseudonym, "comment", "written after the first verify")
    sess.close()
    assert (study / "study.sqlite-wal").stat().st_size > 0
    os.chmod(study, 0o555)
    try:
        r = _unprivileged(["study", "verify", str(study), "--coordinator-key", str(key)])
    finally:
        con.close()
        os.chmod(study, 0o755)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"audit log OK: {n + 1} entries"), r.stdout


def test_read_only_copy_with_a_pending_write_ahead_log_is_refused_clearly(readonly_study):
    study, key, out = readonly_study
    copy = out / "copy"
    os.chmod(study, 0o755)
    con = sqlite3.connect(study / "study.sqlite")
    con.execute("PRAGMA wal_autocheckpoint = 0")
    con.execute("INSERT INTO meta VALUES ('wal_test', '1')")
    con.commit()
    assert (study / "study.sqlite-wal").stat().st_size > 0
    try:  # copied mid-session without the -shm file: the log is not readable read-only
        copy.mkdir()
        for name in ("study.json", "study.sqlite", "study.sqlite-wal"):
            shutil.copy(study / name, copy / name)
    finally:
        con.close()
    for f in copy.iterdir():
        os.chmod(f, 0o444)
    os.chmod(copy, 0o555)
    try:
        r = _unprivileged(["study", "verify", str(copy), "--coordinator-key", str(key)])
    finally:
        os.chmod(copy, 0o755)
    assert r.returncode == 2, r.stdout
    (line,) = r.stderr.strip().splitlines()
    assert "read-only" in line and "copy the whole study folder" in line, line


def test_verify_hashes_the_stored_text_exactly_as_audit_hash():
    """verify's inline chain check agrees with ``audit_hash`` on awkward text (quotes,
    backslashes, non-ASCII, control characters, no pseudonym), and catches one changed
    character in any field."""
    from napari_m1.session._coordinator_store import Snapshot
    from napari_m1.session._db import GENESIS, audit_hash
    from napari_m1.session._verify import verify_snapshot

    entries = [
        ("2024-01-01T00:00:00.000+00:00", "coordinator", "study_init", None, '{"n": 1}'),
        ("2024-01-01T00:00:01.000+00:00", 'R"1\\', "open", "P-ü", "{}"),
        ("2024-01-01T00:00:02.000+00:00", "Rø", "refused", "P\n2", '{"why": "\\"x\\" é\\t"}'),
    ]
    rows, prev = [], GENESIS
    for seq, (at, actor, ev, pseudo, det) in enumerate(entries, start=1):
        h = audit_hash(prev, seq, at, actor, ev, pseudo, det)
        rows.append((seq, at, actor, ev, pseudo, det, prev, h))
        prev = h
    res = verify_snapshot(Snapshot(rows, [], [], "ok"))
    assert res.ok and res.last_hash == prev, res.problems
    for field in range(1, 6):
        bad = [list(r) for r in rows]
        bad[1][field] = (bad[1][field] or "") + "x"
        res = verify_snapshot(Snapshot([tuple(r) for r in bad], [], [], "ok"))
        assert not res.ok and any("entry 2" in p for p in res.problems), field
