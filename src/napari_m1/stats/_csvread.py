"""Reading the report's CSV files: header checks, one-line errors, text and number cells.

Problems that make a file unusable (missing file, wrong encoding, malformed CSV,
missing required column, unknown schema version) raise
:class:`napari_m1.errors.M1Error` with a one-line message that names the file and,
where known, the row or line. Row numbers in messages are spreadsheet rows: the
header is row 1, the first data row is row 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import M1Error
from ..formats import restore_cell
from ._data import DataIssue, make_issue

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["map_text", "raw_names"]


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

    Text cells are stripped of surrounding spaces, lose the apostrophe that
    :func:`napari_m1.formats.neutralise_cell` put before a formula, and are then passed
    through ``transform[column]`` if given (e.g. ``str.lower``).

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
        fn = transform.get(c) or (lambda v: v)
        df[c] = map_text(
            df[c],
            # A leading ' that napari-m1 added against formula injection comes off.
            lambda v, fn=fn: fn(restore_cell(v.strip()).strip()),
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
        shown = str(found[0])[:60]  # a 200 kB cell must not become a 200 kB message
        raise M1Error(f"{path.name}: schema {shown!r} is not supported (expected {expected!r})")


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
