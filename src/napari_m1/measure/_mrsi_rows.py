"""Overlap columns of an ROI row measured on an MRSI map (pure numpy).

A 4 mm² oval covers at most 16 % of one 5 mm MRSI voxel, and often straddles two or four:
the row's ``mean`` is the overlap-weighted mean (each voxel weighted by the area of the oval
inside it), and these columns say how much that mean can be trusted as "the ROI's value".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["MIN_LARGEST_WEIGHT", "MRSI_COLUMNS", "mrsi_overlap_columns"]

#: a row is flagged when no MRSI voxel holds at least this share of the ROI's area
MIN_LARGEST_WEIGHT = 0.5

MRSI_COLUMNS: tuple[str, ...] = (
    "mrsi_n_voxels_contributing",
    "mrsi_largest_weight",
    "mrsi_largest_voxel_area_fraction",
    "mrsi_flag",
    "f_gm_weighted",
    "f_wm_weighted",
    "f_csf_weighted",
    "mrsi_n_excluded_voxels",
    "mean_unfiltered",
    "qc_max_sd_pct",
    "qc_max_fwhm_ppm",
    "qc_min_snr",
)

_TISSUE = {"f_gm": "f_gm_weighted", "f_wm": "f_wm_weighted", "f_csf": "f_csf_weighted"}


def mrsi_overlap_columns(
    values: np.ndarray | None,
    weights: np.ndarray,
    aux: Mapping[str, np.ndarray] | None = None,
    thresholds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The MRSI overlap columns of one ROI row.

    Parameters
    ----------
    values : ndarray (nr, nc) or None
        The map's voxels under the ROI's window on its slice (None: the ROI misses the map).
    weights : ndarray (nr, nc)
        Covered fraction of each voxel's in-plane area (``EllipseWeights.weights``).
    aux : mapping of str -> ndarray (nr, nc), optional
        Companion maps read through the same window: ``f_gm``/``f_wm``/``f_csf`` (tissue
        fractions of each MRSI voxel) and ``unfiltered`` (a QC'd ratio before exclusion: a
        voxel NaN in ``values`` but finite in ``unfiltered`` was excluded by QC, whatever
        the thresholds the map holds now).
    thresholds : mapping, optional
        The QC thresholds the map was filtered with (``QCThresholds.as_dict()``): copied
        into ``qc_max_sd_pct``, ``qc_max_fwhm_ppm``, ``qc_min_snr``.

    Returns
    -------
    dict
        ``mrsi_n_voxels_contributing`` (voxels with weight > 0 and a finite value),
        ``mrsi_largest_weight`` (largest share of the measured area in one voxel, 0..1),
        ``mrsi_largest_voxel_area_fraction`` (largest fraction of one voxel's in-plane area
        the ROI covers), ``mrsi_flag`` (``"largest_weight<0.5"`` or ``""``),
        ``f_*_weighted`` (overlap-weighted tissue fractions over the same voxels as the mean),
        ``mrsi_n_excluded_voxels`` (voxels under the ROI excluded by QC) and
        ``mean_unfiltered`` (overlap-weighted mean of the ratio before QC); None where not
        applicable.
    """
    out: dict[str, Any] = dict.fromkeys(MRSI_COLUMNS)
    aux = aux or {}
    for key, value in (thresholds or {}).items():
        if f"qc_{key}" in out:
            out[f"qc_{key}"] = value
    if values is None or weights.size == 0:
        out["mrsi_n_voxels_contributing"] = 0
        return out
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    touched = w > 0
    ok = touched & np.isfinite(v)
    out["mrsi_n_voxels_contributing"] = int(ok.sum())
    if "unfiltered" in aux:
        u = np.asarray(aux["unfiltered"], dtype=np.float64)
        uk = touched & np.isfinite(u)
        out["mrsi_n_excluded_voxels"] = int((uk & ~np.isfinite(v)).sum())
        out["mean_unfiltered"] = float(np.dot(w[uk], u[uk]) / w[uk].sum()) if uk.any() else None
    if not ok.any():
        return out
    wk = w[ok]
    tw = float(wk.sum())
    largest = float(wk.max() / tw)
    out["mrsi_largest_weight"] = largest
    out["mrsi_largest_voxel_area_fraction"] = float(wk.max())
    out["mrsi_flag"] = "largest_weight<0.5" if largest < MIN_LARGEST_WEIGHT else ""
    for key, col in _TISSUE.items():
        if key in aux:
            f = np.asarray(aux[key], dtype=np.float64)[ok]
            good = np.isfinite(f)
            if good.any():
                out[col] = float(np.dot(wk[good], f[good]) / wk[good].sum())
    return out
