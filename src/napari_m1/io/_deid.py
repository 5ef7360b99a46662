"""Identifying values held by a case folder's DICOM headers, JSON sidecars, NIfTI-MRS
header extensions and Siemens RDA headers. No Qt.

A blinded reader session redacts every one of them from messages and logs
(:func:`napari_m1.session.identifying_tokens` adds them to its tokens); the loaders
never copy them into layers in the first place.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ._dicom import IDENTIFYING_TAGS, SITE_FIELDS, _walk, is_dicom_file

__all__ = ["identifying_values"]

# Site fields plus the identity fields dcm2niix writes with ``-ba n``.
_SIDECAR_KEYS = (
    *IDENTIFYING_TAGS,
    *(k for k in SITE_FIELDS if k not in ("SeriesDescription", "ProtocolName")),
    "PatientSex",
    "PatientWeight",
    "AcquisitionDateTime",
    "AcquisitionDate",
    "StudyDate",
    "SeriesDate",
)
_MAX_JSON = 1 << 20
_MAX_RDA_HEADER = 1 << 16
#: RDA header fields that identify a person, a site or a date (not sex, age or weight:
#: values such as "O" or "0.000000" would only blank out harmless text)
_RDA_KEYS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "StudyDate",
    "StudyTime",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
    "DeviceSerialNumber",
    "OperatorsName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "StudyInstanceUID",
    "SeriesInstanceUID",
)


def _parts(value: Any) -> set[str]:
    vals = value if isinstance(value, (list, tuple)) else [value]
    out: set[str] = set()
    for v in vals:
        s = str(v).strip()
        if not s or s.lower() in ("none", "anonymous", "anon"):
            continue
        out.add(s)
        # Person names: Family^Given^Middle; addresses: comma separated parts.
        out.update(p.strip() for p in re.split(r"[\^,]", s) if len(p.strip()) >= 3)
    return out


def identifying_values(folder: str | os.PathLike[str]) -> set[str]:
    """Names, IDs, dates, institution and address found in ``folder``.

    Reads every JSON sidecar (up to 1 MB each), the first DICOM header of each
    sub-folder (identity is per study/series, and series are usually stored one per
    folder), the NIfTI-MRS header extension (code 44) of every NIfTI (header only) and the
    text header of every Siemens ``.rda``. Unreadable files are skipped: this collects
    tokens, it does not validate.
    """
    root = Path(folder)
    out: set[str] = set()
    if not root.is_dir():
        return out
    seen_dirs: set[Path] = set()
    for f in _walk(root):
        if f.suffix.lower() == ".json":
            try:
                if f.stat().st_size > _MAX_JSON:
                    continue
                obj = json.loads(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(obj, dict):
                for k in _SIDECAR_KEYS:
                    if obj.get(k) not in (None, ""):
                        out |= _parts(obj[k])
        elif f.name.lower().endswith((".nii", ".nii.gz")):
            out |= _nifti_mrs_values(f)
        elif f.suffix.lower() == ".rda":
            out |= _rda_values(f)
        elif f.parent not in seen_dirs and is_dicom_file(f):
            seen_dirs.add(f.parent)
            import pydicom

            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
            except Exception:  # a token collector must not fail a load
                continue
            for k in (*IDENTIFYING_TAGS, *SITE_FIELDS[:5]):
                v = ds.get(k)
                if v not in (None, ""):
                    out |= _parts(list(v) if type(v).__name__ == "MultiValue" else v)
    return out


def _nifti_mrs_values(f: Path) -> set[str]:
    """Identifying keys (any depth) of a NIfTI-MRS header extension; reads the header only."""
    from ..mrsi._niftimrs import IDENTIFYING_KEYS, NIFTI_MRS_ECODE

    try:
        import nibabel as nib

        hdr = nib.load(f).header  # the data are not read
        exts = [e for e in getattr(hdr, "extensions", []) if e.get_code() == NIFTI_MRS_ECODE]
        metas = [json.loads(e.get_content()) for e in exts]
    except Exception:  # a token collector must not fail a load
        return set()
    out: set[str] = set()

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in IDENTIFYING_KEYS and v not in (None, ""):
                    out.update(_parts(v))
                else:
                    walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    walk(metas)
    return out


def _rda_values(f: Path) -> set[str]:
    """Identifying fields of a Siemens RDA text header (``Key: value`` lines)."""
    try:
        with open(f, "rb") as fh:
            head = fh.read(_MAX_RDA_HEADER).decode("latin-1")
    except OSError:
        return set()
    head = head.split(">>> End of header <<<", 1)[0]
    out: set[str] = set()
    for line in head.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in _RDA_KEYS and value.strip():
            out |= _parts(value.strip())
    return out
