"""Per-user folders. ``NAPARI_M1_DATA_DIR`` overrides the location (tests use it)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["user_data_dir"]

ENV_DATA_DIR = "NAPARI_M1_DATA_DIR"


def user_data_dir() -> Path:
    """The per-user napari-m1 data folder (created on first use)."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        base = Path(env)
    else:
        import platformdirs

        base = Path(platformdirs.user_data_dir("napari-m1", appauthor=False))
    base.mkdir(parents=True, exist_ok=True)
    return base
