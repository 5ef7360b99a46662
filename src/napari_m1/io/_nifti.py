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
    "read_sidecar",
]

log = logging.getLogger(__name__)

Kind = Literal["gre", "phase", "qsm", "mrsi", "other"]
KINDS: tuple[str, ...] = ("gre", "phase", "qsm", "mrsi", "other")

_NIFTI_SUFFIXES = (".nii", ".nii.gz")


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
    aux : dict of str -> ndarray
        Per-voxel companion maps in the order and shape of ``data`` that are measured
        beside it but not shown (MRSI: ``unfiltered``, ``f_gm``, ``f_wm``,
        ``f_csf``); never copied into layer metadata.
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
    aux: dict[str, np.ndarray] = field(default_factory=dict)

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


def _canonical(buf: np.ndarray, source_affine: NDArray[np.float64], file_spatial: Sequence[int]):
    perm, flips, ras_affine = canonical_reorientation(source_affine, file_spatial)
    lead = buf.ndim - 3
    view = buf.transpose(*range(lead), *(lead + p for p in perm))
    sl = (slice(None),) * lead + tuple(slice(None, None, -1) if f else slice(None) for f in flips)
    return view[sl], ras_affine


def _default_name(kind: str, path: Path) -> str:
    if kind == "mrsi":
        return f"MRSI {metabolite_name(path) or 'map'}"
    return {
        "gre": "GRE magnitude",
        "phase": "GRE phase",
        "qsm": "QSM χ (ppm)",
    }.get(kind, "image")
