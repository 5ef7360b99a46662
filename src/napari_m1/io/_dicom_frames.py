"""DICOM image frames: one classic file or one frame of an enhanced object -> :class:`DicomFrame`.

Reads only what the grouping in :mod:`._dicom` needs (geometry, echo time, image
component, scaling) from a pydicom dataset; pixel data are read later, per volume.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import M1LoadError

log = logging.getLogger(__name__)

#: Enhanced multi-frame MR and CT image storage SOP classes.
_ENHANCED = {"1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.2.1"}

# --------------------------------------------------------------------------- frames


@dataclass
class DicomFrame:
    """One 2D image: a single-frame file or one frame of a multi-frame object.

    Attributes
    ----------
    path : Path
    frame : int
        Frame index in a multi-frame object, -1 for a single-frame file.
    ipp : (3,) float
        ImagePositionPatient, LPS mm (centre of the first pixel).
    iop : (6,) float
        ImageOrientationPatient: row direction cosine then column direction cosine.
    spacing : (2,) float
        PixelSpacing ``(between rows, between columns)`` mm.
    """

    path: Path
    frame: int
    series_uid: str
    series_number: int
    series_description: str
    component: str  # M, P, R, I
    echo_number: int | None
    te_ms: float | None
    ipp: NDArray[np.float64]
    iop: NDArray[np.float64]
    spacing: NDArray[np.float64]
    rows: int
    cols: int
    slope: float
    intercept: float
    image_type: tuple[str, ...]
    manufacturer: str
    slice_thickness: float | None


def _f(v: Any, default: float | None = None) -> float | None:
    try:
        return float(v) if v is not None and v != "" else default
    except (TypeError, ValueError):
        return default


def _vec(v: Any, n: int, tag: str, name: str) -> NDArray[np.float64]:
    """A DICOM multi-value as ``n`` floats, or a one-line error naming the file."""
    try:
        out = np.asarray([float(x) for x in (v if type(v).__name__ != "str" else [v])])
    except (TypeError, ValueError):
        raise M1LoadError(f"{name}: {tag} is not numeric ({v!r})") from None
    if out.shape != (n,):
        raise M1LoadError(f"{name}: {tag} must hold {n} numbers, got {out.size}")
    return out


def _component(image_type: tuple[str, ...], complex_component: str | None) -> str:
    cc = (complex_component or "").upper()
    if cc in ("MAGNITUDE", "PHASE", "REAL", "IMAGINARY"):
        return cc[0] if cc != "MAGNITUDE" else "M"
    it = {t.upper() for t in image_type}
    if it & {"P", "PHASE"}:
        return "P"
    if it & {"R", "REAL"}:
        return "R"
    if it & {"I", "IMAGINARY"}:
        return "I"
    return "M"


def _seq_item(ds: Any, *names: str) -> Any:
    """First item of nested sequences, e.g. ``_seq_item(fg, 'PlanePositionSequence')``."""
    cur = ds
    for n in names:
        seq = getattr(cur, n, None) if cur is not None else None
        if not seq:
            return None
        cur = seq[0]
    return cur


def _frames_of(ds: Any, path: Path) -> list[DicomFrame]:
    """The image frames of one dataset (headers only)."""
    it = tuple(str(t) for t in (ds.get("ImageType") or ()))
    common = {
        "path": path,
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "series_number": int(_f(ds.get("SeriesNumber"), 0) or 0),
        "series_description": str(ds.get("SeriesDescription", "") or ds.get("ProtocolName", "")),
        "manufacturer": str(ds.get("Manufacturer", "")),
        "rows": int(ds.get("Rows", 0) or 0),
        "cols": int(ds.get("Columns", 0) or 0),
    }
    name = path.name
    nframes = int(_f(ds.get("NumberOfFrames"), 1) or 1)
    sop = str(ds.get("SOPClassUID", ""))
    if sop in _ENHANCED or "PerFrameFunctionalGroupsSequence" in ds:
        shared = _seq_item(ds, "SharedFunctionalGroupsSequence")
        per = ds.get("PerFrameFunctionalGroupsSequence") or []
        if len(per) != nframes:
            raise M1LoadError(
                f"{name}: {len(per)} per-frame groups for {nframes} frames "
                "(corrupt enhanced DICOM)"
            )
        out = []
        for k, fg in enumerate(per):

            def get(seq: str, attr: str, fg: Any = fg) -> Any:
                for grp in (fg, shared):
                    item = _seq_item(grp, seq)
                    if item is not None and attr in item:
                        return item.get(attr)
                return None

            ipp, iop = (
                get("PlanePositionSequence", "ImagePositionPatient"),
                get("PlaneOrientationSequence", "ImageOrientationPatient"),
            )
            spacing = get("PixelMeasuresSequence", "PixelSpacing")
            if ipp is None or iop is None or spacing is None:
                raise M1LoadError(f"{name}: frame {k + 1} has no position/orientation/spacing")
            ftype = get("MRImageFrameTypeSequence", "FrameType") or it
            out.append(
                DicomFrame(
                    frame=k,
                    component=_component(
                        tuple(str(t) for t in ftype),
                        get("MRImageFrameTypeSequence", "ComplexImageComponent"),
                    ),
                    echo_number=None,
                    te_ms=_f(get("MREchoSequence", "EffectiveEchoTime")),
                    ipp=_vec(ipp, 3, "ImagePositionPatient", name),
                    iop=_vec(iop, 6, "ImageOrientationPatient", name),
                    spacing=_vec(spacing, 2, "PixelSpacing", name),
                    slope=_f(get("PixelValueTransformationSequence", "RescaleSlope"), 1.0) or 1.0,
                    intercept=_f(get("PixelValueTransformationSequence", "RescaleIntercept"), 0.0)
                    or 0.0,
                    image_type=tuple(str(t) for t in ftype),
                    slice_thickness=_f(get("PixelMeasuresSequence", "SliceThickness")),
                    **common,
                )
            )
        return out
    if nframes != 1:
        raise M1LoadError(f"{name}: {nframes}-frame classic image is not supported")
    ipp, iop, spacing = (
        ds.get("ImagePositionPatient"),
        ds.get("ImageOrientationPatient"),
        ds.get("PixelSpacing"),
    )
    if ipp is None or iop is None or spacing is None:
        raise M1LoadError(f"{name}: image without position, orientation or pixel spacing")
    en = ds.get("EchoNumbers")
    return [
        DicomFrame(
            frame=-1,
            component=_component(it, ds.get("ComplexImageComponent")),
            echo_number=int(en) if en not in (None, "") else None,
            te_ms=_f(ds.get("EchoTime")),
            ipp=_vec(ipp, 3, "ImagePositionPatient", name),
            iop=_vec(iop, 6, "ImageOrientationPatient", name),
            spacing=_vec(spacing, 2, "PixelSpacing", name),
            slope=_f(ds.get("RescaleSlope"), 1.0) or 1.0,
            intercept=_f(ds.get("RescaleIntercept"), 0.0) or 0.0,
            image_type=it,
            slice_thickness=_f(ds.get("SliceThickness")),
            **common,
        )
    ]
