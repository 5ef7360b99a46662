"""Geometry: voxel <-> scanner RAS <-> napari display space, hemispheres, orientation.

Vocabulary used throughout napari-m1
------------------------------------
file voxel index
    ``(i, j, k)`` as stored in the NIfTI file; ``source_affine`` maps it to RAS.
napari index (also "data index")
    Index into the array napari displays. Spatial axes come last and in
    *canonical display order* ``(S/I, A/P, R/L)``: axis 0 runs inferior->superior,
    axis 1 posterior->anterior, axis 2 left->right (to the nearest axis for oblique
    acquisitions). A multi-echo GRE has one extra leading echo axis, which is never
    part of any affine here.
ras_affine
    4x4 matrix mapping a napari index ``(a0, a1, a2, 1)`` (spatial axes only) to
    scanner RAS+ millimetres ``(x, y, z, 1)``. Every later computation (hemisphere,
    CSV coordinates) derives from it.
world
    napari's world coordinates, in napari axis order and millimetres:
    ``world = scale * index + translate``. For an axis-aligned reference grid the
    world point equals RAS in reversed order ``(z, y, x)``; for an oblique reference
    it is the reference grid's own frame (exact RAS always via :func:`world_to_ras`).

Nothing in this module imports Qt or napari.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DisplayPlacement",
    "affine_is_axis_aligned",
    "axis_letter",
    "canonical_reorientation",
    "check_affine",
    "conventional_orientation",
    "edge_letters",
    "hemisphere",
    "index_to_ras",
    "placement_on_reference",
    "ras_to_index",
    "ras_to_world",
    "ras_vectors_to_index",
    "reference_placement",
    "voxel_sizes",
    "world_to_ras",
]

# Opposite letters for each positive RAS direction.
_POS = ("R", "A", "S")
_NEG = ("L", "P", "I")

Hemisphere = Literal["L", "R", "M"]


def check_affine(affine: ArrayLike, *, name: str = "image") -> NDArray[np.float64]:
    """Validate a 4x4 voxel->RAS affine and return it as float64.

    Raises
    ------
    ValueError
        One-line message when the affine is not 4x4, not finite, or singular
        (a zero voxel size makes it singular).
    """
    aff = np.asarray(affine, dtype=float)
    if aff.shape != (4, 4):
        raise ValueError(f"{name}: affine must be 4x4, got shape {aff.shape}")
    if not np.all(np.isfinite(aff)):
        raise ValueError(f"{name}: affine contains NaN or Inf")
    zooms = np.linalg.norm(aff[:3, :3], axis=0)
    if np.any(zooms <= 1e-6) or abs(np.linalg.det(aff[:3, :3])) <= 1e-9 * max(
        float(np.prod(zooms)), 1e-30
    ):
        raise ValueError(
            f"{name}: affine is singular (voxel sizes {np.round(zooms, 4).tolist()} mm)"
        )
    return aff


def voxel_sizes(affine: ArrayLike) -> NDArray[np.float64]:
    """Voxel sizes in mm: the column norms of the affine's 3x3 part, one per index axis."""
    aff = np.asarray(affine, dtype=float)
    return np.linalg.norm(aff[:3, :3], axis=0)


def canonical_reorientation(
    source_affine: ArrayLike, spatial_shape: Sequence[int]
) -> tuple[tuple[int, int, int], tuple[bool, bool, bool], NDArray[np.float64]]:
    """How to view a reversed-axis (C-order) NIfTI array in canonical display order.

    A NIfTI volume of file shape ``(ni, nj, nk)`` read byte-for-byte into a C-order
    buffer has shape ``(nk, nj, ni)``: its axes are the file axes reversed. This
    function says which ``transpose`` and which flips turn that buffer into the
    canonical napari order ``(S/I, A/P, R/L)`` with indices increasing towards
    S, A and R, using :func:`nibabel.orientations.io_orientation` (closest axes,
    correct for all 48 axis codes and for oblique affines).

    Parameters
    ----------
    source_affine : (4, 4) array
        File voxel ``(i, j, k)`` -> scanner RAS mm.
    spatial_shape : (ni, nj, nk)
        Spatial shape in *file* order.

    Returns
    -------
    perm : tuple of 3 ints
        ``canonical = buffer.transpose(perm)`` (before flipping).
    flips : tuple of 3 bools
        Flip canonical axis ``m`` when ``flips[m]``.
    ras_affine : (4, 4) ndarray
        Canonical napari index -> scanner RAS mm.
    """
    from nibabel.orientations import io_orientation

    aff = np.asarray(source_affine, dtype=float)
    ornt = io_orientation(aff)  # per file axis n: (world axis, +1/-1)
    perm: list[int] = []
    flips: list[bool] = []
    # n_to_canonical maps canonical index -> file voxel index (4x4, homogeneous).
    to_file = np.zeros((4, 4))
    to_file[3, 3] = 1.0
    for m in range(3):
        world_axis = 2 - m  # canonical axis 0 is z (S), 1 is y (A), 2 is x (R)
        n = int(np.flatnonzero(ornt[:, 0] == world_axis)[0])
        flip = bool(ornt[n, 1] < 0)
        perm.append(2 - n)  # position of file axis n in the reversed buffer
        flips.append(flip)
        if flip:
            to_file[n, m] = -1.0
            to_file[n, 3] = spatial_shape[n] - 1
        else:
            to_file[n, m] = 1.0
    return tuple(perm), tuple(flips), aff @ to_file  # type: ignore[return-value]


def affine_is_axis_aligned(matrix: ArrayLike, *, rtol: float = 1e-4) -> bool:
    """True when the 3x3 part of ``matrix`` is diagonal with positive entries.

    Off-diagonal terms must be below ``rtol`` times the largest column norm.
    """
    m = np.asarray(matrix, dtype=float)[:3, :3]
    diag = np.diag(m)
    off = m - np.diag(diag)
    tol = rtol * float(np.max(np.linalg.norm(m, axis=0)))
    return bool(np.all(diag > 0) and np.all(np.abs(off) <= tol))


@dataclass(frozen=True)
class DisplayPlacement:
    """Where a layer sits in napari's world: ``world = scale * index + translate``.

    ``scale`` and ``translate`` have one entry per spatial napari axis (3), in mm.
    ``resample_to_reference`` is True when the layer's grid is rotated relative to the
    reference grid; its data must then be resampled onto the reference grid and shown
    with the reference's placement.
    """

    scale: tuple[float, float, float]
    translate: tuple[float, float, float]
    resample_to_reference: bool = False


def reference_placement(ras_affine: ArrayLike, shape: Sequence[int]) -> DisplayPlacement:
    """Placement of the reference grid (the case's first GRE) in napari's world.

    For an axis-aligned ``ras_affine`` the world equals RAS mm in napari order
    ``(z, y, x)`` exactly. For an oblique one, napari's 2D view cannot show the
    rotation, so the grid is shown straight with its true voxel sizes and placed so
    that world == RAS at the centre of the volume.

    Parameters
    ----------
    ras_affine : (4, 4)
        Canonical napari index -> RAS mm.
    shape : (n0, n1, n2)
        Spatial shape in napari order.
    """
    r = np.asarray(ras_affine, dtype=float)
    w = r[[2, 1, 0, 3]]  # rows reordered to world order (z, y, x)
    scale = voxel_sizes(r)
    centre = (np.asarray(shape, dtype=float) - 1) / 2
    world_centre = w[:3, :3] @ centre + w[:3, 3]
    translate = world_centre - scale * centre
    return DisplayPlacement(tuple(map(float, scale)), tuple(map(float, translate)))


def placement_on_reference(
    ras_affine: ArrayLike,
    reference_ras_affine: ArrayLike,
    reference: DisplayPlacement,
    *,
    rtol: float = 1e-4,
) -> DisplayPlacement:
    """Placement of another layer in the reference's world.

    When the layer grid is axis-aligned with the reference grid (any voxel size
    and origin), it is shown exactly with its own scale and translate. Otherwise
    ``resample_to_reference`` is set and the reference placement is returned.
    """
    rel = np.linalg.inv(np.asarray(reference_ras_affine, float)) @ np.asarray(ras_affine, float)
    if not affine_is_axis_aligned(rel, rtol=rtol):
        return DisplayPlacement(reference.scale, reference.translate, True)
    ref_scale = np.asarray(reference.scale)
    scale = ref_scale * np.diag(rel)[:3]
    translate = ref_scale * rel[:3, 3] + np.asarray(reference.translate)
    return DisplayPlacement(tuple(map(float, scale)), tuple(map(float, translate)))


def index_to_ras(index: ArrayLike, ras_affine: ArrayLike) -> NDArray[np.float64]:
    """napari (spatial) data indices -> scanner RAS mm, with nibabel's ``apply_affine``.

    Parameters
    ----------
    index : (..., 3) array
        Continuous indices on the grid of ``ras_affine``, napari axis order
        ``(S/I, A/P, R/L)`` (spatial axes only).
    ras_affine : (4, 4)
        napari index -> RAS mm.

    Returns
    -------
    (..., 3) ndarray of RAS mm ``(x, y, z)``.

    Examples
    --------
    >>> ras = np.array([[0, 0, 0.25, -56], [0, 0.25, 0, -76], [2, 0, 0, -9], [0, 0, 0, 1]])
    >>> index_to_ras([10, 4, 8], ras)
    array([-54., -75.,  11.])
    """
    from nibabel.affines import apply_affine  # nibabel costs ~0.4 s to import: lazily

    return apply_affine(np.asarray(ras_affine, dtype=float), np.asarray(index, dtype=float))


def ras_to_index(
    ras: ArrayLike, ras_affine: ArrayLike, *, inverse: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Scanner RAS mm -> continuous napari (spatial) data indices; inverse of
    :func:`index_to_ras`.

    Parameters
    ----------
    ras : (..., 3) array
        Points in RAS mm.
    ras_affine : (4, 4)
        napari index -> RAS mm of the target grid.
    inverse : (4, 4), optional
        ``inv(ras_affine)`` when the caller already has it (hot paths).

    Returns
    -------
    (..., 3) ndarray of indices in napari axis order (not rounded).

    Examples
    --------
    >>> ras = np.array([[0, 0, 0.25, -56], [0, 0.25, 0, -76], [2, 0, 0, -9], [0, 0, 0, 1]])
    >>> ras_to_index([-54, -75, 11], ras)
    array([10.,  4.,  8.])
    """
    from nibabel.affines import apply_affine

    inv = np.linalg.inv(np.asarray(ras_affine, float)) if inverse is None else inverse
    return apply_affine(np.asarray(inv, dtype=float), np.asarray(ras, dtype=float))


def ras_vectors_to_index(
    vectors: ArrayLike, ras_affine: ArrayLike, *, inverse: ArrayLike | None = None
) -> NDArray[np.float64]:
    """Displacement vectors in RAS mm -> the same displacements in index units
    (the affine's linear part only: no translation).

    Examples
    --------
    >>> ras = np.array([[0, 0, 0.25, -56], [0, 0.25, 0, -76], [2, 0, 0, -9], [0, 0, 0, 1]])
    >>> ras_vectors_to_index([[1.0, 0, 0], [0, 0.5, 0]], ras)
    array([[0., 0., 4.],
           [0., 2., 0.]])
    """
    inv = np.linalg.inv(np.asarray(ras_affine, float)) if inverse is None else inverse
    return np.asarray(vectors, dtype=float) @ np.asarray(inv, float)[:3, :3].T


def world_to_ras(
    world: ArrayLike,
    ras_affine: ArrayLike,
    scale: Sequence[float],
    translate: Sequence[float],
) -> NDArray[np.float64]:
    """Map napari world points to scanner RAS mm.

    Parameters
    ----------
    world : (..., D) array
        World points in napari axis order; only the last 3 (spatial) axes are used,
        so a 4D point with a leading echo coordinate works too.
    ras_affine : (4, 4)
        The layer's napari index -> RAS mm matrix.
    scale, translate : sequences
        The layer's napari placement; only the last 3 entries are used.

    Returns
    -------
    (..., 3) ndarray of RAS mm ``(x, y, z)``.

    Examples
    --------
    >>> ras = np.array([[0, 0, 0.25, -56], [0, 0.25, 0, -76], [2, 0, 0, -9], [0, 0, 0, 1]])
    >>> world_to_ras([0, 20.0, 1.0, 2.0], ras, (2, 0.25, 0.25), (0, 0, 0))
    array([-54., -75.,  11.])
    """
    w = np.asarray(world, dtype=float)[..., -3:]
    idx = (w - np.asarray(translate, float)[-3:]) / np.asarray(scale, float)[-3:]
    return index_to_ras(idx, ras_affine)


def ras_to_world(
    ras: ArrayLike,
    ras_affine: ArrayLike,
    scale: Sequence[float],
    translate: Sequence[float],
) -> NDArray[np.float64]:
    """Inverse of :func:`world_to_ras`: RAS mm ``(..., 3)`` -> napari world ``(..., 3)``.

    Examples
    --------
    >>> ras = np.array([[0, 0, 0.25, -56], [0, 0.25, 0, -76], [2, 0, 0, -9], [0, 0, 0, 1]])
    >>> ras_to_world([-54, -75, 11], ras, (2, 0.25, 0.25), (0, 0, 0))
    array([20.,  1.,  2.])
    """
    idx = ras_to_index(ras, ras_affine)
    return idx * np.asarray(scale, float)[-3:] + np.asarray(translate, float)[-3:]


def hemisphere(ras: ArrayLike, *, midline_x_mm: float = 0.0, tol_mm: float = 0.0) -> Hemisphere:
    """Hemisphere of a point from its scanner RAS x coordinate.

    ``'L'`` when ``x < midline - tol``, ``'R'`` when ``x > midline + tol``, ``'M'``
    (on the mid-sagittal plane) otherwise. The midline defaults to the scanner's
    x = 0 plane; a case can give its own mid-sagittal x.

    Parameters
    ----------
    ras : (3,) array
        A point in scanner RAS mm.
    """
    x = float(np.asarray(ras, dtype=float).reshape(-1)[0])
    if x < midline_x_mm - tol_mm:
        return "L"
    if x > midline_x_mm + tol_mm:
        return "R"
    return "M"


def axis_letter(direction_ras: ArrayLike) -> str:
    """Anatomical letter (R/L/A/P/S/I) a RAS direction vector points to most."""
    d = np.asarray(direction_ras, dtype=float)[:3]
    a = int(np.argmax(np.abs(d)))
    return _POS[a] if d[a] > 0 else _NEG[a]


def _world_axis_directions(ras_affine: ArrayLike) -> NDArray[np.float64]:
    # Column m: RAS direction in which napari axis m increases.
    return np.asarray(ras_affine, dtype=float)[:3, :3]


def conventional_orientation(
    ras_affine: ArrayLike,
    displayed: Sequence[int],
    *,
    radiological: bool = True,
) -> tuple[Literal["up", "down"], Literal["left", "right"]]:
    """napari 2D camera orientation ``(vertical, horizontal)`` for the usual reading view.

    Conventions: superior up (coronal, sagittal) or anterior up (axial); in an axial
    or coronal view the patient's left is on the screen's right when
    ``radiological`` (the default in radiology), on the screen's left otherwise
    (neurological); in a sagittal view anterior is on the screen's left.

    Parameters
    ----------
    ras_affine : (4, 4)
        napari index -> RAS mm of the reference layer.
    displayed : (row_axis, column_axis)
        The two displayed napari spatial axes (0..2, i.e. without any echo axis).
    """
    dirs = _world_axis_directions(ras_affine)
    row_dir, col_dir = dirs[:, displayed[0]], dirs[:, displayed[1]]
    row_world = int(np.argmax(np.abs(row_dir)))
    col_world = int(np.argmax(np.abs(col_dir)))

    # Vertical: the "up" letter is S if S/I is on screen, else A (axial), else R.
    up_world = 2 if 2 in (row_world, col_world) else 1
    if row_world == up_world:
        vertical = "up" if row_dir[row_world] > 0 else "down"
    else:
        vertical = "down"

    # Horizontal.
    if col_world == 0:  # R/L across the screen
        increases_to_r = col_dir[0] > 0
        # radiological: screen right shows patient left, so +R must point left.
        if radiological:
            horizontal = "left" if increases_to_r else "right"
        else:
            horizontal = "right" if increases_to_r else "left"
    elif col_world == 1:  # A/P across the screen (sagittal): anterior on the left
        horizontal = "left" if col_dir[1] > 0 else "right"
    else:
        horizontal = "right"
    return vertical, horizontal  # type: ignore[return-value]


def edge_letters(
    ras_affine: ArrayLike,
    displayed: Sequence[int],
    vertical: str,
    horizontal: str,
) -> dict[str, str]:
    """Anatomical letters at the canvas edges for the current 2D view.

    Parameters
    ----------
    ras_affine : (4, 4)
        napari index -> RAS mm of the reference layer.
    displayed : (row_axis, column_axis)
        Displayed napari spatial axes.
    vertical : {'up', 'down'}
        napari camera orientation of the row axis ('down': index increases downwards).
    horizontal : {'left', 'right'}
        napari camera orientation of the column axis.

    Returns
    -------
    dict with keys ``top``, ``bottom``, ``left``, ``right``.
    """
    dirs = _world_axis_directions(ras_affine)
    row_pos = axis_letter(dirs[:, displayed[0]])
    row_neg = axis_letter(-dirs[:, displayed[0]])
    col_pos = axis_letter(dirs[:, displayed[1]])
    col_neg = axis_letter(-dirs[:, displayed[1]])
    if str(vertical) == "down":
        top, bottom = row_neg, row_pos
    else:
        top, bottom = row_pos, row_neg
    if str(horizontal) == "right":
        left, right = col_neg, col_pos
    else:
        left, right = col_pos, col_neg
    return {"top": top, "bottom": bottom, "left": left, "right": right}
