"""``napari-m1 study init | verify | export | unblind | unlock`` (the coordinator's commands).

Every command but ``init`` needs the study's coordinator key (see :mod:`._role`).

Registered by :mod:`napari_m1.cli` through :func:`register`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _study_files(study_dir: str) -> list[Path]:
    """The files a study folder holds (no command output may be one of them)."""
    from ._common import DB_NAME, STUDY_JSON

    d = Path(study_dir)
    return [d / n for n in (STUDY_JSON, DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm")]


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {v})")
    return v


def _cmd_init(args: argparse.Namespace) -> int:
    from .._files import check_outputs, shown
    from ..errors import M1InputError
    from . import create_study

    d = Path(args.study_dir)
    if d.exists() and not d.is_dir():
        raise M1InputError(f"{shown(d.name)}: exists and is not a folder")
    cases = args.cases
    if Path(cases).is_dir():  # a BIDS dataset: one case per subject/session
        from ..io._bids import write_bids_cases_csv

        cases = d.with_name(d.name + "-cases.csv")
        for note in write_bids_cases_csv(args.cases, cases):
            print(f"note: {note}", file=sys.stderr)
        print(f"wrote the case key {cases} (keep it for unblinding)")
    check_outputs(_study_files(args.study_dir), [cases])  # --force must not eat cases.csv
    st = create_study(
        args.study_dir,
        cases,
        args.readers.split(","),
        seed=args.seed,
        repeat_fraction=args.repeat_fraction,
        force=args.force,
        back_navigation=args.allow_back,
        incomplete_protocol=args.incomplete_protocol,
        hide_numbers=args.hide_numbers,
        coordinator_key=args.coordinator_key,
        database_url=args.database_url,
    )
    try:
        n = len(st.reads())
        print(f"study {st.study_id}: {len(st.readers)} reader(s), {n} reads in {args.study_dir}")
    finally:
        st.close()
    return 0


def _with_study(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        from . import Study

        st = Study(args.study_dir, coordinator_key=args.coordinator_key)
        try:
            return int(fn(st, args))
        finally:
            st.close()

    return run


@_with_study
def _cmd_verify(st: Any, args: argparse.Namespace) -> int:
    res = st.verify()
    if res.read_only:
        print(
            "note: the study folder is read-only; the database file was verified as it is",
            file=sys.stderr,
        )
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if res.ok:
        print(
            f"audit log OK: {res.n_entries} entries, hash chain intact, "
            f"database integrity {res.integrity}; last hash {res.last_hash}"
        )
        return 0
    for p in res.problems:
        print(f"TAMPERED: {p}", file=sys.stderr)
    print(
        f"napari-m1: error: audit log verification failed ({len(res.problems)} problem(s))",
        file=sys.stderr,
    )
    return 1


@_with_study
def _cmd_export(st: Any, args: argparse.Namespace) -> int:
    from .._files import check_outputs

    check_outputs(
        [args.out, args.measurements], [*_study_files(args.study_dir), args.coordinator_key]
    )
    check_outputs([args.measurements], [args.out])
    st.export_readings(args.out)
    msg = f"wrote {args.out}"
    if args.measurements:
        res = st.export_measurements(args.measurements)
        msg += f" and {args.measurements} ({res.rows} rows, {res.case_loads} case(s) loaded)"
        for s in res.skipped:
            print(f"warning: {s} (not exported)", file=sys.stderr)
    print(msg)
    return 0


@_with_study
def _cmd_unblind(st: Any, args: argparse.Namespace) -> int:
    from .._files import check_outputs

    check_outputs(
        [args.out],
        [args.key, args.clinical, args.coordinator_key, *_study_files(args.study_dir)],
    )
    st.unblind(args.key, args.out, clinical_csv=args.clinical)
    print(f"wrote {args.out} (unblinded; logged)")
    return 0


@_with_study
def _cmd_unlock(st: Any, args: argparse.Namespace) -> int:
    st.unlock(args.reader, args.pseudonym, args.reason)
    print(f"unlocked {args.pseudonym} for {args.reader} (logged)")
    return 0


def register(subparsers: Any) -> None:
    """Add ``study`` and its sub-commands to ``subparsers``."""
    st = subparsers.add_parser("study", help="blinded multi-reader studies (coordinator)")
    ss = st.add_subparsers(dest="study_command", required=True)
    si = ss.add_parser("init", help="create a study from cases.csv (case_id,path)")
    si.add_argument("study_dir")
    si.add_argument(
        "--cases",
        required=True,
        help="CSV with at least case_id,path, or a BIDS dataset folder (one case per "
        "subject/session; the key is written to STUDY_DIR-cases.csv)",
    )
    si.add_argument("--readers", required=True, help="comma-separated reader ids, e.g. R1,R2")
    si.add_argument("--seed", type=_seed, default=0, help="seed of the reading orders")
    si.add_argument(
        "--repeat-fraction",
        type=float,
        default=0.0,
        help="share of cases each reader reads again, hidden (0-1)",
    )
    si.add_argument(
        "--allow-back",
        action="store_true",
        help="let readers go back to submitted cases (read-only)",
    )
    si.add_argument(
        "--incomplete-protocol",
        choices=("ask", "block"),
        default="ask",
        help="submit with empty protocol slots: ask the reader (default) or block",
    )
    si.add_argument(
        "--hide-numbers",
        action="store_true",
        help="hide live measurement numbers from readers while they answer",
    )
    si.add_argument("--force", action="store_true", help="replace an existing study")
    si.add_argument(
        "--database-url",
        metavar="URL",
        help="a server database for a multi-site study, e.g. "
        "postgresql+psycopg://USER@HOST/DB (no password: use PGPASSWORD or ~/.pgpass); "
        "default: study.sqlite in STUDY_DIR",
    )
    si.set_defaults(func=_cmd_init)
    sv = ss.add_parser("verify", help="check the audit log's hash chain and the database")
    sv.add_argument("study_dir")
    sv.set_defaults(func=_cmd_verify)
    se = ss.add_parser("export", help="blinded readings CSV (and measurements)")
    se.add_argument("study_dir")
    se.add_argument("--out", required=True)
    se.add_argument("--measurements", help="also write measurements CSV here")
    se.set_defaults(func=_cmd_export)
    su = ss.add_parser("unblind", help="join pseudonyms to case ids (coordinator only)")
    su.add_argument("study_dir")
    su.add_argument("--key", required=True, help="the study's cases.csv")
    su.add_argument("--clinical", help="clinical CSV (case_id, group, ...)")
    su.add_argument("--out", required=True)
    su.set_defaults(func=_cmd_unblind)
    sl = ss.add_parser("unlock", help="unlock a submitted read (coordinator only, logged)")
    sl.add_argument("study_dir")
    sl.add_argument("--reader", required=True)
    sl.add_argument("--pseudonym", required=True)
    sl.add_argument("--reason", required=True)
    sl.set_defaults(func=_cmd_unlock)
    for sub in (si, sv, se, su, sl):
        sub.add_argument(
            "--coordinator-key",
            metavar="FILE",
            help="the study's coordinator key file (init: where to write it; default: "
            "$NAPARI_M1_COORDINATOR_KEY, else the coordinator's napari-m1 data folder)",
        )
