"""Blinded reader studies without a GUI: set-up, refusals, isolation, locking, audit, export."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import pytest

from conftest import study_sql
from napari_m1.annotation import caliper_annotation, roi_annotation
from napari_m1.cli import main
from napari_m1.errors import M1Error
from napari_m1.session import ANSWER_FIELDS, LockedError, ReaderSession, ReadInfo, Study
from napari_m1.session._db import audit_hash

#: Every test here runs on SQLite and on a real PostgreSQL server (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("study_backend")

DOCS = Path(__file__).resolve().parents[1] / "docs" / "csv-schemas.md"
FULL_FORM = {"hypointensity": 1, "thinning": 0, "als_consistent": 1, "confidence": 4}


# ----------------------------------------------------------------------------- helpers


def _cases(root: Path, n: int, *, name: str = "cases.csv") -> tuple[Path, list[str]]:
    """``n`` case folders (empty: no images needed here) and a cases.csv with relative paths."""
    ids = [f"ALS-CASE-{i:02d}" for i in range(1, n + 1)]
    lines = ["case_id,path"]
    for cid in ids:
        (root / "data" / f"scan_{cid.lower()}_7T").mkdir(parents=True, exist_ok=True)
        lines.append(f"{cid},data/scan_{cid.lower()}_7T")
    p = root / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p, ids


def _init(study: Path, cases_csv: Path, *args: str, readers: str = "R1,R2") -> int:
    return main(["study", "init", str(study), "--cases", str(cases_csv), "--readers", readers,
                 *args])  # fmt: skip


def _study(tmp_path: Path, n: int = 6, *args: str, readers: str = "R1,R2") -> Path:
    cases_csv, _ = _cases(tmp_path, n)
    study = tmp_path / "study"
    assert _init(study, cases_csv, *args, readers=readers) == 0
    return study


def _reads(study: Path) -> list[dict]:
    """Coordinator view of every read (with case_id), in reader, read_no order."""
    st = Study(study)
    try:
        return st.reads()
    finally:
        st.close()


def _order(study: Path, reader: str) -> list[str]:
    return [r["case_id"] for r in _reads(study) if r["reader"] == reader]


def _audit(study: Path) -> list[dict]:
    st = Study(study)
    try:
        return st.audit_rows()
    finally:
        st.close()


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("napari-m1: error: "), err
    return lines[0]


def _fill(sess: ReaderSession, pseudonym: str, form: dict | None = None) -> None:
    for field, value in (form or FULL_FORM).items():
        sess.set_answer(pseudonym, field, value)


def _sql(study: Path, statement: str, *params) -> None:
    study_sql(study, statement, *params)  # SQLite or PostgreSQL, behind napari-m1's back


# ----------------------------------------------------------------------------- study init


def test_init_gives_every_reader_all_cases_then_hidden_repeats(tmp_path, capsys):
    study = _study(tmp_path, 6, "--repeat-fraction", "0.5", "--seed", "3")
    assert "2 reader(s), 18 reads" in capsys.readouterr().out
    st = Study(study)
    case_pseudo = {c["case_id"]: c["pseudonym"] for c in st.cases()}
    st.close()
    reads = _reads(study)
    repeat_pseudos = []
    for reader in ("R1", "R2"):
        mine = [r for r in reads if r["reader"] == reader]
        assert [r["read_no"] for r in mine] == list(range(1, 10))
        first, repeats = mine[:6], mine[6:]
        assert sorted(r["case_id"] for r in first) == sorted(case_pseudo)  # each case once
        assert all(not r["is_repeat"] and r["repeat_of"] is None for r in first)
        assert all(r["pseudonym"] == case_pseudo[r["case_id"]] for r in first)
        assert len(repeats) == 3 and all(r["is_repeat"] for r in repeats)
        assert len({r["case_id"] for r in repeats}) == 3
        for r in repeats:
            # after the first read, under its own pseudonym, pointing back to the first read
            (orig,) = [f for f in first if f["case_id"] == r["case_id"]]
            assert r["read_no"] > orig["read_no"]
            assert r["repeat_of"] == orig["pseudonym"]
            assert r["pseudonym"] not in case_pseudo.values()
            repeat_pseudos.append(r["pseudonym"])
        # what the reader sees: a plain list, nothing marks a repeat
        sess = ReaderSession(study, reader)
        infos = sess.reads()
        sess.close()
        assert [i.pseudonym for i in infos] == [r["pseudonym"] for r in mine]
        assert all(i.status == "not_started" and not i.locked for i in infos)
    assert len(set(repeat_pseudos)) == 6
    assert set(ReadInfo.__dataclass_fields__) == {"read_no", "pseudonym", "status", "locked"}


def test_orders_are_seeded_and_independent_between_readers(tmp_path):
    cases_csv, ids = _cases(tmp_path, 20)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert _init(a, cases_csv, "--seed", "7") == 0
    assert _init(b, cases_csv, "--seed", "7") == 0
    assert _init(c, cases_csv, "--seed", "8") == 0
    assert sorted(_order(a, "R1")) == sorted(ids)
    assert _order(a, "R1") == _order(b, "R1") and _order(a, "R2") == _order(b, "R2")
    assert _order(a, "R1") != _order(c, "R1") and _order(a, "R2") != _order(c, "R2")
    assert _order(a, "R1") != _order(a, "R2")
    assert _order(a, "R1") != ids  # not the cases.csv order


def test_pseudonyms_are_not_derived_from_ids_or_paths(tmp_path):
    cases_csv, _ = _cases(tmp_path, 8)
    a, b = tmp_path / "a", tmp_path / "b"
    assert _init(a, cases_csv, "--seed", "1", "--repeat-fraction", "0.5") == 0
    assert _init(b, cases_csv, "--seed", "1", "--repeat-fraction", "0.5") == 0
    ra, rb = _reads(a), _reads(b)
    pa, pb = {r["pseudonym"] for r in ra}, {r["pseudonym"] for r in rb}
    assert not pa & pb  # same cases, same seed: new pseudonyms
    for r in ra:
        p = r["pseudonym"]
        assert re.fullmatch(r"M1-[A-Z2-9]{6}", p), p
        folder = Path(r["path"]).name
        core = re.sub(r"[^A-Za-z0-9]", "", r["case_id"])  # e.g. ALSCASE01
        tokens = {r["case_id"], core, core[-2:], folder, r["path"]}
        assert not any(t in p for t in tokens), (p, tokens)
    # same case, same pseudonym for every reader's first read; a repeat gets its own
    by_case: dict[str, set[str]] = {}
    for r in ra:
        if not r["is_repeat"]:
            by_case.setdefault(r["case_id"], set()).add(r["pseudonym"])
    assert all(len(v) == 1 for v in by_case.values())


# ----------------------------------------------------------------------------- refusals


def _csv(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "cases.csv"
    (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
    return p


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("case_id,path\nA,data/a\nB,data/b\nA,data/b\n", r"line 4: duplicate case_id 'A'"),
        ("case_id,folder\nA,data/a\n", r"line 1: missing column\(s\) path"),
        ("case_id,path\nA,data/a\nB,data/nowhere\n", r"line 3: case folder for 'B' not found"),
        ("case_id,path\nKöln-1,data/a\n".encode("latin-1"), r"not UTF-8"),
        ("case_id,path\n", r"no cases"),
    ],
    ids=["duplicate-id", "no-path-column", "missing-folder", "latin-1", "empty"],
)
def test_init_refuses_bad_cases_csv_in_one_line(tmp_path, capsys, content, expected):
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "b").mkdir(parents=True)
    study = tmp_path / "study"
    assert _init(study, _csv(tmp_path, content)) == 2
    assert re.search(expected, _error_line(capsys))
    assert not (study / "study.json").exists() and not (study / "study.sqlite").exists()


@pytest.mark.parametrize("readers", ["", " , ", ","])
def test_init_refuses_no_readers(tmp_path, capsys, readers):
    cases_csv, _ = _cases(tmp_path, 2)
    assert _init(tmp_path / "study", cases_csv, readers=readers) == 2
    assert "at least one reader" in _error_line(capsys)


def test_init_refuses_an_existing_study_unless_forced(tmp_path, capsys):
    study = _study(tmp_path, 3)
    old = Study(study)
    old_id = old.study_id
    old.close()
    capsys.readouterr()
    cases_csv = tmp_path / "cases.csv"
    assert _init(study, cases_csv, readers="R7") == 2
    line = _error_line(capsys)
    assert "a study exists here already" in line and "--force" in line
    st = Study(study)
    assert st.study_id == old_id and st.readers == ["R1", "R2"]  # untouched
    st.close()
    assert _init(study, cases_csv, "--force", readers="R7") == 0
    st = Study(study)
    try:
        assert st.study_id != old_id and st.readers == ["R7"]
        assert len(st.reads()) == 3
        assert [a["event"] for a in st.audit_rows()] == ["study_init"]
    finally:
        st.close()


def test_verify_refuses_a_folder_that_is_not_a_study(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["study", "verify", str(tmp_path / "empty")]) == 2
    assert "not a napari-m1 study folder" in _error_line(capsys)


def test_unknown_reader_is_refused(tmp_path):
    study = _study(tmp_path, 2)
    with pytest.raises(M1Error, match="'R9' is not in this study"):
        ReaderSession(study, "R9")


def test_database_from_a_newer_version_is_refused(tmp_path, capsys):
    study = _study(tmp_path, 2)
    _sql(study, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(M1Error, match="newer"):
        ReaderSession(study, "R1")
    with pytest.raises(M1Error, match="newer"):
        Study(study)
    assert main(["study", "verify", str(study)]) == 2
    assert "schema version 99" in _error_line(capsys)


def test_cases_csv_from_excel_bom_crlf_and_spaces_is_accepted(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "data" / name).mkdir(parents=True)
    p = _csv(tmp_path, "\ufeffcase_id , path ,age\r\n A ,data/a,61\r\nB, data/b ,\r\n".encode())
    study = tmp_path / "study"
    assert _init(study, p, readers="R1") == 0
    assert sorted(r["case_id"] for r in _reads(study)) == ["A", "B"]
    assert {r["path"] for r in _reads(study)} == {
        str((tmp_path / "data" / n).resolve()) for n in ("a", "b")
    }


@pytest.mark.sqlite_only
def test_database_url_in_study_json_is_used(tmp_path):
    """study.json may point at another database (a PostgreSQL URL in a multi-site study)."""
    study = _study(tmp_path, 2, readers="R1")
    elsewhere = tmp_path / "server" / "m1.sqlite"
    elsewhere.parent.mkdir()
    (study / "study.sqlite").rename(elsewhere)
    info = json.loads((study / "study.json").read_text(encoding="utf-8"))
    info["database_url"] = f"sqlite:///{elsewhere}"
    (study / "study.json").write_text(json.dumps(info), encoding="utf-8")
    sess = ReaderSession(study, "R1")
    try:
        assert len(sess.reads()) == 2
        sess.open_read(sess.reads()[0].pseudonym)
    finally:
        sess.close()
    assert not (study / "study.sqlite").exists()
    assert main(["study", "verify", str(study)]) == 0


# ----------------------------------------------------------------------------- isolation


def test_a_reader_cannot_reach_another_readers_reads(tmp_path):
    study = _study(tmp_path, 6, "--repeat-fraction", "0.5")
    r1, r2 = ReaderSession(study, "R1"), ReaderSession(study, "R2")
    try:
        mine = {i.pseudonym for i in r1.reads()}
        theirs = [i.pseudonym for i in r2.reads() if i.pseudonym not in mine]
        assert len(theirs) == 3  # R2's hidden repeats
        p = theirs[0]
        r2.open_read(p)
        r2.set_answer(p, "comment", "R2's note")
        cal = caliper_annotation("L_hand_caliper", [-25, -18, 51], [-25, -16, 51])
        r2.save_annotation(p, "L_hand_caliper", cal.to_json(), "add")
        before = (r2.answers(p), r2.annotations(p), r2.reads())
        n_audit = len(_audit(study))

        calls = {
            "answers": lambda: r1.answers(p),
            "set_answer": lambda: r1.set_answer(p, "hypointensity", 1),
            "save_annotation": lambda: r1.save_annotation(p, "L_hand_caliper", None),
            "open_read": lambda: r1.open_read(p),
            "case_folder": lambda: r1.case_folder(p),
            "submit": lambda: r1.submit(p),
            "annotations": lambda: r1.annotations(p),
            "add_active_time": lambda: r1.add_active_time(p, 5.0),
            "is_locked": lambda: r1.is_locked(p),
        }
        for name, call in calls.items():
            with pytest.raises(M1Error, match="no read") as exc:
                call()
            assert not isinstance(exc.value, LockedError), name
        assert (r2.answers(p), r2.annotations(p), r2.reads()) == before
        assert len(_audit(study)) == n_audit  # nothing was written
        assert {i.pseudonym for i in r1.reads()} == mine
        assert {r["pseudonym"] for r in _reads(study) if r["reader"] == "R1"} == mine

        # a shared case pseudonym reaches each reader's own row only
        shared = next(iter(mine & {i.pseudonym for i in r2.reads()}))
        r2.set_answer(shared, "comment", "only R2 wrote this")
        assert r1.answers(shared)["comment"] == ""
        assert r1.case_folder(shared) == r2.case_folder(shared)
    finally:
        r1.close()
        r2.close()


# ----------------------------------------------------------------------------- locking


def test_submit_locks_refusals_are_logged_and_unlock_reopens(tmp_path, capsys):
    study = _study(tmp_path, 3)
    sess = ReaderSession(study, "R1")
    try:
        p, q = sess.reads()[0].pseudonym, sess.reads()[1].pseudonym
        sess.open_read(p)
        _fill(sess, p)
        cal = caliper_annotation("L_hand_caliper", [-25, -18, 51], [-25, -16, 51]).to_json()
        sess.save_annotation(p, "L_hand_caliper", cal, "add")
        sess.submit(p)
        assert sess.is_locked(p) and sess.reads()[0].status == "submitted"
        assert sess.resume_point().pseudonym == q

        with pytest.raises(LockedError, match="locked"):
            sess.set_answer(p, "confidence", 2)
        with pytest.raises(LockedError):
            sess.save_annotation(p, "L_hand_caliper", None, "delete")
        with pytest.raises(LockedError):
            sess.submit(p)
        sess.add_active_time(p, 30.0)  # ignored, not an error (the timer may still tick)
        assert sess.answers(p)["confidence"] == 4
        assert sess.annotations(p) == [cal]
        refused = [a for a in _audit(study) if a["event"] == "refused"]
        assert [(a["actor"], a["pseudonym"]) for a in refused] == [("R1", p)] * 3
        attempts = [json.loads(a["details"])["attempt"] for a in refused]
        assert attempts == [
            "changing confidence",
            "annotation change of L_hand_caliper",
            "submitting again",
        ]
        with pytest.raises(M1Error, match="going back is not allowed"):
            sess.open_read(p)

        # the coordinator unlocks, with a reason, on the command line
        capsys.readouterr()
        assert main(["study", "unlock", str(study), "--reader", "R1", "--pseudonym", p,
                     "--reason", "reader asked to correct confidence"]) == 0  # fmt: skip
        assert f"unlocked {p}" in capsys.readouterr().out
        (unlock,) = [a for a in _audit(study) if a["event"] == "unlock"]
        assert unlock["actor"] == "coordinator" and unlock["pseudonym"] == p
        assert json.loads(unlock["details"]) == {
            "reader": "R1",
            "reason": "reader asked to correct confidence",
        }
        assert not sess.is_locked(p)
        sess.set_answer(p, "confidence", 2)
        sess.submit(p)
        assert sess.answers(p)["confidence"] == 2 and sess.is_locked(p)

        # submit needs every form field
        sess.open_read(q)
        sess.set_answer(q, "hypointensity", 0)
        with pytest.raises(M1Error, match="answer thinning, als_consistent, confidence") as exc:
            sess.submit(q)
        assert not isinstance(exc.value, LockedError)
        assert not sess.is_locked(q) and sess.missing_answers(q) == [
            "thinning",
            "als_consistent",
            "confidence",
        ]
    finally:
        sess.close()
    st = Study(study)
    try:
        with pytest.raises(M1Error, match="reason"):
            st.unlock("R1", p, "  ")
        with pytest.raises(M1Error, match="no read"):
            st.unlock("R2", "M1-NOSUCH", "typo")
    finally:
        st.close()


def test_allow_back_reopens_submitted_reads_read_only(tmp_path):
    study = _study(tmp_path, 2, "--allow-back", readers="R1")
    sess = ReaderSession(study, "R1")
    try:
        p = sess.reads()[0].pseudonym
        sess.open_read(p)
        _fill(sess, p)
        sess.submit(p)
        assert sess.can_open(p)
        assert sess.open_read(p).locked  # may look again ...
        with pytest.raises(LockedError):  # ... but not change anything
            sess.set_answer(p, "confidence", 1)
        assert sess.answers(p)["confidence"] == 4
    finally:
        sess.close()


@pytest.mark.parametrize(
    ("field", "value"), [("confidence", 0), ("confidence", 6), ("thinning", 2), ("colour", 1)]
)
def test_answers_outside_the_form_are_refused(tmp_path, field, value):
    study = _study(tmp_path, 1, readers="R1")
    sess = ReaderSession(study, "R1")
    try:
        p = sess.reads()[0].pseudonym
        with pytest.raises(M1Error, match=field):
            sess.set_answer(p, field, value)
        assert all(v is None for k, v in sess.answers(p).items() if k in ANSWER_FIELDS)
    finally:
        sess.close()


# ----------------------------------------------------------------------------- audit chain


def _busy_study(tmp_path: Path) -> Path:
    """A study with some dozens of audit entries."""
    study = _study(tmp_path, 4, "--repeat-fraction", "0.5")
    for reader in ("R1", "R2"):
        sess = ReaderSession(study, reader)
        for info in sess.reads()[:3]:
            sess.open_read(info.pseudonym)
            _fill(sess, info.pseudonym)
            sess.set_answer(info.pseudonym, "comment", f"{reader} – ünïcode")
            ann = roi_annotation("L_hand_roi", [-25, -18, 51], [1.1, 0, 0], [0, 1.1, 0])
            sess.save_annotation(info.pseudonym, "L_hand_roi", ann.to_json(), "add")
            sess.submit(info.pseudonym)
        sess.close()
    return study


def test_audit_chain_detects_an_edited_entry(tmp_path, capsys):
    study = _busy_study(tmp_path)
    st = Study(study)
    res = st.verify()
    st.close()
    assert res.ok and res.problems == () and res.integrity == "ok"
    assert res.n_entries == len(_audit(study)) > 40
    assert res.last_hash == _audit(study)[-1]["hash"]  # to pin the chain outside the study
    assert main(["study", "verify", str(study)]) == 0
    assert f"audit log OK: {res.n_entries} entries" in capsys.readouterr().out

    entry = next(
        a
        for a in _audit(study)
        if a["event"] == "answer" and a["seq"] > 10 and '"value": 1' in a["details"]
    )
    forged = entry["details"].replace('"value": 1', '"value": 0')
    assert forged != entry["details"]
    _sql(study, "UPDATE audit SET details = ? WHERE seq = ?", forged, entry["seq"])
    st = Study(study)
    res = st.verify()
    st.close()
    assert not res.ok
    assert res.problems == (
        f"entry {entry['seq']} (answer): content does not match its hash (edited)",
    )
    assert main(["study", "verify", str(study)]) == 1
    err = capsys.readouterr().err
    assert f"TAMPERED: entry {entry['seq']} (answer)" in err
    assert "napari-m1: error: audit log verification failed (1 problem(s))" in err


def test_audit_chain_detects_a_recomputed_hash_and_a_deleted_entry(tmp_path, capsys):
    study = _busy_study(tmp_path)
    rows = _audit(study)
    # an editor who also recomputes the edited entry's own hash breaks the next link
    e = next(a for a in rows if "R1 –" in a["details"])  # R1's comment
    details = e["details"].replace("R1 –", "R2 –")
    new_hash = audit_hash(
        e["prev_hash"], e["seq"], e["at"], e["actor"], e["event"], e["pseudonym"], details
    )
    _sql(study, "UPDATE audit SET details = ?, hash = ? WHERE seq = ?", details, new_hash,
         e["seq"])  # fmt: skip
    st = Study(study)
    res = st.verify()
    st.close()
    assert res.problems == (f"entry {e['seq'] + 1}: previous-hash link broken",)

    study2 = _busy_study(tmp_path / "two")
    mid = len(_audit(study2)) // 2
    _sql(study2, "DELETE FROM audit WHERE seq = ?", mid)
    st = Study(study2)
    res = st.verify()
    st.close()
    assert not res.ok
    assert res.problems[0].startswith(f"entry {mid}: sequence number {mid + 1}")
    assert f"entry {mid + 1}: previous-hash link broken" in res.problems
    assert main(["study", "verify", str(study2)]) == 1
    assert "TAMPERED" in capsys.readouterr().err


def test_an_emptied_audit_log_does_not_verify(tmp_path, capsys):
    study = _busy_study(tmp_path)
    _sql(study, "DELETE FROM audit")
    st = Study(study)
    res = st.verify()
    st.close()
    assert not res.ok and res.n_entries == 0
    assert main(["study", "verify", str(study)]) == 1
    assert "TAMPERED: audit log is empty" in capsys.readouterr().err


# ----------------------------------------------------------------------------- export, unblind


def _documented_readings_columns() -> list[str]:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## readings.csv", 1)[1].split("\n## ", 1)[0]
    cols = []
    for line in section.splitlines():
        if line.startswith("| `"):
            cols += [c.strip().strip("`") for c in line.split("|")[1].split(",")]
    return cols


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    text = path.read_text(encoding="utf-8")
    rd = csv.DictReader(io.StringIO(text))
    return list(rd.fieldnames or []), list(rd)


def test_export_is_blinded_and_unblind_joins_key_and_clinical(tmp_path, capsys):
    study = _busy_study(tmp_path)
    st = Study(study)
    cases = {c["pseudonym"]: c["case_id"] for c in st.cases()}
    st.close()
    documented = _documented_readings_columns()
    assert documented[-1] == "case_id"
    blinded_cols = documented[:-1]

    out = tmp_path / "readings.csv"
    assert main(["study", "export", str(study), "--out", str(out)]) == 0
    cols, rows = _read_csv(out)
    assert cols == blinded_cols
    assert len(rows) == 2 * 6
    text = out.read_text(encoding="utf-8")
    for cid in cases.values():
        assert cid not in text and cid.lower() not in text
    assert str(tmp_path) not in text and "scan_" not in text and "data/" not in text
    assert {r["schema"] for r in rows} == {"napari-m1/readings/1"}
    submitted = [r for r in rows if r["status"] == "submitted"]
    assert len(submitted) == 6
    assert all(
        (r["hypointensity"], r["thinning"], r["als_consistent"], r["confidence"])
        == ("1", "0", "1", "4")
        for r in submitted
    )
    assert {r["comment"] for r in submitted} == {"R1 – ünïcode", "R2 – ünïcode"}
    assert all(r["opened_at_utc"] and r["submitted_at_utc"] for r in submitted)
    assert all(r["hypointensity"] == "" for r in rows if r["status"] == "not_started")

    # unblind with the key and clinical data
    key, _ = _cases(tmp_path / "keydir", 4)
    clinical = tmp_path / "clinical.csv"
    groups = {cid: ("als" if i % 2 else "control") for i, cid in enumerate(sorted(cases.values()))}
    clinical.write_text(
        "case_id,group,alsfrs_r\n"
        + "".join(f"{cid},{g},{40 + i}\n" for i, (cid, g) in enumerate(sorted(groups.items()))),
        encoding="utf-8",
    )
    alsfrs = {cid: str(40 + i) for i, cid in enumerate(sorted(groups))}
    u = tmp_path / "u.csv"
    assert main(["study", "unblind", str(study), "--key", str(key), "--clinical",
                 str(clinical), "--out", str(u)]) == 0  # fmt: skip
    ucols, urows = _read_csv(u)
    assert ucols == [*documented, "group", "alsfrs_r"]
    assert len(urows) == len(rows)
    for r in urows:
        first = r["repeat_of"] or r["pseudonym"]  # a repeat: its first read's pseudonym
        assert r["case_id"] == cases[first]
        assert r["group"] == groups[r["case_id"]] and r["alsfrs_r"] == alsfrs[r["case_id"]]
    assert [{k: v for k, v in r.items() if k in blinded_cols} for r in urows] == rows

    # a key from another study is refused, nothing written, nothing logged
    other, _ = _cases(tmp_path / "other", 5)
    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    assert main(["study", "unblind", str(study), "--key", str(other), "--out", str(bad)]) == 2
    assert "case ids do not match this study (1 differ)" in _error_line(capsys)
    assert not bad.exists()

    # each publication: intent committed first, completion (with the file's hash) after
    events = [a for a in _audit(study) if a["actor"] == "coordinator"]
    assert [a["event"] for a in events] == [
        "study_init", "export_started", "export", "unblind_started", "unblind"
    ]  # fmt: skip
    det = [json.loads(e["details"]) for e in events]
    assert det[1] == {"what": "readings", "rows": 12, "file": "readings.csv", "op": det[1]["op"]}
    assert det[2] == {**det[1], "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
    assert det[4] == {
        "rows": 12, "clinical": True, "file": "u.csv", "op": det[3]["op"],
        "sha256": hashlib.sha256(u.read_bytes()).hexdigest(),
    }  # fmt: skip
    assert det[1]["op"] != det[3]["op"]


def test_unblind_keeps_reader_columns_when_clinical_columns_share_a_name(tmp_path):
    study = _busy_study(tmp_path)
    st = Study(study)
    cases = [c["case_id"] for c in st.cases()]
    clinical = tmp_path / "clinical.csv"
    clinical.write_text(
        "case_id,group,comment,status\n" + "".join(f"{c},als,clinic note,alive\n" for c in cases),
        encoding="utf-8",
    )
    key, _ = _cases(tmp_path / "keydir", 4)
    u = st.unblind(key, tmp_path / "u.csv", clinical_csv=clinical)
    st.close()
    cols, rows = _read_csv(u)
    assert cols[-4:] == ["case_id", "group", "clinical_comment", "clinical_status"]
    assert {r["comment"] for r in rows if r["status"] == "submitted"} == {
        "R1 – ünïcode",
        "R2 – ünïcode",
    }
    assert {r["status"] for r in rows} == {"submitted", "not_started"}
    assert {r["clinical_comment"] for r in rows} == {"clinic note"}


def test_export_measurements_uses_pseudonyms_and_stored_annotations(
    tmp_path, phantom_case, capsys
):
    from napari_m1.io import load_case

    (tmp_path / "empty").mkdir()
    cases_csv = tmp_path / "cases.csv"
    cases_csv.write_text(f"case_id,path\nPHANTOM-A,{phantom_case}\nEMPTY-B,empty\n")
    study = tmp_path / "study"
    assert _init(study, cases_csv, readers="R1") == 0
    ras = load_case(phantom_case).reference.ras_affine
    k = 8
    p1 = (ras @ [k, 200.2, 120.5, 1.0])[:3]
    p2 = (ras @ [k, 209.9, 131.1, 1.0])[:3]
    thickness = float(((p2 - p1) ** 2).sum() ** 0.5)
    centre = (ras @ [k, 210.0, 130.0, 1.0])[:3]

    sess = ReaderSession(study, "R1")
    (pseudo,) = [
        i.pseudonym
        for i in sess.reads()
        if sess.case_folder(i.pseudonym) == Path(phantom_case).resolve()
    ]
    cal = caliper_annotation("L_hand_caliper", p1, p2, author="R1")
    roi = roi_annotation("L_hand_roi", centre, [1.2, 0, 0], [0, 1.2, 0], author="R1")
    sess.open_read(pseudo)
    sess.save_annotation(pseudo, "L_hand_caliper", cal.to_json(), "add")
    sess.save_annotation(pseudo, "L_hand_roi", roi.to_json(), "add")
    sess.close()

    out, meas = tmp_path / "readings.csv", tmp_path / "measurements.csv"
    assert main(["study", "export", str(study), "--out", str(out), "--measurements",
                 str(meas)]) == 0  # fmt: skip
    _, rows = _read_csv(meas)
    assert rows and {r["case_label"] for r in rows} == {pseudo}
    assert {r["reader"] for r in rows} == {"R1"}
    assert {r["slot"] for r in rows} == {"L_hand_caliper", "L_hand_roi"}
    (crow,) = [r for r in rows if r["slot"] == "L_hand_caliper"]
    assert float(crow["thickness_mm"]) == pytest.approx(thickness, rel=1e-8)
    rrows = [r for r in rows if r["slot"] == "L_hand_roi"]
    assert len(rrows) > 1  # one per source layer x echo
    assert all(float(r["area_mm2"]) == pytest.approx(roi.area_mm2) for r in rrows)
    text = meas.read_text(encoding="utf-8")
    assert "PHANTOM-A" not in text and "phantomcontrol1" not in text
    assert str(phantom_case) not in text
    ev = [json.loads(a["details"]) for a in _audit(study) if a["event"] == "export"]
    assert [(e["what"], e["rows"]) for e in ev] == [("readings", 2), ("measurements", len(rows))]
    assert ev[1]["skipped"] == 0


# ----------------------------------------------------------------------------- added by the lead


def _study_with_answers(tmp_path):
    from napari_m1.session import ReaderSession, Study, create_study

    for i in range(3):
        (tmp_path / f"c{i}").mkdir()
    (tmp_path / "cases.csv").write_text(
        "case_id,path\n" + "".join(f"id{i},c{i}\n" for i in range(3))
    )
    create_study(tmp_path / "st", tmp_path / "cases.csv", ["R1"], seed=1).close()
    rs = ReaderSession(tmp_path / "st", "R1")
    p = rs.resume_point().pseudonym
    rs.open_read(p)
    rs.set_answer(p, "thinning", 0)
    rs.save_annotation(
        p,
        "L_hand_caliper",
        {"slot": "L_hand_caliper", "kind": "caliper", "points_ras": [[0, 0, 0], [1, 0, 0]]},
    )
    rs.close()
    st = Study(tmp_path / "st")
    assert st.verify().ok
    st.close()
    return tmp_path / "st", p


@pytest.mark.parametrize(
    ("sql", "word"),
    [
        ("UPDATE reads SET thinning = 1 WHERE thinning = 0", "thinning"),
        ("UPDATE reads SET locked = 1 WHERE thinning = 0", "lock state"),
        ("UPDATE annotations SET data = replace(data, '1', '2')", "annotations differ"),
        ("DELETE FROM annotations", "annotations differ"),
    ],
)
def test_verify_catches_data_changed_behind_the_log(tmp_path, sql, word):
    from napari_m1.session import Study

    study, _p = _study_with_answers(tmp_path)
    study_sql(study, sql)
    st = Study(tmp_path / "st")
    res = st.verify()
    st.close()
    assert not res.ok
    assert any(word in p for p in res.problems), res.problems


def test_two_case_ids_for_one_folder_are_refused(tmp_path):
    from napari_m1.session import read_cases_csv

    (tmp_path / "c").mkdir()
    (tmp_path / "cases.csv").write_text("case_id,path\na,c\nb,./c\n")
    with pytest.raises(M1Error, match="line 3: case 'b' uses the same folder as line 2"):
        read_cases_csv(tmp_path / "cases.csv")


def test_hidden_repeats_keep_a_distance(tmp_path):
    from napari_m1.session import create_study

    for i in range(12):
        (tmp_path / f"c{i}").mkdir()
    (tmp_path / "cases.csv").write_text(
        "case_id,path\n" + "".join(f"id{i},c{i}\n" for i in range(12))
    )
    st = create_study(
        tmp_path / "st", tmp_path / "cases.csv", ["R1", "R2"], seed=5, repeat_fraction=0.25
    )
    for reader in ("R1", "R2"):
        reads = [r for r in st.reads() if r["reader"] == reader]
        first = {r["pseudonym"]: r["read_no"] for r in reads if not r["is_repeat"]}
        reps = [r for r in reads if r["is_repeat"]]
        assert len(reps) == 3
        assert min(r["read_no"] - first[r["repeat_of"]] for r in reps) >= 4
    st.close()
