"""Read ``measurements.csv`` and average it per reader × case × Penfield area × side.

Unusable files raise :class:`napari_m1.errors.M1Error`; everything else that is
excluded or blank becomes a :class:`DataIssue`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import M1Error
from ._csvread import _check_schema, _read_csv, _to_numeric
from ._data import AREA_ORDER, MEASUREMENTS_SCHEMA, DataIssue, make_issue

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["read_measurements"]


# --------------------------------------------------------------------------- measurements
def read_measurements(
    path: str | Path,
    readings: pd.DataFrame,
    issues: list[DataIssue],
    *,
    echo: int | None = None,
) -> tuple[pd.DataFrame, int | None, float | None]:
    """Read ``measurements.csv`` and average it per reader × case × Penfield area × side.

    Rows are matched to cases by ``case_id`` when the file has that column, otherwise
    ``case_label`` is matched to the ``pseudonym`` of a *first* read by the same reader
    (falling back to a pseudonym that is unique among all first reads). Measurements
    made on hidden repeat reads are not used.

    Parameters
    ----------
    path : str or Path
        A ``napari-m1/measurements/1`` file.
    readings : pandas.DataFrame
        From :func:`read_readings`.
    issues : list of DataIssue
        Appended to.
    echo : int, optional
        1-based GRE echo for ``normalised_si``; default the last echo present.

    Returns
    -------
    slots : pandas.DataFrame
        See :attr:`StudyData.slots`.
    echo : int or None
        The echo used (None when the file has no GRE ROI rows).
    te_ms : float or None
        Median ``te_ms`` of that echo's rows, when given.

    Raises
    ------
    M1Error
        Unreadable file, missing columns, other schema, or ``echo`` not in the file.
    """
    import numpy as np
    import pandas as pd

    src = Path(path).name
    df, p = _read_csv(
        path,
        required=(
            "reader",
            "region",
            "hemisphere",
            "annotation",
            "layer_kind",
            "echo",
            "normalised_si",
            "thickness_mm",
        ),
        any_of=("case_id", "case_label"),
        text=(
            "schema",
            "case_label",
            "case_id",
            "reader",
            "slot",
            "region",
            "hemisphere",
            "annotation",
            "layer_kind",
            "normalised_si_note",
        ),
        numeric=("echo", "te_ms", "normalised_si", "thickness_mm"),
        transform={
            "region": str.lower,
            "annotation": str.lower,
            "layer_kind": str.lower,
            "hemisphere": str.upper,
        },
        categorical=True,  # 0.5 M rows: filter and group on codes, not strings
        strict=False,  # written by napari-m1, not by hand; large
    )
    _check_schema(df, MEASUREMENTS_SCHEMA, p)
    # Only the Penfield areas of M1; the reference and other regions are not used.
    df = df.loc[df["region"].isin(AREA_ORDER)]
    if "slot" in df.columns:
        df = df.loc[~df["slot"].str.startswith("ref_")]
    df = df.copy()
    no_reader = df["reader"] == ""
    if no_reader.any():
        issues.append(
            make_issue(
                src,
                "no-reader",
                f"{int(no_reader.sum())} measurement row(s) without reader; excluded",
                (f"row {r}" for r in df.loc[no_reader, "row"]),
            )
        )
        df = df.loc[~no_reader]
    bad_h = ~df["hemisphere"].isin(["L", "R"])
    if bad_h.any():
        issues.append(
            make_issue(
                src,
                "bad-hemisphere",
                f"{int(bad_h.sum())} measurement row(s) with hemisphere other than L/R; excluded",
                (f"row {r}" for r in df.loc[bad_h, "row"]),
            )
        )
        df = df.loc[~bad_h]
    df = df.copy()
    df["case_id"] = _resolve_case_ids(df, readings, src, issues)
    df = df.loc[df["case_id"] != ""]

    cal = df.loc[df["annotation"] == "caliper"].copy()
    if cal.empty:
        issues.append(
            make_issue(
                src,
                "no-caliper-rows",
                "no usable caliper rows in the Penfield areas: thickness statistics are empty",
            )
        )
    cal["thickness_mm"] = _to_numeric(cal, "thickness_mm", src, issues)
    no_t = cal["thickness_mm"].isna()
    if no_t.any():
        issues.append(
            make_issue(
                src,
                "no-thickness",
                f"{int(no_t.sum())} caliper row(s) without thickness_mm; missing",
                (f"row {r}" for r in cal.loc[no_t, "row"]),
            )
        )

    roi = df.loc[(df["annotation"] == "roi") & (df["layer_kind"] == "gre")].copy()
    roi["echo"] = _to_numeric(roi, "echo", src, issues)
    echoes = sorted(int(e) for e in roi["echo"].dropna().unique())
    te_ms = None
    if echo is not None and echo not in echoes:
        have = ", ".join(map(str, echoes)) or "none"
        raise M1Error(f"{src}: no GRE ROI rows at echo {echo} (echoes present: {have})")
    if echoes:
        echo = echo if echo is not None else echoes[-1]
        roi = roi.loc[roi["echo"] == echo].copy()
        if "te_ms" in roi.columns:
            te = _to_numeric(roi, "te_ms", src, []).dropna()
            te_ms = float(te.median()) if len(te) else None
        roi["normalised_si"] = _to_numeric(roi, "normalised_si", src, issues)
        no_si = roi["normalised_si"].isna()
        if no_si.any():
            why = ""
            if "normalised_si_note" in roi.columns:
                notes = roi.loc[no_si, "normalised_si_note"].replace("", "no note")
                why = " (" + "; ".join(f"{k}: {v}" for k, v in notes.value_counts().items()) + ")"
            issues.append(
                make_issue(
                    src,
                    "no-normalised-si",
                    f"{int(no_si.sum())} GRE ROI row(s) at echo {echo} without "
                    f"normalised_si{why}; missing",
                    (f"row {r}" for r in roi.loc[no_si, "row"]),
                )
            )
    else:
        echo = None
        roi = roi.iloc[0:0].assign(normalised_si=np.nan)
        issues.append(
            make_issue(
                src,
                "no-gre-rows",
                "no usable GRE ROI rows in the Penfield areas: normalised SI statistics are empty",
            )
        )

    key = ["reader", "case_id", "region", "hemisphere"]
    n_per_slot = pd.concat(
        [cal.groupby(key).size().rename("n_cal"), roi.groupby(key).size().rename("n_roi")],
        axis=1,
    )
    multi = n_per_slot[(n_per_slot.fillna(0) > 1).any(axis=1)]
    if len(multi):
        issues.append(
            make_issue(
                src,
                "duplicate-measurement",
                f"{len(multi)} reader × case × area × side slot(s) measured more than once; "
                "their rows are averaged",
                ("/".join(map(str, k)) for k in multi.index),
            )
        )
    slots = pd.concat(
        [
            cal.groupby(key)["thickness_mm"].mean(),
            roi.groupby(key)["normalised_si"].mean(),
        ],
        axis=1,
    ).reset_index()
    for c in ("thickness_mm", "normalised_si"):
        if c not in slots.columns:
            slots[c] = np.nan
    for c in key:
        slots[c] = slots[c].astype(str)
    return slots[[*key, "thickness_mm", "normalised_si"]], echo, te_ms


def _resolve_case_ids(
    df: pd.DataFrame, readings: pd.DataFrame, src: str, issues: list[DataIssue]
) -> pd.Series:
    """Case id per measurement row ("" when it cannot be matched; reported)."""
    import numpy as np
    import pandas as pd

    if "case_id" in df.columns and (df["case_id"] != "").any():
        out = df["case_id"].astype(str)
        missing = out == ""
        if missing.any():
            issues.append(
                make_issue(
                    src,
                    "no-case",
                    f"{int(missing.sum())} measurement row(s) without case_id; excluded",
                    (f"row {r}" for r in df.loc[missing, "row"]),
                )
            )
        return out
    first = readings.loc[readings["is_repeat"] == 0, ["reader", "pseudonym", "case_id"]]
    first = first.drop_duplicates(["reader", "pseudonym"])
    key = pd.MultiIndex.from_arrays([df["reader"], df["case_label"]])
    pos = pd.MultiIndex.from_arrays([first["reader"], first["pseudonym"]]).get_indexer(key)
    ids = np.append(first["case_id"].to_numpy(dtype=object), "")
    out = pd.Series(ids[pos], index=df.index).astype(str)  # pos -1 -> ""
    fallback = out == ""
    if fallback.any():
        # A label seen by another reader: usable when it names one case only.
        n_ids = first.groupby("pseudonym")["case_id"].nunique()
        uniq = first.drop_duplicates("pseudonym").set_index("pseudonym")["case_id"]
        uniq = uniq[n_ids.reindex(uniq.index) == 1]
        labels = df.loc[fallback, "case_label"].astype(str)
        out[fallback] = labels.map(uniq).fillna("").astype(str)
    unmatched = out == ""
    if unmatched.any():
        repeats = set(readings.loc[readings["is_repeat"] == 1, "pseudonym"])
        lab = df.loc[unmatched, "case_label"].astype(str)
        on_rep = lab.isin(repeats)
        if on_rep.any():
            issues.append(
                make_issue(
                    src,
                    "measurement-on-repeat",
                    f"{int(on_rep.sum())} measurement row(s) were made on hidden repeat reads; "
                    "not used (per-subject values come from first reads only)",
                    sorted(set(lab[on_rep])),
                    severity="note",
                )
            )
        other = lab[~on_rep]
        if len(other):
            issues.append(
                make_issue(
                    src,
                    "unknown-case-label",
                    f"{len(other)} measurement row(s) whose case_label matches no first read "
                    "in the readings file; excluded",
                    sorted(set(other)),
                )
            )
    return out
