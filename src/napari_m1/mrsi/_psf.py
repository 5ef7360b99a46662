"""Tissue fractions weighted by the MRSI point-spread function (Hamming-filtered k-space).

An MRSI voxel's signal does not come from its box: phase encoding with ``n`` steps and a
Hamming filter in k-space gives, along each phase-encoded axis, the point-spread function

    psf(x) = sum_k w_k cos(2 pi k x / n) / sum_k w_k,   w_k = 0.54 + 0.46 cos(2 pi k / n),
    k = -n/2 ... n/2 - 1,  x in voxels (periodic over the field of view, n voxels)

whose FWHM is about 1.8 voxels (:func:`psf_fwhm`). :func:`psf_tissue_fractions` computes box
fractions on a sub-grid (``subdivisions`` per voxel along each phase-encoded axis, exact or
supersampled as :func:`napari_m1.mrsi.tissue_fractions`), then weights the sub-voxels by the
PSF centred on each voxel (separable, periodic over the grid as the acquisition aliases).
Axes that are not phase encoded (the slice axis of 2D multi-slice MRSI) keep their box.
The PSF has small negative side lobes, so a fraction can leave [0, 1] by < 0.01; the classes
and ``outside`` still sum to 1.

Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._tissue import _reduce_axis, tissue_fractions

__all__ = ["hamming_psf", "psf_fwhm", "psf_tissue_fractions"]


def hamming_psf(x: np.ndarray, n: int) -> np.ndarray:
    """The Hamming-filtered PSF of ``n`` phase-encoding steps at ``x`` (voxels), peak 1.

    >>> float(hamming_psf(np.array([0.0]), 24)[0])
    1.0
    """
    k = np.arange(n) - n // 2
    w = 0.54 + 0.46 * np.cos(2 * np.pi * k / n)
    x = np.asarray(x, dtype=float)
    return (np.cos(2 * np.pi * np.multiply.outer(x, k) / n) @ w) / w.sum()


def psf_fwhm(n: int) -> float:
    """Full width at half maximum of :func:`hamming_psf` (voxels), by bisection."""
    lo, hi = 0.0, 2.0  # half width: psf(lo) > 0.5 > psf(hi)
    for _ in range(60):
        mid = (lo + hi) / 2
        if hamming_psf(np.array([mid]), n)[0] > 0.5:
            lo = mid
        else:
            hi = mid
    return 2 * (lo + hi) / 2


def _psf_matrix(n: int, s: int) -> np.ndarray:
    """(n, n s): weight of sub-voxel u (centre (u + 1/2)/s - 1/2) in voxel v, rows sum to 1."""
    x = (np.arange(n * s) + 0.5) / s - 0.5
    d = np.arange(n)[:, None] - x[None, :]
    k = hamming_psf(d.ravel(), n).reshape(d.shape)
    return k / k.sum(axis=1, keepdims=True)


def psf_tissue_fractions(
    mrsi_affine: np.ndarray,
    mrsi_shape: Sequence[int],
    tissue: np.ndarray,
    tissue_affine: np.ndarray,
    *,
    psf_axes: Sequence[int] = (0, 1),
    subdivisions: int = 4,
    **kwargs: Any,
) -> dict[str, np.ndarray]:
    """PSF-weighted tissue fractions of every MRSI voxel.

    Parameters
    ----------
    mrsi_affine, mrsi_shape, tissue, tissue_affine
        As :func:`napari_m1.mrsi.tissue_fractions`.
    psf_axes : sequence of int
        MRSI voxel axes that were phase encoded (default the first two: 2D multi-slice
        MRSI, the slice axis keeps its box). The number of phase-encoding steps along an
        axis is taken to be the grid's size along it.
    subdivisions : int
        Sub-voxels per voxel along each PSF axis (the PSF is taken as constant over one).
    **kwargs
        Passed to :func:`~napari_m1.mrsi.tissue_fractions` (labels, names, sampling).

    Returns
    -------
    dict of str -> ndarray float, shape ``mrsi_shape``
        As :func:`~napari_m1.mrsi.tissue_fractions`, PSF-weighted.
    """
    shape = tuple(int(v) for v in mrsi_shape)
    s = int(subdivisions)
    axes = sorted({int(a) for a in psf_axes})
    if s < 1 or any(not 0 <= a < 3 for a in axes):
        raise ValueError(f"subdivisions must be >= 1 and psf_axes in 0..2, got {s}, {psf_axes}")
    scale = np.ones(3)
    scale[axes] = 1.0 / s
    sub = np.diag([*scale, 1.0])
    sub[:3, 3] = [(0.5 / s - 0.5) if a in axes else 0.0 for a in range(3)]  # sub-voxel 0 centre
    sub_affine = np.asarray(mrsi_affine, float) @ sub
    sub_shape = tuple(n * s if a in axes else n for a, n in enumerate(shape))
    fine = tissue_fractions(sub_affine, sub_shape, tissue, tissue_affine, **kwargs)
    mats = {a: _psf_matrix(shape[a], s).astype(np.float64) for a in axes}
    out = {}
    for name, f in fine.items():
        acc = f
        for a in axes:
            acc = _reduce_axis(acc, a, mats[a])
        out[name] = acc
    return out
