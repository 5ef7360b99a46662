"""``make_phantom``: the phantom's arrays (GRE, phase, QSM, MRSI) and its truth, in memory."""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

import numpy as np

from napari_m1.errors import M1InputError

from ._anatomy import (
    _AIR_SPHERE_CENTRE_RAS_MM,
    _AIR_SPHERE_CHI_PPM,
    _AIR_SPHERE_RADIUS_MM,
    _BG_FIELD_HZ,
    _BG_GRADIENT_HZ_PER_MM,
    _CSF_SHELL_MM,
    _DOME_HEIGHT_MM,
    _FIDUCIAL_RADIUS_MM,
    _FIDUCIAL_XY,
    _FOV_CENTRE_XY,
    _HZ_PER_PPM,
    _MATRIX,
    _MIN_SLICES,
    _MRSI_VOXEL_MM,
    _PHASE_SCALE,
    _PHI0_GRADIENT_RAD_PER_MM,
    _PHI0_RAD,
    _PIXEL_MM,
    _QSM_NOISE_SD_PPM,
    _RAMP_MM,
    _REFERENCE_XY,
    _REFERENCE_Z,
    _SLAB_CENTRE_Z,
    _SLICE_MM,
    _T_DEEP_M1_MM,
    DEFAULT_NOISE_SD,
    ECHO_TIMES_MS,
    TRUTH_SCHEMA,
    Phantom,
    _blend,
    _dome_scale,
    _fractions,
    _gre_affine_ras,
    _inner_fields,
    _mrsi_affine,
    _ramp,
    _slice_z,
    _tissues,
)
from ._truth import (
    _background_hz,
    _intensity,
    _mrsi,
    _round,
    _tissue_field_ppm,
    _truth_qsm_control,
    _truth_regions,
    _truth_tissues,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

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

    mrsi, mrsi_truth, mrsi_fractions = _mrsi(group)
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
        mrsi_fractions=mrsi_fractions,
        chi_ppm=chi_truth,
        field_ppm=field_ppm,
    )
