"""The coordinator role: a secret key file written by ``study init``.

``study init`` draws a random key (``secrets``), stores only its SHA-256 in the study
database and writes the key to a file **outside the study folder** (by default in the
coordinator's own napari-m1 data folder, readable by that account only). Every
coordinator command (:class:`~napari_m1.session.Study`: unlock, export, unblind,
verify) needs the key file; a reader, who is given the study folder, does not have it.

This is an access rule of napari-m1, not encryption: someone who can open
``study.sqlite`` with an SQL tool can read and change it without any key (see
docs/study-guide.md, "What a study promises").
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from .._atomic import atomic_write_text
from .._paths import user_data_dir
from ..errors import M1Error

__all__ = ["ENV_KEY", "check_key", "default_key_path", "new_key", "write_key"]

ENV_KEY = "NAPARI_M1_COORDINATOR_KEY"
META_KEY = "coordinator_key_sha256"


def default_key_path(study_id: str) -> Path:
    """Where ``study init`` writes the key unless told otherwise."""
    return user_data_dir() / "coordinator-keys" / f"{study_id}.key"


def new_key() -> tuple[str, str]:
    """A new key and its SHA-256 (hex)."""
    key = secrets.token_urlsafe(32)
    return key, key_hash(key)


def key_hash(key: str) -> str:
    """SHA-256 (hex) of a key."""
    return hashlib.sha256(key.strip().encode()).hexdigest()


def write_key(path: Path, key: str) -> Path:
    """Write the key file (mode 0600: only the coordinator's account can read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, key + "\n")
    os.chmod(path, 0o600)
    return path


def check_key(
    study_name: str,
    study_id: str,
    stored_hash: str | None,
    key_file: str | os.PathLike[str] | None,
) -> None:
    """Refuse unless the key file matches the study's stored key hash.

    ``key_file`` defaults to ``$NAPARI_M1_COORDINATOR_KEY``, then to
    :func:`default_key_path`. A study created before the coordinator key existed (no
    hash stored) is accepted.

    Raises
    ------
    M1Error
        No key file, or a key of another study.
    """
    if not stored_hash:
        return
    path = Path(key_file or os.environ.get(ENV_KEY) or default_key_path(study_id))
    try:
        key = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise M1Error(
            f"{study_name}: coordinator commands need this study's coordinator key "
            f"({study_id}.key, written by 'study init' on the coordinator's account); not "
            f"found at {path}: pass --coordinator-key FILE"
        ) from None
    if not hmac.compare_digest(key_hash(key), stored_hash):
        raise M1Error(f"{study_name}: {path.name} is not this study's coordinator key")
