"""Measurement test data built in code: the supersampling definition of ROI weights and
cases with every kind of map (GRE echoes, QSM, MRSI) on their own grids.

Used by tests/test_measure.py and benchmarks/bench_measure.py (one construction, so the
benchmark times the case the tests check).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def brute_weights(centre, axes, n: int = 12):
    """The definition of ROI coverage weights: n x n sample points per pixel, the
    fraction inside the oval, every sample tested.

    ``centre`` (row, col) and ``axes`` (2 x 2, columns = semi-axes) in index units.
    Returns ``((first_row, first_col), weights)``, the window unclipped.
    """
    c, a = np.asarray(centre, float), np.asarray(axes, float)
    ainv = np.linalg.inv(a)
    half = np.sqrt((a**2).sum(axis=1))
    r0, r1 = int(np.floor(c[0] - half[0] - 0.5)), int(np.ceil(c[0] + half[0] + 0.5)) + 1
    c0, c1 = int(np.floor(c[1] - half[1] - 0.5)), int(np.ceil(c[1] + half[1] + 0.5)) + 1
    off = (np.arange(n) + 0.5) / n - 0.5
    dr = (np.arange(r0, r1)[:, None] + off).ravel() - c[0]
    dc = (np.arange(c0, c1)[:, None] + off).ravel() - c[1]
    x0 = ainv[0, 0] * dr[:, None] + ainv[0, 1] * dc[None, :]
    x1 = ainv[1, 0] * dr[:, None] + ainv[1, 1] * dc[None, :]
    inside = x0 * x0 + x1 * x1 <= 1.0
    return (r0, c0), inside.reshape(r1 - r0, n, c1 - c0, n).mean(axis=(1, 3))


def grid_affine(origin: Sequence[float], pixel_mm: float = 0.25, slice_mm: float = 2.0):
    """napari index (slice, row, col) -> RAS mm of an axial grid: slices along S,
    rows along A, columns along R; ``origin`` is RAS of voxel (0, 0, 0)."""
    ras = np.zeros((4, 4))
    ras[2, 0], ras[1, 1], ras[0, 2], ras[3, 3] = slice_mm, pixel_mm, pixel_mm, 1.0
    ras[:3, 3] = origin
    return ras


def map_sources(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    mrsi_shape: tuple[int, int, int],
    origin: Sequence[float],
    mrsi_origin: Sequence[float],
    metabolites: Sequence[str] = ("NAA", "Cr"),
    dtype=np.float64,
):
    """GRE (2 echoes, TE 10/20 ms), QSM on the same grid and MRSI maps on a 5 mm grid.

    Returns ``(sources, ras_affine)``; sources in the order GRE, first metabolite, QSM,
    the other metabolites (a map order the engine must keep).
    """
    from napari_m1.measure import MapSource

    ras = grid_affine(origin)
    mras = grid_affine(mrsi_origin, 5.0, 5.0)
    gre = rng.normal(400, 20, (2, *shape)).astype(dtype)
    qsm = rng.normal(0, 0.02, shape).astype(dtype)
    mrsi = [
        MapSource("mrsi", m, rng.uniform(1, 9, mrsi_shape).astype(dtype), mras, None, m)
        for m in metabolites
    ]
    srcs = [
        MapSource("gre", "GRE", gre, ras, [10.0, 20.0], source_affine=ras),
        mrsi[0],
        MapSource("qsm", "QSM", qsm, ras),
        *mrsi[1:],
    ]
    return srcs, ras


def random_annotation(slot, ras, rng, slices, rows, cols, radius_mm: float | None = None):
    """A ROI (an oval, random size unless ``radius_mm``) or a caliper of ``slot`` at a
    random voxel of the grid ``ras``: slice in ``slices``, row/col in ``rows``/``cols``
    (ranges as (low, high))."""
    from napari_m1.annotation import caliper_annotation, roi_annotation

    idx = np.r_[rng.integers(*slices), rng.uniform(*rows), rng.uniform(*cols), 1.0]
    c = (ras @ idx)[:3]
    if slot.kind == "caliper":
        return caliper_annotation(slot.id, c, c + np.array([1.0, 1.5, 0]))
    u = radius_mm if radius_mm is not None else rng.uniform(0.6, 1.5)
    v = radius_mm if radius_mm is not None else 1.1
    return roi_annotation(slot.id, c, [u, 0, 0], [0, v, 0])
