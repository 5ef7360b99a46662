"""``napari-m1 import``: DICOM, BIDS or bare NIfTI folder -> a case folder. No Qt.

The case folder is BIDS-like (``sub-<ID>_part-mag_MEGRE.nii[.gz]`` 4D + JSON
sidecar, ``part-phase`` or ``phasediff``) with a ``case.json`` that every other
command reads. NIfTI files keep the source's voxel order (DICOM: column, row,
slice; the loaded buffer is written as it is) with sform = qform = the scanner
RAS affine; resampled maps are written on the canonical grid. The folder is written under a
temporary name and renamed into place: it appears complete or not at all.

No sidecar ever carries the patient's name, ID or birth date. ``anonymise``
additionally drops site fields and free-text protocol names and reports every
identifying DICOM attribute that was present in the source and not carried over.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import M1LoadError
from ._case import CASE_JSON, Case
from ._nifti import Volume

__all__ = ["ImportResult", "import_case", "write_case_folder"]

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    """What :func:`import_case` wrote.

    Attributes
    ----------
    out : Path
        The case folder.
    files : list of str
        File names written (NIfTI, sidecars, case.json).
    removed_tags : list of str
        ``Keyword (gggg,eeee)`` of identifying attributes found in the source and not
        written (``anonymise=True`` only).
    notes : list of str
        One-line notes (series chosen, objects skipped).
    """

    out: Path
    files: list[str] = field(default_factory=list)
    removed_tags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _safe_label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text) or "01"


def _file_order(vol: Volume) -> tuple[np.ndarray, np.ndarray] | None:
    """The volume's data in its source's voxel order ``(i, j, k[, echo])`` and the
    source affine, undoing the canonical view (no copy: for DICOM and NIfTI loads the
    result is the original buffer, Fortran-contiguous). None when resampled."""
    from ..geometry import canonical_reorientation

    if "resampled" in vol.extra:
        return None
    lead = vol.data.ndim - 3
    src = np.asarray(vol.source_affine, dtype=float)
    perm, flips, ras = canonical_reorientation(src, (1, 1, 1))
    inv = np.argsort(perm)
    buf_shape = [vol.data.shape[lead + int(a)] for a in inv]  # (nk, nj, ni)
    perm, flips, ras = canonical_reorientation(src, buf_shape[::-1])
    if not np.allclose(ras, vol.ras_affine, atol=1e-6):
        return None
    sl = (slice(None),) * lead + tuple(slice(None, None, -1) if f else slice(None) for f in flips)
    buf = vol.data[sl].transpose(*range(lead), *(lead + int(i) for i in inv))
    return buf.T, src  # (i, j, k[, echo]); echo axis last, as NIfTI wants


def _nifti_of(vol: Volume) -> Any:
    """A NIfTI image of a volume, in its source's voxel order when possible (fast: the
    loaded buffer is written as it is), else in the canonical grid (RAS-ordered axes)."""
    import nibabel as nib

    fo = _file_order(vol)
    if fo is not None:
        arr, aff = fo
    else:
        sp = vol.data.ndim - 3
        axes = tuple(range(vol.data.ndim - 1, sp - 1, -1)) + tuple(range(sp))
        arr = np.transpose(vol.data, axes)
        aff = np.asarray(vol.ras_affine)[:, [2, 1, 0, 3]]
    img = nib.Nifti1Image(arr, aff)
    img.set_sform(aff, code=1)
    img.set_qform(aff, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img


def _tag(keyword: str) -> str:
    from pydicom.datadict import tag_for_keyword

    t = tag_for_keyword(keyword)
    return f"{keyword} ({t >> 16:04X},{t & 0xFFFF:04X})" if t is not None else keyword


def write_case_folder(
    case: Case,
    out: str | os.PathLike[str],
    *,
    subject: str,
    sidecars: dict[int, dict[str, Any]] | None = None,
    force: bool = False,
    gzip: bool = False,
) -> list[str]:
    """Write a loaded case as a case folder (atomically: temporary name, then rename).

    Parameters
    ----------
    case : Case
    out : path
        Must not exist, or be empty, unless ``force``.
    subject : str
        BIDS subject label (letters and digits).
    sidecars : dict volume index -> extra sidecar fields, optional
    gzip : bool
        Write ``.nii.gz`` (smaller, several times slower to write) instead of ``.nii``.

    Returns
    -------
    list of str
        File names written.
    """
    import nibabel as nib

    dest = Path(out)
    if dest.exists() and not dest.is_dir():
        raise M1LoadError(f"{dest.name}: exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise M1LoadError(f"{dest.name}: folder is not empty (use --force to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    written: list[str] = []
    spec: dict[str, Any] = {"label": subject}
    try:
        for i, vol in enumerate(case.volumes):
            side: dict[str, Any] = dict((sidecars or {}).get(i, {}))
            if vol.kind == "gre":
                stem, key = f"sub-{subject}_part-mag_MEGRE", "gre"
            elif vol.kind == "phase" and vol.extra.get("phase_kind") == "difference":
                stem, key = f"sub-{subject}_phasediff", "phase"
                spec["phase_difference"] = True
            elif vol.kind == "phase":
                stem, key = f"sub-{subject}_part-phase_MEGRE", "phase"
            elif vol.kind == "qsm":
                stem, key = f"sub-{subject}_Chimap", "qsm"
            elif vol.kind == "mrsi":
                met = _safe_label(str(vol.extra.get("metabolite") or f"map{i}"))
                stem, key = f"sub-{subject}_met-{met}_mrsi", "mrsi"
            else:
                continue
            if vol.echo_times_ms is not None:
                tes = [round(t / 1000.0, 8) for t in vol.echo_times_ms]
                side["EchoTime"] = tes if vol.n_echoes > 1 else tes[0]
            if vol.extra.get("phase_kind") == "difference" and "echo_time1_ms" in vol.extra:
                side["EchoTime1"] = round(vol.extra["echo_time1_ms"] / 1000.0, 8)
                side["EchoTime2"] = round(vol.extra["echo_time2_ms"] / 1000.0, 8)
            if vol.kind == "phase":
                side["Units"] = "rad"
            if "image_type" in vol.extra:
                side["ImageType"] = list(vol.extra["image_type"])
            side["ConversionSoftware"] = "napari-m1"
            img_name = f"{stem}.nii.gz" if gzip else f"{stem}.nii"
            nib.save(_nifti_of(vol), str(tmp / img_name))
            (tmp / f"{stem}.json").write_text(json.dumps(side, indent=2) + "\n", "utf-8")
            written += [img_name, f"{stem}.json"]
            if key == "mrsi":
                spec.setdefault("mrsi", {})[str(vol.extra.get("metabolite") or stem)] = img_name
            else:
                spec[key] = img_name
        tes = case.volumes[0].echo_times_ms
        if tes is not None:
            spec["echo_times_ms"] = [float(t) for t in tes]
        (tmp / CASE_JSON).write_text(json.dumps(spec, indent=2) + "\n", "utf-8")
        written.append(CASE_JSON)
        for p in tmp.iterdir():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return written


def import_case(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    subject: str | None = None,
    session: str | None = None,
    series: int | str | None = None,
    anonymise: bool = False,
    force: bool = False,
    gzip: bool = False,
    echo_times_ms: list[float] | None = None,
    progress: Any = None,
) -> ImportResult:
    """Convert a DICOM folder, a BIDS dataset (one subject) or a bare NIfTI folder.

    Parameters
    ----------
    source : path
    out : path
        The case folder to write.
    subject : str, optional
        BIDS subject to take from a BIDS root (required when it has several); for
        DICOM, the label written (default: the source folder's name; never a DICOM
        identifier).
    series : int or str, optional
        DICOM magnitude series number or UID (default: the one with most echoes).
    anonymise : bool
        Drop site fields and protocol names too and list what was removed.
    echo_times_ms : list of float, optional
        Echo times for a source that does not hold them (e.g. a bare NIfTI folder);
        refused when the source has its own and they differ.
    """
    from ._bids import is_bids_root, load_bids_case
    from ._case import load_case
    from ._dicom import SITE_FIELDS, is_dicom_folder, scan_dicom
    from ._dicom_case import choose_series, load_dicom_case

    src = Path(source)
    if not src.is_dir():
        raise M1LoadError(f"{src.name}: not a folder")
    res = ImportResult(out=Path(out))
    sidecars: dict[int, dict[str, Any]] = {}
    if is_bids_root(src):
        case = load_bids_case(src, subject=subject, session=session)
        label = _safe_label(case.files.label.split("_ses-")[0])
    elif is_dicom_folder(src):
        scan = scan_dicom(src, progress=progress)
        mag, ph, notes = choose_series(scan, gre=series)
        case = load_dicom_case(
            src, scan=scan, gre=mag.uid, phase=ph.uid if ph else None, progress=progress
        )
        res.notes = notes
        for i, s in enumerate([mag, *([ph] if ph else [])]):
            hdr = dict(s.extra.get("header", {}))
            if anonymise:
                for k in SITE_FIELDS:
                    hdr.pop(k, None)
            sidecars[i] = hdr
        label = _safe_label(subject) if subject else ("01" if anonymise else _safe_label(src.name))
        if anonymise:
            present = set(scan.identifiers)
            present.update(
                k for s in scan.series for k in SITE_FIELDS if k in s.extra.get("header", {})
            )
            res.removed_tags = sorted(_tag(k) for k in present)
    else:
        case = load_case(src)
        label = _safe_label(subject or case.files.label)
    if echo_times_ms is not None:
        _set_echo_times(case, [float(t) for t in echo_times_ms], src.name)
    res.files = write_case_folder(
        case, out, subject=label, sidecars=sidecars, force=force, gzip=gzip
    )
    for w in case.warnings:
        if w not in res.notes:
            res.notes.append(w)
    return res


def _set_echo_times(case: Case, tes: list[float], name: str) -> None:
    gre = case.volumes[0]
    if len(tes) != gre.n_echoes or any(not (0 < t <= 1000) for t in tes):
        raise M1LoadError(
            f"{name}: --echo-times needs {gre.n_echoes} value(s) in ms (0 < TE <= 1000), "
            f"got {len(tes)}"
        )
    if gre.echo_times_ms is not None and not np.allclose(gre.echo_times_ms, tes, atol=1e-3):
        have = ", ".join(f"{t:g}" for t in gre.echo_times_ms)
        raise M1LoadError(f"{name}: the source says echo times {have} ms; --echo-times differs")
    for v in case.volumes:
        if v.kind in ("gre", "phase") and v.n_echoes == len(tes):
            v.echo_times_ms = list(tes)
            v.warnings = [w for w in v.warnings if "echo times unknown" not in w]
