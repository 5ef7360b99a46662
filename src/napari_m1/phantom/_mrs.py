"""The phantom's MRSI as spectra and as fit results, with known truth and planted QC failures.

From the phantom's metabolite maps (``Phantom.mrsi``, mM-like, 24 x 24 x 6 voxels of 5 mm)
this writes, into a case folder:

* ``mrs/sub-<label>_mrsi.nii.gz``: NIfTI-MRS (NIfTI-2, complex64, (24, 24, 6, 512),
  dwell 0.25 ms, header extension with SpectrometerFrequency and ResonantNucleus): Lorentzian
  singlets NAA 2.01, Cr 3.03, Cho 3.21, Glx 2.35 ppm (amplitude = concentration x
  :data:`RAW_PER_MM`), one linewidth per voxel, complex Gaussian noise (unless noise-free).
* ``fsl_mrsi/``: concs/{raw,molarity}, uncertainties/<M>_sd (%SD, as fsl_mrsi), qc/<M>_snr,
  qc/<M>_fwhm (Hz), fit/{fit,residual,baseline}.nii.gz (NIfTI-MRS), mask.nii.gz, and the
  tissue fractions of every MRSI voxel, mrsi_seg_{gm,wm,csf}.nii.gz (named as FSL-MRS's
  ``mrsi_segmentation`` writes them).
* ``lcmodel/sub-<label>_slice-<k>.csv``: LCModel-style CSV of each slice (k = 1 ... 6).

The fit results are not copied from the truth: they are the fit of the written spectra by
:func:`napari_m1.mrsi.fit_singlets` (a phantom/QC tool, not LCModel or FSL-MRS). Noise-free
spectra are fitted with the modelled noise SD, so CRLB and S/N reflect the acquisition the
phantom models; noisy spectra with the noise SD estimated from the residual.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, atomic_write_text
from ._anatomy import _HZ_PER_PPM, Phantom

__all__ = ["PLANTED", "RAW_PER_MM", "PhantomMRS", "write_phantom_mrs"]

RAW_PER_MM = 20.0  #: FID amplitude (raw units) per mM
NOISE_SD = 0.25  #: noise SD per real/imaginary part of one FID point (raw units)
N_POINTS = 512
DWELL_S = 2.5e-4  # spectral width 4000 Hz = 13.4 ppm at 7 T
LOW_MM = 0.005  # a planted "absent" metabolite: CRLB > 100 %, S/N < 3
BROAD_FWHM_PPM = 0.15
NOISY_FACTOR = 1000.0

#: phantom map name -> (canonical name, fsl_mrsi/LCModel combined name)
_NAMES = {
    "NAA": ("tNAA", "NAA+NAAG"),
    "Cr": ("tCr", "Cr+PCr"),
    "Cho": ("tCho", "GPC+PCh"),
    "Glx": ("Glx", "Glu+Gln"),
}

#: the planted QC failures: (what, voxel (i, j, k), metabolite or None, the tests it fails)
PLANTED: tuple[tuple[str, tuple[int, int, int], str | None, tuple[str, ...]], ...] = (
    ("absent tCho", (8, 14, 1), "tCho", ("crlb", "snr")),
    ("absent Glx", (16, 14, 2), "Glx", ("crlb", "snr")),
    ("broad lines", (12, 10, 3), None, ("fwhm",)),
    ("noisy voxel", (10, 16, 4), None, ("crlb", "snr")),
)


@dataclass
class PhantomMRS:
    """What :func:`write_phantom_mrs` wrote and the truth behind it.

    Attributes
    ----------
    conc_mm : dict of str -> ndarray (24, 24, 6)
        True concentration (mM) per canonical name (tNAA, tCr, tCho, Glx); 0 outside the mask;
        planted "absent" metabolites included.
    mask : ndarray bool (24, 24, 6)
        Voxels fitted (the phantom's MRSI voxels >= 50 % brain).
    excluded : dict of str -> ndarray bool (24, 24, 6)
        Per ratio (``"tNAA/tCr"``, ...) the voxels a QC with default thresholds must exclude
        inside the mask: exactly the planted failures of the numerator or tCr.
    fwhm_hz, noise_sd : ndarray (24, 24, 6)
        True linewidth and noise SD of each voxel.
    truth : dict
        JSON-serialisable summary (written to ``truth.json["mrs"]`` by the case writer).
    """

    folder: Path
    conc_mm: dict[str, np.ndarray]
    mask: np.ndarray
    excluded: dict[str, np.ndarray]
    fwhm_hz: np.ndarray
    noise_sd: np.ndarray
    affine: np.ndarray
    files: dict[str, str] = field(default_factory=dict)
    truth: dict = field(default_factory=dict)


def _linewidth_ppm(shape: tuple[int, int, int]) -> np.ndarray:
    """A smooth linewidth map 0.032 ... 0.048 ppm (shim worse towards the edges)."""
    i, j, k = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    return 0.032 + 0.016 * (i * i + j * j + 0.5 * k * k) / 2.5


def _nifti_mrs(data: np.ndarray, affine: np.ndarray, f0: float):  # -> nib.Nifti2Image
    import nibabel as nib

    img = nib.Nifti2Image(data.astype(np.complex64), affine)
    img.header["pixdim"][4] = DWELL_S
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_intent("none", name="mrs_v0_9")
    meta = {
        "SpectrometerFrequency": [round(f0, 6)],
        "ResonantNucleus": ["1H"],
        "EchoTime": 0.028,
        "RepetitionTime": 1.5,
        "ConversionMethod": "napari-m1 phantom",
    }
    img.header.extensions.append(nib.nifti1.Nifti1Extension(44, json.dumps(meta).encode()))
    return img


def _save(img, dest: Path) -> None:
    import nibabel as nib

    with atomic_path(dest) as tmp:
        nib.save(img, tmp)


def write_phantom_mrs(
    out_dir: str | os.PathLike[str],
    phantom: Phantom,
    *,
    noise: bool = True,
    seed: int = 0,
    label: str = "phantom",
) -> PhantomMRS:
    """Write the phantom's MRSI spectra, an fsl_mrsi folder and LCModel CSVs into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        The case folder (``mrs/``, ``fsl_mrsi/``, ``lcmodel/`` are created in it).
    phantom : Phantom
        Its ``mrsi`` maps (NaN outside the brain) are the truth; ``mrsi_affine`` the grid.
    noise : bool
        Add complex Gaussian noise (SD :data:`NOISE_SD`, x1000 in the planted noisy voxel).
    seed : int
        Noise seed.
    label : str
        BIDS subject label of the file names.

    Returns
    -------
    PhantomMRS
    """
    from ..mrsi._singlets import SINGLET_PPM, fit_singlets, singlet_fids

    out = Path(out_dir)
    f0 = float(_HZ_PER_PPM)
    affine = np.asarray(phantom.mrsi_affine, float)
    maps = {_NAMES[k][0]: np.asarray(v, float) for k, v in phantom.mrsi.items()}
    shape = maps["tCr"].shape
    mask = np.all([np.isfinite(a) for a in maps.values()], axis=0)
    conc = {k: np.where(mask, v, 0.0) for k, v in maps.items()}
    fwhm_hz = _linewidth_ppm(shape) * f0
    sigma = np.full(shape, NOISE_SD)
    excluded = {f"{n}/tCr": np.zeros(shape, bool) for n in ("tNAA", "tCho", "Glx")}
    for _what, vox, met, tests in PLANTED:
        if not mask[vox]:
            raise AssertionError(f"planted voxel {vox} is outside the phantom's MRSI mask")
        if met is not None:
            conc[met][vox] = LOW_MM
        elif tests == ("fwhm",):
            fwhm_hz[vox] = BROAD_FWHM_PPM * f0
        else:
            sigma[vox] = NOISE_SD * NOISY_FACTOR
        for ratio, where in excluded.items():
            if met is None or ratio.startswith(met + "/") or met == "tCr":
                where[vox] = True
    names = list(SINGLET_PPM)
    ppm = [SINGLET_PPM[n] for n in names]
    inside = np.argwhere(mask)
    idx = tuple(inside.T)
    amp = np.stack([conc[n][idx] * RAW_PER_MM for n in names], axis=1)  # (V, M)
    clean = singlet_fids(amp, fwhm_hz[idx], n_points=N_POINTS, dwell_s=DWELL_S, f0_mhz=f0, ppm=ppm)
    rng = np.random.default_rng(seed)
    data = np.zeros((*shape, N_POINTS), np.complex128)
    if noise:
        noise_all = rng.standard_normal((*shape, N_POINTS, 2)) @ np.array([1.0, 1j])
        data += noise_all * sigma[..., None]
    data[idx] += clean
    fit = fit_singlets(
        data[idx], dwell_s=DWELL_S, f0_mhz=f0, ppm=ppm, noise_sd=None if noise else sigma[idx]
    )
    stem = f"sub-{label}"
    files = {
        "spectra": f"mrs/{stem}_mrsi.nii.gz",
        "fsl_mrsi": "fsl_mrsi",
        "lcmodel_csv": [f"lcmodel/{stem}_slice-{k + 1}.csv" for k in range(shape[2])],
    }
    jobs = [(_nifti_mrs(data, affine, f0), out / files["spectra"])]
    fm = out / "fsl_mrsi"
    model = np.zeros_like(data)
    model[idx] = fit.fit
    resid = np.where(mask[..., None], data - model, 0)
    for part, arr in (("fit", model), ("residual", resid), ("baseline", np.zeros_like(data))):
        jobs.append((_nifti_mrs(arr, affine, f0), fm / "fit" / f"{part}.nii.gz"))
    jobs.extend(_fit_maps(fit, names, idx, shape, affine, mask, fm, phantom.mrsi_fractions))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda job: _save(*job), jobs))
    _write_lcmodel_csvs(out, files["lcmodel_csv"], fit, names, inside, f0)
    truth = {
        "noise": bool(noise),
        "noise_sd_raw": NOISE_SD,
        "raw_per_mm": RAW_PER_MM,
        "spectrometer_frequency_mhz": round(f0, 6),
        "dwell_time_s": DWELL_S,
        "n_points": N_POINTS,
        "singlet_ppm": dict(SINGLET_PPM),
        "linewidth_ppm": [0.032, 0.048],
        "planted": [
            {"what": what, "voxel": list(vox), "metabolite": met, "fails": list(tests)}
            for what, vox, met, tests in PLANTED
        ],
        "n_voxels_fitted": int(mask.sum()),
        "files": files,
    }
    return PhantomMRS(out, conc, mask, excluded, fwhm_hz, sigma, affine, files, truth)


def _fit_maps(fit, names, idx, shape, affine, mask, fm: Path, fractions) -> list:
    import nibabel as nib

    def img(values: np.ndarray) -> nib.Nifti1Image:
        a = np.zeros(shape, np.float32)
        a[idx] = values
        return nib.Nifti1Image(a, affine)

    jobs = [(nib.Nifti1Image(mask.astype(np.float32), affine), fm / "mask.nii.gz")]
    for cls, frac in (fractions or {}).items():  # as FSL-MRS's mrsi_segmentation names them
        jobs.append(
            (
                nib.Nifti1Image(frac.astype(np.float32), affine),
                fm / f"mrsi_seg_{cls.lower()}.nii.gz",
            )
        )
    # %SD as fsl_mrsi writes it: capped at 999, 999 where undefined (as LCModel)
    sd_pct = np.minimum(np.nan_to_num(fit.sd_pct, nan=999.0, posinf=999.0), 999.0)
    for m, name in enumerate(names):
        combined = {v[0]: v[1] for v in _NAMES.values()}[name]
        raw = fit.amplitude[:, m]
        jobs += [
            (img(raw), fm / "concs" / "raw" / f"{combined}.nii.gz"),
            (img(raw / RAW_PER_MM), fm / "concs" / "molarity" / f"{combined}.nii.gz"),
            (img(sd_pct[:, m]), fm / "uncertainties" / f"{combined}_sd.nii.gz"),
            (img(fit.snr[:, m]), fm / "qc" / f"{combined}_snr.nii.gz"),
            (img(fit.fwhm_hz), fm / "qc" / f"{combined}_fwhm.nii.gz"),
        ]
    return jobs


def _write_lcmodel_csvs(out: Path, rel: list[str], fit, names, inside, f0: float) -> None:
    """One LCModel-style CSV per slice: Row, Col (1-based), <M>, <M> %SD, <M>/Cr+PCr, FWHM, S/N.

    Concentrations in mM, %SD rounded to an integer and capped at 999 (as LCModel), FWHM in
    ppm, S/N the tallest fitted line's height over twice the spectrum's noise SD (LCModel
    divides by twice the rms of the residual).
    """
    combined = [{v[0]: v[1] for v in _NAMES.values()}[n] for n in names]
    head = ["Row", "Col"]
    for c in combined:
        head += [c, f"{c} %SD", f"{c}/Cr+PCr"]
    head += ["FWHM", "S/N"]
    conc = fit.amplitude / RAW_PER_MM
    sd_pct = np.minimum(np.rint(np.nan_to_num(fit.sd_pct, nan=999.0, posinf=999.0)), 999)
    cr = conc[:, names.index("tCr")]
    snr = fit.snr.max(axis=1) / 2
    for k, path in enumerate(rel):
        lines = [", ".join(head)]
        for v in np.flatnonzero(inside[:, 2] == k):
            i, j, _ = inside[v]
            cells = [f"{j + 1:3d}", f"{i + 1:3d}"]
            for m in range(len(names)):
                ratio = conc[v, m] / cr[v] if cr[v] != 0 else 0.0
                cells += [f"{conc[v, m]:.9E}", f"{int(sd_pct[v, m]):4d}", f"{ratio:.9E}"]
            cells += [f"{fit.fwhm_hz[v] / f0:.6f}", f"{snr[v]:.3f}"]
            lines.append(", ".join(cells))
        atomic_write_text(out / path, "\n".join(lines) + "\n")
