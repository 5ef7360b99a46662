"""Creating a study (coordinator): cases.csv, pseudonyms, reading orders, the coordinator key."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._atomic import atomic_write_text
from .._files import read_user_text
from ..errors import M1Error, M1InputError
from ..formats import STUDY_FORMAT
from ._common import DB_NAME, DEFAULT_SETTINGS, INCOMPLETE_CHOICES, STUDY_JSON
from ._coordinator_store import CoordinatorStore
from ._db import StudyDB
from ._role import META_KEY, default_key_path, new_key, write_key

if TYPE_CHECKING:
    from ._coordinator import Study

__all__ = ["create_study", "read_cases_csv"]

_PSEUDO_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def read_cases_csv(path: str | os.PathLike[str], *, check_paths: bool = True) -> list[dict]:
    """Read ``cases.csv`` (at least ``case_id,path``); relative paths are relative to it.

    Raises
    ------
    M1Error
        Wrong encoding, missing columns, empty or duplicate ids, missing folders
        (one line, with the CSV line number).
    """
    p = Path(path)
    text = read_user_text(p)
    rd = csv.DictReader(io.StringIO(text))
    try:
        cols = [c.strip() for c in (rd.fieldnames or [])]
        records = list(rd)
    except csv.Error as exc:  # e.g. a 200 kB cell: "field larger than field limit"
        raise M1Error(f"{p.name}, line {rd.line_num}: not a usable CSV row ({exc})") from None
    missing = [c for c in ("case_id", "path") if c not in cols]
    if missing:
        raise M1Error(
            f"{p.name}, line 1: missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(cols) or 'none'})"
        )
    out, seen, paths = [], {}, {}
    for lineno, rec in enumerate(records, start=2):
        rec = {(k or "").strip(): (v or "").strip() for k, v in rec.items() if isinstance(k, str)}
        cid, cpath = rec.get("case_id", ""), rec.get("path", "")
        if not cid:
            raise M1Error(f"{p.name}, line {lineno}: empty case_id")
        if len(cid) > 200 or any(ord(ch) < 32 or ord(ch) == 127 for ch in cid):
            raise M1Error(
                f"{p.name}, line {lineno}: case_id must be one line of at most 200 characters"
            )
        if cid in seen:
            raise M1Error(
                f"{p.name}, line {lineno}: duplicate case_id {cid!r} (first on line {seen[cid]})"
            )
        seen[cid] = lineno
        if not cpath or "\x00" in cpath:
            raise M1Error(f"{p.name}, line {lineno}: empty or unusable path for case {cid!r}")
        folder = Path(cpath) if Path(cpath).is_absolute() else (p.parent / cpath)
        if check_paths and not folder.is_dir():
            raise M1Error(f"{p.name}, line {lineno}: case folder for {cid!r} not found")
        resolved = str(folder.resolve())
        if resolved in paths:
            raise M1Error(
                f"{p.name}, line {lineno}: case {cid!r} uses the same folder as line "
                f"{paths[resolved]}"
            )
        paths[resolved] = lineno
        out.append({"case_id": cid, "path": resolved})
    if not out:
        raise M1Error(f"{p.name}: no cases")
    return out


def _pseudonym(taken: set[str]) -> str:
    while True:
        p = "M1-" + "".join(secrets.choice(_PSEUDO_ALPHABET) for _ in range(6))
        if p not in taken:
            taken.add(p)
            return p


def _repeat_cases(order: list[int], n_rep: int, rng: np.random.Generator) -> list[int]:
    """Cases to read again, in the order they were first read.

    The cases read last in the first pass are avoided (when there are enough others),
    so that a hidden repeat never follows its first read closely.
    """
    if n_rep <= 0:
        return []
    gap = min(max(2, len(order) // 3), len(order) - n_rep)
    pool = order[: len(order) - gap] if gap > 0 else list(order)
    chosen = {int(k) for k in rng.choice(pool, n_rep, replace=False)}
    return [k for k in order if k in chosen]


def _reader_rng(seed: int, reader: str) -> np.random.Generator:
    h = int.from_bytes(hashlib.sha256(reader.encode()).digest()[:8], "big")
    return np.random.default_rng([seed, h])


def default_database_url(study_dir: Path) -> str:
    """The database of a new study when none is given: ``study.sqlite`` in its folder.

    (A seam for the test suite, which runs every study test on PostgreSQL too.)
    """
    return f"sqlite:///{Path(study_dir) / DB_NAME}"


def check_database_url(url: str) -> str:
    """A server URL for ``study.json``: parsable and without a password.

    Raises
    ------
    M1InputError
        One line saying what is wrong.
    """
    import sqlalchemy as sa

    try:
        u = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise M1InputError(f"--database-url {url!r} is not a database URL") from None
    if u.password is not None:
        raise M1InputError(
            "--database-url must not contain a password (it would be stored in study.json): "
            "set PGPASSWORD, or use a pgpass or libpq service file"
        )
    if not u.drivername.startswith(("postgresql", "sqlite")):
        raise M1InputError(f"--database-url: {u.drivername} is not supported (postgresql)")
    return url


def _study_json(study_id: str, url: str, db_path: Path) -> dict[str, Any]:
    info: dict[str, Any] = {"format": STUDY_FORMAT, "study_id": study_id}
    if url == f"sqlite:///{db_path}":
        info["database"] = DB_NAME
    else:
        info["database_url"] = url
    return info


def create_study(
    study_dir: str | os.PathLike[str],
    cases_csv: str | os.PathLike[str],
    readers: Sequence[str],
    *,
    seed: int = 0,
    repeat_fraction: float = 0.0,
    force: bool = False,
    back_navigation: bool = False,
    protocol: str = "m1-7t",
    incomplete_protocol: str = "ask",
    hide_numbers: bool = False,
    coordinator_key: str | os.PathLike[str] | None = None,
    database_url: str | None = None,
) -> Study:
    """Create a study (coordinator). See ``napari-m1 study init --help``.

    Each case gets a random pseudonym (``secrets``; not derived from id or path);
    each reader an independent order seeded by ``seed`` and the reader id; a hidden
    repeat read of ``repeat_fraction`` of the cases is appended to each reader's
    list under a new pseudonym.

    The coordinator key (:mod:`._role`) is written to ``coordinator_key`` (default:
    :func:`~._role.default_key_path` of the new study id), never into the study
    folder. Replacing a study (``force``) needs the old study's key.

    Settings: ``back_navigation`` (readers may reopen submitted reads, read-only);
    ``incomplete_protocol`` (``ask``: submit asks the reader with the list of empty
    protocol slots; ``block``: every slot is required); ``hide_numbers`` (the live
    measurement numbers are hidden from readers).

    ``database_url``: a server database for a multi-site study, e.g.
    ``postgresql+psycopg://m1coord@db.example.org/m1_study`` (an empty database). It is
    written to ``study.json``; a password in it is refused — libpq takes it from
    ``PGPASSWORD``, a pgpass file or a service file. Default: ``study.sqlite`` in the
    study folder.
    """
    from ._coordinator import Study

    d = Path(study_dir)
    rds = [r.strip() for r in readers if r.strip()]
    if not rds:
        raise M1Error("a study needs at least one reader")
    if len(set(rds)) != len(rds):
        raise M1Error(f"duplicate reader id in {', '.join(rds)}")
    for r in rds:
        if not all(ch.isalnum() or ch in "-_." for ch in r):
            raise M1Error(f"reader id {r!r}: use letters, digits, '-', '_' or '.'")
    if not 0.0 <= repeat_fraction <= 1.0:
        raise M1Error(f"--repeat-fraction must be between 0 and 1, got {repeat_fraction}")
    if incomplete_protocol not in INCOMPLETE_CHOICES:
        raise M1Error(
            f"incomplete protocol setting must be one of {', '.join(INCOMPLETE_CHOICES)}, "
            f"got {incomplete_protocol!r}"
        )
    from ..protocol import get_protocol

    get_protocol(protocol)  # an unknown protocol is refused before anything is written
    url = check_database_url(database_url) if database_url else default_database_url(d)
    cases = read_cases_csv(cases_csv)
    db_path = d / DB_NAME
    if (d / STUDY_JSON).exists() or db_path.exists():
        if not force:
            raise M1Error(f"{d.name}: a study exists here already (use --force to replace it)")
        if (d / STUDY_JSON).exists() and db_path.exists():
            Study(d, coordinator_key=coordinator_key).close()  # the old study's key
        for f in (db_path, d / (DB_NAME + "-wal"), d / (DB_NAME + "-shm"), d / STUDY_JSON):
            f.unlink(missing_ok=True)
    study_id = "S-" + secrets.token_hex(4)
    key, key_sha = new_key()
    key_path = Path(coordinator_key) if coordinator_key else default_key_path(study_id)
    write_key(key_path, key)
    d.mkdir(parents=True, exist_ok=True)
    db = StudyDB(url, create=True)
    settings = dict(
        DEFAULT_SETTINGS,
        back_navigation=bool(back_navigation),
        protocol=protocol,
        incomplete_protocol=incomplete_protocol,
        hide_numbers=bool(hide_numbers),
    )
    taken: set[str] = set()
    cases_rows = [
        dict(case_key=i, case_id=c["case_id"], path=c["path"], pseudonym=_pseudonym(taken))
        for i, c in enumerate(cases, start=1)
    ]
    pseudo = {c["case_key"]: c["pseudonym"] for c in cases_rows}
    n_rep = round(repeat_fraction * len(cases))
    reads: list[dict[str, Any]] = []
    for reader in rds:
        rng = _reader_rng(seed, reader)
        order = [int(k) + 1 for k in rng.permutation(len(cases))]
        mine = [
            dict(
                reader=reader,
                case_key=k,
                pseudonym=pseudo[k],
                read_no=n,
                is_repeat=0,
                repeat_of=None,
            )
            for n, k in enumerate(order, start=1)
        ]
        for k in _repeat_cases(order, n_rep, rng):
            mine.append(
                dict(
                    reader=reader,
                    case_key=k,
                    pseudonym=_pseudonym(taken),
                    read_no=len(mine) + 1,
                    is_repeat=1,
                    repeat_of=pseudo[k],
                )
            )
        reads.extend(mine)
    meta = {"study_id": study_id, "settings": json.dumps(settings), META_KEY: key_sha}
    try:
        CoordinatorStore(db).create_study(
            meta,
            cases_rows,
            reads,
            rds,
            dict(
                n_cases=len(cases),
                readers=rds,
                seed=seed,
                repeat_fraction=repeat_fraction,
                settings=settings,
            ),
        )
    finally:
        db.dispose()
    atomic_write_text(
        d / STUDY_JSON,
        json.dumps(_study_json(study_id, url, db_path), indent=2),
    )
    return Study(d, coordinator_key=key_path)
