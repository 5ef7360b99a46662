"""Tissue fractions (GM/WM/CSF) per MRSI voxel from a label or probability map on any grid.

Each MRSI voxel's footprint is its box in physical space (the voxel's parallelepiped,
``[i - 1/2, i + 1/2]`` along each voxel axis); the fraction is the box average of the tissue
map taken as piecewise constant over its voxels.

* Grids whose axes are parallel (any permutation, flip, voxel size or shift: the usual case
  of a segmentation and an MRSI grid from one session) are integrated **exactly** and
  separably: along each axis a matrix of the overlap lengths of every box with every tissue
  voxel (partial voxels included) is applied with one matrix product.
* Grids rotated about one shared axis (an in-plane rotation or a single angulation: MRSI
  axis j moves along tissue axis t only, and t depends on j only) are integrated exactly
  along that axis (one overlap matrix, as above) and supersampled in the other two.
* Other oblique grids are supersampled in 3D: a regular grid of about two samples per
  tissue voxel along each box edge (capped by ``max_samples_per_axis``), each taking the
  nearest tissue voxel; the error per tissue boundary crossing a box is at most ``1 / (2 n)``
  of the box.

Pure numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["FAST_LABELS", "FAST_PVE_ORDER", "tissue_fractions"]

#: FSL FAST ``*_pveseg`` labels
FAST_LABELS: dict[str, int] = {"CSF": 1, "GM": 2, "WM": 3}
#: FSL FAST ``*_pve_0/1/2`` order of probability maps
FAST_PVE_ORDER: tuple[str, ...] = ("CSF", "GM", "WM")

_CHUNK_POINTS = 2_000_000


def _samples_per_axis(m: np.ndarray, min_n: int, max_n: int) -> tuple[int, int, int]:
    # column j of m: one MRSI voxel step along axis j, in tissue voxels
    ext = np.abs(m).max(axis=0)
    return tuple(int(np.clip(np.ceil(2 * e), min_n, max_n)) for e in ext)  # type: ignore[return-value]


def tissue_fractions(
    mrsi_affine: np.ndarray,
    mrsi_shape: Sequence[int],
    tissue: np.ndarray,
    tissue_affine: np.ndarray,
    *,
    labels: dict[str, int] | None = None,
    names: Sequence[str] = FAST_PVE_ORDER,
    min_samples_per_axis: int = 8,
    max_samples_per_axis: int = 48,
) -> dict[str, np.ndarray]:
    """Box-averaged tissue fractions of every MRSI voxel.

    Parameters
    ----------
    mrsi_affine : ndarray (4, 4)
        MRSI voxel (i, j, k) -> scanner RAS mm.
    mrsi_shape : (nx, ny, nz)
        MRSI grid shape, voxel order.
    tissue : ndarray
        Either a label map of shape (tx, ty, tz) (integers, see ``labels``) or probability
        maps of shape (tx, ty, tz, n_classes) (values in [0, 1], classes named by ``names``),
        in the voxel order of ``tissue_affine``.
    tissue_affine : ndarray (4, 4)
        Tissue voxel -> scanner RAS mm (any grid, any orientation).
    labels : dict of str -> int, optional
        Class name -> label value for a label map; default :data:`FAST_LABELS`.
    names : sequence of str
        Class names of the last axis of probability maps; default :data:`FAST_PVE_ORDER`.
    min_samples_per_axis, max_samples_per_axis : int
        Bounds of the supersampling per MRSI voxel axis (oblique grids only; the error per
        tissue boundary crossing a box is at most ``1 / (2 n)``).

    Returns
    -------
    dict of str -> ndarray float, shape ``mrsi_shape``
        Fraction of the box of each MRSI voxel per class (0..1), plus ``"outside"``: the
        fraction of the box outside the tissue map's field of view.
    """
    shape = tuple(int(s) for s in mrsi_shape)
    m = np.linalg.inv(np.asarray(tissue_affine, float)) @ np.asarray(mrsi_affine, float)
    lin, off = m[:3, :3], m[:3, 3]
    maps, classes = _class_maps(tissue, labels, names)
    perm = _axis_permutation(lin)
    if perm is not None:
        return _aligned(maps, classes, lin, off, perm, shape)
    n = _samples_per_axis(lin, min_samples_per_axis, max_samples_per_axis)
    shared = _shared_axis(lin)
    if shared is not None:
        return _one_axis_exact(maps, classes, lin, off, shape, shared, n)
    return _sampled(maps, classes, lin, off, shape, n)


def _class_maps(
    tissue: np.ndarray, labels: dict[str, int] | None, names: Sequence[str]
) -> tuple[list[np.ndarray], list[str]]:
    """One float32 map per class (indicator of a label, or the probability)."""
    if tissue.ndim == 3:
        lab = labels or FAST_LABELS
        t = np.asarray(tissue)
        return [(t == v).astype(np.float32) for v in lab.values()], list(lab)
    if tissue.ndim != 4 or tissue.shape[3] != len(names):
        raise ValueError(
            f"tissue must be a 3D label map or 4D probability maps with {len(names)} classes, "
            f"got shape {tissue.shape}"
        )
    return [np.asarray(tissue[..., c], dtype=np.float32) for c in range(len(names))], list(names)


def _axis_permutation(lin: np.ndarray) -> list[int] | None:
    """Tissue axis of each MRSI axis when the grids' axes are parallel, else None."""
    perm = []
    for j in range(3):
        col = np.abs(lin[:, j])
        big = int(np.argmax(col))
        if np.any(np.delete(col, big) > 1e-6 * col[big]):
            return None
        perm.append(big)
    return perm if sorted(perm) == [0, 1, 2] else None


def _shared_axis(lin: np.ndarray) -> tuple[int, int] | None:
    """(MRSI axis j, tissue axis t) when j moves along t only and t depends on j only."""
    a = np.abs(lin)
    tol = 1e-6 * a.max()
    for j in range(3):
        t = int(np.argmax(a[:, j]))
        if np.all(np.delete(a[:, j], t) <= tol) and np.all(np.delete(a[t], j) <= tol):
            return j, t
    return None


def _one_axis_exact(
    maps: list[np.ndarray],
    classes: list[str],
    lin: np.ndarray,
    off: np.ndarray,
    shape: tuple[int, ...],
    shared: tuple[int, int],
    n: tuple[int, int, int],
) -> dict[str, np.ndarray]:
    """Exact along the shared axis (overlap matrix), supersampled in the plane of the others."""
    j, t = shared
    p, q = (k for k in range(3) if k != j)  # the other MRSI axes
    a, b = (k for k in range(3) if k != t)  # the other tissue axes
    d = lin[t, j]
    centre = off[t] + d * np.arange(shape[j])
    half = abs(d) / 2
    w = _overlap_weights(centre - half + 0.5, centre + half + 0.5, maps[0].shape[t], abs(d))
    in_t = w.sum(axis=1)  # fraction of each box inside the map along t
    # each class reduced along t: (n_j, n_a * n_b), box averages of every in-plane voxel
    red = [_reduce_axis(g, t, w) for g in maps]
    red = [np.moveaxis(r, t, 0).reshape(shape[j], -1) for r in red]
    na, nb = maps[0].shape[a], maps[0].shape[b]
    lin2 = lin[np.ix_([a, b], [p, q])]
    grids = [(np.arange(k) + 0.5) / k - 0.5 for k in (n[p], n[q])]
    sub = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, 2) @ lin2.T
    ip, iq = np.meshgrid(np.arange(shape[p]), np.arange(shape[q]), indexing="ij")
    cen = np.stack([ip.ravel(), iq.ravel()], -1) @ lin2.T + off[[a, b]]  # (V2, 2)
    idx = np.rint(cen[:, None, :] + sub[None, :, :]).astype(np.int64)  # (V2, S, 2)
    inside = (idx[..., 0] >= 0) & (idx[..., 0] < na) & (idx[..., 1] >= 0) & (idx[..., 1] < nb)
    flat = np.where(inside, idx[..., 0] * nb + idx[..., 1], 0)
    frac_in = inside.mean(axis=1)  # (V2,)
    out: dict[str, np.ndarray] = {}
    inv_s = 1.0 / flat.shape[1]
    for name, r in zip(classes, red, strict=True):
        vals = r[:, flat] * inside  # (n_j, V2, S)
        acc = vals.sum(axis=2) * inv_s  # (n_j, V2)
        out[name] = _to_axes(acc.reshape(shape[j], shape[p], shape[q]), j, p, q)
    outside = 1.0 - in_t[:, None] * frac_in[None, :]
    out["outside"] = _to_axes(outside.reshape(shape[j], shape[p], shape[q]), j, p, q)
    return out


def _to_axes(acc: np.ndarray, j: int, p: int, q: int) -> np.ndarray:
    """(n_j, n_p, n_q) -> MRSI axis order."""
    return np.transpose(acc, np.argsort([j, p, q])).astype(np.float64)


def _overlap_weights(lo: np.ndarray, hi: np.ndarray, n: int, d: float) -> np.ndarray:
    """(n_boxes, n) overlap of each box [lo, hi] with tissue voxel t = [t, t + 1], over d."""
    t = np.arange(n)
    w = np.minimum(hi[:, None], t + 1) - np.maximum(lo[:, None], t)
    return (np.clip(w, 0, None) / d).astype(np.float32)


def _reduce_axis(g: np.ndarray, axis: int, w: np.ndarray) -> np.ndarray:
    """Replace ``axis`` of ``g`` (length n) by the boxes: ``w @ g`` along that axis (BLAS)."""
    moved = np.moveaxis(g, axis, 0)
    flat = moved.reshape(moved.shape[0], -1)
    out = (w @ flat).reshape((w.shape[0], *moved.shape[1:]))
    return np.moveaxis(out, 0, axis)


def _aligned(
    maps: list[np.ndarray],
    classes: list[str],
    lin: np.ndarray,
    off: np.ndarray,
    perm: list[int],
    shape: tuple[int, ...],
) -> dict[str, np.ndarray]:
    edges = {}
    for j, t in enumerate(perm):
        d = lin[t, j]
        centre = off[t] + d * np.arange(shape[j])
        half = abs(d) / 2
        edges[t] = (centre - half + 0.5, centre + half + 0.5, abs(d))
    weights = {
        t: _overlap_weights(lo, hi, maps[0].shape[t], d) for t, (lo, hi, d) in edges.items()
    }
    # the axis that shrinks most first: the later products are small
    order = sorted(range(3), key=lambda t: weights[t].shape[0] / weights[t].shape[1])
    out: dict[str, np.ndarray] = {}
    for name, g in zip(classes, maps, strict=True):
        acc = g
        for t in order:
            acc = _reduce_axis(acc, t, weights[t])
        out[name] = _to_mrsi(acc.astype(np.float64), perm)
    # fraction of the box inside the map: separable product of clipped lengths
    frac = np.ones(shape)
    for j, t in enumerate(perm):
        lo, hi, d = edges[t]
        n = maps[0].shape[t]
        length = np.clip(np.clip(hi, 0, n) - np.clip(lo, 0, n), 0, None)
        frac = frac * (length / d).reshape([-1 if a == j else 1 for a in range(3)])
    out["outside"] = 1.0 - frac
    return out


def _to_mrsi(acc: np.ndarray, perm: list[int]) -> np.ndarray:
    """Axes of ``acc`` are tissue axes (each now of MRSI length); reorder to MRSI axes."""
    return np.transpose(acc, perm)


def _sampled(
    maps: list[np.ndarray],
    classes: list[str],
    lin: np.ndarray,
    off: np.ndarray,
    shape: tuple[int, ...],
    n: tuple[int, int, int],
) -> dict[str, np.ndarray]:
    tissue_shape = maps[0].shape
    grids = [(np.arange(k) + 0.5) / k - 0.5 for k in n]
    sub = np.stack(np.meshgrid(*grids, indexing="ij"), -1).reshape(-1, 3)  # (S, 3) voxel units
    sub_t = (sub @ lin.T).astype(np.float32)  # offsets in tissue voxel units
    s = len(sub)
    tshape = np.array(tissue_shape)
    flat_maps = [g.ravel() for g in maps]
    out = {c: np.zeros(shape) for c in [*classes, "outside"]}
    centres = np.stack(np.meshgrid(*[np.arange(k) for k in shape], indexing="ij"), -1)
    centres = centres.reshape(-1, 3)
    centres_t = (centres @ lin.T + off).astype(np.float32)  # (V, 3)
    per = max(1, _CHUNK_POINTS // s)
    for a in range(0, len(centres), per):
        pts = centres_t[a : a + per, None, :] + sub_t[None, :, :]  # (v, S, 3)
        idx = np.rint(pts).astype(np.int32)
        inside = np.all((idx >= 0) & (idx < tshape), axis=-1)
        np.clip(idx, 0, tshape - 1, out=idx)
        flat = np.ravel_multi_index((idx[..., 0], idx[..., 1], idx[..., 2]), tuple(tshape))
        vox = tuple(centres[a : a + per].T)
        out["outside"][vox] = 1.0 - inside.mean(axis=1)
        for name, fm in zip(classes, flat_maps, strict=True):
            out[name][vox] = np.where(inside, fm[flat], 0.0).mean(axis=1)
    return out
