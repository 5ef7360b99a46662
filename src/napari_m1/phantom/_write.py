"""``write_phantom_case``: the phantom as a case folder (NIfTI, BIDS sidecars, truth.json)."""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from napari_m1._atomic import atomic_path, atomic_write_text
from napari_m1.errors import M1Error, M1InputError

from ._anatomy import _FLIP_ANGLE_DEG, _LABEL_RE, _SLICE_MM, _TR_S
from ._make import _validate, make_phantom

if TYPE_CHECKING:
    import nibabel as nib

logger = logging.getLogger(__name__)

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
    with_mrs: bool = False,
    mrs_noise: bool = True,
) -> Path:
    """Generate a phantom and write it as a BIDS-like case folder.

    Files (``<label>`` defaults to ``phantom<group><seed>``):
    ``sub-<label>_echo-<n>_part-mag_MEGRE.nii.gz`` + ``.json`` for n = 1, 2 (3D float32),
    ``sub-<label>_echo-<n>_part-phase_MEGRE.nii.gz`` + ``.json`` if ``with_phase`` (int16),
    ``sub-<label>_Chimap.nii.gz`` (QSM, ppm), ``truth_chi.nii.gz`` (noise-free chi that
    generated the phase, ppm) if ``with_phase``, ``sub-<label>_met-<M>_mrsi.nii.gz`` for
    M in NAA, Cr, Cho, Glx, and ``truth.json``. GRE, phase and QSM are stored in L,A,S voxel
    order; MRSI in R,A,S. Every file is written atomically. Sidecars do not name the group.
    With ``with_mrs``: the MRSI as spectra and fit results with planted QC failures
    (``mrs/``, ``fsl_mrsi/``, ``lcmodel/``; see :func:`napari_m1.phantom.write_phantom_mrs`),
    summarised in ``truth.json["mrs"]``.

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
    with_mrs, mrs_noise : bool
        Also write the MRSI spectra, an fsl_mrsi folder and LCModel CSVs (noisy unless
        ``mrs_noise`` is False).

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
    truth = ph.truth
    if with_mrs:
        from ._mrs import write_phantom_mrs

        mrs = write_phantom_mrs(out, ph, noise=mrs_noise, seed=seed, label=label)
        truth = {**truth, "mrs": mrs.truth}
    atomic_write_text(out / "truth.json", json.dumps(truth, indent=2))
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
