"""Command line: ``napari-m1 {sample,info,demo}``.

Errors a user can fix (bad files, bad folders) print one line
``napari-m1: error: ...`` and exit with status 2; nothing is half-written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import M1Error

__all__ = ["main"]

log = logging.getLogger("napari_m1")


def _cmd_sample(args: argparse.Namespace) -> int:
    from .phantom import write_phantom_case

    out = write_phantom_case(
        args.out_dir,
        args.group,
        args.seed,
        n_slices=args.slices,
        with_phase=args.phase,
        label=args.label,
        force=args.force,
    )
    print(f"wrote {args.group} phantom (seed {args.seed}) to {out}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .io import case_summary, load_case

    case = load_case(args.case_dir)
    for w in case.warnings:
        print(f"warning: {w}", file=sys.stderr)
    rows = case_summary(case)
    cols = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)))
    return 0


def _cmd_measure(args: argparse.Namespace) -> int:
    from .annotation import load_annotations
    from .io import load_case
    from .measure import case_fingerprint_of, engine_for_case, write_measurements_csv

    case = load_case(args.case_dir)
    annset = load_annotations(args.annotations, case=case_fingerprint_of(case))
    engine = engine_for_case(case, annset.protocol, reader=args.reader or annset.reader)
    engine.set_all(annset.items.values())
    rows = engine.rows()
    write_measurements_csv(args.out, rows)
    missing = annset.missing()
    print(
        f"wrote {len(rows)} measurement rows for {len(annset.items)} annotations to {args.out}"
        + (f"; {len(missing)} slot(s) not annotated" if missing else "")
    )
    return 0


def _cmd_study(args: argparse.Namespace) -> int:
    from .session import Study, create_study

    if args.study_command == "init":
        readers = [r for r in args.readers.split(",")]
        st = create_study(
            args.study_dir,
            args.cases,
            readers,
            seed=args.seed,
            repeat_fraction=args.repeat_fraction,
            force=args.force,
            back_navigation=args.allow_back,
        )
        n = len(st.store.all_reads())
        print(f"study {st.study_id}: {len(st.readers)} reader(s), {n} reads in {args.study_dir}")
        st.close()
        return 0
    st = Study(args.study_dir)
    try:
        if args.study_command == "verify":
            res = st.verify()
            if res.ok:
                print(
                    f"audit log OK: {res.n_entries} entries, hash chain intact, "
                    f"database integrity {res.integrity}"
                )
                return 0
            for p in res.problems:
                print(f"TAMPERED: {p}", file=sys.stderr)
            print(
                f"napari-m1: error: audit log verification failed ({len(res.problems)} "
                "problem(s))",
                file=sys.stderr,
            )
            return 1
        if args.study_command == "export":
            st.export_readings(args.out)
            msg = f"wrote {args.out}"
            if args.measurements:
                st.export_measurements(args.measurements)
                msg += f" and {args.measurements}"
            print(msg)
            return 0
        if args.study_command == "unblind":
            st.unblind(args.key, args.out, clinical_csv=args.clinical)
            print(f"wrote {args.out} (unblinded; logged)")
            return 0
        if args.study_command == "unlock":
            st.unlock(args.reader, args.pseudonym, args.reason)
            print(f"unlocked {args.pseudonym} for {args.reader} (logged)")
            return 0
    finally:
        st.close()
    return 2


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(headless=args.headless, out_dir=Path(args.out), group=args.group)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    p = argparse.ArgumentParser(
        prog="napari-m1", description="7T motor-cortex (M1) reading tools for napari."
    )
    p.add_argument("--version", action="version", version=f"napari-m1 {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="command", required=True)
    from .stats._cli import register as _register_report

    _register_report(sub)
    from .io._cli import register as _register_import

    _register_import(sub)

    s = sub.add_parser("sample", help="write the synthetic 7T M1 phantom as a case folder")
    s.add_argument("out_dir", help="folder to create (must be empty or absent)")
    s.add_argument("--group", choices=("control", "als"), default="control")
    s.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    s.add_argument("--slices", type=int, default=60, help="axial slices, even, >= 16")
    s.add_argument("--phase", action="store_true", help="also write GRE phase images")
    s.add_argument(
        "--label",
        help="subject label in the file names (default names the group: "
        "pass a neutral one for blinded studies)",
    )
    s.add_argument("--force", action="store_true", help="overwrite a non-empty folder")
    s.set_defaults(func=_cmd_sample)

    i = sub.add_parser("info", help="load a case folder and list its layers")
    i.add_argument("case_dir")
    i.set_defaults(func=_cmd_info)

    m = sub.add_parser("measure", help="recompute every measurement from saved annotations")
    m.add_argument("case_dir")
    m.add_argument("annotations", help="annotations file (*.m1ann.jsonl)")
    m.add_argument("--out", required=True, help="measurements CSV to write")
    m.add_argument("--reader", default="", help="reader id for the rows (default: the file's)")
    m.set_defaults(func=_cmd_measure)

    st = sub.add_parser("study", help="blinded multi-reader studies (coordinator)")
    ss = st.add_subparsers(dest="study_command", required=True)
    si = ss.add_parser("init", help="create a study from cases.csv (case_id,path)")
    si.add_argument("study_dir")
    si.add_argument("--cases", required=True, help="CSV with at least case_id,path")
    si.add_argument("--readers", required=True, help="comma-separated reader ids, e.g. R1,R2")
    si.add_argument("--seed", type=int, default=0, help="seed of the reading orders")
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
    si.add_argument("--force", action="store_true", help="replace an existing study")
    sv = ss.add_parser("verify", help="check the audit log's hash chain and the database")
    sv.add_argument("study_dir")
    se = ss.add_parser("export", help="blinded readings CSV (and measurements)")
    se.add_argument("study_dir")
    se.add_argument("--out", required=True)
    se.add_argument("--measurements", help="also write measurements CSV here")
    su = ss.add_parser("unblind", help="join pseudonyms to case ids (coordinator only)")
    su.add_argument("study_dir")
    su.add_argument("--key", required=True, help="the study's cases.csv")
    su.add_argument("--clinical", help="clinical CSV (case_id, group, ...)")
    su.add_argument("--out", required=True)
    sl = ss.add_parser("unlock", help="unlock a submitted read (coordinator only, logged)")
    sl.add_argument("study_dir")
    sl.add_argument("--reader", required=True)
    sl.add_argument("--pseudonym", required=True)
    sl.add_argument("--reason", required=True)
    st.set_defaults(func=_cmd_study)

    d = sub.add_parser("demo", help="napari with the plugin docked and the sample case open")
    d.add_argument(
        "--headless",
        action="store_true",
        help="scripted session: write a screenshot and a CSV, then exit",
    )
    d.add_argument("--out", default="out/demo", help="output folder for --headless")
    d.add_argument("--group", choices=("control", "als"), default="als")
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-m1`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except (M1Error, ValueError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"napari-m1: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
