"""napari-m1: read 7T MRI of the primary motor cortex (M1) in napari.

The public API is re-exported here lazily (importing the package stays cheap, as
napari imports it to find the manifest).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "load_case": "napari_m1.io",
    "load_nifti": "napari_m1.io",
    "hemisphere": "napari_m1.geometry",
    "world_to_ras": "napari_m1.geometry",
    "make_phantom": "napari_m1.phantom",
    "write_phantom_case": "napari_m1.phantom",
    "get_protocol": "napari_m1.protocol",
    "load_annotations": "napari_m1.annotation",
    "save_annotations": "napari_m1.annotation",
    "case_fingerprint": "napari_m1.annotation",
    "roi_annotation": "napari_m1.annotation",
    "caliper_annotation": "napari_m1.annotation",
    "MeasurementEngine": "napari_m1.measure",
    "engine_for_case": "napari_m1.measure",
    "create_study": "napari_m1.session",
    "ReaderSession": "napari_m1.session",
    "Study": "napari_m1.session",
    "build_report": "napari_m1.stats",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_m1' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
