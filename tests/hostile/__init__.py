"""The hostile inputs of ``test_hostile.py``, grouped by what they damage.

Importing the package registers every input in :data:`INPUTS` (see ``_base``).
"""

from . import annotations, cases, dicom, tables  # noqa: F401  (they register their inputs)
from ._base import INPUTS, Hostile, Work, write_base

__all__ = ["INPUTS", "Hostile", "Work", "write_base"]
