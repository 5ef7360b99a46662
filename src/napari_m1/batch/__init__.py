"""Cohort batch: re-measure (and reconstruct) a whole study without a reader (no Qt).

See docs/batch.md. :func:`plan_from_cases_csv` / :func:`plan_from_study` make the
tasks, :func:`run_batch` runs them in this process or on dask.distributed.
"""

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
