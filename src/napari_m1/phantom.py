"""A synthetic 7T phantom of the primary motor cortex (M1): the project's sample data.

The phantom is a stack of axial slices through a stylised brain with a central
sulcus and hand knob, precentral and postcentral sulci, frontal and parietal sulci
and a medial precuneus. Cortex is layered by distance from CSF into a superficial
layer and a deep layer; the deep layer of the precentral gyrus (the M1 strip) is
thinner, darker on T2*-weighted GRE and more paramagnetic in the ``"als"`` group.
Every number a reader could measure is known exactly and is returned as ``truth``
(written to ``truth.json``); see ``docs/sample-data.md``.

Coordinates are scanner RAS+ millimetres throughout (x to the subject's right,
y anterior, z superior). Arrays held by :class:`Phantom` are in RAS+ voxel order
(axis 0 -> R, 1 -> A, 2 -> S); :func:`write_phantom_case` stores the GRE, phase and
QSM files in L,A,S voxel order as dcm2niix writes axial acquisitions.

This module is pure numpy/scipy/nibabel: no Qt, no napari.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from napari_m1._atomic import atomic_path, atomic_write_text
from napari_m1.errors import M1Error, M1InputError
from napari_m1.formats import PHANTOM_TRUTH_SCHEMA

if TYPE_CHECKING:
    import nibabel as nib

__all__ = [
    "DEFAULT_NOISE_SD",
    "ECHO_TIMES_MS",
    "TRUTH_SCHEMA",
    "Phantom",
    "make_phantom",
    "write_phantom_case",
]

logger = logging.getLogger(__name__)

TRUTH_SCHEMA = PHANTOM_TRUTH_SCHEMA
#: Bumped whenever the generated images change, so cached sample cases are rebuilt.
PHANTOM_VERSION = 3
ECHO_TIMES_MS: tuple[float, ...] = (10.0, 20.0)
#: Default Rician noise SD (signal units): ~1.5 % of the CSF signal at TE 10 ms (882.5).
DEFAULT_NOISE_SD = 13.0
#: QSM noise SD (ppm) at the default noise level; scales with ``noise_sd``.
_QSM_NOISE_SD_PPM = 0.003

# GRE grid.
_PIXEL_MM = 0.25
_SLICE_MM = 2.0
_MATRIX = 448
_FOV_CENTRE_XY = (0.0, -20.0)
_SLAB_CENTRE_Z = 50.0
_MIN_SLICES = 16

# Signal model: S(TE) = _SIGNAL_SCALE * M0 * exp(-TE / T2*).
_SIGNAL_SCALE = 1000.0
_RAMP_MM = _PIXEL_MM  # width of the partial-volume ramp across every boundary

# Layers.
_T_SUP_MM = 1.2
_T_DEEP_OTHER_MM = 1.6
_T_DEEP_M1_MM = {"control": 2.0, "als": 1.5}
_SULCUS_HALF_WIDTH_MM = 0.5
_FISSURE_HALF_WIDTH_MM = 0.5
# Signed distances are clamped to this far from the CSF boundary (all layers lie within).
_D_CLAMP_MM = 6.0

# Brain ellipse, its dome, and the CSF shell around it (outside the shell: skull/air).
_BRAIN_CENTRE_XY = (0.0, -15.0)
_BRAIN_SEMI_AXES_MM = (52.0, 70.0)
_DOME_START_Z = 70.0
_DOME_HEIGHT_MM = 30.0  # the brain ellipse vanishes at z = 100
_CSF_SHELL_MM = 3.0

# Sulcal geometry, in hemisphere coordinates u = |x| (mm from the midline) and y.
_CS_Y0 = -22.0  # central sulcus at the midline
_CS_SLOPE = 0.3  # it runs anterolaterally
_KNOB_DEPTH_MM = 6.0  # posterior bend of the central sulcus at the hand knob
_KNOB_U_MM = 26.0
_KNOB_HALF_WIDTH_MM = 8.0  # of a flat-topped bump exp(-(t/w)^4)
_PRECENTRAL_OFFSET_MM = 13.0
_PRECENTRAL_KNOB_FRACTION = 0.3
_POSTCENTRAL_OFFSET_MM = 12.0
_POSTCENTRAL_KNOB_FRACTION = 0.8
_CENTRAL_U_START = 3.0
_POSTCENTRAL_U_START = 9.0
_SULCUS_U_END = 60.0
# The M1 weight rises smoothly over this range of u (medial end of the precentral gyrus).
_M1_TAPER_U = (3.0, 5.0)

# Truth points.
_PENFIELD = (  # area, u0 on the central sulcus (mm from midline), slice z (mm)
    ("foot", 8.0, 61.0),
    ("leg", 14.0, 57.0),
    ("hand", _KNOB_U_MM, 51.0),
    ("face", 44.0, 41.0),
)
_REFERENCE_XY = (-(_FISSURE_HALF_WIDTH_MM + _T_SUP_MM / 2), -55.0)  # left precuneus
_REFERENCE_Z = 51.0
# A bright capsule-like marker outside the head on the subject's right (anterior corner of the
# FOV): the only left/right asymmetry, so display orientation can be checked by eye.
_FIDUCIAL_XY = (50.0, 30.0)
_FIDUCIAL_RADIUS_MM = 2.0

# Phase model.
_HZ_PER_PPM = 42.577478 * 7.0  # gamma/2pi * B0 at 7 T
_BG_FIELD_HZ = 2.0  # background field at the slab centre (x=0, y=-20, z=50)
_BG_GRADIENT_HZ_PER_MM = (0.05, 0.08, 0.03)
_PHI0_RAD = 0.5
_PHI0_GRADIENT_RAD_PER_MM = (0.01, -0.005)
_PHASE_SCALE = 4096.0
# A sphere of air (sinus-like) in front of the head, outside the FOV: its field is harmonic in
# the head (the part of the background that is not a gradient). ~0.1 ppm at the frontal pole.
_AIR_SPHERE_CENTRE_RAS_MM = (0.0, 90.0, 20.0)
_AIR_SPHERE_RADIUS_MM = 10.0
_AIR_SPHERE_CHI_PPM = -9.4
# Zero padding of the forward model's FFT grid (in-plane voxels; z is doubled).
_FIELD_PAD_XY = 160

# MRSI grid: 5 mm isotropic, 24 x 24 x 6, offset 1.3 mm in-plane from the GRE grid.
_MRSI_VOXEL_MM = 5.0
_MRSI_SHAPE = (24, 24, 6)
_MRSI_LOWER_CORNER = (-58.7, -78.7, 36.0)
_MRSI_SUBSAMPLES = 10  # per voxel edge in-plane (0.5 mm pitch)
_MRSI_MIN_BRAIN_FRACTION = 0.5
_METABOLITES = {  # metabolite: (GM, WM, ALS factor in M1 tissue)
    "NAA": (8.0, 7.5, 0.75),
    "Cr": (7.0, 5.5, 1.0),
    "Cho": (1.3, 1.8, 1.10),
    "Glx": (10.0, 6.0, 1.0),
}

# Sidecar acquisition parameters.
_TR_S = 0.030
_FLIP_ANGLE_DEG = 12.0

_LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True)
class _Tissue:
    m0: float
    t2star_ms: float
    chi_ppm: float

    def signal(self, te_ms: float) -> float:
        return _SIGNAL_SCALE * self.m0 * math.exp(-te_ms / self.t2star_ms)


def _tissues(group: str) -> dict[str, _Tissue]:
    # The deep layer is darker than both superficial cortex and white matter at both echoes
    # (a dark band, as the caliper's band finder expects); in ALS M1 it is darker still.
    deep_normal = _Tissue(0.64, 19.0, 0.020)
    return {
        "outside": _Tissue(0.05, math.inf, 0.0),
        "csf": _Tissue(1.0, 80.0, 0.0),
        "superficial": _Tissue(0.85, 33.0, 0.010),
        "deep_m1": _Tissue(0.58, 17.0, 0.060) if group == "als" else deep_normal,
        "deep_other": deep_normal,
        "white_matter": _Tissue(0.70, 22.0, -0.030),
        "fiducial": _Tissue(0.90, 50.0, 0.0),
    }


@dataclass
class Phantom:
    """One synthetic case: multi-echo GRE, optional phase, QSM, MRSI maps and the truth.

    Attributes
    ----------
    gre : ndarray of float32, shape (nx, ny, nz, n_echoes)
        Magnitude images (arbitrary units, CSF ~880 at TE 10 ms) in RAS+ voxel order:
        axis 0 -> Right, 1 -> Anterior, 2 -> Superior; last axis is the echo.
        ``(nx, ny) == (448, 448)``, ``nz == n_slices``.
    gre_affine : ndarray of float64, shape (4, 4)
        Voxel (i, j, k) -> scanner RAS+ mm for ``gre``, ``phase`` and ``qsm``.
    echo_times_ms : tuple of float
        Echo times in milliseconds, ``(10.0, 20.0)``.
    phase : ndarray of int16, shape (nx, ny, nz, n_echoes), or None
        Wrapped phase in scanner units, ``round(phase_rad / pi * 4096)`` in [-4096, 4095];
        None unless requested.
    qsm : ndarray of float32, shape (nx, ny, nz)
        Magnetic susceptibility in ppm on the GRE grid.
    mrsi : dict of str -> ndarray of float32, shape (mx, my, mz)
        Metabolite maps ``'NAA', 'Cr', 'Cho', 'Glx'`` (mM-like units) on a 5 mm grid in
        RAS+ voxel order; NaN where a voxel is less than 50 % brain.
    mrsi_affine : ndarray of float64, shape (4, 4)
        Voxel -> scanner RAS+ mm for the MRSI maps.
    truth : dict
        JSON-serialisable ground truth (schema ``napari-m1-phantom-truth/1``).
    chi_ppm : ndarray of float32, shape (nx, ny, nz), or None
        Noise-free susceptibility truth (ppm) that generated the phase; None without phase.
    field_ppm : ndarray of float32, shape (nx, ny, nz), or None
        Tissue field in ppm of B0: ``F^-1[D F(chi_ppm)]`` (B0 along +z); None without phase.
        The phase adds a harmonic background (``truth['phase_model']``) and phi0.
    """

    gre: np.ndarray
    gre_affine: np.ndarray
    echo_times_ms: tuple[float, ...]
    phase: np.ndarray | None
    qsm: np.ndarray
    mrsi: dict[str, np.ndarray]
    mrsi_affine: np.ndarray
    truth: dict = field(default_factory=dict)
    chi_ppm: np.ndarray | None = None
    field_ppm: np.ndarray | None = None


# --------------------------------------------------------------------------- geometry


def _slice_z(n_slices: int) -> np.ndarray:
    """Slice-centre z (mm) of the GRE slab: odd integers centred on z = 50."""
    return _SLAB_CENTRE_Z - (n_slices - 1) + _SLICE_MM * np.arange(n_slices)


def _gre_affine_ras(n_slices: int) -> np.ndarray:
    """Voxel -> RAS mm affine of the GRE grid in RAS+ voxel order."""
    half = (_MATRIX - 1) / 2 * _PIXEL_MM
    aff = np.diag([_PIXEL_MM, _PIXEL_MM, _SLICE_MM, 1.0])
    aff[:3, 3] = (
        _FOV_CENTRE_XY[0] - half,
        _FOV_CENTRE_XY[1] - half,
        _slice_z(n_slices)[0],
    )
    return aff


def _mrsi_affine() -> np.ndarray:
    aff = np.diag([_MRSI_VOXEL_MM] * 3 + [1.0])
    aff[:3, 3] = np.asarray(_MRSI_LOWER_CORNER) + _MRSI_VOXEL_MM / 2
    return aff


def _knob(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat-topped bump of the hand knob and its derivative d/du."""
    t = (u - _KNOB_U_MM) / _KNOB_HALF_WIDTH_MM
    g = _KNOB_DEPTH_MM * np.exp(-(t**4))
    return g, -4.0 * t**3 / _KNOB_HALF_WIDTH_MM * g


def _sulcus_y(name: str, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y (mm) and dy/du of the central/precentral/postcentral sulcal centrelines."""
    u = np.asarray(u, dtype=float)
    g, dg = _knob(u)
    base = _CS_Y0 + _CS_SLOPE * u
    if name == "central":
        return base - g, _CS_SLOPE - dg
    if name == "precentral":
        f = _PRECENTRAL_KNOB_FRACTION
        return base + _PRECENTRAL_OFFSET_MM - f * g, _CS_SLOPE - f * dg
    if name == "postcentral":
        f = _POSTCENTRAL_KNOB_FRACTION
        return base - _POSTCENTRAL_OFFSET_MM - f * g, _CS_SLOPE - f * dg
    raise KeyError(name)


def _hemisphere_curves() -> dict[str, np.ndarray]:
    """Sulcal centrelines of one hemisphere as (N, 2) arrays of (u, y) in mm, u = |x|."""
    step = 0.05  # parameter step; vertex spacing stays below ~0.1 mm
    curves: dict[str, np.ndarray] = {}
    for name, u0 in (
        ("central", _CENTRAL_U_START),
        ("precentral", _CENTRAL_U_START),
        ("postcentral", _POSTCENTRAL_U_START),
    ):
        u = np.arange(u0, _SULCUS_U_END + step / 2, step)
        curves[name] = np.column_stack([u, _sulcus_y(name, u)[0]])

    # Superior and inferior frontal sulci leave the precentral sulcus anteriorly.
    for name, u_join, drift in (
        ("superior_frontal", 21.0, -0.04),
        ("inferior_frontal", 40.0, 0.06),
    ):
        y0 = float(_sulcus_y("precentral", np.array(u_join))[0])
        y = np.arange(y0, 60.0, step)
        u = u_join + drift * (y - y0) + 1.0 * np.sin((y - y0) / 9.0)
        curves[name] = np.column_stack([u, y])

    # Intraparietal sulcus leaves the postcentral sulcus posteriorly.
    y0 = float(_sulcus_y("postcentral", np.array(34.0))[0])
    y = np.arange(y0, -95.0, -step)
    u = 34.0 - 0.12 * (y0 - y) + 1.2 * np.sin((y0 - y) / 11.0)
    curves["intraparietal"] = np.column_stack([u, y])

    # Medial parietal sulci bounding the precuneus.
    u = np.arange(0.0, 9.0 + step / 2, step)
    curves["marginal_ramus"] = np.column_stack([u, -40.0 + 0.35 * u])
    u = np.arange(0.0, 14.0 + step / 2, step)
    curves["parieto_occipital"] = np.column_stack([u, -72.0 + 0.25 * u])
    return curves


class _PolylineDistance:
    """Unsigned distance from 2D points to a set of densely sampled polylines.

    The nearest vertex is found with a k-d tree and the distance refined to the two segments
    that meet there. With vertices <= 0.1 mm apart the error is below 1e-3 mm for points
    more than 0.4 mm from the polyline (all that the layers need) and below 0.05 mm anywhere.
    """

    def __init__(self, polylines: list[np.ndarray], closed: bool = False) -> None:
        from scipy.spatial import cKDTree

        verts, nxt, prv = [], [], []
        start = 0
        for line in polylines:
            n = len(line)
            idx = np.arange(start, start + n)
            verts.append(line)
            if closed:
                nxt.append(np.roll(idx, -1))
                prv.append(np.roll(idx, 1))
            else:
                nxt.append(np.append(idx[1:], idx[-1]))
                prv.append(np.insert(idx[:-1], 0, idx[0]))
            start += n
        self.verts = np.concatenate(verts).astype(float)
        self.nxt = np.concatenate(nxt)
        self.prv = np.concatenate(prv)
        self.tree = cKDTree(self.verts)

    def __call__(self, pts: np.ndarray, upper: float = np.inf) -> np.ndarray:
        """Distance (mm) from each of ``pts`` (N, 2) to the polylines; ``inf`` beyond ``upper``."""
        dist, idx = self.tree.query(pts, distance_upper_bound=upper, workers=-1)
        ok = np.isfinite(dist)
        i, p = idx[ok], pts[ok]
        a = self.verts[i]
        best = np.minimum(
            _segment_distance(p, a, self.verts[self.nxt[i]]),
            _segment_distance(p, a, self.verts[self.prv[i]]),
        )
        dist[ok] = best
        return dist


def _segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    L2 = np.einsum("ij,ij->i", ab, ab)
    t = np.einsum("ij,ij->i", p - a, ab) / np.where(L2 > 0, L2, 1.0)
    t = np.clip(t, 0.0, 1.0)[:, None]
    diff = p - (a + t * ab)
    return np.sqrt(np.einsum("ij,ij->i", diff, diff))


@functools.lru_cache(maxsize=1)
def _sulcal_distance() -> _PolylineDistance:
    """Distance to the sulci of the right hemisphere; query it with (|x|, y).

    The pattern is mirror-symmetric, and for x >= 0 a left-hemisphere curve point (-u, y) is
    never nearer than its mirror (u, y), so one hemisphere suffices.
    """
    return _PolylineDistance(list(_hemisphere_curves().values()))


def _ellipse_signed_distance(
    pts: np.ndarray, a: float, b: float, centre: tuple[float, float], clamp: float
) -> np.ndarray:
    """Signed distance (mm) to an axis-aligned ellipse, positive inside, clamped to +-clamp."""
    out = np.full(len(pts), -clamp)
    if a <= 0 or b <= 0:
        return out
    r = np.hypot((pts[:, 0] - centre[0]) / a, (pts[:, 1] - centre[1]) / b)
    sign = np.where(r < 1.0, 1.0, -1.0)
    out = sign * clamp
    # The ellipses r*E and E are at least |1 - r| * min(a, b) apart: only the band needs work.
    band = np.abs(1.0 - r) * min(a, b) < clamp
    if band.any():
        n = max(64, int(2 * math.pi * max(a, b) / 0.05))
        t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
        poly = np.column_stack([centre[0] + a * np.cos(t), centre[1] + b * np.sin(t)])
        dist = _PolylineDistance([poly], closed=True)(pts[band], upper=clamp)
        out[band] = sign[band] * np.minimum(dist, clamp)
    return out


def _dome_scale(z: float, height: float) -> float:
    """In-plane scale of the brain (or shell) ellipse at height z: 1 below the dome."""
    if z <= _DOME_START_Z:
        return 1.0
    r = (z - _DOME_START_Z) / height
    return math.sqrt(1.0 - r * r) if r < 1.0 else 0.0


def _m1_weight(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 in the precentral gyrus (between central and precentral sulci), 0 elsewhere.

    The steps sit on the sulcal centrelines (inside CSF, so invisible); at the medial end of
    the gyrus the weight rises smoothly with u = |x| so the deep layer has no step there.
    """
    u = np.abs(x)
    lo, hi = _M1_TAPER_U
    s = np.clip((u - lo) / (hi - lo), 0.0, 1.0)
    taper = s * s * (3.0 - 2.0 * s)
    between = (y > _sulcus_y("central", u)[0]) & (y < _sulcus_y("precentral", u)[0])
    return np.where(between, taper, 0.0)


@dataclass
class _Fields2D:
    """Per-point geometry of the axial pattern below the dome (flat arrays over points)."""

    pts: np.ndarray  # (N, 2) x, y in mm
    d_inner: np.ndarray  # signed distance to sulci/fissure (mm), brain positive, clamped
    w: np.ndarray  # M1 weight in [0, 1]
    ramp_mm: float  # partial-volume ramp width (the sampling pitch)


def _inner_fields(pts: np.ndarray, ramp_mm: float = _RAMP_MM) -> _Fields2D:
    upts = np.column_stack([np.abs(pts[:, 0]), pts[:, 1]])
    d_sulc = _sulcal_distance()(upts, upper=_D_CLAMP_MM + _SULCUS_HALF_WIDTH_MM)
    d = np.minimum(d_sulc - _SULCUS_HALF_WIDTH_MM, upts[:, 0] - _FISSURE_HALF_WIDTH_MM)
    return _Fields2D(pts, np.minimum(d, _D_CLAMP_MM), _m1_weight(pts[:, 0], pts[:, 1]), ramp_mm)


def _ramp(d: np.ndarray, boundary: np.ndarray | float, width: float) -> np.ndarray:
    """Fraction of a pixel on the far (d > boundary) side: linear over one pixel width.

    This is the area fraction of a square pixel cut by a straight edge parallel to its side,
    and a close approximation for other edge directions.
    """
    return np.clip((d - boundary) / width + 0.5, 0.0, 1.0)


def _fractions(inner: _Fields2D, z: float, t_deep_m1: float) -> dict[str, np.ndarray]:
    """Cumulative tissue fractions at ``inner.pts`` on the slice at height ``z`` (mm).

    Returns ``head`` (inside the CSF shell), ``brain`` (GM + WM), ``deep_or_wm`` and ``wm``
    fractions, each nested in the previous one, plus the M1 weight ``w``.
    """
    pts, ramp = inner.pts, inner.ramp_mm
    sb = _dome_scale(z, _DOME_HEIGHT_MM)
    a, b = _BRAIN_SEMI_AXES_MM
    # Beyond the deepest layer boundary plus half a ramp the exact distance does not matter.
    clamp = _T_SUP_MM + max(t_deep_m1, _T_DEEP_OTHER_MM) + ramp
    d_brain = _ellipse_signed_distance(pts, a * sb, b * sb, _BRAIN_CENTRE_XY, clamp)
    so = _dome_scale(z, _DOME_HEIGHT_MM + _CSF_SHELL_MM)
    shell = (a + _CSF_SHELL_MM) * so, (b + _CSF_SHELL_MM) * so
    d_head = _ellipse_signed_distance(pts, *shell, _BRAIN_CENTRE_XY, ramp)
    d = np.minimum(inner.d_inner, d_brain)
    t_deep = _T_DEEP_OTHER_MM + inner.w * (t_deep_m1 - _T_DEEP_OTHER_MM)
    return {
        "head": _ramp(d_head, 0.0, ramp),
        "brain": _ramp(d, 0.0, ramp),
        "deep_or_wm": _ramp(d, _T_SUP_MM, ramp),
        "wm": _ramp(d, _T_SUP_MM + t_deep, ramp),
        "w": inner.w,
    }


def _blend(fr: dict[str, np.ndarray], values: dict[str, float]) -> np.ndarray:
    """Partial-volume blend of per-tissue ``values`` over nested fractions ``fr``."""
    deep = values["deep_other"] + fr["w"] * (values["deep_m1"] - values["deep_other"])
    return (
        values["outside"]
        + fr["head"] * (values["csf"] - values["outside"])
        + fr["brain"] * (values["superficial"] - values["csf"])
        + fr["deep_or_wm"] * (deep - values["superficial"])
        + fr["wm"] * (values["white_matter"] - deep)
    )


def _signed_distance(pts: np.ndarray) -> np.ndarray:
    """Signed distance (mm, brain positive, clamped at 6) to CSF at (N, 2) points, z <= 70."""
    pts = np.atleast_2d(np.asarray(pts, dtype=float))
    a, b = _BRAIN_SEMI_AXES_MM
    d_brain = _ellipse_signed_distance(pts, a, b, _BRAIN_CENTRE_XY, _D_CLAMP_MM)
    return np.minimum(_inner_fields(pts).d_inner, d_brain)


# --------------------------------------------------------------------------- truth points


def _sulcus_point(name: str, u0: float, hemisphere: str) -> tuple[np.ndarray, np.ndarray]:
    """Point on a sulcal centreline and its unit normal pointing anterior, in (x, y)."""
    y0, dy = _sulcus_y(name, np.array(u0))
    sign = 1.0 if hemisphere == "R" else -1.0
    # In (u, y) the anterior normal is (-dy, 1); mirroring u -> x flips its x part for L.
    n = np.array([-sign * float(dy), 1.0])
    return np.array([sign * u0, float(y0)]), n / np.linalg.norm(n)


def _round(v: np.ndarray | list[float] | float, nd: int = 4) -> list[float] | float:
    if np.ndim(v) == 0:
        return round(float(v), nd)
    return [round(float(x), nd) for x in np.asarray(v).ravel()]


def _intensity(t: _Tissue) -> list[float]:
    return [round(t.signal(te), 3) for te in ECHO_TIMES_MS]


def _truth_tissues(tissues: dict[str, _Tissue], t_deep_m1: float) -> dict[str, dict]:
    thickness = {"superficial": _T_SUP_MM, "deep_m1": t_deep_m1, "deep_other": _T_DEEP_OTHER_MM}
    out = {}
    for name, t in tissues.items():
        out[name] = {
            "intensity": _intensity(t),
            "chi_ppm": t.chi_ppm,
            "m0": t.m0,
            "t2star_ms": None if math.isinf(t.t2star_ms) else t.t2star_ms,
        }
        if name in thickness:
            out[name]["thickness_mm"] = thickness[name]
    return out


def _truth_regions(group: str, n_slices: int, tissues: dict[str, _Tissue]) -> list[dict]:
    t_deep = _T_DEEP_M1_MM[group]
    d0 = _SULCUS_HALF_WIDTH_MM + _T_SUP_MM  # centreline -> superficial/deep boundary
    z_all = _slice_z(n_slices)
    regions = []
    for hemisphere in ("L", "R"):
        for area, u0, z in _PENFIELD:
            p, n = _sulcus_point("central", u0, hemisphere)
            centre = p + n * (d0 + t_deep / 2)
            ends = [p + n * d0, p + n * (d0 + t_deep)]
            regions.append(
                {
                    "area": area,
                    "hemisphere": hemisphere,
                    "slice_z_mm": float(z),
                    "slice_index": int(np.flatnonzero(z_all == z)[0]),
                    "deep_thickness_mm": t_deep,
                    "superficial_thickness_mm": _T_SUP_MM,
                    "deep_intensity": _intensity(tissues["deep_m1"]),
                    "superficial_intensity": _intensity(tissues["superficial"]),
                    "white_matter_intensity": _intensity(tissues["white_matter"]),
                    "chi_ppm": tissues["deep_m1"].chi_ppm,
                    "centre_ras_mm": _round([*centre, z]),
                    "normal_ras": _round([*n, 0.0], 6),
                    "caliper_ras_mm": [_round([*e, z]) for e in ends],
                }
            )
    return regions


def _truth_qsm_control(tissues: dict[str, _Tissue]) -> list[dict]:
    out = []
    z = dict((a, zz) for a, _, zz in _PENFIELD)["hand"]
    for hemisphere in ("L", "R"):
        p, n = _sulcus_point("precentral", _KNOB_U_MM, hemisphere)
        # Posterior of the precentral sulcus, in the superficial layer of the precentral gyrus.
        centre = p - n * (_SULCUS_HALF_WIDTH_MM + _T_SUP_MM / 2)
        out.append(
            {
                "hemisphere": hemisphere,
                "layer": "superficial",
                "centre_ras_mm": _round([*centre, z]),
                "normal_ras": _round([*(-n), 0.0], 6),
                "chi_ppm": tissues["superficial"].chi_ppm,
            }
        )
    return out


# --------------------------------------------------------------------------- MRSI


def _mrsi(group: str) -> tuple[dict[str, np.ndarray], dict]:
    """Metabolite maps (mx, my, mz) in RAS+ order and their truth summary."""
    mx, my, mz = _MRSI_SHAPE
    sub = _MRSI_SUBSAMPLES
    h = _MRSI_VOXEL_MM / sub
    x = _MRSI_LOWER_CORNER[0] + h / 2 + h * np.arange(mx * sub)
    y = _MRSI_LOWER_CORNER[1] + h / 2 + h * np.arange(my * sub)
    xx, yy = np.meshgrid(x, y, indexing="ij")
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    z_top = _MRSI_LOWER_CORNER[2] + mz * _MRSI_VOXEL_MM
    assert z_top <= _DOME_START_Z  # the slab is below the dome, so every slice is the same
    fr = _fractions(_inner_fields(pts, ramp_mm=h), _MRSI_LOWER_CORNER[2], _T_DEEP_M1_MM[group])

    def block_mean(a: np.ndarray) -> np.ndarray:
        return a.reshape(mx, sub, my, sub).mean(axis=(1, 3))

    brain = block_mean(fr["brain"])
    wm = block_mean(fr["wm"])
    gm = brain - wm
    m1_gm = block_mean(fr["w"] * (fr["brain"] - fr["wm"]))
    m1_wm = block_mean(fr["w"] * fr["wm"])
    m1 = m1_gm + m1_wm
    valid = brain >= _MRSI_MIN_BRAIN_FRACTION
    maps: dict[str, np.ndarray] = {}
    truth: dict[str, dict] = {}
    for met, (c_gm, c_wm, als_factor) in _METABOLITES.items():
        factor = als_factor if group == "als" else 1.0
        val = gm * c_gm + wm * c_wm + (factor - 1.0) * (m1_gm * c_gm + m1_wm * c_wm)
        val = np.where(valid, val, np.nan)
        weights = np.where(valid, m1, 0.0)
        truth[met] = {
            "m1_mean": round(float(np.sum(weights * np.nan_to_num(val)) / np.sum(weights)), 4),
            "gm": c_gm,
            "wm": c_wm,
            "m1_factor": factor,
        }
        maps[met] = np.repeat(val[:, :, None], mz, axis=2).astype(np.float32)
    return maps, truth


# --------------------------------------------------------------------------- field model


def _tissue_field_ppm(chi: np.ndarray) -> np.ndarray:
    """Field (ppm of B0, B0 along +z) of the susceptibility ``chi`` (RAS+ voxel order, ppm).

    ``F^-1[D F(chi)]`` with the continuous dipole kernel on a zero-padded grid (in-plane
    +160 voxels, z doubled) so the periodic transform does not wrap the field around.
    """
    from scipy.fft import irfftn, next_fast_len, rfftn

    from .qsm._fourier import dipole_kernel

    nx, ny, nz = chi.shape
    ps = (
        next_fast_len(nx + _FIELD_PAD_XY, real=True),
        next_fast_len(ny + _FIELD_PAD_XY, real=True),
        next_fast_len(2 * nz, real=True),
    )
    d = dipole_kernel(ps, (_PIXEL_MM, _PIXEL_MM, _SLICE_MM), (0.0, 0.0, 1.0))
    spec = rfftn(chi, s=ps, workers=2)
    spec *= d
    del d
    return np.ascontiguousarray(irfftn(spec, s=ps, workers=2)[:nx, :ny, :nz], dtype=np.float32)


def _background_hz(xx: np.ndarray, yy: np.ndarray, z_all: np.ndarray) -> np.ndarray:
    """Harmonic background field (Hz) on the grid: offset + linear gradients + an air sphere.

    ``xx``, ``yy`` are (nx, ny) RAS mm; ``z_all`` the slice z (mm). Returns (nx, ny, nz) float32.
    """
    out = np.empty((*xx.shape, len(z_all)), dtype=np.float32)
    cx, cy, cz = _AIR_SPHERE_CENTRE_RAS_MM
    a3 = _AIR_SPHERE_RADIUS_MM**3
    dx, dy = xx - cx, yy - cy
    for k, z in enumerate(z_all):
        dz = z - cz
        r2 = dx * dx + dy * dy + dz * dz
        # Outside a sphere: dB/B0 = dchi/3 (a/r)^3 (3 cos^2(theta) - 1), theta from B0 (+z).
        sphere_ppm = _AIR_SPHERE_CHI_PPM / 3.0 * a3 / r2**1.5 * (3.0 * dz * dz / r2 - 1.0)
        out[..., k] = (
            _BG_FIELD_HZ
            + _BG_GRADIENT_HZ_PER_MM[0] * (xx - _FOV_CENTRE_XY[0])
            + _BG_GRADIENT_HZ_PER_MM[1] * (yy - _FOV_CENTRE_XY[1])
            + _BG_GRADIENT_HZ_PER_MM[2] * (z - _SLAB_CENTRE_Z)
            + _HZ_PER_PPM * sphere_ppm
        )
    return out


# --------------------------------------------------------------------------- phantom


def _validate(group: str, seed: int, n_slices: int, noise_sd: float | None) -> float:
    if group not in ("als", "control"):
        raise M1InputError(f"group must be 'als' or 'control', not {group!r}")
    if (
        isinstance(n_slices, bool)
        or not isinstance(n_slices, (int, np.integer))
        or n_slices < _MIN_SLICES
        or n_slices % 2
    ):
        raise M1InputError(f"n_slices must be an even integer >= {_MIN_SLICES}, not {n_slices!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise M1InputError(f"seed must be an integer >= 0, not {seed!r}")
    if noise_sd is None:
        return DEFAULT_NOISE_SD
    if not math.isfinite(noise_sd) or noise_sd < 0:
        raise M1InputError(f"noise_sd must be a finite number >= 0, not {noise_sd!r}")
    return float(noise_sd)


def make_phantom(
    group: Literal["als", "control"] = "control",
    seed: int = 0,
    *,
    n_slices: int = 60,
    with_phase: bool = False,
    noise_sd: float | None = None,
) -> Phantom:
    """Generate the synthetic 7T M1 phantom in memory.

    Parameters
    ----------
    group : {"control", "als"}
        ``"als"`` thins (2.0 -> 1.5 mm) and darkens (M0 0.64 -> 0.58, T2* 19 -> 17 ms) the
        deep layer of the precentral gyrus, raises its susceptibility (+0.020 -> +0.060 ppm),
        lowers NAA by 25 % and raises Cho by 10 % in M1 tissue. Everything else is identical.
    seed : int
        Non-negative seed of the noise (the anatomy does not depend on it):
        ``numpy.random.SeedSequence(seed)`` is spawned into one independent stream per noise
        field. Same seed and arguments -> identical arrays, whether or not phase is made.
    n_slices : int
        Number of 2 mm axial slices, even and >= 16. Slice centres are
        ``z_k = 50 - (n_slices - 1) + 2 k`` mm (odd integers, slab centred on z = 50).
    with_phase : bool
        Also simulate the wrapped GRE phase (int16 scanner units).
    noise_sd : float or None
        SD of each Gaussian component of the complex noise (magnitude is Rician), in signal
        units. None -> :data:`DEFAULT_NOISE_SD` (13.0, ~1.5 % of CSF at TE 10 ms); 0 gives
        noise-free images. QSM noise (0.003 ppm at the default) scales with it.

    Returns
    -------
    Phantom
        Arrays in RAS+ voxel order (see :class:`Phantom`); GRE grid 448 x 448 x n_slices
        of 0.25 x 0.25 x 2.0 mm, in-plane FOV 112 mm centred on (x, y) = (0, -20) mm.

    Raises
    ------
    ValueError
        If ``group``, ``seed``, ``n_slices`` or ``noise_sd`` is invalid.
    """
    sd = _validate(group, seed, n_slices, noise_sd)
    t_start = time.perf_counter()
    tissues = _tissues(group)
    t_deep_m1 = _T_DEEP_M1_MM[group]
    affine = _gre_affine_ras(n_slices)
    z_all = _slice_z(n_slices)
    n_te = len(ECHO_TIMES_MS)

    ij = np.arange(_MATRIX)
    x = affine[0, 3] + _PIXEL_MM * ij
    y = affine[1, 3] + _PIXEL_MM * ij
    xx, yy = np.meshgrid(x, y, indexing="ij")
    # The FOV is centred on x = 0 and the pattern is mirror-symmetric: compute the right half
    # (x > 0) and mirror it into the left half.
    half = _MATRIX // 2
    assert np.allclose(x[:half], -x[::-1][:half])
    hx, hy = np.meshgrid(x[half:], y, indexing="ij")
    inner = _inner_fields(np.column_stack([hx.ravel(), hy.ravel()]))

    def full(a: np.ndarray) -> np.ndarray:
        a = a.reshape(hx.shape)
        return np.concatenate([a[::-1], a], axis=0)

    # Below the dome every slice is the same pattern: compute each distinct slice once.
    keys = [
        (_dome_scale(z, _DOME_HEIGHT_MM), _dome_scale(z, _DOME_HEIGHT_MM + _CSF_SHELL_MM))
        for z in z_all
    ]
    unique = list(dict.fromkeys(keys))
    which = np.array([unique.index(key) for key in keys])
    signal_values = [{k: t.signal(te) for k, t in tissues.items()} for te in ECHO_TIMES_MS]
    chi_values = {k: t.chi_ppm for k, t in tissues.items()}
    patterns: list[list[np.ndarray]] = [[] for _ in range(n_te + 2)]
    for key in unique:
        fr = _fractions(inner, float(z_all[keys.index(key)]), t_deep_m1)
        for e, values in enumerate(signal_values):
            patterns[e].append(full(_blend(fr, values)))
        patterns[n_te].append(full(_blend(fr, chi_values)))
        patterns[n_te + 1].append(full(fr["head"]))
    # (nx, ny, n_unique)[..., which] -> contiguous (nx, ny, nz) volumes.
    mags = [np.stack(p, axis=-1).astype(np.float32)[..., which] for p in patterns[:n_te]]
    chi = np.stack(patterns[n_te], axis=-1).astype(np.float32)[..., which]
    head = np.stack(patterns[n_te + 1], axis=-1).astype(np.float32)[..., which]
    del patterns
    r = np.hypot(xx - _FIDUCIAL_XY[0], yy - _FIDUCIAL_XY[1])
    fid = _ramp(_FIDUCIAL_RADIUS_MM - r, 0.0, _RAMP_MM).astype(np.float32)[..., None]
    for e, te in enumerate(ECHO_TIMES_MS):
        mags[e] += fid * (np.float32(tissues["fiducial"].signal(te)) - mags[e])
    t_pattern = time.perf_counter()

    phase = None
    chi_truth = field_ppm = None
    if with_phase:
        chi_truth = chi.copy()
        field_ppm = _tissue_field_ppm(chi_truth)
        df_hz = _background_hz(xx, yy, z_all)
        df_hz += np.float32(_HZ_PER_PPM) * field_ppm
        phi0 = (
            _PHI0_RAD
            + _PHI0_GRADIENT_RAD_PER_MM[0] * (xx - _FOV_CENTRE_XY[0])
            + _PHI0_GRADIENT_RAD_PER_MM[1] * (yy - _FOV_CENTRE_XY[1])
        )[..., None].astype(np.float32)
        phase = np.empty((*chi.shape, n_te), dtype=np.int16)

    # One independent stream per noise field (real and imaginary part of each echo, then QSM),
    # all derived from ``seed``, so the fields can be drawn in parallel and reproducibly.
    streams = np.random.SeedSequence(seed).spawn(2 * n_te + 1)
    shape3 = chi.shape
    qsm_sd = _QSM_NOISE_SD_PPM * sd / DEFAULT_NOISE_SD

    def normal(stream: np.random.SeedSequence, scale: float) -> np.ndarray:
        a = np.random.default_rng(stream).standard_normal(shape3, dtype=np.float32)
        a *= np.float32(scale)
        return a

    with ThreadPoolExecutor(max_workers=2) as pool:
        for e, te in enumerate(ECHO_TIMES_MS):
            mag = mags[e]
            if sd > 0:
                # Complex Gaussian noise: |S + n| is Rician; the phase gets the matching noise.
                nr, ni = pool.map(normal, streams[2 * e : 2 * e + 2], (sd, sd))
                nr += mag
            else:
                nr, ni = mag, np.zeros_like(mag)
            if phase is not None:
                ph = np.arctan2(ni, nr)
                ph += phi0
                ph += np.float32(2 * math.pi * te / 1000.0) * df_hz
                ph -= np.float32(2 * math.pi) * np.rint(ph / np.float32(2 * math.pi))  # wrap
                ph /= np.float32(math.pi / _PHASE_SCALE)
                phase[..., e] = np.clip(np.rint(ph), -_PHASE_SCALE, _PHASE_SCALE - 1)
                del ph
            mags[e] = np.hypot(nr, ni)
            del nr, ni
    gre = np.stack(mags, axis=-1)
    del mags
    if sd > 0:
        noise = normal(streams[-1], qsm_sd)
        noise *= head  # QSM is exactly 0 outside the head
        chi += noise
        del noise
    t_noise = time.perf_counter()

    mrsi, mrsi_truth = _mrsi(group)
    truth = {
        "schema": TRUTH_SCHEMA,
        "group": group,
        "seed": int(seed),
        "n_slices": int(n_slices),
        "noise_sd": sd,
        "qsm_noise_sd_ppm": round(qsm_sd, 6),
        "voxel_size_mm": [_PIXEL_MM, _PIXEL_MM, _SLICE_MM],
        "matrix": [_MATRIX, _MATRIX, int(n_slices)],
        "echo_times_ms": list(ECHO_TIMES_MS),
        "mrsi_voxel_size_mm": [_MRSI_VOXEL_MM] * 3,
        "tissues": _truth_tissues(tissues, t_deep_m1),
        "regions": _truth_regions(group, n_slices, tissues),
        "reference": {
            "area": "precuneus",
            "hemisphere": "L",
            "layer": "superficial",
            "slice_z_mm": _REFERENCE_Z,
            "centre_ras_mm": _round([*_REFERENCE_XY, _REFERENCE_Z]),
            "intensity": _intensity(tissues["superficial"]),
        },
        "qsm_control": _truth_qsm_control(tissues),
        "fiducial": {
            "hemisphere": "R",
            "centre_xy_ras_mm": list(_FIDUCIAL_XY),
            "radius_mm": _FIDUCIAL_RADIUS_MM,
            "intensity": _intensity(tissues["fiducial"]),
        },
        "mrsi": mrsi_truth,
        "phase_model": {
            "model": "phi0 + 2 pi TE (background_hz + hz_per_ppm * F^-1[D F(chi)])",
            "b0_direction_ras": [0.0, 0.0, 1.0],
            "dipole_kernel": "1/3 - kz^2/|k|^2 on a zero-padded grid (continuous k)",
            "hz_per_ppm": round(_HZ_PER_PPM, 4),
            "b0_tesla": 7.0,
            "air_sphere": {
                "centre_ras_mm": list(_AIR_SPHERE_CENTRE_RAS_MM),
                "radius_mm": _AIR_SPHERE_RADIUS_MM,
                "delta_chi_ppm": _AIR_SPHERE_CHI_PPM,
            },
            "background_hz": _BG_FIELD_HZ,
            "background_gradient_hz_per_mm": list(_BG_GRADIENT_HZ_PER_MM),
            "background_origin_ras_mm": [*_FOV_CENTRE_XY, _SLAB_CENTRE_Z],
            "phi0_rad": _PHI0_RAD,
            "phi0_gradient_rad_per_mm": list(_PHI0_GRADIENT_RAD_PER_MM),
            "scale_units_per_pi": _PHASE_SCALE,
        },
    }
    logger.debug(
        "phantom %s seed=%d n_slices=%d: pattern %.2fs, noise %.2fs, mrsi %.2fs",
        group,
        seed,
        n_slices,
        t_pattern - t_start,
        t_noise - t_pattern,
        time.perf_counter() - t_noise,
    )
    return Phantom(
        gre=gre,
        gre_affine=affine,
        echo_times_ms=tuple(ECHO_TIMES_MS),
        phase=phase,
        qsm=chi,
        mrsi=mrsi,
        mrsi_affine=_mrsi_affine(),
        truth=truth,
        chi_ppm=chi_truth,
        field_ppm=field_ppm,
    )


# --------------------------------------------------------------------------- writing


def _nifti_las(data: np.ndarray, affine_ras: np.ndarray) -> nib.Nifti1Image:
    """A NIfTI image of RAS+ ``data`` stored in L,A,S voxel order with sform = qform (scanner)."""
    import nibabel as nib
    from nibabel.orientations import axcodes2ornt, ornt_transform

    img = nib.Nifti1Image(data, affine_ras)
    img = img.as_reoriented(ornt_transform(axcodes2ornt("RAS"), axcodes2ornt("LAS")))
    return _finish_header(img)


def _nifti_ras(data: np.ndarray, affine_ras: np.ndarray) -> nib.Nifti1Image:
    import nibabel as nib

    return _finish_header(nib.Nifti1Image(data, affine_ras))


def _finish_header(img: nib.Nifti1Image) -> nib.Nifti1Image:
    img.set_sform(img.affine, code=1)
    img.set_qform(img.affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return img


def _save(img: nib.Nifti1Image, dest: Path) -> None:
    import nibabel as nib

    with atomic_path(dest) as tmp:
        nib.save(img, tmp)


def _sidecar(echo: int, te_ms: float, part: str) -> dict:
    side = {
        "EchoTime": round(te_ms / 1000.0, 6),
        "EchoNumber": echo,
        "MagneticFieldStrength": 7,
        "RepetitionTime": _TR_S,
        "FlipAngle": _FLIP_ANGLE_DEG,
        "MRAcquisitionType": "2D",
        "SliceThickness": _SLICE_MM,
        "ImageType": ["ORIGINAL", "PRIMARY", "M" if part == "mag" else "P", "ND"],
        "Manufacturer": "napari-m1",
        "ManufacturersModelName": "synthetic M1 phantom",
    }
    if part == "phase":
        side["Units"] = "arbitrary"
    return side


def write_phantom_case(
    out_dir: str | os.PathLike,
    group: Literal["als", "control"] = "control",
    seed: int = 0,
    *,
    n_slices: int = 60,
    with_phase: bool = False,
    label: str | None = None,
    force: bool = False,
) -> Path:
    """Generate a phantom and write it as a BIDS-like case folder.

    Files (``<label>`` defaults to ``phantom<group><seed>``):
    ``sub-<label>_echo-<n>_part-mag_MEGRE.nii.gz`` + ``.json`` for n = 1, 2 (3D float32),
    ``sub-<label>_echo-<n>_part-phase_MEGRE.nii.gz`` + ``.json`` if ``with_phase`` (int16),
    ``sub-<label>_Chimap.nii.gz`` (QSM, ppm), ``truth_chi.nii.gz`` (noise-free chi that
    generated the phase, ppm) if ``with_phase``, ``sub-<label>_met-<M>_mrsi.nii.gz`` for
    M in NAA, Cr, Cho, Glx, and ``truth.json``. GRE, phase and QSM are stored in L,A,S voxel
    order; MRSI in R,A,S. Every file is written atomically. Sidecars do not name the group.

    Parameters
    ----------
    out_dir : path
        Case folder; created if missing. Must be empty unless ``force``.
    group, seed, n_slices, with_phase
        As for :func:`make_phantom` (with the default noise).
    label : str, optional
        BIDS subject label, letters and digits only.
    force : bool
        Write into a non-empty folder, replacing files of the same names (others are kept).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    M1Error
        If ``out_dir`` is a file, or a non-empty folder and ``force`` is False.
    ValueError
        If an argument is invalid.
    """
    out = Path(out_dir)
    if label is None:
        label = f"phantom{group}{seed}"
    if not _LABEL_RE.match(label):
        raise M1InputError(f"label must contain only letters and digits, not {label!r}")
    _validate(group, seed, n_slices, None)
    if out.exists() and not out.is_dir():
        raise M1Error(f"Cannot write the phantom case: {out} is a file, not a folder.")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise M1Error(f"Cannot write the phantom case: {out} is not empty (use force=True).")

    t0 = time.perf_counter()
    ph = make_phantom(group, seed, n_slices=n_slices, with_phase=with_phase)
    t1 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    stem = f"sub-{label}"
    images = []  # (image, destination)
    for e, te in enumerate(ph.echo_times_ms):
        echo = e + 1
        parts = [("mag", ph.gre[..., e])]
        if ph.phase is not None:
            parts.append(("phase", ph.phase[..., e]))
        for part, arr in parts:
            name = f"{stem}_echo-{echo}_part-{part}_MEGRE"
            images.append((_nifti_las(np.ascontiguousarray(arr), ph.gre_affine), f"{name}.nii.gz"))
            atomic_write_text(out / f"{name}.json", json.dumps(_sidecar(echo, te, part), indent=2))
    images.append((_nifti_las(ph.qsm, ph.gre_affine), f"{stem}_Chimap.nii.gz"))
    if ph.chi_ppm is not None:  # the noise-free chi that generated the phase (QSM truth)
        images.append((_nifti_las(ph.chi_ppm, ph.gre_affine), "truth_chi.nii.gz"))
    for met, arr in ph.mrsi.items():
        images.append((_nifti_ras(arr, ph.mrsi_affine), f"{stem}_met-{met}_mrsi.nii.gz"))
    # gzip releases the GIL: compress the big files in parallel.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda job: _save(job[0], out / job[1]), images))
    atomic_write_text(out / "truth.json", json.dumps(ph.truth, indent=2))
    logger.info(
        "wrote phantom case %s (%s, seed %d, %d slices) in %.2fs (generation %.2fs)",
        out,
        group,
        seed,
        n_slices,
        time.perf_counter() - t0,
        t1 - t0,
    )
    return out
