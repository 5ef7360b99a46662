"""Study data and the constants every part of the report shares.

The validated inputs (:class:`StudyData`), the data issues collected while reading
and computing (:class:`DataIssue`), the reader's calls, the clinical columns, and the
few derived tables that several analyses use (first reads, per-subject values).
The Penfield areas come from :data:`napari_m1.protocol.PENFIELD_AREAS`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..formats import MEASUREMENT_SCHEMA as MEASUREMENTS_SCHEMA
from ..formats import READINGS_SCHEMA
from ..protocol import PENFIELD_AREAS

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike

__all__ = [
    "ALPHA",
    "AREA_ORDER",
    "CALLS",
    "CLINICAL_NUMERIC",
    "IMAGING",
    "MEASUREMENTS_SCHEMA",
    "POOLED",
    "READINGS_SCHEMA",
    "DataIssue",
    "Notes",
    "StudyData",
    "disease_progression_rate",
    "first_reads",
    "make_issue",
    "per_subject_values",
    "reader_order",
]


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
#: The Penfield areas of M1 (:data:`napari_m1.protocol.PENFIELD_AREAS`) in the report's
#: display order, face to foot (lateral to medial). Only these enter the per-subject means:
#: the protocol's other regions (precuneus reference, whole-M1 and precentral control
#: ROIs) are not used.
AREA_ORDER: tuple[str, ...] = tuple(reversed(PENFIELD_AREAS))
STATUSES = ("submitted", "in_progress", "not_started")
MAX_LISTED = 200  # items kept per issue (the count is always exact)
ALPHA = 0.05
POOLED = "pooled"
#: Per-subject imaging variables (``thickness_mm`` in mm; ``normalised_si`` unitless).
IMAGING = ("thickness_mm", "normalised_si")

# Codes of analysis notes (why a statistic is blank), collected by :class:`Notes`.
NOTE_SINGLE_CLASS = "single-class"
NOTE_CONSTANT = "constant"
NOTE_SMALL_N = "small-n"
NOTE_UNDEFINED = "zero-denominator"


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

    def listed(self, limit: int = 10) -> str:
        """The affected items on one line: ``"K001, K002, … (+3 more)"``; "" when none.

        Control characters in user text (case ids, reader ids) are shown escaped, so a
        line stays one line on a terminal.
        """
        shown = ", ".join(_printable(i) for i in self.items[:limit])
        more = max(self.count, len(self.items)) - min(limit, len(self.items))
        return shown + (f", … (+{more} more)" if more > 0 and shown else "")

    def one_line(self, limit: int = 10) -> str:
        """``source: message [affected: items]`` for the command line."""
        items = self.listed(limit)
        return f"{self}" + (f" [affected: {items}]" if items else "")


def _printable(text: str) -> str:
    return text if text.isprintable() else repr(text)[1:-1]


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


def reader_order(readers: Iterable[str]) -> list[str]:
    """Reader ids in natural order (``R2`` before ``R10``)."""
    import re

    def key(r: str) -> tuple:
        return tuple(
            (0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(r)) if t
        )

    return sorted(set(readers), key=key)


def disease_progression_rate(alsfrs_r: ArrayLike, duration_months: ArrayLike) -> Any:
    """Disease progression rate, ALSFRS-R points lost per month since symptom onset.

    ``DPR = (48 − ALSFRS-R) / disease duration``. Blank (NaN) where either input is
    missing or the duration is not > 0.

    Parameters
    ----------
    alsfrs_r : array_like
        Revised ALS functional rating scale, points (0–48).
    duration_months : array_like
        Disease duration, months (> 0).

    Returns
    -------
    pandas.Series or numpy.ndarray
        Points per month; a Series (same index) when ``alsfrs_r`` is one.
    """
    import numpy as np
    import pandas as pd

    a = np.asarray(alsfrs_r, dtype=float)
    d = np.asarray(duration_months, dtype=float)
    ok = np.isfinite(a) & np.isfinite(d) & (d > 0)
    out = np.full(np.broadcast(a, d).shape, np.nan)
    np.divide(48.0 - a, d, out=out, where=ok)
    if isinstance(alsfrs_r, pd.Series):
        return pd.Series(out, index=alsfrs_r.index, name="dpr")
    return out


def first_reads(readings: pd.DataFrame) -> pd.DataFrame:
    """Submitted first reads (``is_repeat == 0``), one per reader × case."""
    sel = (readings["status"] == "submitted") & (readings["is_repeat"] == 0)
    return readings.loc[sel]


def per_subject_values(slots: pd.DataFrame, clinical: pd.DataFrame) -> pd.DataFrame:
    """Per-reader and pooled per-subject thickness and normalised SI.

    A reader's per-subject value is the mean over the Penfield areas × hemispheres
    that reader measured (``n_*_slots`` says how many); the pooled value is the mean
    over readers of those per-reader values (``n_readers``).

    Parameters
    ----------
    slots : pandas.DataFrame
        :attr:`StudyData.slots`.
    clinical : pandas.DataFrame
        :attr:`StudyData.clinical` (for ``group``; blank when the case has no row).

    Returns
    -------
    pandas.DataFrame
        Columns ``reader`` (reader id or ``pooled``), ``case_id``, ``group``,
        ``thickness_mm``, ``n_thickness_slots``, ``normalised_si``, ``n_si_slots``,
        ``n_readers``.
    """
    import pandas as pd

    g = slots.groupby(["reader", "case_id"], sort=True)
    per = pd.DataFrame(
        {
            "thickness_mm": g["thickness_mm"].mean(),
            "n_thickness_slots": g["thickness_mm"].count(),
            "normalised_si": g["normalised_si"].mean(),
            "n_si_slots": g["normalised_si"].count(),
        }
    ).reset_index()
    per["n_readers"] = 1
    gp = per.groupby("case_id", sort=True)
    pooled = pd.DataFrame(
        {
            "thickness_mm": gp["thickness_mm"].mean(),
            "n_thickness_slots": gp["n_thickness_slots"].sum(),
            "normalised_si": gp["normalised_si"].mean(),
            "n_si_slots": gp["n_si_slots"].sum(),
            "n_readers": gp["thickness_mm"].count().combine(gp["normalised_si"].count(), max),
        }
    ).reset_index()
    pooled.insert(0, "reader", POOLED)
    out = pd.concat([per, pooled], ignore_index=True)
    out.insert(2, "group", out["case_id"].map(clinical["group"]).fillna("").astype(str))
    return out


class Notes:
    """Collects analysis notes (undefined κ/ρ, small n) into a few DataIssues."""

    LABELS: ClassVar[dict[str, str]] = {
        NOTE_SINGLE_CLASS: "κ undefined (a reader used a single class) for {n} comparison(s)",
        NOTE_CONSTANT: "statistic undefined (constant values) for {n} test(s)",
        NOTE_SMALL_N: "not computed (n too small) for {n} test(s)",
        NOTE_UNDEFINED: "accuracy metric(s) undefined (zero denominator) for {n} reader(s)",
    }

    def __init__(self) -> None:
        self.items: dict[str, list[str]] = defaultdict(list)

    def add(self, code: str, item: str) -> None:
        if code:
            self.items[code].append(item)

    def extend(self, other: Notes) -> None:
        """Add ``other``'s items after these (as if they had been added here)."""
        for code, items in other.items.items():
            self.items[code].extend(items)

    def issues(self) -> list[DataIssue]:
        return [
            make_issue("analysis", code, self.LABELS[code].format(n=len(items)), items)
            for code, items in self.items.items()
        ]
