"""Studies on a real PostgreSQL server (and the same checks on SQLite): concurrency,
schema upgrades, idempotent retries, credentials. The server is started by the tests
(tests/pgserver.py); the rest of the study suite runs on both backends too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import study_sql
from napari_m1.cli import main
from napari_m1.errors import M1Error
from napari_m1.session import ReaderSession, Study, create_study
from napari_m1.session._db import StoreUnavailableError

pytestmark = pytest.mark.usefixtures("study_backend")
HERE = Path(__file__).parent


def _study(tmp_path: Path, n_cases: int = 2, readers=("R1",)) -> Path:
    for i in range(n_cases):
        (tmp_path / "data" / f"c{i}").mkdir(parents=True)
    (tmp_path / "cases.csv").write_text(
        "case_id,path\n" + "".join(f"ID{i},data/c{i}\n" for i in range(n_cases)),
        encoding="utf-8",
    )
    study = tmp_path / "study"
    create_study(study, tmp_path / "cases.csv", list(readers), seed=1).close()
    return study


def _audit(study: Path) -> list[dict]:
    st = Study(study)
    try:
        return st.audit_rows()
    finally:
        st.close()


@pytest.mark.slow
def test_four_concurrent_readers_lose_nothing_and_the_chain_stays_dense(tmp_path):
    """4 processes x 200 answer updates and annotation edits at once."""
    readers = ("R1", "R2", "R3", "R4")
    study = _study(tmp_path, 2, readers)
    n = 200
    env = dict(os.environ)
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_pg_writer.py"), str(study), r, str(n)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in readers
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    assert [o[0].strip() for o in outs] == [f"OK {n}"] * 4, [o[1][-500:] for o in outs]
    rows = _audit(study)
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))  # dense
    for r in readers:
        mine = [e for e in rows if e["actor"] == r]
        assert sum(e["event"] == "answer" for e in mine) == n // 2  # 0 lost
        assert sum(e["event"] == "annotation" for e in mine) == n // 2
    for r in readers:
        rs = ReaderSession(study, r)
        try:
            p = rs.reads()[0].pseudonym
            assert rs.answers(p)["comment"] == f"{r} change {n - 2}"  # the last write won
            (ann,) = rs.annotations(p)
            assert ann["points_ras"][1][0] == pytest.approx(1.0 + (n - 1) / 1000)
        finally:
            rs.close()
    st = Study(study)
    try:
        res = st.verify()
    finally:
        st.close()
    assert res.ok, res.problems


def test_a_version_1_database_is_upgraded_once_and_logged(tmp_path):
    study = _study(tmp_path)
    # make it a version-1 database: no changes table, schema_version 1
    study_sql(study, "DROP TABLE changes")
    study_sql(study, "UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    rs = ReaderSession(study, "R1")  # opening upgrades it
    try:
        p = rs.reads()[0].pseudonym
        rs.open_read(p)
        rs.set_answer(p, "thinning", 1, change_id="abc")
    finally:
        rs.close()
    rows = _audit(study)
    ups = [r for r in rows if r["event"] == "schema_upgrade"]
    assert len(ups) == 1 and json.loads(ups[0]["details"]) == {"from_version": 1, "to_version": 2}
    Study(study).close()  # a second open does not upgrade again
    assert sum(r["event"] == "schema_upgrade" for r in _audit(study)) == 1
    assert main(["study", "verify", str(study)]) == 0


def test_a_retried_change_is_applied_once(tmp_path):
    study = _study(tmp_path)
    rs = ReaderSession(study, "R1")
    try:
        p = rs.reads()[0].pseudonym
        rs.open_read(p)
        before = len(_audit(study))
        for _ in range(3):  # the client saw no confirmation and retried twice
            rs.set_answer(p, "confidence", 4, change_id="c-1")
        ann = {"slot": "L_hand_caliper", "kind": "caliper", "points_ras": [[0, 0, 0], [2, 0, 0]]}
        for _ in range(2):
            rs.save_annotation(p, "L_hand_caliper", ann, change_id="c-2")
        rs.set_answer(p, "confidence", 5, change_id="c-3")  # a new change is applied
        assert rs.answers(p)["confidence"] == 5
    finally:
        rs.close()
    events = [r["event"] for r in _audit(study)[before:]]
    assert events == ["answer", "annotation", "answer"]


def test_credentials_stay_out_of_study_json_and_output(tmp_path, study_backend, capsys):
    if study_backend != "postgresql":
        pytest.skip("server credentials")
    study = _study(tmp_path)
    info = json.loads((study / "study.json").read_text(encoding="utf-8"))
    url = info["database_url"]
    import sqlalchemy as sa

    assert url.startswith("postgresql+psycopg://") and sa.engine.make_url(url).password is None
    password = os.environ["PGPASSWORD"]
    assert password not in (study / "study.json").read_text(encoding="utf-8")
    with_pw = url.replace("@", f":{password}@", 1)
    (tmp_path / "s2").mkdir()
    rc = main(
        ["study", "init", str(tmp_path / "s2" / "study"), "--cases", str(tmp_path / "cases.csv"),
         "--readers", "R1", "--database-url", with_pw]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "must not contain a password" in err and password not in err
    assert not (tmp_path / "s2" / "study").exists()
    assert main(["study", "verify", str(study)]) == 0
    assert password not in capsys.readouterr().out


def test_an_unreachable_server_is_one_clear_line(tmp_path, study_backend, capsys):
    if study_backend != "postgresql":
        pytest.skip("server")
    study = _study(tmp_path)
    info = json.loads((study / "study.json").read_text(encoding="utf-8"))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    host_port = info["database_url"].split("@")[1].split("/")[0]
    info["database_url"] = info["database_url"].replace(host_port, f"127.0.0.1:{closed}")
    (study / "study.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises((StoreUnavailableError, M1Error)) as ei:
        ReaderSession(study, "R1")
    assert "\n" not in str(ei.value)
    assert main(["study", "verify", str(study)]) == 2
    assert "Traceback" not in capsys.readouterr().err
