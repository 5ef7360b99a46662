"""Reading a volume: plan (headers only) -> one buffer -> streamed fill -> Volume.

The data of a NIfTI file are stored Fortran-ordered (``i`` fastest). Read byte for
byte into a C-ordered buffer they form an array with the file axes reversed,
``(nk, nj, ni)`` or ``(nt, nk, nj, ni)`` -- already napari's natural "slice axis
first" layout, without a copy. Multi-echo volumes from separate files are read
straight into one preallocated array; every per-voxel pass happens slab by slab
while streaming (:mod:`._stream`), so peak memory stays at the data size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import M1LoadError
from ._nifti import (
    KINDS,
    Volume,
    _canonical,
    _default_name,
    _echo_times_ms,
    _load_header,
    _out_dtype,
    _scaling,
    _spatial_checks,
    guess_kind,
    metabolite_name,
    read_sidecar,
)
from ._stream import ReadStats, check_declared_size, check_memory, count_nonfinite, stream_into

__all__ = ["VolumePlan", "load_multi_echo", "load_nifti", "plan_volume", "rescale_phase"]


def _finite_warnings(
    st: ReadStats, size: int, name: str, warnings: list[str], *, nan_expected: bool
) -> int:
    """Warnings about NaN/Inf from the streamed counts (Inf already replaced by NaN).

    NaN is how QSM and MRSI maps mark voxels outside their mask (``nan_expected``):
    those are counted, not warned about. Returns the NaN count after replacement.
    """
    n_nan, n_inf = st.n_nan, st.n_inf
    if size and n_nan + n_inf == size:
        warnings.append(f"{name}: every value is NaN or Inf; the layer will look empty")
    elif n_nan and not nan_expected:
        warnings.append(f"{name}: {n_nan} NaN value(s) (shown blank, ignored in statistics)")
    if n_inf:
        warnings.append(f"{name}: {n_inf} infinite value(s) replaced by NaN")
    return n_nan + n_inf


def _finite_check(data: np.ndarray, name: str, warnings: list[str], *, nan_expected: bool) -> int:
    """:func:`_finite_warnings` for an array already in memory (slab by slab, in place)."""
    return _finite_warnings(
        count_nonfinite(data), data.size, name, warnings, nan_expected=nan_expected
    )


@dataclass
class _Part:
    """One file's share of a volume's buffer."""

    path: Path
    offset: int
    ondisk: np.dtype
    slope: float
    inter: float


@dataclass
class VolumePlan:
    """A volume whose headers are checked and whose buffer is not yet filled.

    Made by :func:`plan_volume` (cheap: headers only, nothing allocated). Then
    :meth:`allocate` creates the one buffer, :meth:`stream` fills it slab by slab
    (a generator, so a GUI worker can report progress and show echo 1 early) and
    :meth:`finish` turns it into a :class:`Volume`. :func:`load_multi_echo` does
    the three in a row.

    Attributes
    ----------
    buf_shape : tuple of int
        ``(n_echoes, nk, nj, ni)`` or ``(nk, nj, ni)``: file axes reversed, C order.
    nbytes : int
        Size of the buffer in bytes.
    """

    paths: list[Path]
    kind: str
    label: str
    file_spatial: tuple[int, int, int]
    n_echoes: int
    out_dtype: np.dtype
    affine: NDArray[np.float64]
    parts: list[_Part]
    echo_times_ms: list[float] | None
    buf: np.ndarray | None = None
    stats: ReadStats = field(default_factory=ReadStats)

    @property
    def buf_shape(self) -> tuple[int, ...]:
        lead = (self.n_echoes,) if self.n_echoes > 1 else ()
        return lead + tuple(reversed(self.file_spatial))

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.buf_shape, dtype=np.int64)) * self.out_dtype.itemsize

    @property
    def echo_nbytes(self) -> int:
        """Bytes of one echo (of the whole volume when 3D)."""
        return self.nbytes // self.n_echoes

    def allocate(self) -> np.ndarray:
        """The one buffer (untouched pages cost no memory until they are read into)."""
        if self.buf is None:
            self.buf = np.empty(self.buf_shape, dtype=self.out_dtype)
        return self.buf

    def view(self) -> tuple[np.ndarray, NDArray[np.float64]]:
        """The buffer in canonical display order (a view) and its ``ras_affine``."""
        return _canonical(self.allocate(), self.affine, self.file_spatial)

    def stream(self, *, inflater: str | None = None) -> Iterator[int]:
        """Fill the buffer; yields bytes filled so far (echo 1 first, in file order)."""
        buf = self.allocate()
        outs = [buf[e] for e in range(len(self.parts))] if len(self.parts) > 1 else [buf]
        base = 0
        for part, out in zip(self.parts, outs, strict=True):
            gen = stream_into(
                part.path,
                part.offset,
                out,
                part.ondisk,
                part.slope,
                part.inter,
                track_range=self.kind == "phase",
                inflater=inflater,
            )
            while True:
                try:
                    done = next(gen)
                except StopIteration as stop:
                    self.stats.merge(stop.value)
                    break
                yield base + done
            base += out.nbytes

    def finish(self) -> Volume:
        """Phase rescale, NaN/Inf warnings and geometry: the loaded :class:`Volume`."""
        buf = self.allocate()
        warnings: list[str] = []
        extra: dict[str, Any] = {}
        if self.kind == "phase":
            st = self.stats
            rng = (st.lo, st.hi) if st.lo <= st.hi else None
            try:
                extra["phase_scaling"] = rescale_phase(buf, value_range=rng)
            except M1LoadError as exc:
                raise M1LoadError(f"{self.paths[0].name}: {exc}") from None
            if extra["phase_scaling"]["method"] != "radians":
                warnings.append(
                    f"{self.label}: phase rescaled to radians from "
                    f"[{extra['phase_scaling']['min']:.4g}, {extra['phase_scaling']['max']:.4g}]"
                )
        if self.kind == "mrsi":
            extra["metabolite"] = metabolite_name(self.paths[0])
        extra["n_nan"] = _finite_warnings(
            self.stats,
            buf.size if buf.dtype.kind == "f" else 0,
            self.label,
            warnings,
            nan_expected=self.kind in ("qsm", "mrsi"),
        )
        if self.echo_times_ms is None and self.kind in ("gre", "phase"):
            warnings.append(f"{self.label}: echo times unknown (no EchoTime in a JSON sidecar)")
        data, ras_affine = self.view()
        import nibabel as nib

        return Volume(
            data=data,
            ras_affine=ras_affine,
            source_affine=self.affine,
            source_axcodes=tuple(nib.aff2axcodes(self.affine)),
            kind=self.kind,
            name=self.label,
            echo_times_ms=self.echo_times_ms,
            sources=[p.name for p in self.paths],
            extra=extra,
            warnings=warnings,
        )


def plan_volume(
    paths: Sequence[str | os.PathLike[str]],
    *,
    kind: str = "gre",
    echo_times_ms: Sequence[float] | None = None,
    name: str | None = None,
) -> VolumePlan:
    """Check the headers of one volume's file(s); allocate nothing.

    Every file's declared voxel bytes are checked against its size on disk (see
    :func:`~napari_m1.io._stream.check_declared_size`), so a corrupt header gives a
    one-line error instead of a giant allocation. Arguments as :func:`load_multi_echo`.
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
    parts = []
    for im, p, s in zip(imgs, ps, shapes, strict=True):
        ondisk = im.get_data_dtype()
        n_vox = int(np.prod(s, dtype=np.int64))
        offset = int(im.dataobj.offset)
        check_declared_size(
            p, offset, n_vox * ondisk.itemsize, "x".join(map(str, s)) + f" {ondisk.name}"
        )
        parts.append(_Part(p, offset, ondisk, *_scaling(im)))
    first = ps[0]
    file_shape = shapes[0]
    n_echoes = len(ps) if len(ps) > 1 else (file_shape[3] if len(file_shape) == 4 else 1)
    out_dtype = np.result_type(*(_out_dtype(im) for im in imgs))
    if kind == "phase" and out_dtype.kind != "f":
        out_dtype = np.dtype(np.float32)
    label = name or _default_name(kind, first)
    if echo_times_ms is not None:
        tes: list[float] | None = [float(t) for t in echo_times_ms]
        if len(tes) != n_echoes:  # type: ignore[arg-type]
            raise M1LoadError(f"{first.name}: {len(tes)} echo times given for {n_echoes} echoes")
    elif len(ps) > 1:
        per = [read_sidecar(p) for p in ps]
        got = [_echo_times_ms(s, 1, p.name) for s, p in zip(per, ps, strict=True)]
        tes = [g[0] for g in got] if all(g is not None for g in got) else None  # type: ignore[index]
    else:
        tes = _echo_times_ms(read_sidecar(first), n_echoes, first.name)
    return VolumePlan(
        paths=ps,
        kind=kind,
        label=label,
        file_spatial=tuple(file_shape[:3]),  # type: ignore[arg-type]
        n_echoes=n_echoes,
        out_dtype=np.dtype(out_dtype),
        affine=affs[0],
        parts=parts,
        echo_times_ms=tes,
    )


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
        echo, else ``(n0, n1, n2)``. Peak memory is the data plus a few MiB.
    """
    plan = plan_volume(paths, kind=kind, echo_times_ms=echo_times_ms, name=name)
    check_memory(plan.nbytes, plan.paths[0].name)
    for _ in plan.stream():
        pass
    return plan.finish()


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


def rescale_phase(
    data: np.ndarray, *, value_range: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Rescale phase in place to radians in [-pi, pi] and say how.

    Phase files come in radians, in scanner integers (e.g. -4096..4095 or 0..4095)
    or in arbitrary units (e.g. +-0.0037). Wrapped phase fills its whole range, so
    the value range is mapped linearly onto [-pi, pi] unless the data already span
    about 2*pi within [-pi, pi] (radians, kept as they are). Works slab by slab:
    no temporary larger than a few MiB.

    Parameters
    ----------
    data : float ndarray
        Modified in place (NaNs ignored).
    value_range : (float, float), optional
        The finite min and max when already known (gathered while streaming).

    Returns
    -------
    dict with ``method`` ('radians' or 'linear'), ``min``, ``max`` of the input,
    and ``offset``/``factor`` such that ``radians = (value - offset) * factor``.
    """
    if value_range is None:
        st = count_nonfinite(data, track_range=True)
        value_range = (st.lo, st.hi) if st.lo <= st.hi else None
    if value_range is None:
        return {
            "method": "radians",
            "min": float("nan"),
            "max": float("nan"),
            "offset": 0.0,
            "factor": 1.0,
        }
    lo, hi = float(value_range[0]), float(value_range[1])
    span = hi - lo
    if lo >= -np.pi - 1e-3 and hi <= np.pi + 1e-3 and span > 1.5 * np.pi:
        return {"method": "radians", "min": lo, "max": hi, "offset": 0.0, "factor": 1.0}
    if span <= 0:
        raise M1LoadError("phase image is constant; cannot rescale to radians")
    offset = (hi + lo) / 2.0
    factor = np.pi / (span / 2.0)
    slabs = data.reshape(-1, *data.shape[-2:]) if data.ndim >= 3 else data[None]
    for slab in slabs:  # views: the changes write through
        slab -= offset
        slab *= factor
        np.clip(slab, -np.pi, np.pi, out=slab)
    return {"method": "linear", "min": lo, "max": hi, "offset": offset, "factor": factor}
