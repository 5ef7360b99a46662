"""QC'd MRSI ratio maps of a case's fsl_mrsi output as :class:`Volume` objects (no Qt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._nifti import Volume, _canonical

__all__ = ["ratio_volumes"]


def ratio_volumes(folder: Path) -> list[Volume]:
    """One ``mrsi`` Volume per ratio map (tNAA/tCr, tCho/tCr, Glx/tCr) of an fsl_mrsi folder.

    Excluded voxels are NaN; ``extra`` holds ``metabolite`` (the ratio name), ``mrsi_ratio``
    (True), ``qc`` (the summary of :func:`napari_m1.mrsi.ratio_maps`, thresholds included)
    and ``n_excluded``, and ``mrsi_source``: the id of the fit's
    :class:`~napari_m1.mrsi.MRSISource` (spectra, live thresholds; see
    :func:`~napari_m1.mrsi.get_source`).
    Default thresholds (docs/mrsi.md).
    """
    import nibabel as nib

    from ..mrsi import MRSISource, find_spectra, read_fsl_mrsi, register_source

    fit = read_fsl_mrsi(folder)
    source = MRSISource(fit, find_spectra(folder))
    sid = register_source(source)  # an opaque id: no path reaches the layer metadata
    out = []
    for r in source.maps:
        # _canonical takes the file's axes reversed (a NIfTI read byte-for-byte in C order)
        data, ras = _canonical(r.values.T.astype(np.float32), fit.affine, fit.shape)
        out.append(
            Volume(
                data=np.ascontiguousarray(data),
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
            )
        )
    return out
