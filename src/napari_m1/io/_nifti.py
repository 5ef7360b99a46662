"""NIfTI -> arrays in canonical display order plus geometry. No Qt, no napari.

The data of a NIfTI file are stored Fortran-ordered (``i`` fastest). Read byte for
byte into a C-ordered buffer they form an array with the file axes reversed,
``(nk, nj, ni)`` or ``(nt, nk, nj, ni)`` -- already napari's natural "slice axis
first" layout, without a copy. Reorientation to the canonical display order is then
a transpose and flips (views). Multi-echo volumes from separate files are read
straight into one preallocated array, so peak memory stays at the data size.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from ..errors import M1Error, M1LoadError
from ..geometry import canonical_reorientation, check_affine, voxel_sizes

__all__ = [
    "KINDS",
    "Volume",
    "guess_kind",
    "is_nifti_path",
    "load_multi_echo",
    "load_nifti",
    "read_sidecar",
    "rescale_phase",
]

log = logging.getLogger(__name__)

Kind = Literal["gre", "phase", "qsm", "mrsi", "other"]
KINDS: tuple[str, ...] = ("gre", "phase", "qsm", "mrsi", "other")

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_CHUNK = 8 << 20  # bytes per read call


def is_nifti_path(path: str | os.PathLike[str]) -> bool:
    """True when the name ends in ``.nii`` or ``.nii.gz`` (case-insensitive)."""
    return str(path).lower().endswith(_NIFTI_SUFFIXES)


def _stem(path: Path) -> str:
    name = path.name
    for suf in (".nii.gz", ".nii", ".json"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


_KIND_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("phase", re.compile(r"(part-phase|phase|(^|[_\-.])ph([_\-.]|$))", re.I)),
    ("qsm", re.compile(r"(chimap|qsm|(^|[_\-.])chi([_\-.]|$)|suscept)", re.I)),
    (
        "mrsi",
        re.compile(r"((^|[_\-.])met-|mrsi|(^|[_\-.])(naa|cho|cr|glx|pcr|ins)([_\-.]|$))", re.I),
    ),
    ("gre", re.compile(r"(part-mag|megre|t2star|t2s|gre|(^|[_\-.])mag)", re.I)),
)

_MET_RE = re.compile(r"(?:^|[_\-.])met-([A-Za-z0-9+]+)", re.I)


def guess_kind(path: str | os.PathLike[str]) -> str:
    """Guess a file's kind from its name (BIDS entities first): gre/phase/qsm/mrsi/other."""
    stem = _stem(Path(path))
    for kind, pat in _KIND_PATTERNS:
        if pat.search(stem):
            return kind
    return "other"


def metabolite_name(path: str | os.PathLike[str]) -> str | None:
    """Metabolite from a BIDS-like ``met-<NAME>`` entity, else None."""
    m = _MET_RE.search(_stem(Path(path)))
    return m.group(1) if m else None


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The BIDS JSON sidecar next to a NIfTI file, or ``{}`` when there is none.

    ``EchoTime`` / ``EchoTimes``, when present, are checked here: a positive finite
    number or a non-empty list of them (seconds in BIDS; ``null`` counts as absent).

    Raises
    ------
    M1LoadError
        One line naming the sidecar: not valid JSON (also nesting too deep, NaN),
        not an object, or an echo time that is not a positive number.
    """
    from .._files import read_user_json

    p = Path(path)
    side = p.with_name(_stem(p) + ".json")
    if not side.is_file():
        return {}
    try:
        obj = read_user_json(side)
    except M1Error as exc:
        raise M1LoadError(str(exc)) from None
    for key in ("EchoTime", "EchoTimes"):
        te = obj.get(key)
        if te is None:
            continue
        vals = te if isinstance(te, list) else [te]
        ok = bool(vals) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e6 for v in vals
        )
        if not ok:
            shown_te = json.dumps(te)[:60]
            raise M1LoadError(
                f"{side.name}: {key} must be a positive number of seconds or a list of them, "
                f"not {shown_te}"
            )
    return obj


def _echo_times_ms(sidecar: dict[str, Any], n_echoes: int, name: str) -> list[float] | None:
    te = sidecar.get("EchoTime", sidecar.get("EchoTimes"))
    if te is None:
        return None
    vals = np.atleast_1d(np.asarray(te, dtype=float))
    if vals.size != n_echoes or not np.all(np.isfinite(vals)) or np.any(vals <= 0):
        raise M1LoadError(f"{name}: sidecar EchoTime {te!r} does not match {n_echoes} echo(es)")
    # BIDS stores seconds; values above 1 are almost certainly milliseconds already.
    return [float(v * 1000.0) if v < 1.0 else float(v) for v in vals]


@dataclass
class Volume:
    """One loaded image in canonical display order.

    Attributes
    ----------
    data : ndarray
        ``(n0, n1, n2)`` or, for multi-echo GRE, ``(n_echoes, n0, n1, n2)``; spatial
        axes in canonical napari order (S/I, A/P, R/L), possibly a strided view.
    ras_affine : (4, 4) ndarray
        napari spatial index -> scanner RAS mm.
    source_affine : (4, 4) ndarray
        The file's own voxel (i, j, k) -> RAS mm affine (sform, else qform).
    source_axcodes : tuple of str
        The file's axis codes, e.g. ``('L', 'A', 'S')``.
    kind : str
        One of :data:`KINDS`.
    name : str
        Human label for the layer (derived from the kind, never a file path).
    echo_times_ms : list of float or None
        One per echo when known (from the JSON sidecar ``EchoTime``, seconds in BIDS).
    sources : list of str
        Base names of the files read.
    extra : dict
        Kind-specific facts (phase scaling, metabolite, units).
    warnings : list of str
        One-line warnings for the user (non-finite values, resampling, ...).
    """

    data: np.ndarray
    ras_affine: NDArray[np.float64]
    source_affine: NDArray[np.float64]
    source_axcodes: tuple[str, ...]
    kind: str
    name: str
    echo_times_ms: list[float] | None = None
    sources: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """Spatial shape in napari order (echo axis excluded)."""
        return tuple(self.data.shape[-3:])  # type: ignore[return-value]

    @property
    def n_echoes(self) -> int:
        """Number of echoes (1 for a 3D volume)."""
        return self.data.shape[0] if self.data.ndim == 4 else 1

    @property
    def voxel_size_mm(self) -> tuple[float, float, float]:
        """Voxel size in mm per spatial napari axis."""
        return tuple(float(v) for v in voxel_sizes(self.ras_affine))  # type: ignore[return-value]


# --------------------------------------------------------------------------- reading


def _load_header(path: Path) -> Any:
    """nibabel image (header + lazy proxy) with every failure turned into one line."""
    import nibabel as nib

    name = path.name
    if not path.exists():
        raise M1LoadError(f"{name}: file not found")
    if not path.is_file():
        raise M1LoadError(f"{name}: not a file")
    if not is_nifti_path(path):
        raise M1LoadError(f"{name}: not a NIfTI file (expected .nii or .nii.gz)")
    try:
        img = nib.load(str(path))
    except (
        nib.filebasedimages.ImageFileError,
        OSError,
        EOFError,
        zlib.error,
        ValueError,
        TypeError,
        nib.spatialimages.HeaderDataError,
    ) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "gzip" in reason.lower() or isinstance(exc, (EOFError, zlib.error)):
            raise M1LoadError(f"{name}: truncated or corrupt gzip file ({reason})") from None
        raise M1LoadError(f"{name}: not a readable NIfTI file ({reason})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise M1LoadError(f"{name}: not a NIfTI-1/2 image ({type(img).__name__})")
    return img


def _spatial_checks(img: Any, name: str) -> tuple[tuple[int, ...], NDArray[np.float64]]:
    """Shape (file order, trailing singleton dims dropped) and validated affine."""
    shape = tuple(int(s) for s in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) < 3:
        raise M1LoadError(f"{name}: {len(shape)}D data {shape}; napari-m1 needs a 3D volume")
    if len(shape) > 4:
        raise M1LoadError(
            f"{name}: {len(shape)}D data {shape}; napari-m1 reads 3D volumes or 4D echo series"
        )
    if min(shape) < 1:
        raise M1LoadError(f"{name}: empty data shape {shape}")
    dtype = img.get_data_dtype()
    if dtype.kind == "c":
        raise M1LoadError(
            f"{name}: complex-valued data; save magnitude and phase as separate real images"
        )
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise M1LoadError(f"{name}: unsupported data type {dtype} (RGB or structured)")
    pixdim = _raw_pixdim(img)
    if np.any(~np.isfinite(pixdim)) or np.any(pixdim <= 0):
        raise M1LoadError(
            f"{name}: voxel sizes must be positive, header says {pixdim.round(4).tolist()} mm"
        )
    try:
        aff = check_affine(img.affine, name=name)
    except ValueError as exc:
        raise M1LoadError(str(exc)) from None
    return shape, aff


def _raw_pixdim(img: Any) -> NDArray[np.float64]:
    """pixdim[1:4] as written in the file (nibabel silently takes abs() on load)."""
    from nibabel.openers import ImageOpener

    fname = img.get_filename()
    try:
        with ImageOpener(fname, "rb") as fobj:
            raw = type(img.header).from_fileobj(fobj, check=False)
        return np.asarray(raw["pixdim"], dtype=float)[1:4]
    except Exception:  # the header was already read once; fall back to nibabel's view
        return np.asarray(img.header["pixdim"], dtype=float)[1:4]


def _scaling(img: Any) -> tuple[float, float]:
    slope, inter = img.dataobj.slope, img.dataobj.inter
    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    return slope, inter


def _out_dtype(img: Any) -> np.dtype:
    slope, inter = _scaling(img)
    ondisk = img.get_data_dtype()
    if slope == 1.0 and inter == 0.0:
        return ondisk.newbyteorder("=")
    return np.dtype(np.float32) if ondisk.itemsize <= 4 else np.dtype(np.float64)


def _read_raw_into(img: Any, path: Path, out: np.ndarray) -> None:
    """Read the image's voxel data into ``out`` (C-order, file shape reversed).

    ``out`` may have any numeric dtype; scaling (scl_slope/scl_inter) is applied.
    Raises M1LoadError for truncated or corrupt data.
    """
    from nibabel.openers import ImageOpener

    name = path.name
    ondisk = img.get_data_dtype()
    slope, inter = _scaling(img)
    direct = out.dtype == ondisk.newbyteorder("=") and slope == 1.0 and inter == 0.0
    buf = out if direct else np.empty(out.shape, dtype=ondisk.newbyteorder("="))
    raw = buf.reshape(-1).view(np.uint8)
    want = raw.size
    try:
        with ImageOpener(str(path), "rb") as fobj:
            fobj.seek(int(img.dataobj.offset))
            got = 0
            mv = memoryview(raw)
            while got < want:
                # Bounded chunks: gzip's readinto inflates into a temporary bytes
                # object of the requested size before copying.
                n = fobj.readinto(mv[got : got + _CHUNK])
                if not n:
                    break
                got += n
            # Reading to the end of a gzip stream verifies its CRC: corrupt data that
            # still inflates is caught here. A valid file has nothing left to read.
            while got == want and fobj.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise M1LoadError(f"{name}: truncated or corrupt data ({reason})") from None
    if got < want:
        raise M1LoadError(f"{name}: truncated file: {got} of {want} data bytes present")
    if ondisk.byteorder not in ("=", "|") and ondisk.newbyteorder("=") != ondisk:
        buf.byteswap(inplace=True)
    if not direct:
        if slope != 1.0 or inter != 0.0:
            np.multiply(buf, slope, out=out, casting="unsafe")
            if inter:
                out += inter
        else:
            np.copyto(out, buf, casting="unsafe")


def _canonical(buf: np.ndarray, source_affine: NDArray[np.float64], file_spatial: Sequence[int]):
    perm, flips, ras_affine = canonical_reorientation(source_affine, file_spatial)
    lead = buf.ndim - 3
    view = buf.transpose(*range(lead), *(lead + p for p in perm))
    sl = (slice(None),) * lead + tuple(slice(None, None, -1) if f else slice(None) for f in flips)
    return view[sl], ras_affine


def _finite_check(data: np.ndarray, name: str, warnings: list[str], *, nan_expected: bool) -> int:
    """Warn about NaN/Inf; replace +-Inf by NaN so display and statistics stay sane.

    Works slab by slab along the first axis so no full-size mask is allocated.
    NaN is how QSM and MRSI maps mark voxels outside their mask (``nan_expected``):
    those are counted, not warned about. Returns the NaN count.
    """
    if data.dtype.kind != "f":
        return 0
    n_nan = n_inf = 0
    slabs = data.reshape(-1, *data.shape[-2:]) if data.ndim >= 3 else data[None]
    for slab in slabs:
        inf = np.isinf(slab)
        k = int(np.count_nonzero(inf))
        if k:
            slab[inf] = np.nan
            n_inf += k
        n_nan += int(np.count_nonzero(np.isnan(slab)))
    n_nan -= n_inf
    if n_nan + n_inf == data.size:
        warnings.append(f"{name}: every value is NaN or Inf; the layer will look empty")
    elif n_nan and not nan_expected:
        warnings.append(f"{name}: {n_nan} NaN value(s) (shown blank, ignored in statistics)")
    if n_inf:
        warnings.append(f"{name}: {n_inf} infinite value(s) replaced by NaN")
    return n_nan + n_inf


def _default_name(kind: str, path: Path) -> str:
    if kind == "mrsi":
        return f"MRSI {metabolite_name(path) or 'map'}"
    return {
        "gre": "GRE magnitude",
        "phase": "GRE phase",
        "qsm": "QSM χ (ppm)",
    }.get(kind, "image")


def load_multi_echo(
    paths: Sequence[str | os.PathLike[str]],
    *,
    kind: str = "gre",
    echo_times_ms: Sequence[float] | None = None,
    name: str | None = None,
) -> Volume:
    """Load one 4D multi-echo file or several 3D echo files into one Volume.

    Parameters
    ----------
    paths : sequence of paths
        Either one 3D/4D NIfTI or one 3D NIfTI per echo, in echo order. All echoes
        must share shape and affine.
    kind : {'gre', 'phase', ...}
        Phase data are rescaled to radians (see :func:`rescale_phase`).
    echo_times_ms : sequence of float, optional
        Overrides the sidecars' ``EchoTime``.

    Returns
    -------
    Volume
        ``data`` has shape ``(n_echoes, n0, n1, n2)`` when there is more than one
        echo, else ``(n0, n1, n2)``.
    """
    if kind not in KINDS:
        raise M1LoadError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    ps = [Path(p) for p in paths]
    if not ps:
        raise M1LoadError("no files given")
    imgs = [_load_header(p) for p in ps]
    checked = [_spatial_checks(im, p.name) for im, p in zip(imgs, ps, strict=True)]
    shapes = [c[0] for c in checked]
    affs = [c[1] for c in checked]
    if len(ps) > 1:
        for p, s, a in zip(ps[1:], shapes[1:], affs[1:], strict=True):
            if len(s) != 3:
                raise M1LoadError(f"{p.name}: each echo file must be 3D, got shape {s}")
            if s != shapes[0]:
                raise M1LoadError(f"{p.name}: shape {s} differs from {ps[0].name} {shapes[0]}")
            if not np.allclose(a, affs[0], atol=1e-4):
                raise M1LoadError(f"{p.name}: geometry (affine) differs from {ps[0].name}")
        if len(shapes[0]) != 3:
            raise M1LoadError(f"{ps[0].name}: each echo file must be 3D, got shape {shapes[0]}")
    first = ps[0]
    file_shape = shapes[0]
    n_echoes = len(ps) if len(ps) > 1 else (file_shape[3] if len(file_shape) == 4 else 1)
    file_spatial = file_shape[:3]
    out_dtype = np.result_type(*(_out_dtype(im) for im in imgs))
    if kind == "phase" and out_dtype.kind != "f":
        out_dtype = np.dtype(np.float32)
    buf_shape = ((n_echoes,) if n_echoes > 1 else ()) + tuple(reversed(file_spatial))
    buf = np.empty(buf_shape, dtype=out_dtype)
    if len(ps) > 1:
        for e, (im, p) in enumerate(zip(imgs, ps, strict=True)):
            _read_raw_into(im, p, buf[e])
    else:
        _read_raw_into(imgs[0], first, buf.reshape(tuple(reversed(file_shape))))

    warnings: list[str] = []
    label = name or _default_name(kind, first)
    extra: dict[str, Any] = {}
    if kind == "phase":
        extra["phase_scaling"] = rescale_phase(buf)
        if extra["phase_scaling"]["method"] != "radians":
            warnings.append(
                f"{label}: phase rescaled to radians from "
                f"[{extra['phase_scaling']['min']:.4g}, {extra['phase_scaling']['max']:.4g}]"
            )
    if kind == "mrsi":
        extra["metabolite"] = metabolite_name(first)
    extra["n_nan"] = _finite_check(buf, label, warnings, nan_expected=kind in ("qsm", "mrsi"))

    data, ras_affine = _canonical(buf, affs[0], file_spatial)

    if echo_times_ms is not None:
        tes = [float(t) for t in echo_times_ms]
        if len(tes) != n_echoes:
            raise M1LoadError(f"{first.name}: {len(tes)} echo times given for {n_echoes} echoes")
    else:
        tes = None
        if len(ps) > 1:
            per = [read_sidecar(p) for p in ps]
            got = [_echo_times_ms(s, 1, p.name) for s, p in zip(per, ps, strict=True)]
            if all(g is not None for g in got):
                tes = [g[0] for g in got]  # type: ignore[index]
        else:
            tes = _echo_times_ms(read_sidecar(first), n_echoes, first.name)
        if tes is None and kind in ("gre", "phase"):
            warnings.append(f"{label}: echo times unknown (no EchoTime in a JSON sidecar)")

    import nibabel as nib

    return Volume(
        data=data,
        ras_affine=ras_affine,
        source_affine=affs[0],
        source_axcodes=tuple(nib.aff2axcodes(affs[0])),
        kind=kind,
        name=label,
        echo_times_ms=tes,
        sources=[p.name for p in ps],
        extra=extra,
        warnings=warnings,
    )


def load_nifti(path: str | os.PathLike[str], *, kind: str | None = None) -> Volume:
    """Load one NIfTI file (3D, or 4D multi-echo) in canonical display order.

    Parameters
    ----------
    path : path
        ``.nii`` or ``.nii.gz``.
    kind : str, optional
        Force the kind; by default guessed from the name (:func:`guess_kind`).
        Only ``gre`` and ``phase`` may be 4D.
    """
    p = Path(path)
    k = kind or guess_kind(p)
    vol = load_multi_echo([p], kind=k)
    if vol.data.ndim == 4 and k not in ("gre", "phase", "other"):
        raise M1LoadError(f"{p.name}: {k} map must be 3D, got {vol.n_echoes} volumes")
    return vol


def rescale_phase(data: np.ndarray) -> dict[str, Any]:
    """Rescale phase in place to radians in [-pi, pi] and say how.

    Phase files come in radians, in scanner integers (e.g. -4096..4095 or 0..4095)
    or in arbitrary units (e.g. +-0.0037). Wrapped phase fills its whole range, so
    the value range is mapped linearly onto [-pi, pi] unless the data already span
    about 2*pi within [-pi, pi] (radians, kept as they are).

    Parameters
    ----------
    data : float ndarray
        Modified in place (NaNs ignored).

    Returns
    -------
    dict with ``method`` ('radians' or 'linear'), ``min``, ``max`` of the input,
    and ``offset``/``factor`` such that ``radians = (value - offset) * factor``.
    """
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return {
            "method": "radians",
            "min": float("nan"),
            "max": float("nan"),
            "offset": 0.0,
            "factor": 1.0,
        }
    lo, hi = float(finite.min()), float(finite.max())
    span = hi - lo
    if lo >= -np.pi - 1e-3 and hi <= np.pi + 1e-3 and span > 1.5 * np.pi:
        return {"method": "radians", "min": lo, "max": hi, "offset": 0.0, "factor": 1.0}
    if span <= 0:
        raise M1LoadError("phase image is constant; cannot rescale to radians")
    offset = (hi + lo) / 2.0
    factor = np.pi / (span / 2.0)
    data -= offset
    data *= factor
    np.clip(data, -np.pi, np.pi, out=data)
    return {"method": "linear", "min": lo, "max": hi, "offset": offset, "factor": factor}
