"""Shared fixtures. Every user/config/study folder points into tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-gre-small"


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("NAPARI_M1_DATA_DIR", str(tmp_path_factory.mktemp("m1-user-data")))


@pytest.fixture(scope="session")
def real_gre_dir() -> Path:
    env = os.environ.get("NAPARI_M1_REAL_DATA")
    d = Path(env) if env else SHARED_DATA
    if not (d / "Mag.nii.gz").is_file():
        pytest.skip(f"real GRE data not found at {d}")
    return d


@pytest.fixture(scope="session")
def phantom_case(tmp_path_factory) -> Path:
    """A small (16-slice) control phantom case folder, written once per test session."""
    from napari_m1.phantom import write_phantom_case

    out = tmp_path_factory.mktemp("phantom") / "case"
    return write_phantom_case(out, "control", seed=1, n_slices=16)


@pytest.fixture
def shots(tmp_path) -> Path:
    """Where GUI tests save screenshots: $NAPARI_M1_SCREENSHOTS (to look at them) or tmp_path."""
    d = Path(os.environ.get("NAPARI_M1_SCREENSHOTS", tmp_path))
    d.mkdir(parents=True, exist_ok=True)
    return d


def make_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None, **hdr) -> Path:
    """Write a NIfTI-1 with sform and qform set (scanner), return its path."""
    import nibabel as nib

    aff = np.eye(4) if affine is None else affine
    img = nib.Nifti1Image(data, aff)
    img.set_sform(aff, code=1)
    img.set_qform(aff, code=1)
    for k, v in hdr.items():
        img.header[k] = v
    nib.save(img, str(path))
    return path
