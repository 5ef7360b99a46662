"""Atomic file writes: a half-written file never replaces a good one.

Every writer in napari-m1 goes through these helpers. Data is written to a
temporary file in the destination folder, flushed and fsync'ed, then moved over
the destination with :func:`os.replace` (atomic on POSIX and Windows).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import M1WriteError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text"]


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; move it over ``dest`` on success.

    The caller writes the whole file to the yielded path. If the body raises,
    the temporary file is removed and ``dest`` is left untouched. An I/O failure
    (read-only folder, disk full) raises :class:`~napari_m1.errors.M1WriteError`.

    The temporary name keeps ``dest``'s suffixes (``.nii.gz``) so libraries that
    choose a format by extension (nibabel) write the right thing.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(dest.suffixes)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{dest.name.split('.')[0]}.", suffix=".tmp" + suffix, dir=dest.parent
        )
        os.close(fd)
    except OSError as exc:
        raise M1WriteError(dest, exc) from None
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the file the permissions an ordinary open() would.
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, dest)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, M1WriteError):
            raise M1WriteError(dest, exc) from None
        raise
    _fsync_dir(dest.parent)


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable; not possible on every platform.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(dest: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``dest`` atomically and return ``dest`` as a Path."""
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def atomic_write_text(dest: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``dest`` atomically and return ``dest`` as a Path."""
    return atomic_write_bytes(dest, text.encode(encoding))
