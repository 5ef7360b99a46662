"""DICOM folders -> series -> :class:`~napari_m1.io.Volume`. No Qt, no napari.

A folder (any depth, unsorted, mixed series) is scanned once with pydicom
(headers only). Every image *frame* -- a classic single-frame file or one frame
of an enhanced multi-frame object -- becomes a :class:`DicomFrame`. Frames are
grouped into candidate :class:`DicomSeries`: one per SeriesInstanceUID and image
component (magnitude ``M`` / phase ``P``), each holding its echoes (grouped by
echo time, never by InstanceNumber, which Siemens reuses across echoes). A series
that cannot become a volume (missing slice, mixed matrix sizes, repeated
positions) keeps a one-line ``problem`` and is refused only when someone asks to
load it.

Geometry follows DICOM PS3.3 C.7.6.2.1.1: for pixel ``(column i, row j)`` of slice
``k`` (slices sorted along the normal ``row_cos x col_cos``)::

    LPS = IPP_0 + row_cos * dc * i + col_cos * dr * j + (IPP_last - IPP_0) / (n - 1) * k

with ``PixelSpacing = (dr, dc)``; RAS = diag(-1, -1, 1) LPS. This is the affine
nibabel's ``nicom`` and dcm2niix compute (tests check it against both).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import M1LoadError
from ._dicom_frames import DicomFrame, _frames_of

__all__ = [
    "DicomFrame",
    "DicomScan",
    "DicomSeries",
    "find_dicom_files",
    "is_dicom_file",
    "is_dicom_folder",
    "scan_dicom",
]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

_MAX_DEPTH = 8
_PEEK_FILES = 64
DICOMDIR_SOP = "1.2.840.10008.1.3.10"
# Storage SOP classes that hold images napari-m1 can place in space.
_IMAGE_SOPS = {
    "1.2.840.10008.5.1.4.1.1.4": "MR Image",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image",
    "1.2.840.10008.5.1.4.1.1.4.3": "Enhanced MR Color Image",
    "1.2.840.10008.5.1.4.1.1.2": "CT Image",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture",
}


def is_dicom_file(path: str | os.PathLike[str]) -> bool:
    """True when the file carries the DICOM Part 10 preamble (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _walk(folder: Path) -> Iterator[Path]:
    base = len(folder.parts)
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if len(Path(root).parts) - base >= _MAX_DEPTH:
            dirs[:] = []
        for f in sorted(files):
            if not f.startswith("."):
                yield Path(root) / f


def is_dicom_folder(path: str | os.PathLike[str]) -> bool:
    """Cheap check (npe2 reader): a folder with a DICOM file among its first files."""
    p = Path(path)
    if not p.is_dir():
        return False
    for n, f in enumerate(_walk(p)):
        if n >= _PEEK_FILES:
            return False
        if f.name.upper() == "DICOMDIR" or is_dicom_file(f):
            return True
    return False


def find_dicom_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Every Part 10 DICOM file under ``folder`` (any depth, sorted by path)."""
    return [f for f in _walk(Path(folder)) if is_dicom_file(f)]


# --------------------------------------------------------------------------- series


@dataclass
class DicomEcho:
    """One echo of a series: its frames sorted along the slice normal."""

    te_ms: float | None
    frames: list[DicomFrame]


@dataclass
class DicomSeries:
    """A candidate volume: one series, one image component, one or more echoes.

    Attributes
    ----------
    kind : {'gre', 'phase', 'other'}
        ``gre`` for magnitude, ``phase`` for phase; real/imaginary are ``other``.
    echoes : list of DicomEcho
        In echo-time order.
    problem : str or None
        Why this series cannot be loaded (one line), else None.
    shape : (rows, cols, slices)
    """

    uid: str
    number: int
    description: str
    component: str
    echoes: list[DicomEcho]
    problem: str | None = None
    folder: Path | None = None
    affine: NDArray[np.float64] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return {"M": "gre", "P": "phase"}.get(self.component, "other")

    @property
    def echo_times_ms(self) -> list[float] | None:
        tes = [e.te_ms for e in self.echoes]
        return None if any(t is None for t in tes) else [float(t) for t in tes]  # type: ignore[arg-type]

    @property
    def n_slices(self) -> int:
        return len(self.echoes[0].frames)

    @property
    def shape(self) -> tuple[int, int, int]:
        f = self.echoes[0].frames[0]
        return (f.rows, f.cols, self.n_slices)

    @property
    def n_files(self) -> int:
        return len({fr.path for e in self.echoes for fr in e.frames})

    def label(self) -> str:
        """One line for a series picker (may hold the protocol name: not for readers)."""
        what = {"M": "magnitude", "P": "phase", "R": "real", "I": "imaginary"}[self.component]
        tes = self.echo_times_ms
        te = f" ({', '.join(f'{t:g}' for t in tes)} ms)" if tes else " (TE unknown)"
        r, c, n = self.shape
        ne = len(self.echoes)
        s = f"series {self.number} {self.description} · {what} · {ne} echo{'es' if ne > 1 else ''}"
        s += f"{te} · {c}×{r}×{n}"
        return s + (f" · cannot load: {self.problem}" if self.problem else "")

    @property
    def name(self) -> str:
        return f"series {self.number} ({self.description or 'no description'})"


def _slice_affine(frames: list[DicomFrame], name: str) -> NDArray[np.float64]:
    """Voxel (column i, row j, slice k) -> RAS mm for frames sorted along the normal."""
    f0 = frames[0]
    row_cos, col_cos = f0.iop[:3], f0.iop[3:]
    dr, dc = f0.spacing
    if len(frames) > 1:
        step = (frames[-1].ipp - f0.ipp) / (len(frames) - 1)
    else:
        normal = np.cross(row_cos, col_cos)
        step = normal * (f0.slice_thickness or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = row_cos * dc
    lps[:3, 1] = col_cos * dr
    lps[:3, 2] = step
    lps[:3, 3] = f0.ipp
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _check_stack(frames: list[DicomFrame], what: str) -> str | None:
    """Sort ``frames`` in place along the slice normal; return a problem or None."""
    f0 = frames[0]
    for fr in frames[1:]:
        if (fr.rows, fr.cols) != (f0.rows, f0.cols):
            return (
                f"mixed matrix sizes in {what}: {f0.path.name} is {f0.cols}x{f0.rows}, "
                f"{fr.path.name} is {fr.cols}x{fr.rows}"
            )
        if not np.allclose(fr.iop, f0.iop, atol=1e-4):
            return f"mixed slice orientations in {what} ({f0.path.name}, {fr.path.name})"
        if not np.allclose(fr.spacing, f0.spacing, atol=1e-4):
            return f"mixed pixel spacings in {what} ({f0.path.name}, {fr.path.name})"
    if not (np.all(np.isfinite(f0.spacing)) and np.all(f0.spacing > 0)):
        return f"{f0.path.name}: PixelSpacing must be two positive numbers, got {f0.spacing}"
    if not all(np.all(np.isfinite(fr.ipp)) for fr in frames):
        return f"{what}: ImagePositionPatient must be three finite numbers"
    if not np.all(np.isfinite(f0.iop)):
        return f"{f0.path.name}: ImageOrientationPatient must be six finite numbers"
    normal = np.cross(f0.iop[:3], f0.iop[3:])
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-3):
        return f"{f0.path.name}: ImageOrientationPatient is not two orthonormal directions"
    frames.sort(key=lambda fr: float(fr.ipp @ normal))
    f0 = frames[0]
    if len(frames) < 2:
        return None
    d = np.array([fr.ipp @ normal for fr in frames])
    gaps = np.diff(d)
    if np.any(gaps < 1e-3):
        k = int(np.argmin(gaps))
        return (
            f"repeated slice position {d[k]:.2f} mm in {what} ({frames[k].path.name}, "
            f"{frames[k + 1].path.name}); several time points or acquisitions in one series "
            "are not supported"
        )
    step = float(gaps.min())
    if gaps.max() > 1.1 * step:
        k = int(np.argmax(gaps))
        n_missing = round(gaps[k] / step) - 1
        if n_missing < 1:
            return f"{what}: irregular slice spacing ({step:.2f} to {gaps[k]:.2f} mm)"
        return (
            f"{what}: slice missing between {frames[k].path.name} and "
            f"{frames[k + 1].path.name} (gap {gaps[k]:.2f} mm, spacing {step:.2f} mm, "
            f"about {n_missing} slice(s) missing)"
        )
    # In-plane drift: every slice must lie on the line through the first and last.
    line = (d - d[0])[:, None] / (d[-1] - d[0]) * (frames[-1].ipp - f0.ipp) + f0.ipp
    off = np.linalg.norm(np.array([fr.ipp for fr in frames]) - line, axis=1)
    if off.max() > 1e-2 * max(1.0, float(step)):
        k = int(np.argmax(off))
        return f"{what}: slice {frames[k].path.name} is off the stack's line by {off[k]:.2f} mm"
    return None


def _build_series(uid: str, comp: str, frames: list[DicomFrame]) -> DicomSeries:
    f0 = frames[0]
    groups: dict[Any, list[DicomFrame]] = defaultdict(list)
    for fr in frames:
        key = round(fr.te_ms, 2) if fr.te_ms is not None else ("echo", fr.echo_number)
        groups[key].append(fr)
    echoes = [
        DicomEcho(te_ms=g[0].te_ms, frames=g)
        for _, g in sorted(groups.items(), key=lambda kv: (kv[1][0].te_ms or 0, str(kv[0])))
    ]
    s = DicomSeries(uid, f0.series_number, f0.series_description, comp, echoes)
    for i, e in enumerate(echoes):
        what = f"{s.name}" + (f" echo {i + 1}" if len(echoes) > 1 else "")
        s.problem = _check_stack(e.frames, what)
        if s.problem:
            return s
    e0 = echoes[0].frames
    for i, e in enumerate(echoes[1:], start=2):
        if len(e.frames) != len(e0):
            s.problem = (
                f"{s.name}: echo {i} has {len(e.frames)} slices, echo 1 has {len(e0)} "
                "(slice missing?)"
            )
            return s
        if (e.frames[0].rows, e.frames[0].cols) != (e0[0].rows, e0[0].cols):
            s.problem = f"{s.name}: mixed matrix sizes between echoes"
            return s
        if not np.allclose([f.ipp for f in e.frames], [f.ipp for f in e0], atol=1e-3):
            s.problem = f"{s.name}: echo {i} is not on echo 1's slice positions"
            return s
    s.affine = _slice_affine(e0, s.name)
    return s


@dataclass
class DicomScan:
    """What a folder holds: candidate series and notes on skipped objects."""

    folder: Path
    series: list[DicomSeries]
    notes: list[str] = field(default_factory=list)
    identifiers: dict[str, set[str]] = field(default_factory=dict)

    def by_kind(self, kind: str) -> list[DicomSeries]:
        return [s for s in self.series if s.kind == kind]


# Attributes that identify a person, a site or a visit (DICOM PS3.15 E.1-1 subset).
IDENTIFYING_TAGS: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "OtherPatientNames",
    "PatientBirthDate",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientComments",
    "IssuerOfPatientID",
    "AccessionNumber",
    "StudyID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "OperatorsName",
    "RequestingPhysician",
    "StationName",
    "DeviceSerialNumber",
    "StudyDescription",
    "RequestedProcedureDescription",
    "PerformedProcedureStepDescription",
)


def _collect_identifiers(ds: Any, into: dict[str, set[str]]) -> None:
    for tag in IDENTIFYING_TAGS:
        v = ds.get(tag)
        if v in (None, ""):
            continue
        vals = list(v) if type(v).__name__ in ("MultiValue", "list", "tuple") else [v]
        for x in vals:
            s = str(x).strip()
            if s:
                into.setdefault(tag, set()).add(s)


# Sidecar fields (BIDS names) copied from the first header of a series; the
# site fields and free-text names are dropped by ``--anonymise``.
ACQUISITION_FIELDS: tuple[str, ...] = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "MagneticFieldStrength",
    "SoftwareVersions",
    "MRAcquisitionType",
    "ScanningSequence",
    "SequenceVariant",
    "SequenceName",
    "RepetitionTime",
    "FlipAngle",
    "SliceThickness",
    "SpacingBetweenSlices",
    "PixelBandwidth",
    "SeriesNumber",
)
SITE_FIELDS: tuple[str, ...] = (
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "SeriesDescription",
    "ProtocolName",
)


def _acquisition_fields(ds: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in (*ACQUISITION_FIELDS, *SITE_FIELDS):
        v = ds.get(k)
        if v in (None, ""):
            continue
        if type(v).__name__ == "MultiValue":
            v = [str(x) for x in v]
        elif isinstance(v, (int, float)):
            v = v
        else:
            try:
                v = float(v) if type(v).__name__ in ("DSfloat", "IS", "DSdecimal") else str(v)
            except (TypeError, ValueError):
                v = str(v)
        if k == "RepetitionTime" and isinstance(v, float):
            v = v / 1000.0  # BIDS: seconds
        out[k] = v
    return out


def scan_dicom(folder: str | os.PathLike[str], *, progress: Progress | None = None) -> DicomScan:
    """Read every DICOM header under ``folder`` and group the images into series.

    Raises
    ------
    M1LoadError
        Not a folder; a file that is not readable DICOM (truncated header); no images
        at all (only a DICOMDIR, only non-image objects).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    root = Path(folder)
    if not root.is_dir():
        raise M1LoadError(f"{root.name}: not a folder")
    files = find_dicom_files(root)
    notes: list[str] = []
    skipped: dict[str, int] = defaultdict(int)
    frames: list[DicomFrame] = []
    ids: dict[str, set[str]] = {}
    headers: dict[str, dict[str, Any]] = {}
    id_seen: set[str] = set()
    has_dicomdir = any(f.name.upper() == "DICOMDIR" for f in _walk(root))
    for n, f in enumerate(files):
        if progress is not None:
            progress(n, len(files))
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise M1LoadError(f"{f.name}: truncated or unreadable DICOM file ({reason})") from None
        sop = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
        if sop == DICOMDIR_SOP:
            has_dicomdir = True
            continue
        series_key = str(ds.get("SeriesInstanceUID", f.parent))
        if series_key not in id_seen:  # identity is per study/series: read it once
            id_seen.add(series_key)
            _collect_identifiers(ds, ids)
        if "PixelData" not in ds and sop not in _IMAGE_SOPS:
            skipped[str(getattr(ds, "Modality", "") or sop or "unknown")] += 1
            continue
        if sop not in _IMAGE_SOPS:
            skipped[str(getattr(ds, "Modality", "") or sop)] += 1
            continue
        if not ds.get("Rows") or not ds.get("Columns"):
            raise M1LoadError(f"{f.name}: truncated or incomplete DICOM image (no Rows/Columns)")
        uid = str(ds.get("SeriesInstanceUID", ""))
        if uid not in headers:
            headers[uid] = _acquisition_fields(ds)
        try:
            frames.extend(_frames_of(ds, f))
        except M1LoadError:
            raise
        except (TypeError, ValueError, IndexError, AttributeError, KeyError) as exc:
            raise M1LoadError(f"{f.name}: malformed image header ({exc})") from None
    if progress is not None:
        progress(len(files), len(files))
    if skipped:
        what = ", ".join(f"{n} {k}" for k, n in sorted(skipped.items()))
        notes.append(f"skipped {sum(skipped.values())} non-image DICOM object(s) ({what})")
    if has_dicomdir:
        notes.append("DICOMDIR index ignored; images are read from the folder itself")
    if not frames:
        if has_dicomdir and not files:
            raise M1LoadError(f"{root.name}: only a DICOMDIR index, none of the images it lists")
        if has_dicomdir and len(files) <= 1:
            raise M1LoadError(f"{root.name}: only a DICOMDIR index, none of the images it lists")
        if skipped:
            raise M1LoadError(f"{root.name}: no DICOM images, only non-image objects ({what})")
        raise M1LoadError(f"{root.name}: no DICOM files found")
    by: dict[tuple[str, str], list[DicomFrame]] = defaultdict(list)
    for fr in frames:
        by[(fr.series_uid, fr.component)].append(fr)
    series = [_build_series(uid, comp, frs) for (uid, comp), frs in by.items()]
    for s in series:
        s.folder = root
        s.extra["header"] = headers.get(s.uid, {})
    series.sort(key=lambda s: (s.number, "MPRI".index(s.component)))
    return DicomScan(root, series, notes, ids)
