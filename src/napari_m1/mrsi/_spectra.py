"""Per-voxel spectra of an MRSI fit: data, fit, baseline and residual on a ppm axis. Pure numpy.

Two sources, both indexed by the MRSI grid's voxel ``(i, j, k)``:

* :class:`GridSpectra` -- an ``fsl_mrsi`` output's ``fit/{fit,residual,baseline}.nii.gz``
  (NIfTI-MRS on the MRSI grid). ``residual`` is ``data - fit`` (FSL-MRS), so the measured
  spectrum is ``fit + residual``; ``fit`` includes the baseline. A NIfTI-MRS of the
  measured data (``data=``) is used as such when given.
* :class:`CoordSpectra` -- one LCModel ``.COORD`` per voxel, named as LCModel's MRSI runs
  name them (``<stem>sl<slice>_<row>-<col>.coord``, 1-based; ``Col`` is the first voxel
  axis, ``Row`` the second, as :func:`~napari_m1.mrsi.lcmodel_csv_fit`).

Spectra are the real part between :data:`PPM_WINDOW` (4.2 -> 0.2 ppm, ppm descending as
spectroscopists plot it), float32.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._lcmodel import LCModelTable, read_lcmodel_coord
from ._niftimrs import read_nifti_mrs

__all__ = [
    "PPM_WINDOW",
    "CoordSpectra",
    "GridSpectra",
    "VoxelSpectrum",
    "find_spectra",
    "voxel_index",
]

#: (high, low) ppm of the displayed window (1H brain metabolites)
PPM_WINDOW: tuple[float, float] = (4.2, 0.2)
_COORD_NAME = re.compile(r"sl(\d+)_(\d+)-(\d+)\.coord$", re.I)
_NII = (".nii.gz", ".nii")


@dataclass
class VoxelSpectrum:
    """One voxel's spectra, all shape (n,) on ``ppm`` (descending), real part, a.u.

    ``data``, ``fit``, ``baseline``, ``residual`` are None when the source lacks them.
    ``table`` is LCModel's table for this voxel (``.COORD`` sources), else None.
    """

    ppm: np.ndarray
    data: np.ndarray | None
    fit: np.ndarray | None
    baseline: np.ndarray | None
    residual: np.ndarray | None
    table: LCModelTable | None = None


def voxel_index(
    affine: np.ndarray, shape: tuple[int, ...], ras_mm: np.ndarray
) -> tuple[int, int, int] | None:
    """The voxel ``(i, j, k)`` of a grid holding a scanner RAS point, or None outside.

    Parameters
    ----------
    affine : (4, 4)
        The grid's voxel -> scanner RAS mm affine (its file order).
    shape : (nx, ny, nz)
    ras_mm : (3,)
        Scanner RAS mm.

    >>> voxel_index(np.diag([5.0, 5, 5, 1]), (4, 4, 2), np.array([7.4, 2.6, 0.0]))
    (1, 1, 0)
    >>> voxel_index(np.diag([5.0, 5, 5, 1]), (4, 4, 2), np.array([-3.0, 0, 0])) is None
    True
    """
    ijk = np.linalg.solve(affine, np.array([*np.asarray(ras_mm, float)[:3], 1.0]))[:3]
    idx = np.floor(ijk + 0.5).astype(int)
    if np.any(idx < 0) or np.any(idx >= np.asarray(shape[:3])):
        return None
    return int(idx[0]), int(idx[1]), int(idx[2])


def _window(ppm: np.ndarray) -> slice:
    """The index range of ``ppm`` (descending) inside :data:`PPM_WINDOW`."""
    hi, lo = PPM_WINDOW
    inside = np.flatnonzero((ppm <= hi) & (ppm >= lo))
    return slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0)


class GridSpectra:
    """Spectra of an ``fsl_mrsi`` ``fit/`` folder (see the module docstring).

    Nothing is read until :meth:`load` (a few hundred ms for a 32×32×8 grid: call it off
    the GUI thread); afterwards :meth:`at` is a slice of in-memory arrays.
    """

    kind = "fsl_mrsi fit"

    def __init__(self, fit_dir: Path, data_path: Path | None = None) -> None:
        self.fit_dir = Path(fit_dir)
        self.data_path = data_path
        self.ppm: np.ndarray | None = None
        self._arrays: dict[str, np.ndarray] = {}
        self.y_range: tuple[float, float] = (0.0, 1.0)

    @property
    def loaded(self) -> bool:
        return self.ppm is not None

    def _path(self, name: str) -> Path | None:
        for ext in _NII:
            p = self.fit_dir / f"{name}{ext}"
            if p.is_file():
                return p
        return None

    def load(self) -> None:
        """Read the NIfTI-MRS files, FFT each voxel, keep the real part in the window.

        Raises
        ------
        M1LoadError
            A file that is not NIfTI-MRS (naming the file).
        """
        if self.loaded:
            return
        arrays: dict[str, np.ndarray] = {}
        ppm = None
        paths = {n: self._path(n) for n in ("fit", "residual", "baseline")}
        if self.data_path is not None:
            paths["data"] = self.data_path
        for name, p in paths.items():
            if p is None:
                continue
            mrs = read_nifti_mrs(p)
            fid = mrs.data[(slice(None),) * 4 + (0,) * (mrs.data.ndim - 4)]  # dims 5-7: first
            spec = np.fft.fftshift(np.fft.fft(fid, axis=3), axes=3)
            axis = mrs.ppm_axis()
            order = np.argsort(-axis, kind="stable")  # descending ppm
            axis = axis[order]
            w = _window(axis)
            if ppm is None:
                ppm = axis[w]
            arrays[name] = np.ascontiguousarray(spec.real[..., order][..., w], dtype=np.float32)
        if "data" not in arrays and "fit" in arrays and "residual" in arrays:
            arrays["data"] = arrays["fit"] + arrays["residual"]
        self._arrays = arrays
        self.ppm = np.asarray(ppm if ppm is not None else [], dtype=float)
        shown = [a for k, a in arrays.items() if k != "residual"]
        if shown:
            lo = min(float(np.nanmin(a)) for a in shown)
            hi = max(float(np.nanmax(a)) for a in shown)
            pad = 0.05 * (hi - lo or 1.0)
            self.y_range = (lo - pad, hi + pad)

    def at(self, ijk: tuple[int, int, int]) -> VoxelSpectrum | None:
        """The spectra of voxel ``ijk`` (loads first if needed)."""
        self.load()
        if not self._arrays:
            return None
        get = self._arrays.get
        pick = {k: (None if get(k) is None else get(k)[ijk]) for k in self._arrays}
        return VoxelSpectrum(
            self.ppm,  # type: ignore[arg-type]
            pick.get("data"),
            pick.get("fit"),
            pick.get("baseline"),
            pick.get("residual"),
        )


class CoordSpectra:
    """One LCModel ``.COORD`` per voxel (read on first hover, then cached)."""

    kind = "LCModel COORD"

    def __init__(self, files: dict[tuple[int, int, int], Path]) -> None:
        self.files = dict(files)
        self._cache: dict[tuple[int, int, int], VoxelSpectrum] = {}
        self.y_range: tuple[float, float] | None = None

    loaded = True

    def load(self) -> None:
        """Read every file once to fix a common y range (small files)."""
        if self.y_range is not None:
            return
        lo, hi = np.inf, -np.inf
        for ijk in self.files:
            s = self.at(ijk)
            if s is not None and s.data is not None:
                lo = min(lo, float(s.data.min()), float(s.fit.min()))  # type: ignore[union-attr]
                hi = max(hi, float(s.data.max()), float(s.fit.max()))  # type: ignore[union-attr]
        pad = 0.05 * ((hi - lo) if np.isfinite(hi - lo) and hi > lo else 1.0)
        self.y_range = (lo - pad, hi + pad) if np.isfinite(lo) else (0.0, 1.0)

    def at(self, ijk: tuple[int, int, int]) -> VoxelSpectrum | None:
        """The spectra of voxel ``ijk`` (None without a ``.COORD`` for it)."""
        s = self._cache.get(ijk)
        if s is None and ijk in self.files:
            c = read_lcmodel_coord(self.files[ijk])
            w = _window(c.ppm)
            d, f, b = c.data[w], c.fit[w], c.baseline[w]
            s = VoxelSpectrum(c.ppm[w], d, f, b, d - f, table=c.table)
            self._cache[ijk] = s
        return s


def coord_files(folder: Path) -> dict[tuple[int, int, int], Path]:
    """LCModel MRSI ``.COORD`` files of a folder by voxel ``(col-1, row-1, slice-1)``."""
    out: dict[tuple[int, int, int], Path] = {}
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return out
    for p in entries:
        m = _COORD_NAME.search(p.name)
        if m and p.is_file():
            sl, row, col = (int(g) for g in m.groups())
            out[(col - 1, row - 1, sl - 1)] = p
    return out


def find_spectra(folder: str | os.PathLike[str]) -> GridSpectra | CoordSpectra | None:
    """The spectra of an MRSI fit folder: ``fit/`` (fsl_mrsi) first, else LCModel
    ``.COORD`` files in the folder or its ``lcmodel/`` sub-folder; None when there are none."""
    root = Path(folder)
    fit_dir = root / "fit"
    if any((fit_dir / f"{n}{e}").is_file() for n in ("fit", "residual") for e in _NII):
        return GridSpectra(fit_dir)
    for d in (root, root / "lcmodel"):
        files = coord_files(d)
        if files:
            return CoordSpectra(files)
    return None
