"""The phantom's anatomy: constants, tissues and the 2D geometry of every slice (RAS mm)."""

from __future__ import annotations

import functools
import logging
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_m1.formats import PHANTOM_TRUTH_SCHEMA

if TYPE_CHECKING:
    pass

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
    mrsi_fractions : dict of str -> ndarray of float64, shape (mx, my, mz)
        ``GM``, ``WM``, ``CSF`` fraction of every MRSI voxel's box (RAS+ order; the rest is
        outside the head).
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
    mrsi_fractions: dict[str, np.ndarray] = field(default_factory=dict)


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
