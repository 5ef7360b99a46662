"""NIfTI-MRS (spec2nii's output): complex spectroscopy data with a JSON header extension.

The standard (Clarke et al., MRM 2022): a NIfTI-1 or NIfTI-2 image, complex, dims 1-3
spatial (1x1x1 for single voxel), dim 4 the FID (time, ``pixdim[4]`` = dwell time in s),
dims 5-7 tagged by ``dim_5`` .. ``dim_7`` (``DIM_COIL``, ``DIM_DYN``, ``DIM_EDIT``, ...);
header extension code 44 holds JSON with at least ``SpectrometerFrequency`` (MHz, list)
and ``ResonantNucleus`` (list). Extensions can carry identifying keys (PatientName,
PatientDoB, InstitutionAddress, OriginalFile, ...): :func:`display_header` drops them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import M1LoadError

__all__ = ["IDENTIFYING_KEYS", "NiftiMRS", "display_header", "read_nifti_mrs"]

NIFTI_MRS_ECODE = 44

#: header keys that identify a person, a site or a source file: never shown, never exported
IDENTIFYING_KEYS: frozenset[str] = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientDoB",
        "PatientBirthDate",
        "PatientSex",
        "PatientAge",
        "PatientWeight",
        "PatientSize",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "DeviceSerialNumber",
        "StationName",
        "OriginalFile",
        "ConversionTime",
        "StudyDate",
        "StudyTime",
        "SeriesDate",
        "AcquisitionDate",
        "AcquisitionDateTime",
        "AccessionNumber",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "ReferringPhysicianName",
        "OperatorsName",
        "PerformingPhysicianName",
    }
)


def display_header(header: dict[str, Any]) -> dict[str, Any]:
    """A copy of a NIfTI-MRS header extension without :data:`IDENTIFYING_KEYS` (any depth)."""
    out: dict[str, Any] = {}
    for k, v in header.items():
        if k in IDENTIFYING_KEYS:
            continue
        out[k] = display_header(v) if isinstance(v, dict) else v
    return out


@dataclass
class NiftiMRS:
    """A NIfTI-MRS file in memory.

    Attributes
    ----------
    data : ndarray, complex
        Shape (x, y, z, n_points[, dim5, dim6, dim7]) in file (voxel) order; the FID on axis 3.
    affine : ndarray (4, 4)
        Voxel -> scanner RAS mm of the spatial axes (the file's sform/qform).
    dwell_time_s : float
        ``pixdim[4]``.
    spectrometer_frequency_mhz : float
        From the extension (first nucleus).
    nucleus : str
        ``ResonantNucleus`` (first).
    dim_tags : list of str or None
        Tags of dims 5..7 (None where absent).
    header : dict
        The extension JSON with identifying keys removed (see :func:`display_header`).
    """

    data: np.ndarray
    affine: np.ndarray
    dwell_time_s: float
    spectrometer_frequency_mhz: float
    nucleus: str
    dim_tags: list[str | None]
    header: dict[str, Any]

    @property
    def n_points(self) -> int:
        return int(self.data.shape[3])

    def ppm_axis(self, shift_ppm: float = 4.65) -> np.ndarray:
        """Chemical shift (ppm) of each point of the FFT spectrum, shape (n_points,).

        Spectrum order follows :meth:`spectrum` (``fftshift(fft(fid))``). NIfTI-MRS stores
        the FID in a right-handed frame, so ppm *decreases* along that axis (the ``nifti-mrs``
        package conjugates instead); ``shift_ppm`` is the receiver reference (4.65 for 1H).
        """
        n = self.n_points
        freq_hz = np.fft.fftshift(np.fft.fftfreq(n, d=self.dwell_time_s))
        return shift_ppm - freq_hz / self.spectrometer_frequency_mhz

    def spectrum(self, index: tuple[int, ...] = (0, 0, 0)) -> np.ndarray:
        """Complex spectrum of one voxel (higher dims: first index), shape (n_points,)."""
        fid = self.data[tuple(index) + (slice(None),) + (0,) * (self.data.ndim - 4)]
        return np.fft.fftshift(np.fft.fft(fid))


def read_nifti_mrs(path: str | os.PathLike[str]) -> NiftiMRS:
    """Read a NIfTI-MRS file (nibabel only).

    Raises
    ------
    M1LoadError
        Not NIfTI, not complex, fewer than 4 dims, or no code-44 JSON extension with
        ``SpectrometerFrequency``.
    """
    import nibabel as nib

    p = Path(path)
    try:
        img = nib.load(p)
    except Exception as exc:  # nibabel raises many types for non-NIfTI input
        raise M1LoadError(f"{p.name}: not a NIfTI file ({type(exc).__name__})") from None
    hdr = img.header
    ext = [e for e in getattr(hdr, "extensions", []) if e.get_code() == NIFTI_MRS_ECODE]
    if not ext:
        raise M1LoadError(f"{p.name}: no NIfTI-MRS header extension (code 44)")
    try:
        meta = json.loads(ext[0].get_content())
    except (ValueError, UnicodeDecodeError):
        raise M1LoadError(f"{p.name}: NIfTI-MRS header extension is not JSON") from None
    if not isinstance(meta, dict) or "SpectrometerFrequency" not in meta:
        raise M1LoadError(f"{p.name}: NIfTI-MRS header lacks SpectrometerFrequency")
    if len(img.shape) < 4:
        raise M1LoadError(f"{p.name}: NIfTI-MRS needs 4+ dims (x, y, z, FID), got {img.shape}")
    if not np.issubdtype(hdr.get_data_dtype(), np.complexfloating):
        raise M1LoadError(f"{p.name}: NIfTI-MRS data must be complex")
    sf = meta["SpectrometerFrequency"]
    nuc = meta.get("ResonantNucleus", ["1H"])
    try:
        sf0 = float(sf[0] if isinstance(sf, list) else sf)
    except (TypeError, ValueError, IndexError):
        raise M1LoadError(f"{p.name}: SpectrometerFrequency is not a number") from None
    data = np.asarray(img.dataobj)
    tags: list[str | None] = []
    for d in (5, 6, 7):
        t = meta.get(f"dim_{d}")
        tags.append(str(t) if t is not None else None)
    return NiftiMRS(
        data=data,
        affine=np.asarray(img.affine, dtype=float),
        dwell_time_s=float(hdr["pixdim"][4]),
        spectrometer_frequency_mhz=sf0,
        nucleus=str(nuc[0] if isinstance(nuc, list) and nuc else nuc),
        dim_tags=tags,
        header=display_header(meta),
    )
