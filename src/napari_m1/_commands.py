"""``napari-m1 sample | info | measure | demo``: the case and annotation commands.

Registered by :mod:`napari_m1.cli` through :func:`register`. Each command returns
its exit status; user errors raise :class:`~napari_m1.errors.M1Error`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


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
        with_mrs=args.mrs or args.mrs_noise_free,
        mrs_noise=not args.mrs_noise_free,
    )
    print(f"wrote {args.group} phantom (seed {args.seed}) to {out}")
    return 0


def _add_qc_arguments(p: argparse.ArgumentParser) -> None:
    """``--max-sd-pct``, ``--max-fwhm-ppm``, ``--min-snr``: MRSI ratio-map QC thresholds."""
    g = p.add_argument_group("MRSI quality control (ratio maps of an fsl_mrsi output)")
    g.add_argument(
        "--max-sd-pct", type=float, default=20.0, help="exclude %%SD (CRLB) above (default 20)"
    )
    g.add_argument(
        "--max-fwhm-ppm", type=float, default=0.1, help="exclude FWHM above, ppm (default 0.1)"
    )
    g.add_argument("--min-snr", type=float, default=5.0, help="exclude S/N below (default 5)")


def _qc_thresholds(args: argparse.Namespace) -> Any:
    from .mrsi import QCThresholds

    return QCThresholds(args.max_sd_pct, args.max_fwhm_ppm, args.min_snr)


def _cmd_info(args: argparse.Namespace) -> int:
    from .io import case_summary, load_case

    case = load_case(args.case_dir, mrsi_thresholds=_qc_thresholds(args))
    for w in case.warnings:
        print(f"warning: {w}", file=sys.stderr)
    rows = case_summary(case)
    if args.json:
        import json

        qc = [v.extra["qc"] for v in case.volumes if v.extra.get("mrsi_ratio")]
        print(json.dumps({"case": case.files.label, "layers": rows, "mrsi_qc": qc}, indent=1))
        return 0
    cols = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)))
    return 0


def _cmd_measure(args: argparse.Namespace) -> int:
    from ._files import check_outputs, shown
    from .annotation import CaseMismatchError, load_annotations
    from .errors import M1Error
    from .io import load_case
    from .io._case import case_input_files
    from .measure import case_fingerprint_of, engine_for_case, write_measurements_csv

    check_outputs([args.out], [args.annotations, args.case_dir])
    case = load_case(args.case_dir, mrsi_thresholds=_qc_thresholds(args))
    check_outputs([args.out], case_input_files(case.files))
    fp = case_fingerprint_of(case)
    try:
        annset = load_annotations(args.annotations, case=fp)
    except CaseMismatchError as exc:
        if not args.force:
            raise M1Error(f"{exc} (--force measures them on this case deliberately)") from None
        print(f"warning: {exc}; transferred onto this case (--force)", file=sys.stderr)
        annset = load_annotations(args.annotations, case=fp, transfer=True)
    engine = engine_for_case(case, annset.protocol, reader=args.reader or annset.reader)
    engine.set_all(annset.items.values())
    rows = engine.rows()
    write_measurements_csv(args.out, rows)
    missing = annset.missing()
    print(
        f"wrote {len(rows)} measurement rows for {len(annset.items)} annotations to "
        f"{shown(args.out)}" + (f"; {len(missing)} slot(s) not annotated" if missing else "")
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._qt.demo import run_demo

    return run_demo(headless=args.headless, out_dir=Path(args.out), group=args.group)


def register(subparsers: Any) -> None:
    """Add ``sample``, ``info``, ``measure`` and ``demo`` to ``subparsers``."""
    s = subparsers.add_parser("sample", help="write the synthetic 7T M1 phantom as a case folder")
    s.add_argument("out_dir", help="folder to create (must be empty or absent)")
    s.add_argument("--group", choices=("control", "als"), default="control")
    s.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    s.add_argument("--slices", type=int, default=60, help="axial slices, even, >= 16")
    s.add_argument("--phase", action="store_true", help="also write GRE phase images")
    s.add_argument(
        "--mrs",
        action="store_true",
        help="also write MRSI spectra (NIfTI-MRS), an fsl_mrsi folder and LCModel CSVs "
        "with planted QC failures",
    )
    s.add_argument(
        "--mrs-noise-free", action="store_true", help="as --mrs, without noise in the spectra"
    )
    s.add_argument(
        "--label",
        help="subject label in the file names (default names the group: "
        "pass a neutral one for blinded studies)",
    )
    s.add_argument("--force", action="store_true", help="overwrite a non-empty folder")
    s.set_defaults(func=_cmd_sample)

    i = subparsers.add_parser("info", help="load a case folder and list its layers")
    i.add_argument("case_dir")
    i.add_argument(
        "--json",
        action="store_true",
        help="print JSON: the layers and, for an fsl_mrsi output, each ratio map's QC summary",
    )
    _add_qc_arguments(i)
    i.set_defaults(func=_cmd_info)

    m = subparsers.add_parser("measure", help="recompute every measurement from saved annotations")
    m.add_argument("case_dir")
    m.add_argument("annotations", help="annotations file (*.m1ann.jsonl)")
    m.add_argument("--out", required=True, help="measurements CSV to write")
    m.add_argument("--reader", default="", help="reader id for the rows (default: the file's)")
    m.add_argument(
        "--force",
        action="store_true",
        help="measure annotations written for another case (a deliberate transfer; "
        "the geometry is still checked against this case's grid)",
    )
    _add_qc_arguments(m)
    m.set_defaults(func=_cmd_measure)

    d = subparsers.add_parser(
        "demo", help="napari with the plugin docked and the sample case open"
    )
    d.add_argument(
        "--headless",
        action="store_true",
        help="scripted session: write a screenshot and a CSV, then exit",
    )
    d.add_argument("--out", default="out/demo", help="output folder for --headless")
    d.add_argument("--group", choices=("control", "als"), default="als")
    d.set_defaults(func=_cmd_demo)
