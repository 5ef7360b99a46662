"""The phantom's truth (regions, caliper ends, tissue values), its MRSI maps and field model."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from ._anatomy import (
    _AIR_SPHERE_CENTRE_RAS_MM,
    _AIR_SPHERE_CHI_PPM,
    _AIR_SPHERE_RADIUS_MM,
    _BG_FIELD_HZ,
    _BG_GRADIENT_HZ_PER_MM,
    _DOME_START_Z,
    _FIELD_PAD_XY,
    _FOV_CENTRE_XY,
    _HZ_PER_PPM,
    _KNOB_U_MM,
    _METABOLITES,
    _MRSI_LOWER_CORNER,
    _MRSI_MIN_BRAIN_FRACTION,
    _MRSI_SHAPE,
    _MRSI_SUBSAMPLES,
    _MRSI_VOXEL_MM,
    _PENFIELD,
    _PIXEL_MM,
    _SLAB_CENTRE_Z,
    _SLICE_MM,
    _SULCUS_HALF_WIDTH_MM,
    _T_DEEP_M1_MM,
    _T_DEEP_OTHER_MM,
    _T_SUP_MM,
    ECHO_TIMES_MS,
    _fractions,
    _inner_fields,
    _slice_z,
    _sulcus_y,
    _Tissue,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

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


def _mrsi(group: str) -> tuple[dict[str, np.ndarray], dict, dict[str, np.ndarray]]:
    """Metabolite maps (mx, my, mz) in RAS+ order, their truth summary and the tissue
    fractions (GM, WM, CSF) of every MRSI voxel (box average over its 0.5 mm sub-grid)."""
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
    csf = block_mean(fr["head"]) - brain
    fractions = {
        name: np.repeat(f[:, :, None], mz, axis=2)
        for name, f in (("GM", gm), ("WM", wm), ("CSF", csf))
    }
    return maps, truth, fractions


# --------------------------------------------------------------------------- field model


def _tissue_field_ppm(chi: np.ndarray) -> np.ndarray:
    """Field (ppm of B0, B0 along +z) of the susceptibility ``chi`` (RAS+ voxel order, ppm).

    ``F^-1[D F(chi)]`` with the continuous dipole kernel on a zero-padded grid (in-plane
    +160 voxels, z doubled) so the periodic transform does not wrap the field around.
    """
    from scipy.fft import irfftn, next_fast_len, rfftn

    from ..qsm._fourier import dipole_kernel

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
