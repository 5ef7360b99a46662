"""Identifying values held by a case folder's DICOM headers and JSON sidecars. No Qt.

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

    Reads every JSON sidecar (up to 1 MB each) and the first DICOM header of each
    sub-folder (identity is per study/series, and series are usually stored one per
    folder). Unreadable files are skipped: this collects tokens, it does not validate.
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
