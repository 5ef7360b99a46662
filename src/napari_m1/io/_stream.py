"""Streaming voxel reads: file bytes -> the one preallocated buffer, slab by slab.

Every per-voxel pass at load happens here, on a few-MiB slab while it is still in
the CPU cache: dtype conversion and ``scl_slope``/``scl_inter`` scaling, the
NaN/Inf count (Inf replaced by NaN) and, for phase, the finite value range. No
full-size temporary is ever allocated, so the process holds the data once.

gzip is inflated by python-isal (ISA-L, ~2.5x zlib on MRI data; see
docs/architecture.md) when it is installed, else by the standard library's zlib.
Both verify the gzip CRC-32 and length at the end of the stream.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import os
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import M1LoadError

__all__ = [
    "INFLATER",
    "ReadStats",
    "check_declared_size",
    "check_memory",
    "count_nonfinite",
    "format_bytes",
    "open_voxel_stream",
    "stream_into",
]

log = logging.getLogger(__name__)

SLAB_BYTES = 4 << 20  # bytes per read call: fits in L2/L3, keeps temporaries tiny
# deflate cannot expand data by more than 1032:1; a header claiming more is lying.
MAX_DEFLATE_RATIO = 1032

try:  # pragma: no cover - depends on the installed wheel
    from isal import igzip as _igzip
    from isal.isal_zlib import error as _isal_error

    INFLATER = "isal"
    _GZIP_ERRORS: tuple[type[BaseException], ...] = (zlib.error, _isal_error)
except ImportError:  # pragma: no cover
    _igzip = None
    INFLATER = "zlib"
    _GZIP_ERRORS = (zlib.error,)


def format_bytes(n: float) -> str:
    """Human-readable size with binary units, e.g. ``3.55 PiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024:
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def open_voxel_stream(path: Path, *, inflater: str | None = None) -> BinaryIO:
    """A binary file object over the (inflated) bytes of a ``.nii``/``.nii.gz``.

    ``inflater`` forces ``'isal'`` or ``'zlib'`` for ``.gz`` files (tests, benchmarks).
    """
    if str(path).lower().endswith(".gz"):
        which = inflater or INFLATER
        if which == "isal" and _igzip is not None:
            return _igzip.open(path, "rb")  # type: ignore[return-value]
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb", buffering=0)


def check_declared_size(path: Path, offset: int, nbytes: int, shape_text: str) -> None:
    """Refuse a header whose voxel data cannot fit in the file, before allocating.

    Parameters
    ----------
    path : Path
        The ``.nii`` or ``.nii.gz`` file.
    offset : int
        Byte offset of the voxel data (``vox_offset``) in the (inflated) stream.
    nbytes : int
        Voxel bytes the header declares.
    shape_text : str
        E.g. ``'100000x100000x100000 float32'`` for the message.

    Raises
    ------
    M1LoadError
        ``.nii``: fewer than ``offset + nbytes`` bytes on disk. ``.nii.gz``: more than
        deflate's maximum expansion (1032:1) of the compressed size.
    """
    size = path.stat().st_size
    if str(path).lower().endswith(".gz"):
        if nbytes + offset > size * MAX_DEFLATE_RATIO:
            raise M1LoadError(
                f"{path.name}: header declares {shape_text} = {format_bytes(nbytes)} of voxels, "
                f"more than a {format_bytes(size)} gzip file can hold; header is corrupt"
            )
    elif offset + nbytes > size:
        raise M1LoadError(
            f"{path.name}: truncated file: header declares {shape_text} = "
            f"{format_bytes(nbytes)} of voxels, the file holds "
            f"{format_bytes(max(size - offset, 0))}"
        )


def available_memory() -> int | None:
    """Bytes of memory the process can still get without swapping heavily (None: unknown)."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.available + psutil.swap_memory().free)
    except Exception:  # pragma: no cover - psutil comes with napari
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None


def check_memory(nbytes: int, what: str) -> None:
    """Refuse to allocate more than the machine has available (one-line M1LoadError)."""
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise M1LoadError(
            f"{what}: needs {format_bytes(nbytes)} of memory, only {format_bytes(avail)} available"
        )


@dataclass
class ReadStats:
    """Facts gathered while streaming (float outputs only).

    Attributes
    ----------
    n_nan : int
        NaN values as stored in the file (Inf excluded).
    n_inf : int
        +-Inf values (replaced by NaN in the buffer).
    lo, hi : float
        Finite minimum and maximum (only when ``track_range``; ``inf``/``-inf`` if
        nothing was finite).
    """

    n_nan: int = 0
    n_inf: int = 0
    lo: float = math.inf
    hi: float = -math.inf

    def merge(self, other: ReadStats) -> None:
        """Add another part's counts and widen the range."""
        self.n_nan += other.n_nan
        self.n_inf += other.n_inf
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)


def _slab_stats(a: np.ndarray, st: ReadStats, track_range: bool) -> None:
    """NaN/Inf count (Inf -> NaN in place) and finite range of one cache-hot slab."""
    if a.size == 0:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        if track_range:
            # min and max propagate NaN and show Inf: two passes give the range and
            # decide the usual all-finite case.
            lo, hi = float(np.minimum.reduce(a)), float(np.maximum.reduce(a))
            if math.isfinite(lo) and math.isfinite(hi):
                st.lo, st.hi = min(st.lo, lo), max(st.hi, hi)
                return
        else:
            # The sum of finite values is finite unless it overflows: one SIMD pass
            # decides the usual all-finite case; only other slabs look closer.
            if np.isfinite(np.add.reduce(a, dtype=a.dtype)):
                return
    inf = np.isinf(a)
    k = int(np.count_nonzero(inf))
    if k:
        a[inf] = np.nan
        st.n_inf += k
    st.n_nan += int(np.count_nonzero(np.isnan(a))) - k
    if track_range:
        lo, hi = float(np.fmin.reduce(a)), float(np.fmax.reduce(a))
        if not math.isnan(lo):
            st.lo, st.hi = min(st.lo, lo), max(st.hi, hi)


_POOL: ThreadPoolExecutor | None = None


def _stats_pool() -> ThreadPoolExecutor:
    """One helper thread for the per-slab statistics (shared by every load)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="napari-m1-stats")
    return _POOL


def _forget_pool_in_child() -> None:
    """A forked child inherits the pool object but not its thread: start a new one."""
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


def _stats_of(a: np.ndarray, st: ReadStats, is_float: bool, track_range: bool) -> None:
    if is_float:
        _slab_stats(a, st, track_range)
    elif track_range:
        st.lo = min(st.lo, float(a.min()))
        st.hi = max(st.hi, float(a.max()))


def count_nonfinite(data: np.ndarray, *, track_range: bool = False) -> ReadStats:
    """:func:`stream_into`'s statistics for an array already in memory (slab by slab)."""
    st = ReadStats()
    if data.dtype.kind != "f":
        if track_range and data.size:
            st.lo, st.hi = float(data.min()), float(data.max())
        return st
    flat = data.reshape(-1) if data.flags.c_contiguous else None
    if flat is not None:
        step = max(1, SLAB_BYTES // data.itemsize)
        for i in range(0, flat.size, step):
            _slab_stats(flat[i : i + step], st, track_range)
    else:
        for slab in data.reshape(-1, *data.shape[-2:]) if data.ndim >= 3 else data[None]:
            _slab_stats(slab, st, track_range)  # a view: Inf -> NaN writes through
    return st


def stream_into(
    path: Path,
    offset: int,
    out: np.ndarray,
    ondisk: np.dtype,
    slope: float = 1.0,
    inter: float = 0.0,
    *,
    track_range: bool = False,
    inflater: str | None = None,
) -> Iterator[int]:
    """Read voxel data into ``out`` slab by slab; a generator of bytes done.

    Parameters
    ----------
    path : Path
        ``.nii`` or ``.nii.gz``.
    offset : int
        Byte offset of the voxel data in the (inflated) stream.
    out : ndarray, C-contiguous
        Receives the data (file axes reversed); any numeric dtype. Scaling
        ``value * slope + inter`` is applied when it is not the identity.
    ondisk : dtype
        The file's voxel dtype (any byte order).
    track_range : bool
        Also gather the finite min/max (phase rescaling).

    Yields
    ------
    int
        Output bytes filled so far, after each slab. The generator's return value
        (``StopIteration.value``) is the :class:`ReadStats`.

    Raises
    ------
    M1LoadError
        Truncated file, corrupt gzip data or a failed CRC check (one line, file named).
    """
    if not out.flags.c_contiguous:
        raise ValueError("stream_into needs a C-contiguous output buffer")
    name = path.name
    flat = out.reshape(-1)
    native = ondisk.newbyteorder("=")
    direct = out.dtype == native and ondisk.isnative and slope == 1.0 and inter == 0.0
    is_float = out.dtype.kind == "f"
    step = max(1, SLAB_BYTES // max(ondisk.itemsize, out.itemsize))
    tmp = None if direct else np.empty(step, dtype=ondisk)
    st = ReadStats()
    done = 0
    # The statistics of slab k run in a helper thread while slab k + 1 is read (both
    # release the GIL): on two cores the per-voxel pass costs no wall time. A slab is
    # reported done only once its statistics (and Inf -> NaN) are finished.
    pool = _stats_pool() if is_float or track_range else None
    pending = None
    try:
        with open_voxel_stream(path, inflater=inflater) as fobj:
            fobj.seek(offset)
            for i in range(0, flat.size, step):
                dst = flat[i : i + step]
                target = dst if direct else tmp[: dst.size]  # type: ignore[index]
                raw = memoryview(target.view(np.uint8))
                got = 0
                while got < raw.nbytes:
                    n = fobj.readinto(raw[got:])
                    if not n:
                        raise M1LoadError(
                            f"{name}: truncated file: {i * ondisk.itemsize + got} of "
                            f"{flat.size * ondisk.itemsize} data bytes present"
                        )
                    got += n
                if not direct:
                    if slope != 1.0 or inter != 0.0:
                        np.multiply(target, slope, out=dst, casting="unsafe")
                        if inter:
                            dst += inter
                    else:
                        np.copyto(dst, target, casting="unsafe")
                if pending is not None:
                    pending.result()
                    yield done
                if pool is not None:
                    pending = pool.submit(_stats_of, dst, st, is_float, track_range)
                done += dst.nbytes
                if pool is None:
                    yield done
            if pending is not None:
                pending.result()
                pending = None
                yield done
            # Reading to the end of a gzip stream verifies its CRC-32 and length:
            # corrupt data that still inflates is caught here.
            while fobj.read(1 << 20):
                pass
    except M1LoadError:
        raise
    except (OSError, EOFError, ValueError, *_GZIP_ERRORS) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise M1LoadError(f"{name}: truncated or corrupt data ({reason})") from None
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(Exception):
                pending.result()  # never leave a helper writing into the buffer
    return st


def read_into(path: Path, offset: int, out: np.ndarray, ondisk: np.dtype, **kw) -> ReadStats:
    """:func:`stream_into` run to the end; returns its :class:`ReadStats`."""
    gen = stream_into(path, offset, out, ondisk, **kw)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
