"""Read and validate the report's three input CSVs into pandas DataFrames.

Every problem that does not make a file unusable becomes a :class:`DataIssue`
(the affected rows or cases are listed and, where needed, excluded from the
statistics that cannot use them). Problems that do make a file unusable
(missing file, wrong encoding, malformed CSV, missing required column, unknown
schema version) raise :class:`napari_m1.errors.M1Error` with a one-line message
that names the file and, where known, the row or line.

Row numbers in messages are spreadsheet rows: the header is row 1, the first
data row is row 2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import M1Error
from ..formats import MEASUREMENT_SCHEMA as MEASUREMENTS_SCHEMA
from ..formats import READINGS_SCHEMA

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CALLS",
    "CLINICAL_NUMERIC",
    "PENFIELD_AREAS",
    "DataIssue",
    "StudyData",
    "load_study",
    "read_clinical",
    "read_measurements",
    "read_readings",
]

log = logging.getLogger(__name__)


#: The reader's binary calls in readings.csv (0/1).
CALLS = ("als_consistent", "hypointensity", "thinning")
#: Optional numeric clinical columns with their valid closed ranges (None = open end).
CLINICAL_NUMERIC: dict[str, tuple[float | None, float | None]] = {
    "alsfrs_r": (0, 48),
    "disease_duration_months": (None, None),  # > 0 checked separately
    "umn_score": (0, 33),
    "umn_arm_left": (0, 8),
    "umn_arm_right": (0, 8),
    "umn_leg_left": (0, 8),
    "umn_leg_right": (0, 8),
    "mrc": (0, 130),
}
#: Penfield areas of M1 that enter the per-subject means (the protocol's other regions —
#: the precuneus reference, whole-M1 and precentral control ROIs — are not used).
PENFIELD_AREAS = ("face", "hand", "leg", "foot")
STATUSES = ("submitted", "in_progress", "not_started")
MAX_LISTED = 200  # items kept per issue (the count is always exact)


@dataclass(frozen=True)
class DataIssue:
    """One problem in the input data that the report works around and reports.

    ``severity`` is ``issue`` (data were excluded, blanked or a statistic could not be
    computed) or ``note`` (expected in a normal study and only stated for completeness,
    e.g. measurements made on hidden repeat reads). Only issues are counted in the
    command's summary.

    Attributes
    ----------
    source : str
        The file (``readings.csv``, ``clinical.csv``, ``measurements.csv``) or
        ``analysis`` for problems found while computing.
    kind : str
        A short stable code, e.g. ``no-clinical-row``, ``bad-group``, ``kappa-undefined``.
    message : str
        One line for people, including the count.
    items : tuple of str
        The affected cases, rows or readers (at most ``MAX_LISTED``).
    count : int
        How many items are affected (may exceed ``len(items)``).
    severity : str
        ``issue`` or ``note``.
    """

    source: str
    kind: str
    message: str
    items: tuple[str, ...] = ()
    count: int = 0
    severity: str = "issue"

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


def make_issue(
    source: str,
    kind: str,
    message: str,
    items: Iterable[object] = (),
    *,
    severity: str = "issue",
) -> DataIssue:
    """A :class:`DataIssue` with ``items`` stringified, de-duplicated in order and counted."""
    seen = list(dict.fromkeys(str(i) for i in items))
    return DataIssue(source, kind, message, tuple(seen[:MAX_LISTED]), len(seen), severity)


@dataclass
class StudyData:
    """The validated inputs of a report.

    Attributes
    ----------
    readings : pandas.DataFrame
        One row per usable read: ``reader``, ``case_id``, ``pseudonym``, ``is_repeat`` (0/1),
        ``status`` (lower case), ``read_no``, the calls ``als_consistent``,
        ``hypointensity``, ``thinning`` (float 0.0/1.0, NaN when missing) and ``row``
        (spreadsheet row in the file).
    clinical : pandas.DataFrame
        Indexed by ``case_id``: ``group`` (``als``/``control``), every clinical numeric
        column of :data:`CLINICAL_NUMERIC` (float, NaN when unknown or invalid) and
        ``dpr`` (ALSFRS-R points lost per month; patients only).
    slots : pandas.DataFrame or None
        Measurements averaged per reader × case × Penfield area × hemisphere:
        ``reader``, ``case_id``, ``region``, ``hemisphere``, ``thickness_mm`` (caliper
        length in the slice plane, mm) and ``normalised_si`` (GRE ROI mean divided by
        the reference-ROI mean at the chosen echo; unitless). None without measurements.
    echo : int or None
        The 1-based GRE echo used for ``normalised_si``.
    te_ms : float or None
        Its echo time in ms when the measurements file gives it.
    issues : list of DataIssue
        Everything that was excluded, blanked or could not be computed.
    sources : dict
        ``readings``/``clinical``/``measurements`` -> the file path that was read.
    """

    readings: pd.DataFrame
    clinical: pd.DataFrame
    slots: pd.DataFrame | None = None
    echo: int | None = None
    te_ms: float | None = None
    issues: list[DataIssue] = field(default_factory=list)
    sources: dict[str, Path] = field(default_factory=dict)


# --------------------------------------------------------------------------- CSV reading
def _decode_error_message(path: Path, exc: UnicodeDecodeError) -> str:
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as e:  # the exact file offset (pandas' is per chunk)
        line = data.count(b"\n", 0, e.start) + 1
        bad = data[e.start : e.start + 1].hex()
        return (
            f"{path.name}: not UTF-8 text (byte 0x{bad} on line {line}); "
            "save the file as 'CSV UTF-8'"
        )
    return f"{path.name}: not UTF-8 text ({exc.reason}); save the file as 'CSV UTF-8'"


def _read_header(path: Path) -> list[str]:
    import csv

    if not path.exists():
        raise M1Error(f"{path.name}: file not found ({path})")
    if not path.is_file():
        raise M1Error(f"{path.name}: not a file ({path})")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            first = next(csv.reader(fh), None)
    except UnicodeDecodeError as exc:
        raise M1Error(_decode_error_message(path, exc)) from None
    except csv.Error as exc:
        raise M1Error(f"{path.name}: malformed CSV header ({exc})") from None
    except OSError as exc:
        raise M1Error(f"{path.name}: cannot read ({exc.strerror or exc})") from None
    if not first or not any(c.strip() for c in first):
        raise M1Error(f"{path.name}: empty file (expected a header row)")
    return [c.strip() for c in first]


def _read_csv(
    path: str | Path,
    *,
    required: Sequence[str],
    text: Sequence[str],
    numeric: Sequence[str],
    any_of: Sequence[str] = (),
    transform: dict[str, Callable[[str], str]] | None = None,
    categorical: bool = False,
    strict: bool = True,
) -> tuple[pd.DataFrame, Path]:
    """Read the needed columns of a CSV; text columns as str ("" when empty).

    With ``categorical=True`` text columns stay pandas categoricals (big files).
    ``strict=False`` parses only the needed columns (3x faster on a large
    measurements file), at the price that pandas then does not notice a row with
    more cells than the header.

    Text cells are stripped of surrounding spaces and then passed through
    ``transform[column]`` if given (e.g. ``str.lower``).

    Numeric columns are returned as parsed by pandas (possibly str when a cell is not
    a number): see :func:`_to_numeric`.
    """
    import pandas as pd

    path = Path(path)
    header = _read_header(path)
    missing = [c for c in required if c not in header]
    if any_of and not any(c in header for c in any_of):
        missing.append(" or ".join(any_of))
    if missing:
        hint = ""
        if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            hint = "; the file looks semicolon- or tab-separated, expected commas"
        found = ", ".join(header[:12]) + (", …" if len(header) > 12 else "")
        raise M1Error(
            f"{path.name}: missing required column(s) {', '.join(missing)} (found: {found}){hint}"
        )
    wanted = set(dict.fromkeys([*required, *any_of, *text, *numeric]))
    text_present = [c for c in text if c in header]
    try:
        df = pd.read_csv(
            path,
            encoding="utf-8-sig",
            usecols=None if strict else (lambda c: c.strip() in wanted),
            # category: fast to parse and to clean (only the distinct values are touched)
            dtype={c: "category" for c in raw_names(path, header, text_present)},
            keep_default_na=False,
            na_values=[""],
        )
    except UnicodeDecodeError as exc:
        raise M1Error(_decode_error_message(path, exc)) from None
    except pd.errors.EmptyDataError:
        raise M1Error(f"{path.name}: empty file (expected a header row)") from None
    except (pd.errors.ParserError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        msg = msg.replace("Error tokenizing data. C error: ", "")
        raise M1Error(f"{path.name}: malformed CSV: {msg}") from None
    except OSError as exc:
        raise M1Error(f"{path.name}: cannot read ({exc.strerror or exc})") from None
    df.columns = [c.strip() for c in df.columns]
    if strict:
        df = df.loc[:, [c for c in dict.fromkeys(df.columns) if c in wanted]]
    transform = transform or {}
    for c in text_present:
        fn = transform.get(c)
        df[c] = map_text(
            df[c],
            str.strip if fn is None else (lambda v, fn=fn: fn(v.strip())),
            categorical=categorical,
        )
    df["row"] = df.index.to_numpy() + 2
    return df, path


def raw_names(path: Path, header: Sequence[str], names: Sequence[str]) -> list[str]:
    """The header's original spelling (with any surrounding spaces) of ``names``."""
    import csv

    with open(path, encoding="utf-8-sig", newline="") as fh:
        raw = next(csv.reader(fh))
    return [r for r, h in zip(raw, header, strict=False) if h in names]


def map_text(s: pd.Series, fn: Callable[[str], str], *, categorical: bool = False) -> pd.Series:
    """Apply ``fn`` to every distinct value of a text column; missing -> "".

    Works on the distinct values only (categorical codes), so it costs next to nothing
    on a half-million-row measurements file. Returns str, or categorical with
    ``categorical=True``.
    """
    import numpy as np
    import pandas as pd

    cat = s if isinstance(s.dtype, pd.CategoricalDtype) else s.astype("category")
    mapped = np.array([fn(str(v)) for v in cat.cat.categories] + [""], dtype=object)
    uniq, inv = np.unique(mapped, return_inverse=True)
    codes = inv[cat.cat.codes.to_numpy()]  # code -1 (missing) -> the appended ""
    if categorical:
        return pd.Series(pd.Categorical.from_codes(codes, categories=uniq), index=s.index)
    return pd.Series(uniq[codes], index=s.index).astype(str)


def _to_numeric(
    df: pd.DataFrame, col: str, source: str, issues: list[DataIssue], *, what: str = "a number"
) -> pd.Series:
    """``df[col]`` as float; cells that are not finite numbers become NaN and an issue."""
    import numpy as np
    import pandas as pd

    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce").astype(float)
    bad = raw.notna() & ~np.isfinite(vals.to_numpy())
    if bad.any():
        rows = df.loc[bad, "row"]
        examples = ", ".join(sorted({repr(str(v)) for v in raw[bad]})[:3])
        issues.append(
            make_issue(
                source,
                "not-a-number",
                f"{int(bad.sum())} cell(s) of '{col}' are not {what} ({examples}); "
                "treated as missing",
                (f"row {r}" for r in rows),
            )
        )
        vals = vals.where(~bad)
    return vals


def _check_schema(df: pd.DataFrame, expected: str, path: Path) -> None:
    if "schema" not in df.columns:
        return
    found = sorted(set(df["schema"].unique()) - {"", expected})
    if found:
        raise M1Error(f"{path.name}: schema {found[0]!r} is not supported (expected {expected!r})")


def _binary(df: pd.DataFrame, col: str, source: str, issues: list[DataIssue]) -> pd.Series:
    vals = _to_numeric(df, col, source, issues, what="0 or 1")
    bad = vals.notna() & ~vals.isin([0.0, 1.0])
    if bad.any():
        issues.append(
            make_issue(
                source,
                "not-binary",
                f"{int(bad.sum())} value(s) of '{col}' are not 0 or 1; treated as missing",
                (f"row {r}" for r in df.loc[bad, "row"]),
            )
        )
        vals = vals.where(~bad)
    return vals


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
    from ._compute import disease_progression_rate

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
    df = df.loc[df["region"].isin(PENFIELD_AREAS)]
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
