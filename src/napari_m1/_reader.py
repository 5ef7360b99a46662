"""npe2 reader contributions: the two-step contract (cheap check, then read).

``get_*_reader`` only look at names and folder listings and return ``None`` when
they cannot read the path; the returned readers raise :class:`~napari_m1.errors.M1LoadError`
with a one-line message, and report warnings through napari notifications.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .geometry import reference_placement
from .io import (
    Case,
    is_nifti_path,
    is_openable_folder,
    load_case,
    load_nifti,
    volume_to_layer_data,
)

__all__ = ["case_layer_data", "get_case_reader", "get_nifti_reader", "read_case", "read_nifti"]

log = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]
PathLike = str | os.PathLike[str]


def _single(path: PathLike | list[PathLike]) -> str | None:
    if isinstance(path, (list, tuple)):
        return str(path[0]) if len(path) == 1 else None
    return str(path)


def _notify(warnings: list[str]) -> None:
    for w in warnings:
        log.warning(w)
    try:
        from napari.utils.notifications import show_warning
    except ImportError:  # pragma: no cover - napari is a dependency
        return
    for w in warnings:
        show_warning(w)


def get_nifti_reader(path: PathLike | list[PathLike]) -> Callable[..., list[LayerData]] | None:
    """Reader for a single ``.nii``/``.nii.gz`` file, else None."""
    p = _single(path)
    if p is None or not is_nifti_path(p) or Path(p).is_dir():
        return None
    return read_nifti


def read_nifti(path: PathLike | list[PathLike]) -> list[LayerData]:
    """Read one NIfTI as its own reference grid (kind guessed from the name)."""
    p = _single(path)
    vol = load_nifti(p)  # type: ignore[arg-type]
    place = reference_placement(vol.ras_affine, vol.spatial_shape)
    _notify(vol.warnings)
    return [volume_to_layer_data(vol, place)]


def get_case_reader(path: PathLike | list[PathLike]) -> Callable[..., list[LayerData]] | None:
    """Reader for a case folder (case.json or BIDS-like GRE names), a DICOM folder or a
    bare NIfTI folder, else None (checks names and a few file headers only)."""
    p = _single(path)
    if p is None or not is_openable_folder(p):
        return None
    return read_case


def case_layer_data(case: Case) -> list[LayerData]:
    """Layer-data tuples for a loaded case: GRE first and visible; the maps hidden."""
    out: list[LayerData] = []
    for vol, place in zip(case.volumes, case.placements, strict=True):
        out.append(volume_to_layer_data(vol, place, case_label=case.files.label))
    return out


def read_case(path: PathLike | list[PathLike]) -> list[LayerData]:
    """Read a whole case folder; all layers or none."""
    case = load_case(_single(path))  # type: ignore[arg-type]
    _notify(case.warnings)
    return case_layer_data(case)
