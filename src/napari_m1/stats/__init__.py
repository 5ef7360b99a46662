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

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it. Imported on first use (PEP 562), so that
#: ``napari-m1`` can register the ``report`` command without loading the statistics.
_LAZY = {
    "IccResult": "._agreement",
    "cohen_kappa": "._agreement",
    "fleiss_kappa_ci": "._agreement",
    "icc": "._agreement",
    "StudyResults": "._compute",
    "compute_study": "._compute",
    "DataIssue": "._data",
    "StudyData": "._data",
    "disease_progression_rate": "._data",
    "diagnostic_accuracy": "._groups",
    "mann_whitney": "._groups",
    "spearman": "._groups",
    "wilson_interval": "._groups",
    "load_study": "._read",
    "ReportResult": "._report",
    "build_report": "._report",
}

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
