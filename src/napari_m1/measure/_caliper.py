"""Caliper thickness and the intensity profile along a caliper (pure numpy/scipy).

The profile is sampled in the slice plane along the caliper, extended by a
margin on both sides, and averaged across a few parallel lines (a "thick line"
profile, as in 3D Slicer's Line Profile and ImageJ's line width). The suggested
end points of the dark deep band are its two half-level crossings: at each edge,
halfway between the band's level and the plateau just outside that edge, found
next to the steepest descent into and ascent out of the band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..geometry import ras_to_index

__all__ = ["BandSuggestion", "Profile", "in_plane_length", "sample_profile", "suggest_band"]


def slice_normal(ras_affine: ArrayLike) -> NDArray[np.float64]:
    """Unit RAS normal of the slices of a grid whose napari axis 0 is the slice axis."""
    r = np.asarray(ras_affine, dtype=float)[:3, :3]
    n = np.cross(r[:, 1], r[:, 2])
    return n / np.linalg.norm(n)


def in_plane_length(p1: ArrayLike, p2: ArrayLike, ras_affine: ArrayLike) -> float:
    """Length in mm of ``p2 - p1`` projected onto the reference slice plane."""
    d = np.asarray(p2, float) - np.asarray(p1, float)
    n = slice_normal(ras_affine)
    return float(np.linalg.norm(d - np.dot(d, n) * n))


@dataclass(frozen=True)
class Profile:
    """Intensities along a caliper.

    Attributes
    ----------
    x_mm : (n,) array
        Distance along the caliper from its first end point, mm (negative before it).
    values : (n,) array
        Mean intensity across the line width at each position (NaN outside the image).
    length_mm : float
        In-plane caliper length; the caliper spans ``0 <= x <= length_mm``.
    origin_ras, direction_ras : (3,) arrays
        ``RAS(x) = origin_ras + x * direction_ras`` (unit in-plane direction).
    """

    x_mm: NDArray[np.float64]
    values: NDArray[np.float64]
    length_mm: float
    origin_ras: NDArray[np.float64]
    direction_ras: NDArray[np.float64]

    def ras_at(self, x_mm: float) -> NDArray[np.float64]:
        """RAS mm of a position along the profile."""
        return self.origin_ras + float(x_mm) * self.direction_ras


def sample_profile(
    volume: NDArray,
    ras_affine: ArrayLike,
    p1_ras: ArrayLike,
    p2_ras: ArrayLike,
    *,
    margin_mm: float | None = None,
    step_mm: float = 0.05,
    width_mm: float = 0.75,
) -> Profile:
    """Sample a 3D volume along a caliper in its slice plane (linear interpolation).

    Parameters
    ----------
    volume : (n0, n1, n2) array
        One echo, canonical napari order; axis 0 is the slice axis.
    ras_affine : (4, 4)
        napari index -> RAS mm of ``volume``.
    p1_ras, p2_ras : (3,)
        Caliper end points, RAS mm. The slice is the one of their midpoint.
    margin_mm : float, optional
        Extension beyond each end; default ``max(1.0, 0.75 * length)``.
    width_mm : float
        Width over which parallel lines are averaged (0 for a single line).
    """
    from scipy.ndimage import map_coordinates

    aff = np.asarray(ras_affine, dtype=float)
    inv = np.linalg.inv(aff)
    p1 = np.asarray(p1_ras, dtype=float)
    p2 = np.asarray(p2_ras, dtype=float)
    n = slice_normal(aff)
    d = p2 - p1
    d_in = d - np.dot(d, n) * n
    length = float(np.linalg.norm(d_in))
    if length < 1e-9:
        raise ValueError("zero-length caliper: no direction to sample along")
    e = d_in / length
    perp = np.cross(n, e)
    margin = max(1.0, 0.75 * length) if margin_mm is None else float(margin_mm)
    x = np.arange(-margin, length + margin + step_mm / 2, step_mm)
    mid = (p1 + p2) / 2
    k = int(np.rint(ras_to_index(mid, aff, inverse=inv)[0]))
    origin = p1 - np.dot(p1 - mid, n) * n  # p1 moved into the midpoint's slice plane
    if not 0 <= k < volume.shape[0]:
        return Profile(x, np.full(x.shape, np.nan), length, origin, e)
    plane = np.asarray(volume[k], dtype=np.float64)
    offsets = [0.0] if width_mm <= 0 else np.linspace(-width_mm / 2, width_mm / 2, 5)
    acc = np.zeros_like(x)
    for o in offsets:
        pts = origin[None, :] + x[:, None] * e[None, :] + o * perp[None, :]
        idx = ras_to_index(pts, aff, inverse=inv)
        rc = idx[:, 1:].T
        vals = map_coordinates(plane, rc, order=1, mode="constant", cval=np.nan)
        outside = (
            (rc[0] < -0.5)
            | (rc[0] > plane.shape[0] - 0.5)
            | (rc[1] < -0.5)
            | (rc[1] > plane.shape[1] - 0.5)
        )
        vals[outside] = np.nan
        acc += vals
    return Profile(x, acc / len(offsets), length, origin, e)


@dataclass(frozen=True)
class BandSuggestion:
    """Suggested end points of the dark band on a profile.

    ``x1_mm``/``x2_mm`` are positions along the profile; ``ok`` is False (and
    ``reason`` says why) when no clear dark band was found.
    """

    ok: bool
    x1_mm: float = float("nan")
    x2_mm: float = float("nan")
    band_level: float = float("nan")
    plateau1: float = float("nan")
    plateau2: float = float("nan")
    reason: str = ""

    @property
    def thickness_mm(self) -> float:
        """Distance between the suggested end points, mm."""
        return float(self.x2_mm - self.x1_mm)


def _crossing(x: NDArray, s: NDArray, level: float, lo: int, hi: int, descending: bool) -> float:
    """Interpolated x where s crosses ``level`` between indices lo..hi (edge direction given)."""
    seg = s[lo : hi + 1]
    above = seg > level if descending else seg < level
    # first index where the profile has passed the level
    idx = np.flatnonzero(~above)
    if idx.size == 0 or idx[0] == 0:
        return float("nan")
    i = lo + int(idx[0])
    x0, x1, y0, y1 = x[i - 1], x[i], s[i - 1], s[i]
    if y1 == y0:
        return float(x1)
    return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0))


def suggest_band(
    profile: Profile,
    *,
    smooth_mm: float = 0.08,
    min_contrast: float = 0.0,
    edge_search_mm: float | None = None,
) -> BandSuggestion:
    """Suggest the end points of the dark (deep-layer) band on a caliper profile.

    Method: smooth lightly; take the darkest point within the caliper's span;
    on each side find the steepest edge; the band level is the median between the two
    edges, each plateau the median 0.25–0.6 mm beyond its edge; each end point is
    the half-level crossing at its edge. Only the caliper's own span (plus a small
    margin) is searched.

    Parameters
    ----------
    profile : Profile
    smooth_mm : float
        Gaussian smoothing sigma along the line.
    min_contrast : float
        Minimum plateau-minus-band difference (intensity units) on both sides.
    edge_search_mm : float, optional
        How far beyond each end of the caliper to look for the band's edges;
        default ``max(0.4 mm, a quarter of the caliper length)`` -- the reader's
        line must be roughly right, not exact.
    """
    from scipy.ndimage import gaussian_filter1d

    x, v = profile.x_mm, profile.values
    if not np.all(np.isfinite(v)):
        good = np.isfinite(v)
        if good.sum() < 10:
            return BandSuggestion(False, reason="profile lies outside the image")
        v = np.interp(x, x[good], v[good])
    step = float(x[1] - x[0])
    s = gaussian_filter1d(v, max(smooth_mm / step, 0.5))
    length = profile.length_mm
    # The reader's line roughly spans the band: look for the darkest point and the
    # two edges only within the line plus a small margin, so that a neighbouring
    # edge (e.g. CSF -> cortex, ~1 mm away) is never taken for the band's edge.
    pad = edge_search_mm if edge_search_mm is not None else max(0.4, 0.25 * length)
    span = (x >= -pad) & (x <= length + pad)
    if span.sum() < 5:
        return BandSuggestion(False, reason="caliper too short to analyse")
    i_min = int(np.flatnonzero(span)[np.argmin(s[span])])
    g = np.gradient(s, step)
    lo = max(1, int(np.flatnonzero(span)[0]))
    hi = min(len(x) - 2, int(np.flatnonzero(span)[-1]))
    if i_min - lo < 2 or hi - i_min < 2:
        return BandSuggestion(
            False, reason="no dark band within the caliper (darkest point at its end)"
        )
    i_l = lo + int(np.argmin(g[lo:i_min]))  # steepest descent into the band
    i_r = i_min + int(np.argmax(g[i_min : hi + 1]))  # steepest ascent out of it
    w1, w2 = round(0.25 / step), round(0.6 / step)
    core = s[i_l : i_r + 1]
    band = float(np.median(core[len(core) // 4 : max(len(core) * 3 // 4, len(core) // 4 + 1)]))
    left = s[max(0, i_l - w2) : max(1, i_l - w1)]
    right = s[min(len(s) - 1, i_r + w1) : i_r + w2]
    if left.size == 0 or right.size == 0:
        return BandSuggestion(False, reason="no plateau outside the band (extend the caliper)")
    p1, p2 = float(np.median(left)), float(np.median(right))
    if p1 - band <= min_contrast or p2 - band <= min_contrast:
        return BandSuggestion(
            False,
            band_level=band,
            plateau1=p1,
            plateau2=p2,
            reason="no dark band: the band is not darker than both sides",
        )
    lvl1, lvl2 = (band + p1) / 2, (band + p2) / 2
    x1 = _crossing(x, s, lvl1, max(0, i_l - w2), i_min, descending=True)
    x2 = _crossing(x, s, lvl2, i_min, min(len(s) - 1, i_r + w2), descending=False)
    if not (np.isfinite(x1) and np.isfinite(x2)) or x2 <= x1:
        return BandSuggestion(
            False, band_level=band, plateau1=p1, plateau2=p2, reason="edges of the band not found"
        )
    return BandSuggestion(True, x1, x2, band, p1, p2)
