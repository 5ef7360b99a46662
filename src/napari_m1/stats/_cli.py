"""``napari-m1 report``: study statistics and the HTML report.

``napari_m1.cli`` calls :func:`register` with its subparsers; the command's
function returns the exit status (0 when the report was written, even with data
issues). Unusable input raises :class:`napari_m1.errors.M1Error`, which the main
CLI turns into ``napari-m1: error: <message>`` and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run_report"]

_HELP = "study statistics and the HTML report from unblinded readings and clinical data"
_EPILOG = (
    "Writes REPORT_DIR/report.html (self-contained), REPORT_DIR/tables/*.csv and "
    "REPORT_DIR/figures/*.png. Exit status 0 when the report was written (data issues "
    "are listed in it), 2 when an input file is unusable."
)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {v})")
    return v


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``report`` sub-command to ``subparsers`` (from ``add_subparsers``).

    Returns
    -------
    argparse.ArgumentParser
        The new sub-parser (its ``func`` default is :func:`run_report`).
    """
    p = subparsers.add_parser("report", help=_HELP, description=_HELP + ".", epilog=_EPILOG)
    p.add_argument(
        "--readings",
        required=True,
        metavar="CSV",
        help="unblinded readings (napari-m1 study unblind; needs case_id)",
    )
    p.add_argument(
        "--clinical", required=True, metavar="CSV", help="clinical.csv (case_id, group, …)"
    )
    p.add_argument(
        "--measurements", metavar="CSV", help="measurements.csv (thickness and SI statistics)"
    )
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="report folder to write")
    p.add_argument(
        "--echo",
        type=_positive_int,
        metavar="N",
        help="GRE echo (1-based) for normalised SI; default: the last echo present",
    )
    p.set_defaults(func=run_report)
    return p


def run_report(args: argparse.Namespace) -> int:
    """Build the report described by parsed ``args``; print a summary; return 0.

    Raises
    ------
    napari_m1.errors.M1Error
        Unusable input or an unwritable output folder.
    """
    from pathlib import Path

    from .._files import check_outputs
    from ._report import build_report

    out = Path(args.out)  # no table, figure or page of the report may overwrite an input
    check_outputs(
        [out / "report.html"],
        [args.readings, args.clinical, args.measurements],
        trees=[out / "tables", out / "figures"],
    )

    result = build_report(
        args.readings,
        args.clinical,
        args.out,
        measurements=args.measurements,
        echo=args.echo,
        figure_process=True,  # a command-line process: safe to fork (see _figure_worker)
    )
    for issue in result.issues:
        label = "warning" if issue.severity == "issue" else "note"
        print(f"{label}: {issue.one_line()}", file=sys.stderr)
    print(f"napari-m1 report: {result.summary()}")
    return 0
