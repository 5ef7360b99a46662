"""FSL-MRS ``fsl_mrsi`` output folders, read with nibabel (FSL-MRS itself is never imported).

Layout (one NIfTI per metabolite, on the native MRSI grid)::

    concs/{raw,internal,molality,molarity}/<M>.nii.gz   concentrations
    uncertainties/<M>_sd.nii.gz                         CRLB SD in % of the concentration
    qc/<M>_snr.nii.gz, qc/<M>_fwhm.nii.gz               S/N and linewidth (Hz)
    fit/{fit,residual,baseline}.nii.gz                  NIfTI-MRS spectra (optional)

``<M>`` may be a combined name (``NAA+NAAG``); :mod:`._names` maps it to ``tNAA``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import M1LoadError
from ._names import canonical_name

__all__ = ["SCALINGS", "MRSIFit", "find_fsl_mrsi", "is_fsl_mrsi_folder", "read_fsl_mrsi"]

#: concentration folders in order of preference: ratios of raw amplitudes first (as LCModel's
#: ``/Cr+PCr`` column; water scaling applies per-metabolite relaxation corrections)
SCALINGS = ("raw", "internal", "molarity", "molality")
_NII = (".nii.gz", ".nii")


def _stem(p: Path) -> str | None:
    for ext in _NII:
        if p.name.endswith(ext):
            return p.name[: -len(ext)]
    return None


@dataclass
class MRSIFit:
    """Per-voxel fit results on the native MRSI grid (every array shape (x, y, z), voxel order).

    Attributes
    ----------
    conc : dict of str -> ndarray float
        Concentration per canonical metabolite name (``tNAA``, ``tCr``, ``Ins``, ...).
    sd_pct : dict of str -> ndarray float
        Cramér-Rao lower bound in % of the concentration (NaN where undefined).
    snr : dict of str -> ndarray float
        Signal-to-noise ratio (absent for metabolites without a QC map).
    fwhm_ppm : dict of str -> ndarray float
        Linewidth in ppm (FSL-MRS writes Hz; converted with the spectrometer frequency).
    mask : ndarray bool
        Voxels inside the MRSI mask (``mask.nii[.gz]`` in the folder, else voxels where any
        concentration is non-zero: fsl_mrsi writes 0 outside its mask).
    affine : ndarray (4, 4)
        Voxel -> scanner RAS mm.
    spectrometer_frequency_mhz : float or None
        MHz = Hz/ppm; None when no NIfTI-MRS header (``fit/fit.nii.gz``) gave it.
    scaling : str
        The ``concs/`` sub-folder read.
    labels : dict of str -> str
        Canonical name -> the file stem it came from (``"tNAA": "NAA+NAAG"``).
    """

    conc: dict[str, np.ndarray]
    sd_pct: dict[str, np.ndarray]
    snr: dict[str, np.ndarray]
    fwhm_ppm: dict[str, np.ndarray]
    mask: np.ndarray
    affine: np.ndarray
    spectrometer_frequency_mhz: float | None
    scaling: str
    source: Path
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.mask.shape)  # type: ignore[return-value]


def is_fsl_mrsi_folder(folder: str | os.PathLike[str]) -> bool:
    """Cheap check: ``folder/concs/<scaling>/`` holds at least one NIfTI."""
    concs = Path(folder) / "concs"
    try:
        return any(
            (concs / s).is_dir() and any(_stem(p) for p in (concs / s).iterdir()) for s in SCALINGS
        )
    except OSError:
        return False


#: sub-folders of a case folder searched first for an fsl_mrsi output
CASE_SUBFOLDERS = ("fsl_mrsi", "mrsi")


def find_fsl_mrsi(case_dir: str | os.PathLike[str]) -> Path | None:
    """The fsl_mrsi output of a case: the case folder itself, ``fsl_mrsi/`` or ``mrsi/``,
    else the first direct sub-folder (sorted) that is one; None when there is none."""
    root = Path(case_dir)
    if is_fsl_mrsi_folder(root):
        return root
    subs = [root / n for n in CASE_SUBFOLDERS]
    try:
        subs += sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return None
    return next((p for p in subs if p.is_dir() and is_fsl_mrsi_folder(p)), None)


def _load3d(p: Path, shape: tuple[int, ...] | None) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    try:
        img = nib.load(p)
        data = np.asarray(img.dataobj, dtype=float)
    except Exception as exc:  # nibabel raises many types for broken files
        raise M1LoadError(f"{p.name}: not a readable NIfTI ({type(exc).__name__})") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise M1LoadError(f"{p.name}: expected a 3D map, got shape {data.shape}")
    if shape is not None and data.shape != shape:
        raise M1LoadError(f"{p.name}: shape {data.shape} differs from the MRSI grid {shape}")
    return data, np.asarray(img.affine, dtype=float)


def _frequency_from_fit(folder: Path) -> float | None:
    import nibabel as nib

    for name in ("fit/fit.nii.gz", "fit/fit.nii", "fit/baseline.nii.gz", "fit/residual.nii.gz"):
        p = folder / name
        if not p.is_file():
            continue
        try:
            hdr = nib.load(p).header
            for e in getattr(hdr, "extensions", []):
                if e.get_code() == 44:
                    sf = json.loads(e.get_content()).get("SpectrometerFrequency")
                    return float(sf[0] if isinstance(sf, list) else sf)
        except Exception:  # a broken optional fit file must not block the maps
            continue
    return None


def read_fsl_mrsi(
    folder: str | os.PathLike[str],
    *,
    scaling: str | None = None,
    sd_units: str = "percent",
    spectrometer_frequency_mhz: float | None = None,
) -> MRSIFit:
    """Read an ``fsl_mrsi`` output folder (see :class:`MRSIFit`).

    Parameters
    ----------
    scaling : str, optional
        ``concs/`` sub-folder; default the first present of :data:`SCALINGS`.
    sd_units : {"percent", "absolute"}
        What ``uncertainties/<M>_sd`` holds. FSL-MRS's ``fsl_mrsi`` writes
        ``FitRes.getUncertainties(metab=...)``, whose default ``type='percentage'`` is the
        SD in % of the concentration, capped at 999 and 999 where undefined, as LCModel
        (FSL-MRS source, ``fsl_mrs/scripts/fsl_mrsi.py`` and ``fsl_mrs/utils/results.py``).
        ``"absolute"`` reads an SD in the units of ``concs/raw`` instead (converted to % with
        the raw concentration), for outputs written another way.
    spectrometer_frequency_mhz : float, optional
        Overrides the value from ``fit/fit.nii.gz`` (needed to convert FWHM Hz -> ppm).

    Raises
    ------
    M1LoadError
        No concentration maps, maps of different shapes, unreadable NIfTI.
    """
    root = Path(folder)
    if sd_units not in ("absolute", "percent"):
        raise M1LoadError(f"sd_units must be 'absolute' or 'percent', not {sd_units!r}")
    concs = root / "concs"
    subs = [scaling] if scaling else [s for s in SCALINGS if (concs / s).is_dir()]
    if not subs or not (concs / subs[0]).is_dir():
        raise M1LoadError(f"{root.name}: no concs/<scaling>/ folder (not an fsl_mrsi output)")
    sub = subs[0]
    shape: tuple[int, ...] | None = None
    affine = None
    conc: dict[str, np.ndarray] = {}
    labels: dict[str, str] = {}
    for p in sorted((concs / sub).iterdir()):
        stem = _stem(p)
        if stem is None:
            continue
        data, aff = _load3d(p, shape)
        shape, affine = data.shape, aff if affine is None else affine
        name = canonical_name(stem)
        conc[name], labels[name] = data, stem
    if not conc or affine is None:
        raise M1LoadError(f"{root.name}: concs/{sub}/ holds no NIfTI maps")
    sf = spectrometer_frequency_mhz or _frequency_from_fit(root)
    raw_dir = concs / "raw"
    sd_pct: dict[str, np.ndarray] = {}
    snr: dict[str, np.ndarray] = {}
    fwhm: dict[str, np.ndarray] = {}
    for name, stem in labels.items():
        for ext in _NII:
            sdp = root / "uncertainties" / f"{stem}_sd{ext}"
            if sdp.is_file():
                sd, _ = _load3d(sdp, shape)
                if sd_units == "percent":
                    sd_pct[name] = sd
                else:
                    rawp = raw_dir / f"{stem}{ext}"
                    ref = _load3d(rawp, shape)[0] if rawp.is_file() else conc[name]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        sd_pct[name] = np.where(ref != 0, 100.0 * sd / np.abs(ref), np.nan)
            q = root / "qc" / f"{stem}_snr{ext}"
            if q.is_file():
                snr[name] = _load3d(q, shape)[0]
            q = root / "qc" / f"{stem}_fwhm{ext}"
            if q.is_file() and sf:
                fwhm[name] = _load3d(q, shape)[0] / sf
    mask = None
    for ext in _NII:
        if (root / f"mask{ext}").is_file():
            mask = _load3d(root / f"mask{ext}", shape)[0] > 0
    if mask is None:
        mask = np.zeros(shape, dtype=bool)
        for a in conc.values():
            mask |= np.nan_to_num(a) != 0
    return MRSIFit(conc, sd_pct, snr, fwhm, mask, affine, sf, sub, root, labels)
