"""Blinded multi-reader studies: the store, reader sessions, coordinator tools (no Qt)."""

from ._store import SCHEMA_VERSION, StudyStore
from ._study import (
    ANSWER_FIELDS,
    LockedError,
    ReaderSession,
    ReadInfo,
    Study,
    VerifyResult,
    create_study,
    read_cases_csv,
)

__all__ = [
    "ANSWER_FIELDS",
    "SCHEMA_VERSION",
    "LockedError",
    "ReadInfo",
    "ReaderSession",
    "Study",
    "StudyStore",
    "VerifyResult",
    "create_study",
    "read_cases_csv",
]
