"""QC'd MRSI ratio maps of a case's fsl_mrsi output as :class:`Volume` objects (no Qt)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._nifti import Volume, _canonical

if TYPE_CHECKING:
    from ..mrsi import QCThresholds

__all__ = [
    "TISSUE_CLASSES",
    "find_segmentation",
    "mrsi_tissue_fractions",
    "ratio_volumes",
    "segmentation_fractions",
    "tissue_aux",
    "tissue_for_volume",
]

#: aux key -> the class in a file name (``mrsi_seg_gm.nii.gz``, FSL-MRS ``mrsi_segmentation``)
TISSUE_CLASSES = {"f_gm": "gm", "f_wm": "wm", "f_csf": "csf"}


def mrsi_tissue_fractions(
    folder: Path, shape: tuple[int, ...] | None, affine: np.ndarray
) -> dict[str, np.ndarray]:
    """Tissue fractions on the MRSI grid found in ``folder`` (file voxel order).

    Files ``*seg_gm*``, ``*seg_wm*``, ``*seg_csf*`` (``.nii``/``.nii.gz``, values 0..1, the
    names of FSL-MRS's ``mrsi_segmentation``) whose affine (and ``shape``, when given) equal
    the MRSI grid's; others are ignored. Returns ``{"f_gm": ..., "f_wm": ..., "f_csf": ...}``
    (those found).
    """
    import nibabel as nib

    out: dict[str, np.ndarray] = {}
    try:
        names = sorted(p for p in folder.iterdir() if p.name.lower().endswith((".nii", ".nii.gz")))
    except OSError:
        return out
    for key, cls in TISSUE_CLASSES.items():
        for p in names:
            if f"seg_{cls}" not in p.name.lower():
                continue
            try:
                img = nib.load(p)
                data = np.asarray(img.dataobj, dtype=float)
            except Exception:  # an unreadable optional file must not block the maps
                continue
            while data.ndim > 3 and data.shape[-1] == 1:
                data = data[..., 0]
            same_shape = data.ndim == 3 and (shape is None or data.shape == tuple(shape))
            if same_shape and np.allclose(img.affine, affine, atol=1e-4):
                out[key] = data
                break
    return out


def tissue_aux(
    fractions: dict[str, np.ndarray], affine: np.ndarray, shape: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """The fractions in canonical napari order (as a Volume of that file grid is shown)."""
    return {
        k: np.ascontiguousarray(_canonical(np.ascontiguousarray(f.T), affine, shape)[0])
        for k, f in fractions.items()
    }


def find_segmentation(case_folder: Path) -> Path | None:
    """An FSL FAST label map (``*pveseg*.nii[.gz]``: CSF 1, GM 2, WM 3) in the case folder
    or its ``anat/`` sub-folder (first by name), else None."""
    for d in (case_folder, case_folder / "anat"):
        try:
            names = sorted(p for p in d.iterdir() if p.is_file())
        except OSError:
            continue
        for p in names:
            if "pveseg" in p.name.lower() and p.name.lower().endswith((".nii", ".nii.gz")):
                return p
    return None


_SEG_CACHE: dict[tuple, dict[str, np.ndarray]] = {}


def segmentation_fractions(
    seg: Path, ras_affine: np.ndarray, shape: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Box tissue fractions (``f_gm``, ``f_wm``, ``f_csf``) of every voxel of a grid
    (``ras_affine``: index -> RAS mm, ``shape``) from a FAST label map on any grid; cached
    per file, modification time and grid. An unreadable map gives ``{}`` (logged)."""
    import logging

    import nibabel as nib

    from ..mrsi import FAST_LABELS, tissue_fractions

    try:
        stamp = seg.stat().st_mtime_ns
    except OSError:
        return {}
    key = (str(seg), stamp, tuple(np.round(ras_affine, 6).ravel()), tuple(shape))
    if key not in _SEG_CACHE:
        try:
            img = nib.load(seg)
            lab = np.asarray(img.dataobj)
            while lab.ndim > 3 and lab.shape[-1] == 1:
                lab = lab[..., 0]
            fr = tissue_fractions(ras_affine, shape, np.rint(lab).astype(np.int16), img.affine)
        except Exception as exc:  # optional input: never block the maps
            logging.getLogger(__name__).warning(
                "tissue fractions not computed: %s (%s)", seg.name, type(exc).__name__
            )
            return {}
        names = {"GM": "f_gm", "WM": "f_wm", "CSF": "f_csf"}
        _SEG_CACHE.clear()  # one case at a time
        _SEG_CACHE[key] = {names[k]: fr[k] for k in FAST_LABELS}
    return dict(_SEG_CACHE[key])


def tissue_for_volume(
    vol: Volume, folder: Path | None, case_folder: Path | None = None
) -> dict[str, np.ndarray]:
    """Tissue-fraction aux maps of an MRSI Volume (canonical order): fraction maps on its
    grid in the fsl_mrsi ``folder`` (:func:`mrsi_tissue_fractions`) first, else box
    fractions from a FAST label map in ``case_folder`` (:func:`find_segmentation`)."""
    if folder is not None:
        fr = mrsi_tissue_fractions(folder, None, vol.source_affine)
        if fr:
            aux = tissue_aux(fr, vol.source_affine, next(iter(fr.values())).shape)
            return {k: a for k, a in aux.items() if a.shape == vol.spatial_shape}
    seg = find_segmentation(case_folder) if case_folder is not None else None
    if seg is None:
        return {}
    return segmentation_fractions(seg, vol.ras_affine, vol.spatial_shape)


def ratio_volumes(
    folder: Path, thresholds: QCThresholds | None = None, case_folder: Path | None = None
) -> list[Volume]:
    """One ``mrsi`` Volume per ratio map (tNAA/tCr, tCho/tCr, Glx/tCr) of an fsl_mrsi folder.

    Excluded voxels are NaN; ``extra`` holds ``metabolite`` (the ratio name), ``mrsi_ratio``
    (True), ``qc`` (the summary of :func:`napari_m1.mrsi.ratio_maps`, thresholds included)
    and ``n_excluded``, and ``mrsi_source``: the id of the fit's
    :class:`~napari_m1.mrsi.MRSISource` (spectra, live thresholds; see
    :func:`~napari_m1.mrsi.get_source`). ``aux`` holds ``unfiltered`` (the ratio before
    QC) and tissue fractions when the folder has them (:func:`mrsi_tissue_fractions`), in
    the layer's order (else from a FAST label map in ``case_folder``). Default thresholds
    unless given (docs/mrsi.md).
    """
    import nibabel as nib

    from ..mrsi import MRSISource, QCThresholds, find_spectra, read_fsl_mrsi, register_source

    fit = read_fsl_mrsi(folder)
    source = MRSISource(fit, find_spectra(folder), thresholds or QCThresholds())
    sid = register_source(source)  # an opaque id: no path reaches the layer metadata
    tissue = tissue_aux(
        mrsi_tissue_fractions(folder, fit.shape, fit.affine), fit.affine, fit.shape
    )
    grid, ras = _canonical(fit.mask.T, fit.affine, fit.shape)
    if not tissue and case_folder is not None and (seg := find_segmentation(case_folder)):
        tissue = segmentation_fractions(seg, ras, grid.shape)

    def canon(a: np.ndarray) -> np.ndarray:
        # _canonical takes the file's axes reversed (a NIfTI read byte-for-byte in C order)
        return np.ascontiguousarray(_canonical(a.T.astype(np.float32), fit.affine, fit.shape)[0])

    out = []
    for r in source.maps:
        out.append(
            Volume(
                data=canon(r.values),
                ras_affine=ras,
                source_affine=fit.affine,
                source_axcodes=tuple(nib.aff2axcodes(fit.affine)),
                kind="mrsi",
                name=f"MRSI {r.name}",
                sources=[f"{folder.name}/concs/{fit.scaling}"],
                extra={
                    "metabolite": r.name,
                    "mrsi_ratio": True,
                    "qc": r.summary,
                    "n_excluded": r.summary["n_excluded"],
                    "mrsi_source": sid,
                },
                aux={"unfiltered": canon(r.unfiltered), **tissue},
            )
        )
    return out
