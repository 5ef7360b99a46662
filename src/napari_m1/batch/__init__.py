"""Cohort batch: re-measure (and reconstruct) a whole study without a reader (no Qt).

See docs/batch.md. :func:`plan_from_cases_csv` / :func:`plan_from_study` make the
tasks, :func:`run_batch` runs them in this process or on dask.distributed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

# Public names, imported on first use (napari_m1._lazy): the CLI registers its
# commands without loading the package.
__getattr__, __dir__ = attach(
    __name__,
    {
        "._plan": ["STEPS", "plan_from_bids", "plan_from_cases_csv", "plan_from_study"],
        "._run": ["BatchResult", "run_batch"],
    },
)

if TYPE_CHECKING:
    from ._plan import STEPS, plan_from_bids, plan_from_cases_csv, plan_from_study
    from ._run import BatchResult, run_batch

__all__ = [
    "STEPS",
    "BatchResult",
    "plan_from_bids",
    "plan_from_cases_csv",
    "plan_from_study",
    "run_batch",
]
