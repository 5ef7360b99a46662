"""Read and validate the report's inputs: readings, clinical data, and all three together.

Every problem that does not make a file unusable becomes a :class:`DataIssue`
(the affected rows or cases are listed and, where needed, excluded from the
statistics that cannot use them); unusable files raise
:class:`napari_m1.errors.M1Error` (see :mod:`._csvread`). The measurements file has
its own module, :mod:`._read_measurements`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import M1Error
from ._csvread import _binary, _check_schema, _read_csv, _read_header, _to_numeric, map_text
from ._data import (
    CALLS,
    CLINICAL_NUMERIC,
    READINGS_SCHEMA,
    STATUSES,
    DataIssue,
    StudyData,
    disease_progression_rate,
    make_issue,
)
from ._read_measurements import read_measurements

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_study", "read_clinical", "read_readings"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- readings
def read_readings(path: str | Path, issues: list[DataIssue]) -> pd.DataFrame:
    """Read an unblinded ``readings.csv`` (schema ``napari-m1/readings/1`` plus ``case_id``).

    Parameters
    ----------
    path : str or Path
        The file written by ``napari-m1 study unblind``.
    issues : list of DataIssue
        Appended to: rows without reader or case id, bad 0/1 values, unknown statuses,
        reads that were not submitted, duplicate first reads.

    Returns
    -------
    pandas.DataFrame
        See :attr:`StudyData.readings`. Rows without ``reader``, ``case_id`` or a valid
        ``is_repeat`` are dropped (and reported).

    Raises
    ------
    M1Error
        Unreadable file, missing required columns (``reader``, ``pseudonym``,
        ``is_repeat``, ``status``, ``als_consistent``, ``case_id``), other schema.
    """
    import pandas as pd

    src = Path(path).name
    header = _read_header(Path(path))
    if "case_id" not in header and "pseudonym" in header:
        raise M1Error(
            f"{src}: no 'case_id' column — this is a blinded export; "
            "use the file written by 'napari-m1 study unblind'"
        )
    df, p = _read_csv(
        path,
        required=("reader", "pseudonym", "is_repeat", "status", "als_consistent", "case_id"),
        text=("schema", "reader", "pseudonym", "repeat_of", "status", "case_id"),
        numeric=("read_no", "is_repeat", "hypointensity", "thinning"),
        transform={"status": str.lower},
    )
    _check_schema(df, READINGS_SCHEMA, p)
    if df.empty:
        raise M1Error(f"{src}: no reads (only a header row)")
    no_id = (df["reader"] == "") | (df["case_id"] == "")
    if no_id.any():
        issues.append(
            make_issue(
                src,
                "no-reader-or-case",
                f"{int(no_id.sum())} row(s) without reader or case_id; excluded",
                (f"row {r}" for r in df.loc[no_id, "row"]),
            )
        )
        df = df.loc[~no_id].copy()
    df["is_repeat"] = _binary(df, "is_repeat", src, issues)
    bad_rep = df["is_repeat"].isna()
    if bad_rep.any():
        issues.append(
            make_issue(
                src,
                "bad-is-repeat",
                f"{int(bad_rep.sum())} row(s) with is_repeat missing or not 0/1; excluded",
                (f"row {r}" for r in df.loc[bad_rep, "row"]),
            )
        )
        df = df.loc[~bad_rep].copy()
    df["is_repeat"] = df["is_repeat"].astype(int)
    for c in CALLS:
        df[c] = _binary(df, c, src, issues) if c in df.columns else float("nan")
    df["read_no"] = (
        _to_numeric(df, "read_no", src, issues) if "read_no" in df.columns else float("nan")
    )
    unknown = ~df["status"].isin(STATUSES)
    if unknown.any():
        vals = ", ".join(sorted({repr(v) for v in df.loc[unknown, "status"]})[:3])
        issues.append(
            make_issue(
                src,
                "bad-status",
                f"{int(unknown.sum())} read(s) with an unknown status ({vals}); "
                "treated as not submitted",
                (f"row {r}" for r in df.loc[unknown, "row"]),
            )
        )
    pending = df["status"] != "submitted"
    if pending.any():
        issues.append(
            make_issue(
                src,
                "not-submitted",
                f"{int(pending.sum())} read(s) not submitted; excluded from every statistic",
                (
                    f"{r} / {c}"
                    for r, c in zip(
                        df.loc[pending, "reader"], df.loc[pending, "case_id"], strict=True
                    )
                ),
            )
        )
    sub = df["status"] == "submitted"
    no_call = sub & df["als_consistent"].isna()
    if no_call.any():
        issues.append(
            make_issue(
                src,
                "no-call",
                f"{int(no_call.sum())} submitted read(s) without an als_consistent call; "
                "excluded from accuracy and κ",
                (f"row {r}" for r in df.loc[no_call, "row"]),
            )
        )
    # Two submitted first reads of one case by one reader: keep the earliest, report.
    first = df.loc[sub & (df["is_repeat"] == 0)].sort_values(["read_no", "row"])
    dup = first.duplicated(["reader", "case_id"], keep="first")
    if dup.any():
        issues.append(
            make_issue(
                src,
                "duplicate-first-read",
                f"{int(dup.sum())} extra first read(s) of a case by the same reader; "
                "the earliest (lowest read_no) is used",
                (
                    f"{r} / {c}"
                    for r, c in zip(
                        first.loc[dup, "reader"], first.loc[dup, "case_id"], strict=True
                    )
                ),
            )
        )
        df = df.drop(index=first.index[dup.to_numpy()])
    cols = ["reader", "case_id", "pseudonym", "is_repeat", "status", "read_no", *CALLS, "row"]
    return pd.DataFrame(df[cols]).reset_index(drop=True)


# --------------------------------------------------------------------------- clinical
def read_clinical(path: str | Path, issues: list[DataIssue]) -> pd.DataFrame:
    """Read ``clinical.csv`` (one row per case) and derive the disease progression rate.

    ``group`` is compared case-insensitively after trimming spaces. Values outside a
    column's valid range (``alsfrs_r`` 0–48, ``umn_score`` 0–33, limb UMN scores 0–8,
    ``mrc`` 0–130, ``disease_duration_months`` > 0) are treated as missing and reported.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``case_id``; see :attr:`StudyData.clinical`. ``dpr`` is
        (48 − ALSFRS-R) / disease duration in months, for patients only.

    Raises
    ------
    M1Error
        Unreadable file or missing ``case_id``/``group`` column.
    """
    import numpy as np
    import pandas as pd

    src = Path(path).name
    df, _ = _read_csv(
        path,
        required=("case_id", "group"),
        text=("case_id", "group"),
        numeric=CLINICAL_NUMERIC,
    )
    if df.empty:
        raise M1Error(f"{src}: no cases (only a header row)")
    no_id = df["case_id"] == ""
    if no_id.any():
        issues.append(
            make_issue(
                src,
                "no-case-id",
                f"{int(no_id.sum())} row(s) without case_id; excluded",
                (f"row {r}" for r in df.loc[no_id, "row"]),
            )
        )
        df = df.loc[~no_id].copy()
    grp = map_text(df["group"], str.lower)
    bad = ~grp.isin(["als", "control"])
    if bad.any():
        issues.append(
            make_issue(
                src,
                "bad-group",
                f"{int(bad.sum())} case(s) with a group other than 'als' or 'control'; excluded",
                (
                    f"{c} (row {r}: {g!r})"
                    for c, r, g in zip(
                        df.loc[bad, "case_id"],
                        df.loc[bad, "row"],
                        df.loc[bad, "group"],
                        strict=True,
                    )
                ),
            )
        )
    df["group"] = grp
    df = df.loc[~bad].copy()
    for col, (lo, hi) in CLINICAL_NUMERIC.items():
        if col not in df.columns:
            df[col] = np.nan
            continue
        vals = _to_numeric(df, col, src, issues)
        out = pd.Series(False, index=df.index)
        if lo is not None:
            out |= vals < lo
        if hi is not None:
            out |= vals > hi
        if col == "disease_duration_months":
            out |= vals <= 0
        if out.any():
            rng = "> 0" if col == "disease_duration_months" else f"{lo:g}–{hi:g}"
            issues.append(
                make_issue(
                    src,
                    "out-of-range",
                    f"{int(out.sum())} value(s) of '{col}' outside {rng}; treated as missing",
                    (
                        f"{c} ({v:g})"
                        for c, v in zip(df.loc[out, "case_id"], vals[out], strict=True)
                    ),
                )
            )
            vals = vals.where(~out)
        df[col] = vals
    dup = df.duplicated("case_id", keep=False)
    if dup.any():
        cols = ["group", *CLINICAL_NUMERIC]
        same = df.loc[dup].groupby("case_id")[cols].nunique(dropna=False).le(1).all(axis=1)
        conflicting = set(same.index[~same])
        issues.append(
            make_issue(
                src,
                "duplicate-case",
                f"{int(same.size)} case_id(s) appear more than once: identical rows merged, "
                f"{len(conflicting)} with conflicting values excluded",
                sorted(same.index),
            )
        )
        df = df.loc[~df["case_id"].isin(conflicting)].drop_duplicates("case_id")
    df = df.set_index("case_id")
    df["dpr"] = _dpr(df, src, issues)
    return pd.DataFrame(df[["group", *CLINICAL_NUMERIC, "dpr"]])


def _dpr(clinical: pd.DataFrame, src: str, issues: list[DataIssue]) -> pd.Series:
    dpr = disease_progression_rate(clinical["alsfrs_r"], clinical["disease_duration_months"])
    pat = clinical["group"] == "als"
    dpr = dpr.where(pat)
    blank = pat & dpr.isna()
    if blank.any():
        issues.append(
            make_issue(
                src,
                "dpr-blank",
                f"DPR blank for {int(blank.sum())} patient(s): ALSFRS-R or disease duration "
                "missing (or duration ≤ 0)",
                clinical.index[blank],
            )
        )
    return dpr


# --------------------------------------------------------------------------- together
def load_study(
    readings: str | Path,
    clinical: str | Path,
    measurements: str | Path | None = None,
    *,
    echo: int | None = None,
) -> StudyData:
    """Read and cross-check the report's inputs.

    Parameters
    ----------
    readings, clinical : str or Path
        Unblinded readings and clinical CSVs.
    measurements : str or Path, optional
        Measurements CSV; without it the thickness/SI statistics are left out.
    echo : int, optional
        GRE echo for ``normalised_si`` (default: the last echo in the file).

    Returns
    -------
    StudyData

    Raises
    ------
    M1Error
        When a file is unusable (see the individual readers).
    """
    issues: list[DataIssue] = []
    rd = read_readings(readings, issues)
    cl = read_clinical(clinical, issues)
    rsrc, csrc = Path(readings).name, Path(clinical).name
    sub = rd.loc[rd["status"] == "submitted"]
    no_clin = sorted(set(sub["case_id"].unique()) - set(cl.index))
    if no_clin:
        issues.append(
            make_issue(
                rsrc,
                "no-clinical-row",
                f"{len(no_clin)} read case(s) have no usable row in {csrc}; "
                "excluded from accuracy and group statistics (kept for reader agreement)",
                no_clin,
            )
        )
    unread = sorted(set(cl.index) - set(sub["case_id"].unique()))
    if unread:
        issues.append(
            make_issue(
                csrc,
                "never-read",
                f"{len(unread)} clinical case(s) have no submitted read",
                unread,
                severity="note",
            )
        )
    data = StudyData(
        readings=rd,
        clinical=cl,
        issues=issues,
        sources={"readings": Path(readings), "clinical": Path(clinical)},
    )
    if measurements is not None:
        slots, data.echo, data.te_ms = read_measurements(measurements, rd, issues, echo=echo)
        data.slots = slots
        data.sources["measurements"] = Path(measurements)
        msrc = Path(measurements).name
        no_clin_m = sorted(set(slots["case_id"].unique()) - set(cl.index))
        if no_clin_m:
            issues.append(
                make_issue(
                    msrc,
                    "no-clinical-row",
                    f"{len(no_clin_m)} measured case(s) have no usable row in {csrc}; "
                    "excluded from group statistics (kept for ICC)",
                    no_clin_m,
                )
            )
    log.info("loaded %d reads, %d clinical cases, %d issues", len(rd), len(cl), len(issues))
    return data
