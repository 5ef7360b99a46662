"""Write synthetic MR DICOM series with pydicom (tests, benchmarks, demos). No Qt.

Classic single-frame (one file per slice and echo, Siemens-style: both echoes
reuse the same InstanceNumbers) or enhanced multi-frame (one file, per-frame
functional groups). Geometry is given as DICOM LPS vectors, so any orientation
(axial, coronal, sagittal, oblique) can be written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["orientation_iop", "write_dicom_series"]

_MR = "1.2.840.10008.5.1.4.1.1.4"
_ENH_MR = "1.2.840.10008.5.1.4.1.1.4.1"


def orientation_iop(name: str, *, degrees: float = 0.0) -> np.ndarray:
    """ImageOrientationPatient (row cosine, column cosine; LPS) for a named plane.

    ``axial``, ``coronal``, ``sagittal``; ``oblique`` is axial rotated by ``degrees``
    about the LPS x axis and then about z (a double-oblique).
    """
    base = {
        "axial": ([1, 0, 0], [0, 1, 0]),
        "coronal": ([1, 0, 0], [0, 0, -1]),
        "sagittal": ([0, 1, 0], [0, 0, -1]),
        "oblique": ([1, 0, 0], [0, 1, 0]),
    }[name]
    r, c = np.array(base[0], float), np.array(base[1], float)
    if name == "oblique" or degrees:
        a = np.deg2rad(degrees or 20.0)
        rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        b = a / 2
        rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
        r, c = rz @ rx @ r, rz @ rx @ c
    return np.concatenate([r, c])


def _base(uid_root: str, series_number: int, component: str, manufacturer: str, ident: dict):
    import pydicom
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.PatientName = ident.get("PatientName", "Anonymous")
    ds.PatientID = ident.get("PatientID", "ANON")
    for k, v in ident.items():
        setattr(ds, k, v)
    ds.Modality = "MR"
    ds.Manufacturer = manufacturer
    ds.MagneticFieldStrength = 7
    ds.StudyInstanceUID = f"{uid_root}.1"
    ds.SeriesInstanceUID = f"{uid_root}.{series_number}"
    ds.FrameOfReferenceUID = f"{uid_root}.9"
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"gre_m1_{'mag' if component == 'M' else 'pha'}"
    ds.StudyDate = "20260101"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12 if component == "P" else 16
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    ds.RepetitionTime = 30
    ds.FlipAngle = 15
    _ = pydicom
    return ds


def _save(ds, path: Path, sop_class: str, sop_uid: str) -> None:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.save_as(path, enforce_file_format=True)


def write_dicom_series(
    folder: str | os.PathLike[str],
    data: ArrayLike,
    *,
    iop: ArrayLike,
    ipp0: ArrayLike = (-100.0, -110.0, -40.0),
    pixel_spacing: tuple[float, float] = (0.5, 0.5),
    slice_spacing: float = 1.0,
    echo_times_ms: Sequence[float] | None = (5.0, 10.0),
    series_number: int = 5,
    component: str = "M",
    manufacturer: str = "SIEMENS",
    enhanced: bool = False,
    uid_root: str = "1.2.826.0.1.3680043.8.498.1",
    identity: dict | None = None,
    prefix: str = "",
) -> list[Path]:
    """Write ``data`` ``(n_echoes, n_slices, rows, cols)`` (uint16) as a DICOM series.

    Slice ``k`` sits at ``ipp0 + k * slice_spacing * (row_cos x col_cos)`` (LPS mm).
    Phase (``component='P'``) is written Siemens-style: stored 0..4095 with rescale
    slope 2 and intercept -4096. Returns the files written.
    """
    arr = np.asarray(data)
    if arr.ndim == 3:
        arr = arr[None]
    ne, ns, rows, cols = arr.shape
    iop = np.asarray(iop, float)
    normal = np.cross(iop[:3], iop[3:])
    ipp0 = np.asarray(ipp0, float)
    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    ident = dict(identity or {})
    tes = list(echo_times_ms) if echo_times_ms is not None else [None] * ne
    uid = f"{uid_root}.{series_number}"
    written: list[Path] = []
    it = ["ORIGINAL", "PRIMARY", component, "ND"]
    if not enhanced:
        for e in range(ne):
            for k in range(ns):
                ds = _base(uid_root, series_number, component, manufacturer, ident)
                ds.ImageType = it
                ds.InstanceNumber = k + 1  # reused by every echo, as Siemens does
                if tes[e] is not None:
                    ds.EchoTime = tes[e]
                ds.EchoNumbers = e + 1
                ds.ImagePositionPatient = [float(x) for x in ipp0 + k * slice_spacing * normal]
                ds.ImageOrientationPatient = [float(x) for x in iop]
                ds.PixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
                ds.SliceThickness = slice_spacing
                ds.Rows, ds.Columns = rows, cols
                if component == "P":
                    ds.RescaleSlope, ds.RescaleIntercept = 2, -4096
                ds.PixelData = np.ascontiguousarray(arr[e, k], dtype="<u2").tobytes()
                p = out_dir / f"{prefix}s{series_number}_e{e + 1}_{k + 1:04d}.dcm"
                _save(ds, p, _MR, f"{uid}.{e + 1}.{k + 1}")
                written.append(p)
        return written
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq

    ds = _base(uid_root, series_number, component, manufacturer, ident)
    ds.ImageType = [*it[:2], component, "NONE"]
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = ne * ns
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
    pm.SliceThickness = slice_spacing
    po = Dataset()
    po.ImageOrientationPatient = [float(x) for x in iop]
    shared.PixelMeasuresSequence = Seq([pm])
    shared.PlaneOrientationSequence = Seq([po])
    if component == "P":
        pvt = Dataset()
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = 2, -4096, "US"
        shared.PixelValueTransformationSequence = Seq([pvt])
    ds.SharedFunctionalGroupsSequence = Seq([shared])
    per = []
    frames = []
    # Frames interleaved slice-major (echo fastest), as scanners often store them.
    for k in range(ns):
        for e in range(ne):
            fg = Dataset()
            pp = Dataset()
            pp.ImagePositionPatient = [float(x) for x in ipp0 + k * slice_spacing * normal]
            fg.PlanePositionSequence = Seq([pp])
            if tes[e] is not None:
                me = Dataset()
                me.EffectiveEchoTime = tes[e]
                fg.MREchoSequence = Seq([me])
            ft = Dataset()
            ft.FrameType = [*it[:2], component, "NONE"]
            ft.ComplexImageComponent = "PHASE" if component == "P" else "MAGNITUDE"
            fg.MRImageFrameTypeSequence = Seq([ft])
            fc = Dataset()
            fc.DimensionIndexValues = [k + 1, e + 1]
            fg.FrameContentSequence = Seq([fc])
            per.append(fg)
            frames.append(arr[e, k])
    ds.PerFrameFunctionalGroupsSequence = Seq(per)
    ds.PixelData = np.ascontiguousarray(np.stack(frames), dtype="<u2").tobytes()
    p = out_dir / f"{prefix}s{series_number}_enhanced.dcm"
    _save(ds, p, _ENH_MR, f"{uid}.1")
    return [p]
