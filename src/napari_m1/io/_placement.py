"""Placing a map on the case's reference grid: exact ``scale``/``translate`` when the grids
are axis-aligned, nearest/linear resampling when rotated. Pure numpy/scipy."""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

from ..errors import M1LoadError
from ..geometry import DisplayPlacement, placement_on_reference, reference_placement
from ._nifti import Volume

__all__ = ["place_on_reference", "place_one", "resample_onto"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- resampling


def resample_onto(
    data: np.ndarray,
    ras_affine: NDArray[np.float64],
    ref_ras_affine: NDArray[np.float64],
    ref_shape: tuple[int, int, int],
    *,
    order: int,
) -> np.ndarray:
    """Resample a 3D map onto the reference grid (NaN outside the map).

    Parameters
    ----------
    data : (m0, m1, m2) array
        The map in canonical napari order.
    ras_affine, ref_ras_affine : (4, 4)
        napari index -> RAS mm of the map and of the reference.
    ref_shape : (n0, n1, n2)
        Reference spatial shape.
    order : int
        0 nearest neighbour (MRSI blocks), 1 linear.

    Returns
    -------
    float32 array of ``ref_shape``. Works slice by slice along axis 0 to bound memory.
    """
    from scipy.ndimage import map_coordinates

    rel = np.linalg.inv(ras_affine) @ ref_ras_affine  # reference index -> map index
    src = np.asarray(data, dtype=np.float32)
    out = np.empty(ref_shape, dtype=np.float32)
    n1, n2 = ref_shape[1], ref_shape[2]
    jj, kk = np.meshgrid(np.arange(n1, dtype=float), np.arange(n2, dtype=float), indexing="ij")
    plane = np.stack([np.zeros_like(jj), jj, kk], axis=0).reshape(3, -1)
    lim = np.asarray(src.shape, dtype=float)[:, None]
    for i in range(ref_shape[0]):
        plane[0] = i
        coords = rel[:3, :3] @ plane + rel[:3, 3:4]
        vals = map_coordinates(src, coords, order=order, mode="nearest", prefilter=False)
        outside = np.any((coords < -0.5) | (coords > lim - 0.5), axis=0)
        vals[outside] = np.nan
        out[i] = vals.reshape(n1, n2)
    return out


def _overlaps(
    shape: tuple[int, ...],
    ras_affine: NDArray[np.float64],
    ref_shape: tuple[int, ...],
    ref_ras_affine: NDArray[np.float64],
) -> bool:
    corners = np.array(np.meshgrid(*[(-0.5, s - 0.5) for s in shape], indexing="ij")).reshape(
        3, -1
    )
    rel = np.linalg.inv(ref_ras_affine) @ ras_affine
    c = rel[:3, :3] @ corners + rel[:3, 3:4]
    lo, hi = c.min(axis=1), c.max(axis=1)
    ref_hi = np.asarray(ref_shape, float) - 0.5
    return bool(np.all(hi > -0.5) and np.all(lo < ref_hi))


def place_on_reference(vols: list[Volume]) -> list[DisplayPlacement]:
    """Place every volume in the first one's world; resample rotated grids in place.

    Raises
    ------
    M1LoadError
        A map does not overlap the reference grid at all.
    """
    ref = vols[0]
    ref_place = reference_placement(ref.ras_affine, ref.spatial_shape)
    return [ref_place] + [place_one(v, ref, ref_place) for v in vols[1:]]


def place_one(v: Volume, ref: Volume, ref_place: DisplayPlacement) -> DisplayPlacement:
    """Place one map in the reference's world (resampling it in place when rotated)."""
    if not _overlaps(v.spatial_shape, v.ras_affine, ref.spatial_shape, ref.ras_affine):
        raise M1LoadError(f"{v.name}: does not overlap the GRE reference volume at all")
    pl = placement_on_reference(v.ras_affine, ref.ras_affine, ref_place)
    if pl.resample_to_reference:
        order = 0 if v.kind == "mrsi" else 1
        how = "nearest-neighbour" if order == 0 else "linear"
        if v.data.ndim == 4:
            v.data = np.stack(
                [
                    resample_onto(e, v.ras_affine, ref.ras_affine, ref.spatial_shape, order=order)
                    for e in v.data
                ]
            )
        else:
            v.data = resample_onto(
                v.data, v.ras_affine, ref.ras_affine, ref.spatial_shape, order=order
            )
        v.extra["resampled"] = {"order": order, "from_ras_affine": v.ras_affine.tolist()}
        v.ras_affine = ref.ras_affine.copy()
        v.warnings.append(
            f"{v.name}: grid is rotated relative to the GRE; resampled onto the GRE grid ({how})"
        )
    return pl
