"""Command line: ``napari-m1 <command> ...``.

Every subsystem that offers commands has a module with ``register(subparsers)``
listed in :data:`SUBCOMMAND_MODULES`; that is the only way commands are added.
Each command's function takes the parsed arguments and returns the exit status.

Errors a user can fix (bad files, bad folders, an unwritable output) are raised as
:class:`~napari_m1.errors.M1Error`: they print one line ``napari-m1: error: ...``
and exit with status 2, and nothing is half-written. Any other exception is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__
from .errors import M1Error

__all__ = ["SUBCOMMAND_MODULES", "build_parser", "main"]

log = logging.getLogger("napari_m1")

#: Modules whose ``register(subparsers)`` adds commands, in ``--help`` order.
#: Importing them must stay cheap (heavy imports go inside the command functions).
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "napari_m1._commands",  # sample, info, measure, demo
    "napari_m1.session._cli",  # study init|verify|export|unblind|unlock
    "napari_m1.stats._cli",  # report
    "napari_m1.io._cli",  # import
    "napari_m1.batch._cli",  # batch
    "napari_m1.qsm._cli",  # qsm
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    p = argparse.ArgumentParser(
        prog="napari-m1", description="7T motor-cortex (M1) reading tools for napari."
    )
    p.add_argument("--version", action="version", version=f"napari-m1 {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
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
    except M1Error as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"napari-m1: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
