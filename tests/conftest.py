"""Shared fixtures. Every user/config/study folder points into tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-gre-small"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NAPARI_M1_DATA_DIR", str(tmp_path_factory.mktemp("m1-user-data")))


@pytest.fixture(scope="session")
def real_gre_dir() -> Path:
    env = os.environ.get("NAPARI_M1_REAL_DATA")
    d = Path(env) if env else SHARED_DATA
    if not (d / "Mag.nii.gz").is_file():
        pytest.skip(f"real GRE data not found at {d}")
    return d


@pytest.fixture(scope="session")
def phantom_case(tmp_path_factory) -> Path:
    """A small (16-slice) control phantom case folder, written once per test session."""
    from napari_m1.phantom import write_phantom_case

    out = tmp_path_factory.mktemp("phantom") / "case"
    return write_phantom_case(out, "control", seed=1, n_slices=16)


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where GUI tests save screenshots: $NAPARI_M1_SCREENSHOTS (to look at them) or tmp_path."""
    d = Path(os.environ.get("NAPARI_M1_SCREENSHOTS", tmp_path))
    d.mkdir(parents=True, exist_ok=True)
    return d


def make_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None, **hdr) -> Path:
    """Write a NIfTI-1 with sform and qform set (scanner), return its path."""
    import nibabel as nib

    aff = np.eye(4) if affine is None else affine
    img = nib.Nifti1Image(data, aff)
    img.set_sform(aff, code=1)
    img.set_qform(aff, code=1)
    for k, v in hdr.items():
        img.header[k] = v
    nib.save(img, str(path))
    return path


# ----------------------------------------------------------------------------- study backends
# Every study test runs on SQLite (the default) and on a real PostgreSQL server started
# here on 127.0.0.1 (tests/pgserver.py). Modules opt in with
#   pytestmark = pytest.mark.usefixtures("study_backend")
# and tests that open the SQLite file itself are marked @pytest.mark.sqlite_only.


@pytest.fixture(scope="session")
def pg_server():
    """A throw-away PostgreSQL server for the whole test session (skips when impossible)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from pgserver import PgUnavailable, start_server

    try:
        srv = start_server()
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL cannot be started here: {exc}")
    yield srv
    srv.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def study_backend(request, monkeypatch):
    """Which database new studies get: their folder's SQLite file, or a fresh PostgreSQL
    database per study (credentials through PGPASSWORD, never in study.json)."""
    if request.param == "sqlite":
        return "sqlite"
    if request.node.get_closest_marker("sqlite_only"):
        pytest.skip("opens the SQLite study file itself")
    import itertools
    import uuid

    import napari_m1.session._setup as setup

    srv = request.getfixturevalue("pg_server")
    monkeypatch.setenv("PGPASSWORD", srv.password)
    counter = itertools.count()

    def new_url(study_dir):
        return srv.create_database(f"m1_{uuid.uuid4().hex[:10]}_{next(counter)}")

    monkeypatch.setattr(setup, "default_database_url", new_url)
    return "postgresql"


def study_sql(study: Path, statement: str, *params) -> None:
    """Run one SQL statement (``?`` placeholders) on a study's database, behind
    napari-m1's back (tests of tamper detection), whatever its backend."""
    import json
    import sqlite3

    info = json.loads((Path(study) / "study.json").read_text(encoding="utf-8"))
    url = info.get("database_url")
    if not url:
        con = sqlite3.connect(Path(study) / "study.sqlite")
        try:
            con.execute(statement, params)
            con.commit()
        finally:
            con.close()
        return
    import psycopg
    import sqlalchemy as sa

    u = sa.engine.make_url(url)
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, dbname=u.database
    ) as con:  # password from PGPASSWORD
        con.execute(statement.replace("?", "%s"), params)
