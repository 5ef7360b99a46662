"""MRSI ratios in the report: QC-filtered means beside the unfiltered ones (pure pandas).

Excluding voxels whose relative CRLB (%SD) is high removes low concentrations more often than
high ones, so filtered means are biased upward. For every QC'd ratio (``tNAA/tCr``, ...)
the report therefore shows, per group, the mean of the ROI rows' filtered ``mean`` next to
the mean of their ``mean_unfiltered``, the paired shift, and how many voxels QC removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._csvread import _read_csv, _read_header
from ._data import AREA_ORDER, DataIssue
from ._read_measurements import _resolve_case_ids

if TYPE_CHECKING:
    import pandas as pd

    from ._data import StudyData

__all__ = ["MRSI_QC_COLUMNS", "mrsi_qc_table"]

MRSI_QC_COLUMNS = [
    "ratio",
    "group",
    "n_rois",
    "mean_filtered",
    "mean_unfiltered",
    "filtering_shift",
    "n_rois_with_excluded_voxels",
    "n_rois_all_excluded",
    "n_excluded_voxels",
    "thresholds",
]


def _thresholds(df: pd.DataFrame) -> str:
    cols = ("qc_max_sd_pct", "qc_max_fwhm_ppm", "qc_min_snr")
    if not all(c in df.columns for c in cols):
        return ""
    seen = df[list(cols)].dropna().drop_duplicates()
    return "; ".join(
        f"%SD <= {a:g}, FWHM <= {b:g} ppm, S/N >= {c:g}" for a, b, c in seen.itertuples(False)
    )


def mrsi_qc_table(
    path: str | Path, data: StudyData, issues: list[DataIssue]
) -> pd.DataFrame | None:
    """Per QC'd ratio and group (and ``all``): filtered vs unfiltered ROI means.

    Rows of ``measurements.csv`` with ``layer_kind == "mrsi"`` and a ``mean_unfiltered``
    value (the QC'd ratio maps), in the Penfield areas (reference slots excluded), matched
    to cases as the other measurement statistics (first reads only). Columns
    :data:`MRSI_QC_COLUMNS`: ``mean_filtered`` averages ``mean`` over the ROIs that kept a
    voxel, ``mean_unfiltered`` averages ``mean_unfiltered`` over every ROI, and
    ``filtering_shift`` is the mean of ``mean - mean_unfiltered`` over ROIs with both
    (positive = filtering raised the value). Returns None when the file has no such column.
    """
    import numpy as np
    import pandas as pd

    p = Path(path)
    header = _read_header(p)
    if "mean_unfiltered" not in header:
        return None
    numeric = [
        c
        for c in (
            "mean",
            "mean_unfiltered",
            "mrsi_n_excluded_voxels",
            "qc_max_sd_pct",
            "qc_max_fwhm_ppm",
            "qc_min_snr",
        )
        if c in header
    ]
    df, _ = _read_csv(
        p,
        required=("reader", "region", "layer_kind", "metabolite", "mean", "mean_unfiltered"),
        any_of=("case_id", "case_label"),
        text=("case_label", "case_id", "reader", "slot", "region", "layer_kind", "metabolite"),
        numeric=tuple(numeric),
        transform={"region": str.lower, "layer_kind": str.lower},
        strict=False,
    )
    for c in numeric:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df = df.loc[(df["layer_kind"] == "mrsi") & df["mean_unfiltered"].notna()]
    df = df.loc[df["region"].isin(AREA_ORDER)]
    if "slot" in df.columns:
        df = df.loc[~df["slot"].astype(str).str.startswith("ref_")]
    if df.empty:
        return pd.DataFrame(columns=MRSI_QC_COLUMNS)
    df = df.copy()
    df["case_id"] = _resolve_case_ids(df, data.readings, p.name, issues)
    df = df.loc[df["case_id"] != ""]
    groups = data.clinical["group"] if "group" in data.clinical.columns else pd.Series(dtype=str)
    df["group"] = df["case_id"].map(groups).fillna("unknown").astype(str)
    rows = []
    for ratio, by_ratio in df.groupby("metabolite", sort=True):
        parts = [("all", by_ratio), *sorted(by_ratio.groupby("group"), key=lambda t: t[0])]
        for group, g in parts:
            both = g["mean"].notna() & g["mean_unfiltered"].notna()
            n_ex = g.get("mrsi_n_excluded_voxels", pd.Series(np.nan, index=g.index))
            rows.append(
                {
                    "ratio": str(ratio),
                    "group": str(group),
                    "n_rois": len(g),
                    "mean_filtered": g["mean"].mean(),
                    "mean_unfiltered": g["mean_unfiltered"].mean(),
                    "filtering_shift": (g["mean"] - g["mean_unfiltered"])[both].mean(),
                    "n_rois_with_excluded_voxels": int((n_ex > 0).sum()),
                    "n_rois_all_excluded": int((g["mean"].isna()).sum()),
                    "n_excluded_voxels": int(n_ex.fillna(0).sum()),
                    "thresholds": _thresholds(g),
                }
            )
    return pd.DataFrame(rows, columns=MRSI_QC_COLUMNS)
