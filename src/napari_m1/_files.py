"""User-supplied files: reading them with one-line errors, and guarding outputs.

* :func:`read_user_text` / :func:`read_user_json` turn every way a hand-edited or
  hostile file can be unreadable (encoding, nesting 100000 deep, NaN, the wrong
  type at the top) into one :class:`~napari_m1.errors.M1Error` naming the file.
* :func:`check_outputs` is called by every command that writes, before it
  writes: no output may be one of the command's own inputs (the same file or
  folder by name, symlink or hard link).
* :func:`shown` makes a path printable whatever bytes its name holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import M1Error, M1InputError

__all__ = ["check_outputs", "parse_user_json", "read_user_json", "read_user_text", "shown"]


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` as printable text: undecodable bytes of a file name become ``\\xNN``.

    >>> shown(os.fsdecode(b"case-\\xff"))
    'case-\\\\xff'
    """
    s = os.fspath(path)
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_user_text(path: str | os.PathLike[str], *, encoding: str = "utf-8-sig") -> str:
    """The file's text (UTF-8, a byte-order mark allowed).

    Raises
    ------
    M1Error
        ``<name>: not UTF-8 text …`` or ``<name>: cannot read (<reason>)``.
    """
    p = Path(path)
    try:
        return p.read_text(encoding=encoding)
    except UnicodeDecodeError:
        raise M1Error(f"{shown(p.name)}: not UTF-8 text (save it as UTF-8)") from None
    except OSError as exc:
        raise M1Error(f"{shown(p.name)}: cannot read ({exc.strerror or exc})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_user_json(text: str, what: str) -> Any:
    """Parse JSON text from a user's file; ``what`` (the file name, a line) starts errors.

    Strict JSON: ``NaN`` and ``Infinity`` are refused, and so is nesting too deep
    for Python (a RecursionError becomes a one-line error).

    Raises
    ------
    M1Error
        ``<what>: not valid JSON (<reason>)``.
    """
    pre = f"{what}: " if what else ""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise M1Error(f"{pre}not valid JSON ({exc.msg}, column {exc.colno})") from None
    except RecursionError:
        raise M1Error(f"{pre}not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # NaN / Infinity, or an integer too long to convert
        raise M1Error(f"{pre}not valid JSON ({str(exc).splitlines()[0][:200]})") from None


def read_user_json(path: str | os.PathLike[str], *, expect: type | None = dict) -> Any:
    """A user's JSON file, checked to hold an ``expect`` (default: an object).

    Raises
    ------
    M1Error
        One line naming the file: unreadable, not UTF-8, not strict JSON, nested
        too deeply, or not a JSON object.
    """
    p = Path(path)
    obj = parse_user_json(read_user_text(p), shown(p.name))
    if expect is not None and not isinstance(obj, expect):
        kind = {dict: "a JSON object", list: "a JSON list"}.get(expect, expect.__name__)
        raise M1Error(f"{shown(p.name)}: must hold {kind}")
    return obj


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _inside(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies in it (symlinks resolved)."""
    p, f = os.path.realpath(path), os.path.realpath(folder)
    return p == f or p.startswith(f.rstrip(os.sep) + os.sep)


def check_outputs(
    outputs: Iterable[str | os.PathLike[str] | None],
    inputs: Iterable[str | os.PathLike[str] | None],
    *,
    trees: Iterable[str | os.PathLike[str] | None] = (),
) -> None:
    """Refuse, before anything is written, an output that is one of the inputs.

    Parameters
    ----------
    outputs : paths
        Files (or folders) the command is about to write or replace; ``None`` entries
        are skipped.
    inputs : paths
        Files and folders the command reads. An output that is the same file or
        folder (by name, symlink or hard link) is refused.
    trees : paths
        Output folders whose contents the command writes or replaces wholesale (a
        report's ``tables/``, an imported case folder with ``--force``): an input
        inside one, at any depth, is refused too.

    Raises
    ------
    M1InputError
        ``<output>: is an input of this command (<input>); choose another output``.
    """
    ins = [Path(i) for i in inputs if i is not None]
    for o in outputs:
        if o is None:
            continue
        out = Path(o)
        for i in ins:
            if _same_file(out, i):
                raise M1InputError(
                    f"{shown(out.name)}: is an input of this command ({shown(i.name)}); "
                    "choose another output"
                )
    for t in trees:
        if t is None:
            continue
        for i in ins:
            if _inside(i, Path(t)):
                raise M1InputError(
                    f"{shown(Path(t).name)}: would be replaced but holds an input of this "
                    f"command ({shown(i.name)}); choose another output folder"
                )
