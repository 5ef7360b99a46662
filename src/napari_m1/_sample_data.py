"""npe2 sample-data contributions: the synthetic 7T M1 phantom, opened like a real case."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ._paths import user_data_dir

__all__ = ["phantom_case_dir", "sample_als", "sample_control"]

log = logging.getLogger(__name__)

SAMPLE_SLICES = 60


def phantom_case_dir(
    group: str = "control",
    seed: int = 0,
    *,
    n_slices: int = SAMPLE_SLICES,
    with_phase: bool = False,
) -> Path:
    """Folder of the cached sample case, written on first use (atomically, file by file)."""
    from .phantom import PHANTOM_VERSION, write_phantom_case

    tag = f"phantom-{group}-s{seed}-n{n_slices}{'-ph' if with_phase else ''}-p{PHANTOM_VERSION}"
    folder = user_data_dir() / "samples" / tag
    done = folder / ".complete"
    if not done.is_file():
        log.info("writing sample case to %s", folder)
        write_phantom_case(
            folder, group, seed, n_slices=n_slices, with_phase=with_phase, force=True
        )
        done.write_text("ok\n", encoding="utf-8")
    return folder


def _sample(group: str) -> list[tuple[Any, dict[str, Any], str]]:
    from ._reader import read_case

    return read_case(phantom_case_dir(group))


def sample_control() -> list[tuple[Any, dict[str, Any], str]]:
    """The phantom of a healthy control (deep M1 layer 2.0 mm)."""
    return _sample("control")


def sample_als() -> list[tuple[Any, dict[str, Any], str]]:
    """The phantom of an ALS patient (deep M1 layer thinner, 1.5 mm, and darker)."""
    return _sample("als")
