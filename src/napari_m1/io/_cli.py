"""``napari-m1 import``: DICOM / BIDS / bare NIfTI folder -> case folder.

``napari_m1.cli`` calls :func:`register` with its subparsers. Unusable input
raises :class:`napari_m1.errors.M1Error` (one line, exit status 2).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register", "run_import"]

_HELP = "convert a DICOM folder, a BIDS dataset or a bare NIfTI folder into a case folder"
_EPILOG = (
    "Writes OUT_DIR/case.json and BIDS-like NIfTI + JSON sidecars "
    "(sub-<ID>_part-mag_MEGRE, part-phase or phasediff). The folder appears complete or not "
    "at all. Sidecars never carry the patient's name, ID or birth date; --anonymise also "
    "drops site fields and protocol names and lists every identifying tag removed."
)


def _echo_times(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``import`` sub-command to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser("import", help=_HELP, description=_HELP + ".", epilog=_EPILOG)
    p.add_argument("source", metavar="DICOM_OR_BIDS_DIR", help="folder to read")
    p.add_argument("out_dir", metavar="OUT_DIR", help="case folder to write (empty or absent)")
    p.add_argument(
        "--subject",
        help="BIDS subject to import (needed when the dataset has several); for DICOM, the "
        "subject label to write (default: the folder name; never taken from DICOM tags)",
    )
    p.add_argument("--session", help="BIDS session (when the subject has several)")
    p.add_argument("--series", help="DICOM magnitude series number or UID (default: most echoes)")
    p.add_argument("--list", action="store_true", help="list the DICOM series and exit")
    p.add_argument(
        "--anonymise",
        "--anonymize",
        action="store_true",
        help="also drop site fields and protocol names; print the identifying tags removed",
    )
    p.add_argument(
        "--echo-times",
        metavar="MS,MS,...",
        type=_echo_times,
        help="echo times in ms for a source that does not hold them (a bare NIfTI folder)",
    )
    p.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR")
    p.add_argument(
        "--gzip", action="store_true", help="write .nii.gz (smaller, slower) instead of .nii"
    )
    p.set_defaults(func=run_import)
    return p


def run_import(args: argparse.Namespace) -> int:
    """Run ``napari-m1 import`` for parsed ``args``; returns 0."""
    from ._import import import_case

    if args.list:
        from ._dicom import scan_dicom
        from ._dicom_case import series_table

        scan = scan_dicom(args.source)
        for row in series_table(scan):
            te = ", ".join(f"{t:g}" for t in row["te_ms"]) if row["te_ms"] else "unknown"
            line = (
                f"series {row['series']:>4}  {row['component']}  echoes {row['echoes']}  "
                f"TE {te} ms  {row['matrix']}  {row['files']} file(s)  {row['description']}"
            )
            print(line + (f"  -- {row['problem']}" if row["problem"] else ""))
        for n in scan.notes:
            print(f"note: {n}", file=sys.stderr)
        return 0
    from pathlib import Path

    from .._files import check_outputs

    # OUT_DIR is replaced wholesale (--force): it must not be, or hold, the source
    check_outputs([args.out_dir], [args.source], trees=[Path(args.out_dir)])
    res = import_case(
        args.source,
        args.out_dir,
        subject=args.subject,
        session=args.session,
        series=args.series,
        anonymise=args.anonymise,
        force=args.force,
        gzip=args.gzip,
        echo_times_ms=args.echo_times,
    )
    for n in res.notes:
        print(f"note: {n}", file=sys.stderr)
    if args.anonymise:
        removed = ", ".join(res.removed_tags) if res.removed_tags else "none present"
        print(f"removed identifying tags: {removed}")
    n_img = sum(f.endswith((".nii", ".nii.gz")) for f in res.files)
    print(f"wrote {n_img} image(s) and case.json to {res.out}")
    return 0
