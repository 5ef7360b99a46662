"""napari-m1: read 7T MRI of the primary motor cortex (M1) in napari."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
