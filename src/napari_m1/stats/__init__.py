"""Reader statistics and the study report (``napari-m1 report``).

Pure computation: numpy, pandas, ``scipy.special`` and matplotlib (Agg canvas);
nothing here imports Qt or napari. Heavy libraries are imported inside the functions
that need them, so importing this package is cheap; the report command imports
neither statsmodels nor ``scipy.stats`` (see docs/report.md, "Methods"). One concept
per module — see the code map in docs/report.md.

Typical use::

    from napari_m1.stats import build_report

    result = build_report("unblinded.csv", "clinical.csv", "report/",
                          measurements="measurements.csv")
    print(result.summary())
"""

from __future__ import annotations

from ._agreement import IccResult, cohen_kappa, fleiss_kappa_ci, icc
from ._compute import StudyResults, compute_study
from ._data import DataIssue, StudyData, disease_progression_rate
from ._groups import diagnostic_accuracy, mann_whitney, spearman, wilson_interval
from ._read import load_study
from ._report import ReportResult, build_report

__all__ = [
    "DataIssue",
    "IccResult",
    "ReportResult",
    "StudyData",
    "StudyResults",
    "build_report",
    "cohen_kappa",
    "compute_study",
    "diagnostic_accuracy",
    "disease_progression_rate",
    "fleiss_kappa_ci",
    "icc",
    "load_study",
    "mann_whitney",
    "spearman",
    "wilson_interval",
]
