"""The study statistics, computed together: the orchestrator of the report's tables.

The statistics live by concept: :mod:`._groups` (diagnostic accuracy, Mann–Whitney,
Spearman), :mod:`._agreement` (Cohen's and Fleiss' κ, ICC); the shared data and
constants in :mod:`._data`. Every reason a statistic is blank is also collected as a
:class:`~napari_m1.stats._data.DataIssue` (source ``analysis``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._agreement import agreement_table
from ._data import (
    NOTE_UNDEFINED,
    DataIssue,
    Notes,
    StudyData,
    first_reads,
    per_subject_values,
    reader_order,
)
from ._groups import correlation_table, diagnostic_accuracy, group_comparison_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["StudyResults", "compute_study"]


@dataclass
class StudyResults:
    """Every table of the report, plus the inputs the figures need.

    Attributes
    ----------
    data : StudyData
        The validated inputs.
    subjects : pandas.DataFrame
        The clinical table with ``dpr`` (``tables/subjects.csv``).
    calls : pandas.DataFrame
        First reads with a valid clinical group: ``reader``, ``case_id``,
        ``als_consistent``, ``group``.
    per_subject : pandas.DataFrame or None
        :func:`per_subject_values` (``tables/per_subject.csv``).
    diagnostic_accuracy, agreement, group_comparisons, correlations : pandas.DataFrame
        The tables of the same names.
    issues : list of DataIssue
        Input issues followed by analysis issues.
    """

    data: StudyData
    subjects: pd.DataFrame
    calls: pd.DataFrame
    per_subject: pd.DataFrame | None
    diagnostic_accuracy: pd.DataFrame
    agreement: pd.DataFrame
    group_comparisons: pd.DataFrame
    correlations: pd.DataFrame
    issues: list[DataIssue] = field(default_factory=list)

    @property
    def readers(self) -> list[str]:
        """Reader ids with at least one submitted first read, sorted."""
        return reader_order(first_reads(self.data.readings)["reader"].unique())


def compute_study(
    data: StudyData,
    *,
    on_partial: Callable[[StudyResults, frozenset[str]], None] | None = None,
) -> StudyResults:
    """Compute every table of the report from validated inputs.

    Parameters
    ----------
    data : StudyData
        From :func:`napari_m1.stats.load_study`.
    on_partial : callable, optional
        ``on_partial(results, final)`` is called twice on the way, with the results so
        far and the names of their tables that are final: first ``per_subject`` and
        ``diagnostic_accuracy``, then also ``group_comparisons`` and ``correlations``
        (all but ``agreement``, the slowest: κ bootstrap CIs and ICCs). Tables not
        final are empty, ``issues`` is filled at the end. The report draws its figures
        from them meanwhile. The returned results are the same with or without it.

    Returns
    -------
    StudyResults
    """
    import pandas as pd

    notes = Notes()
    fr = first_reads(data.readings)
    calls = fr.loc[
        fr["case_id"].isin(data.clinical.index), ["reader", "case_id", "als_consistent"]
    ].copy()
    calls["group"] = calls["case_id"].map(data.clinical["group"])
    per = per_subject_values(data.slots, data.clinical) if data.slots is not None else None
    acc = diagnostic_accuracy(calls)
    for _, row in acc.loc[acc["note"] != ""].iterrows():
        if "undefined" in row["note"]:
            notes.add(NOTE_UNDEFINED, f"{row['reader']}: {row['note']}")
    res = StudyResults(
        data=data,
        subjects=data.clinical.reset_index(),
        calls=calls.reset_index(drop=True),
        per_subject=per,
        diagnostic_accuracy=acc,
        agreement=pd.DataFrame(),
        group_comparisons=pd.DataFrame(),
        correlations=pd.DataFrame(),
    )
    final = {"subjects", "per_subject", "diagnostic_accuracy"}
    if on_partial is not None:
        on_partial(res, frozenset(final))
    with warnings.catch_warnings():
        # Degenerate cases are caught before calling scipy/statsmodels; anything left is
        # reported through the tables' notes rather than as console noise.
        warnings.simplefilter("ignore", RuntimeWarning)
        later = Notes()  # merged after the agreement notes: the order of computing them
        res.group_comparisons = group_comparison_table(calls, data.clinical, per, later)
        res.correlations = correlation_table(data.clinical, per, data.slots, later)
        final |= {"group_comparisons", "correlations"}
        if on_partial is not None:
            on_partial(res, frozenset(final))
        res.agreement = agreement_table(data.readings, per, notes)
    notes.extend(later)
    res.issues = [*data.issues, *notes.issues()]
    return res
