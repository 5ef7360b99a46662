"""Writing a reconstruction: NIfTI maps on the GRE grid and ``qsm.json``.

Files (QSM-CI names): ``Chimap.nii.gz`` (chi, ppm), ``mask.nii.gz`` (final mask, uint8),
``totalfield.nii.gz`` and ``localfield.nii.gz`` (ppm of B0), ``qsm.json`` (every
parameter, package versions, the reference). Maps are float32 in the magnitude file's own
voxel order and affine. Writes are atomic and deterministic: gzip without a time stamp or
file name, JSON with sorted keys and no timings, so identical inputs give identical bytes.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._atomic import atomic_write_bytes, atomic_write_text
from ..errors import M1Error, M1WriteError
from ..formats import QSM_JSON_SCHEMA
from ._pipeline import QSMResult

__all__ = ["OUTPUT_FILES", "QSM_JSON_SCHEMA", "write_qsm_outputs"]

OUTPUT_FILES = ("Chimap.nii.gz", "mask.nii.gz", "totalfield.nii.gz", "localfield.nii.gz")


def _versions() -> dict[str, str]:
    import nibabel
    import scipy
    import skimage

    from .. import __version__

    return {
        "napari_m1": __version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit_image": skimage.__version__,
        "nibabel": nibabel.__version__,
    }


def _nifti_bytes(data: np.ndarray, ras_affine: np.ndarray, axcodes: tuple[str, ...] | None):
    import nibabel as nib
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    img = nib.Nifti1Image(np.ascontiguousarray(data), np.asarray(ras_affine, dtype=np.float64))
    if axcodes:
        img = img.as_reoriented(ornt_transform(io_orientation(ras_affine), axcodes2ornt(axcodes)))
    img.set_sform(img.affine, code=1)
    img.set_qform(img.affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    return obj


def write_qsm_outputs(
    result: QSMResult,
    out_dir: str | os.PathLike[str],
    *,
    affine: np.ndarray,
    source: dict | None = None,
) -> Path:
    """Write the maps and ``qsm.json`` into ``out_dir`` (created if missing).

    Parameters
    ----------
    result : QSMResult
    out_dir : path
    affine : (4, 4) ndarray
        Voxel index -> RAS mm of the arrays (``QSMInput.affine``).
    source : dict, optional
        Provenance (``QSMInput.source``); its ``source_axcodes`` restores the magnitude
        file's voxel order.

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    M1Error
        ``out_dir`` exists and is a file (:class:`M1WriteError` when a file cannot be
        written).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise M1Error(f"{out}: exists and is not a folder")
    src = dict(source or {})
    axcodes = tuple(src.get("source_axcodes") or ()) or None
    maps = {
        "Chimap.nii.gz": result.chi_ppm,
        "mask.nii.gz": result.mask.astype(np.uint8),
        "totalfield.nii.gz": result.total_field_ppm,
        "localfield.nii.gz": result.local_field_ppm,
    }
    current = out
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, arr in maps.items():
            current = out / name
            atomic_write_bytes(current, _nifti_bytes(arr, affine, axcodes))
        current = out / "qsm.json"
        meta = {
            "schema": QSM_JSON_SCHEMA,
            "units": {"chi": "ppm", "field": "ppm of B0"},
            "files": {
                "chi": "Chimap.nii.gz",
                "mask": "mask.nii.gz",
                "total_field": "totalfield.nii.gz",
                "local_field": "localfield.nii.gz",
            },
            "params": dataclasses.asdict(result.params),
            "stages": result.info,
            "reference": result.info.get("reference"),
            "inputs": src,
            "versions": _versions(),
            "warnings": list(result.warnings),
        }
        atomic_write_text(out / "qsm.json", json.dumps(_jsonable(meta), indent=2, sort_keys=True))
    except OSError as exc:
        raise M1WriteError(current, exc) from None
    return out
