"""DICOM series -> volumes -> a case (GRE magnitude, phase or phase difference). No Qt.

Pixel data are read straight from pydicom into one preallocated buffer
``(n_echoes, n_slices, rows, cols)`` -- the NIfTI-like ``(k, j, i)`` order that
:func:`napari_m1.io._nifti._canonical` turns into the canonical display order as
a view. Rescale slope/intercept are applied per frame; Siemens integer phase
(-4096..4095 after rescale) becomes radians as ``value * pi / 4096``.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import M1LoadError
from ._dicom import DicomScan, DicomSeries, Progress, scan_dicom
from ._nifti import Volume, _canonical
from ._read import rescale_phase

__all__ = ["choose_series", "load_dicom_case", "load_series", "series_table"]

log = logging.getLogger(__name__)

_SIEMENS_PHASE_MAX = 4096.0


def _read_pixels(path: Path) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for truncated/corrupt data
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise M1LoadError(f"{path.name}: truncated or corrupt pixel data ({reason})") from None
    return arr


def load_series(
    series: DicomSeries,
    *,
    name: str | None = None,
    progress: Progress | None = None,
) -> Volume:
    """Read one series' pixels into a Volume (canonical display order, RAS affine).

    Parameters
    ----------
    series : DicomSeries
        From :func:`~napari_m1.io.scan_dicom`; refused when it has a ``problem``.
    progress : callable (done, total), optional
        Called per file read.

    Returns
    -------
    Volume
        ``data`` ``(n_echoes, n0, n1, n2)`` or ``(n0, n1, n2)``; magnitude keeps the
        stored integer type unless rescaled; phase is float32 radians.
    """
    if series.problem:
        raise M1LoadError(series.problem)
    assert series.affine is not None
    rows, cols, nsl = series.shape
    ne = len(series.echoes)
    frames = [fr for e in series.echoes for fr in e.frames]
    rescaled = any(fr.slope != 1.0 or fr.intercept != 0.0 for fr in frames)
    where: dict[Path, list[tuple[int, int, int]]] = defaultdict(list)
    for e, echo in enumerate(series.echoes):
        for k, fr in enumerate(echo.frames):
            where[fr.path].append((fr.frame, e, k))
    from ._stream import check_memory

    # Upper bound (float32) before anything is read: a forged Rows/Columns must not
    # make the allocation take the machine down.
    check_memory(ne * nsl * rows * cols * 4, series.name)
    buf: np.ndarray | None = None
    paths = sorted(where)
    for n, p in enumerate(paths):
        if progress is not None:
            progress(n, len(paths))
        arr = _read_pixels(p)
        if buf is None:
            kind_f = rescaled or series.kind == "phase" or arr.dtype.kind == "f"
            buf = np.empty((ne, nsl, rows, cols), np.float32 if kind_f else arr.dtype)
        for frame, e, k in where[p]:
            img = arr if frame < 0 else (arr[frame] if arr.ndim == 3 else arr)
            if img.shape != (rows, cols):
                raise M1LoadError(
                    f"{p.name}: pixel data {img.shape} do not match Rows x Columns {(rows, cols)}"
                )
            fr = series.echoes[e].frames[k]
            if fr.slope != 1.0 or fr.intercept != 0.0:
                np.multiply(img, fr.slope, out=buf[e, k], casting="unsafe")
                buf[e, k] += fr.intercept
            else:
                buf[e, k] = img
    if progress is not None:
        progress(len(paths), len(paths))
    assert buf is not None
    if ne == 1:
        buf = buf[0]
    warnings: list[str] = []
    extra: dict[str, Any] = {
        "dicom_series_number": series.number,
        "image_type": list(frames[0].image_type),
    }
    kind = series.kind if series.kind in ("gre", "phase") else "other"
    label = name or {"gre": "GRE magnitude", "phase": "GRE phase"}.get(kind, "image")
    if kind == "phase":
        lo, hi = float(np.nanmin(buf)), float(np.nanmax(buf))
        siemens = "SIEMENS" in frames[0].manufacturer.upper()
        if siemens and lo >= -_SIEMENS_PHASE_MAX and hi <= _SIEMENS_PHASE_MAX and hi - lo > 8:
            buf *= np.float32(np.pi / _SIEMENS_PHASE_MAX)
            extra["phase_scaling"] = {
                "method": "siemens",
                "min": lo,
                "max": hi,
                "offset": 0.0,
                "factor": np.pi / _SIEMENS_PHASE_MAX,
            }
        else:
            extra["phase_scaling"] = rescale_phase(buf)
    cols_rows_slices = (cols, rows, nsl)
    data, ras_affine = _canonical(buf, series.affine, cols_rows_slices)
    tes = series.echo_times_ms
    if tes is None and kind in ("gre", "phase"):
        warnings.append(f"{label}: echo times unknown (no EchoTime in the DICOM headers)")
    import nibabel as nib

    return Volume(
        data=data,
        ras_affine=ras_affine,
        source_affine=series.affine.copy(),
        source_axcodes=tuple(nib.aff2axcodes(series.affine)),
        kind=kind,
        name=label,
        echo_times_ms=tes,
        sources=[e.frames[0].path.name for e in series.echoes],
        extra=extra,
        warnings=warnings,
    )


def _same_grid(a: DicomSeries, b: DicomSeries) -> bool:
    return (
        a.shape == b.shape
        and a.affine is not None
        and b.affine is not None
        and np.allclose(a.affine, b.affine, atol=1e-3)
    )


def _pick(
    cands: list[DicomSeries], want: int | str | None, what: str, folder: Path
) -> DicomSeries:
    if want is not None:
        for s in cands:
            if str(want) in (str(s.number), s.uid):
                if s.problem:
                    raise M1LoadError(s.problem)
                return s
        have = ", ".join(str(s.number) for s in cands) or "none"
        raise M1LoadError(f"{folder.name}: no {what} series {want} (have: {have})")
    good = [s for s in cands if not s.problem]
    if not good:
        if cands:
            raise M1LoadError(cands[0].problem or "unusable series")
        raise M1LoadError(f"{folder.name}: no {what} image series among the DICOM files")
    return max(good, key=lambda s: (len(s.echoes), s.n_slices * s.shape[0] * s.shape[1]))


def choose_series(
    scan: DicomScan, *, gre: int | str | None = None, phase: int | str | None = None
) -> tuple[DicomSeries, DicomSeries | None, list[str]]:
    """Pick the GRE magnitude series and its phase (or phase difference).

    The magnitude with the most echoes (then the largest matrix) unless ``gre``
    names a series number or UID. Its phase is a phase series on the same grid: the
    same series first, then one with as many echoes, then a single-echo *phase
    difference* (Siemens field map) whose TE is the magnitude's second echo.

    Returns
    -------
    (gre_series, phase_series or None, notes)
    """
    notes = list(scan.notes)
    mag = _pick(scan.by_kind("gre"), gre, "magnitude", scan.folder)
    others = [s for s in scan.by_kind("gre") if s is not mag]
    if others:
        notes.append(
            f"{len(others) + 1} magnitude series; opened {mag.name} "
            f"(choose another with the series picker or --series)"
        )
    phases = scan.by_kind("phase")
    if phase is not None:
        ph = _pick(phases, phase, "phase", scan.folder)
        if not _same_grid(ph, mag):
            raise M1LoadError(f"{ph.name}: phase is not on the grid of {mag.name}")
        return mag, ph, notes
    broken = [s for s in phases if s.problem]
    on_grid = [s for s in phases if not s.problem and _same_grid(s, mag)]
    same = [s for s in on_grid if s.uid == mag.uid]
    full = [s for s in on_grid if len(s.echoes) == len(mag.echoes)]
    diff = [s for s in on_grid if len(s.echoes) == 1 and len(mag.echoes) == 2]
    for group in (same, full, diff):
        if group:
            return mag, min(group, key=lambda s: abs(s.number - mag.number)), notes
    if broken and not on_grid:
        # A phase series exists but cannot be read: refuse rather than load half a case.
        raise M1LoadError(broken[0].problem or "phase series unusable")
    return mag, None, notes


def load_dicom_case(
    folder: str | os.PathLike[str],
    *,
    gre: int | str | None = None,
    phase: int | str | None = None,
    label: str | None = None,
    progress: Progress | None = None,
    scan: DicomScan | None = None,
) -> Any:
    """Load a DICOM folder as a :class:`~napari_m1.io.Case`; all or nothing.

    Parameters
    ----------
    folder : path
        Any depth of DICOM files (unsorted, mixed series).
    gre, phase : int or str, optional
        Series number or SeriesInstanceUID to use instead of the automatic choice.
    label : str, optional
        Case label; default the folder name (never a DICOM identifier).
    progress : callable (done, total), optional
        Progress over header scan + pixel reads (file counts).
    """
    from ._case import Case, CaseFiles
    from ._placement import place_on_reference

    root = Path(folder)
    total: list[int] = [0, 0]

    def stage(offset: int) -> Progress | None:
        if progress is None:
            return None

        def cb(done: int, n: int) -> None:
            progress(offset + done, total[0] or n)

        return cb

    n_scan = 0
    if scan is None:
        scan = scan_dicom(root, progress=stage(0))
        n_scan = sum(s.n_files for s in scan.series)
    mag, ph, notes = choose_series(scan, gre=gre, phase=phase)
    total[0] = n_scan + mag.n_files + (ph.n_files if ph else 0)
    vols = [load_series(mag, progress=stage(n_scan))]
    if ph is not None:
        pv = load_series(ph, progress=stage(n_scan + mag.n_files))
        tes = mag.echo_times_ms
        if len(ph.echoes) == 1 and len(mag.echoes) == 2 and ph.uid != mag.uid:
            pv.name = "GRE phase difference"
            pv.extra["phase_kind"] = "difference"
            if tes is not None:
                pv.extra.update(
                    echo_time1_ms=tes[0], echo_time2_ms=tes[1], delta_te_ms=tes[1] - tes[0]
                )
        vols.append(pv)
    vols[0].warnings[:0] = notes
    files = CaseFiles(folder=root, label=label or root.name, gre=[], phase=[])
    return Case(files, vols, place_on_reference(vols))


def series_table(scan: DicomScan) -> list[dict[str, Any]]:
    """One row per candidate series (for the picker and ``napari-m1 import --list``)."""
    return [
        {
            "series": s.number,
            "description": s.description,
            "component": s.component,
            "echoes": len(s.echoes),
            "te_ms": s.echo_times_ms,
            "matrix": "x".join(map(str, (s.shape[1], s.shape[0], s.shape[2]))),
            "files": s.n_files,
            "problem": s.problem,
        }
        for s in scan.series
    ]
