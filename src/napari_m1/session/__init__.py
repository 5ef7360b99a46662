"""Blinded multi-reader studies: the store, reader sessions, coordinator tools (no Qt)."""

from ._annotation_store import SessionAnnotationStore
from ._blind import ActiveTimer, Redactor, blind_case, identifying_tokens
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
    "ActiveTimer",
    "LockedError",
    "ReadInfo",
    "ReaderSession",
    "Redactor",
    "SessionAnnotationStore",
    "Study",
    "StudyStore",
    "VerifyResult",
    "blind_case",
    "create_study",
    "identifying_tokens",
    "read_cases_csv",
]
