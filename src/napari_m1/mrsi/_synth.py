"""A synthetic ``fsl_mrsi`` output folder with known truth and planted QC failures (tests, demos).

Every value is drawn far from the default thresholds, so which voxels a QC rule excludes is
decided by the planted failures alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SyntheticMRSI", "write_fit_spectra", "write_fsl_mrsi_folder"]

#: canonical name -> (file stem, low, high) of the true molarity (mM)
_METABS = {
    "tNAA": ("NAA+NAAG", 8.0, 12.0),
    "tCr": ("Cr+PCr", 6.0, 9.0),
    "tCho": ("GPC+PCh", 1.0, 2.0),
    "Glx": ("Glu+Gln", 8.0, 14.0),
    "Ins": ("Ins", 4.0, 7.0),
}
_RAW_PER_MOLAR = 0.01  # raw units per mM (the raw maps differ from molarity by a factor)


@dataclass
class SyntheticMRSI:
    """What :func:`write_fsl_mrsi_folder` wrote.

    ``conc`` are the true molarities (canonical names), ``planted`` maps
    ``(test, canonical metabolite)`` to the boolean voxel map of planted failures
    (``("mask", "*")`` for voxels outside the mask).
    """

    folder: Path
    conc: dict[str, np.ndarray]
    planted: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    spectrometer_frequency_mhz: float = 297.2


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))


def write_fsl_mrsi_folder(
    out: str | os.PathLike[str],
    shape: tuple[int, int, int] = (8, 8, 3),
    *,
    seed: int = 0,
    voxel_mm: float = 5.0,
    write_mask: bool = True,
    spectrometer_frequency_mhz: float = 297.2,
    n_fit_points: int = 64,
    n_extra: int = 0,
    affine: np.ndarray | None = None,
) -> SyntheticMRSI:
    """Write an fsl_mrsi-shaped folder to ``out`` (created) and return its truth.

    Planted failures (voxel indices scale with ``shape``): %SD 35 % of tNAA at one voxel and
    of tCr at another (the latter fails every ratio), FWHM 0.15 ppm of tCho, S/N 3 of Glx,
    one voxel failing %SD, FWHM and S/N of tCr together, and a one-voxel border outside the
    mask (concentrations 0 there, as fsl_mrsi writes).
    """
    rng = np.random.default_rng(seed)
    root = Path(out)
    sf = spectrometer_frequency_mhz
    if affine is None:
        affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
        affine[:3, 3] = [-voxel_mm * shape[0] / 2, -voxel_mm * shape[1] / 2, 10.0]
    mask = np.zeros(shape, dtype=bool)
    mask[1:-1, 1:-1, :] = True
    syn = SyntheticMRSI(root, {}, spectrometer_frequency_mhz=sf)
    syn.planted[("mask", "*")] = ~mask
    inner = np.argwhere(mask)
    picks = inner[rng.choice(len(inner), size=5, replace=False)]

    def one(i: int) -> np.ndarray:
        m = np.zeros(shape, dtype=bool)
        m[tuple(picks[i])] = True
        return m

    plants = {
        ("crlb", "tNAA"): one(0),
        ("crlb", "tCr"): one(1) | one(4),
        ("fwhm", "tCho"): one(2),
        ("snr", "Glx"): one(3),
        ("fwhm", "tCr"): one(4),
        ("snr", "tCr"): one(4),
    }
    syn.planted.update(plants)
    metabs = dict(_METABS)
    metabs.update({f"X{i + 1:02d}": (f"X{i + 1:02d}", 1.0, 2.0) for i in range(n_extra)})
    for name, (stem, lo, hi) in metabs.items():
        molar = np.where(mask, rng.uniform(lo, hi, shape), 0.0)
        syn.conc[name] = molar.astype(np.float32).astype(float)
        raw = molar * _RAW_PER_MOLAR
        sd_pct = rng.uniform(2.0, 12.0, shape)
        snr = rng.uniform(15.0, 60.0, shape)
        fwhm_ppm = rng.uniform(0.02, 0.06, shape)
        for (test, met), where in plants.items():
            if met != name:
                continue
            if test == "crlb":
                sd_pct[where] = 35.0
            elif test == "fwhm":
                fwhm_ppm[where] = 0.15
            elif test == "snr":
                snr[where] = 3.0
        zero = ~mask
        _save(molar, affine, root / "concs" / "molarity" / f"{stem}.nii.gz")
        _save(raw, affine, root / "concs" / "raw" / f"{stem}.nii.gz")
        # %SD, as fsl_mrsi writes it (FitRes.getUncertainties' default); 0 outside the mask
        _save(np.where(zero, 0, sd_pct), affine, root / "uncertainties" / f"{stem}_sd.nii.gz")
        _save(np.where(zero, 0, snr), affine, root / "qc" / f"{stem}_snr.nii.gz")
        _save(np.where(zero, 0, fwhm_ppm * sf), affine, root / "qc" / f"{stem}_fwhm.nii.gz")
    if write_mask:
        _save(mask.astype(np.float32), affine, root / "mask.nii.gz")
    _write_fit(root, shape, affine, sf, n_fit_points)
    return syn


def _write_fit(root: Path, shape: tuple[int, ...], affine: np.ndarray, sf: float, n: int) -> None:
    import nibabel as nib

    t = np.arange(n) * 2.5e-4
    fid = np.exp((2j * np.pi * 100.0 - 30.0) * t).astype(np.complex64)
    data = np.broadcast_to(fid, (*shape, n)).copy()
    img = nib.Nifti2Image(data, affine)
    img.header["pixdim"][4] = 2.5e-4
    img.header["intent_name"] = b"mrs_v0_2"
    meta = {"SpectrometerFrequency": [sf], "ResonantNucleus": ["1H"]}
    img.header.extensions.append(nib.nifti1.Nifti1Extension(44, json.dumps(meta).encode()))
    (root / "fit").mkdir(parents=True, exist_ok=True)
    nib.save(img, str(root / "fit" / "fit.nii.gz"))


#: singlets of :func:`write_fit_spectra`: name -> ppm
FIT_PEAKS: dict[str, float] = {"NAA": 2.01, "Cr": 3.03, "Cho": 3.21}


def fit_amplitudes(shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Per-voxel singlet amplitudes of :func:`write_fit_spectra` (NAA grows with i, j, k)."""
    i, j, k = np.indices(shape, dtype=float)
    return {"NAA": 1.0 + 0.1 * i + 0.05 * j + 0.3 * k, "Cr": 0.8 + 0.02 * j, "Cho": 0.3 + 0 * i}


def write_fit_spectra(
    folder: str | os.PathLike[str],
    shape: tuple[int, int, int],
    affine: np.ndarray,
    *,
    spectrometer_frequency_mhz: float = 297.2,
    n_points: int = 512,
    dwell_s: float = 2.5e-4,
    extra_header: dict | None = None,
    seed: int = 3,
) -> None:
    """Write ``fit/{fit,residual,baseline}.nii.gz`` (NIfTI-MRS) with a different spectrum in
    every voxel: Lorentzian singlets (:data:`FIT_PEAKS`, amplitudes :func:`fit_amplitudes`,
    T2* 40 ms) plus a broad baseline as the fit; complex Gaussian noise (SD 0.05) as the
    residual. NIfTI-MRS frame: a peak at ``p`` ppm has ``+(4.65 - p)·SF`` Hz.
    ``extra_header`` adds keys to the JSON extension (tests plant identifiers there).
    """
    import nibabel as nib

    sf = spectrometer_frequency_mhz
    rng = np.random.default_rng(seed)
    amps = fit_amplitudes(shape)
    t = np.arange(n_points) * dwell_s
    fit = np.zeros((*shape, n_points), dtype=np.complex128)
    for name, ppm in FIT_PEAKS.items():
        f = (4.65 - ppm) * sf
        fit += amps[name][..., None] * np.exp((2j * np.pi * f - 1 / 0.04) * t)
    baseline = np.broadcast_to(0.2 * np.exp(-t / 0.002), fit.shape)
    fit = fit + baseline
    residual = 0.05 * (rng.standard_normal(fit.shape) + 1j * rng.standard_normal(fit.shape))
    meta = {"SpectrometerFrequency": [sf], "ResonantNucleus": ["1H"], **(extra_header or {})}
    d = Path(folder) / "fit"
    d.mkdir(parents=True, exist_ok=True)
    for name, arr in (("fit", fit), ("residual", residual), ("baseline", baseline)):
        img = nib.Nifti2Image(np.ascontiguousarray(arr, dtype=np.complex64), affine)
        img.header["pixdim"][4] = dwell_s
        img.header["intent_name"] = b"mrs_v0_2"
        img.header.extensions.append(nib.nifti1.Nifti1Extension(44, json.dumps(meta).encode()))
        nib.save(img, str(d / f"{name}.nii.gz"))
