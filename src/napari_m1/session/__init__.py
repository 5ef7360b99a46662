"""Blinded multi-reader studies (no Qt, no napari).

By role:

- the reader's side — :class:`ReaderSession` (one reader's own reads, by pseudonym),
  :class:`LockedError`, :class:`ActiveTimer`, and :class:`ReaderController`, the
  Qt-free logic of the Reader session dock;
- the coordinator's side — :func:`create_study`, :class:`Study` (unlock, export,
  unblind, verify; needs the study's coordinator key);
- shared — the database (:mod:`._db`, one module per role for its SQL), blinding
  helpers (:class:`Redactor`, :func:`blind_case`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

# Public names, imported on first use (napari_m1._lazy): the CLI registers its
# commands without loading the package.
__getattr__, __dir__ = attach(
    __name__,
    {
        "._annotation_store": ["SessionAnnotationStore"],
        "._blind": ["Redactor", "blind_case", "identifying_tokens"],
        "._common": ["ANSWER_FIELDS", "DEFAULT_SETTINGS", "INCOMPLETE_CHOICES"],
        "._controller": ["ReaderController", "ReaderView", "SubmitCheck"],
        "._coordinator": ["MeasurementsExport", "Study"],
        "._db": ["SCHEMA_VERSION", "StoreUnavailableError"],
        "._reader": ["ActiveTimer", "LockedError", "ReaderSession", "ReadInfo"],
        "._setup": ["create_study", "read_cases_csv"],
        "._verify": ["VerifyResult"],
    },
)

if TYPE_CHECKING:
    from ._annotation_store import SessionAnnotationStore
    from ._blind import Redactor, blind_case, identifying_tokens
    from ._common import ANSWER_FIELDS, DEFAULT_SETTINGS, INCOMPLETE_CHOICES
    from ._controller import ReaderController, ReaderView, SubmitCheck
    from ._coordinator import MeasurementsExport, Study
    from ._db import SCHEMA_VERSION, StoreUnavailableError
    from ._reader import ActiveTimer, LockedError, ReaderSession, ReadInfo
    from ._setup import create_study, read_cases_csv
    from ._verify import VerifyResult

__all__ = [
    "ANSWER_FIELDS",
    "DEFAULT_SETTINGS",
    "INCOMPLETE_CHOICES",
    "SCHEMA_VERSION",
    "ActiveTimer",
    "LockedError",
    "MeasurementsExport",
    "ReadInfo",
    "ReaderController",
    "ReaderSession",
    "ReaderView",
    "Redactor",
    "SessionAnnotationStore",
    "StoreUnavailableError",
    "Study",
    "SubmitCheck",
    "VerifyResult",
    "blind_case",
    "create_study",
    "identifying_tokens",
    "read_cases_csv",
]
