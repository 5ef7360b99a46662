"""Folders that are not case folders: DICOM folders and bare NIfTI folders. No Qt.

A *bare NIfTI folder* holds NIfTI files without ``case.json`` and without BIDS
GRE names (e.g. ``Mag.nii.gz`` + ``Phase.nii.gz``, or dcm2niix output). Roles come
from JSON sidecars (``ImageType`` M/P, ``EchoNumber``, ``EchoTime1/2``), then from
names (:func:`~napari_m1.io.guess_kind`, ``_e2``/``echo-2``), and 4D headers are
echo series. Echo times that appear nowhere are asked once by the dock and
*remembered*: :func:`remember_echo_times` writes a ``case.json`` beside a copy of
the files in the user's data folder -- the user's folder is never written, so
read-only sources work -- and later loads of the same folder use that copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from .._paths import user_data_dir
from ..errors import M1LoadError
from ._case import CASE_JSON, CaseFiles, _nifti_files, is_case_folder
from ._nifti import guess_kind, metabolite_name, read_sidecar

__all__ = [
    "bare_folder_files",
    "is_bare_nifti_folder",
    "is_openable_folder",
    "load_folder",
    "remember_echo_times",
    "remembered_copy",
]

log = logging.getLogger(__name__)

_ECHO_NAME = re.compile(r"(?:^|[_\-.])(?:echo-?|e)(\d+)(?:[_\-.]|$)", re.I)


def is_bare_nifti_folder(path: str | os.PathLike[str]) -> bool:
    """Cheap check: a folder (not a case folder) holding at least one NIfTI file."""
    p = Path(path)
    return p.is_dir() and not is_case_folder(p) and bool(_nifti_files(p))


def is_openable_folder(path: str | os.PathLike[str]) -> bool:
    """Case folder, DICOM folder or bare NIfTI folder (the npe2 reader's cheap test)."""
    from ._bids import is_bids_root
    from ._dicom import is_dicom_folder

    p = Path(path)
    if not p.is_dir():
        return False
    if is_case_folder(p) or is_bids_root(p):
        return True
    niftis = _nifti_files(p)
    if niftis:  # a bare folder needs something that can be the GRE magnitude
        return any(_role(n, {}) in ("gre", "other") for n in niftis) or any(
            n.with_name(n.name.split(".")[0] + ".json").is_file() for n in niftis
        )
    return is_dicom_folder(p)


def _role(p: Path, side: dict[str, Any]) -> str:
    it = side.get("ImageType")
    if isinstance(it, list):
        toks = {str(t).upper() for t in it}
        if toks & {"P", "PHASE"}:
            return "phase"
        if toks & {"M", "MAGNITUDE"} and guess_kind(p) not in ("qsm", "mrsi"):
            return "gre"
    return guess_kind(p)


def _echo_index(p: Path, side: dict[str, Any]) -> int:
    en = side.get("EchoNumber")
    if isinstance(en, int):
        return en
    m = _ECHO_NAME.search(p.name.split(".")[0])
    return int(m.group(1)) if m else 0


def folder_key(folder: str | os.PathLike[str]) -> str:
    """A stable, non-identifying key for a source folder (hash of its resolved path)."""
    return hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:16]


def remembered_copy(folder: str | os.PathLike[str]) -> Path | None:
    """The user-data copy holding answers (``case.json``) for ``folder``, if any."""
    d = user_data_dir() / "folders" / folder_key(folder)
    return d if (d / CASE_JSON).is_file() else None


def bare_folder_files(folder: str | os.PathLike[str]) -> CaseFiles:
    """Roles of a bare NIfTI folder's files.

    Raises
    ------
    M1LoadError
        No GRE magnitude recognised, or magnitude/phase counts that do not pair.
    """
    f = Path(folder)
    roles: dict[str, list[tuple[int, Path]]] = {"gre": [], "phase": [], "qsm": [], "mrsi": []}
    diff = False
    for p in _nifti_files(f):
        side = read_sidecar(p)
        role = _role(p, side)
        if role in roles:
            roles[role].append((_echo_index(p, side), p))
        if role == "phase" and "EchoTime1" in side and "EchoTime2" in side:
            diff = True
    gre = [p for _, p in sorted(roles["gre"], key=lambda t: (t[0], t[1].name))]
    phase = [p for _, p in sorted(roles["phase"], key=lambda t: (t[0], t[1].name))]
    if not gre:
        others = [p for p in _nifti_files(f) if guess_kind(p) == "other"]
        if len(others) == 1 and not roles["phase"]:
            gre = others  # a single unnamed volume is the image to read
        else:
            raise M1LoadError(
                f"{f.name}: no GRE magnitude recognised among {len(_nifti_files(f))} NIfTI "
                "file(s) (name them *mag*/*gre*, or add sidecars with ImageType)"
            )
    if len(roles["qsm"]) > 1:
        raise M1LoadError(f"{f.name}: more than one QSM map")
    mrsi = {metabolite_name(p) or p.name.split(".")[0]: p for _, p in roles["mrsi"]}
    files = CaseFiles(
        folder=f,
        label=f.name,
        gre=gre,
        phase=phase,
        qsm=roles["qsm"][0][1] if roles["qsm"] else None,
        mrsi=mrsi,
    )
    files.phase_difference = diff and len(phase) == 1
    if phase and not files.phase_difference and len(phase) != len(gre):
        raise M1LoadError(f"{f.name}: {len(phase)} phase file(s) for {len(gre)} magnitude file(s)")
    return files


def load_folder(
    folder: str | os.PathLike[str],
    *,
    kinds: tuple[str, ...] | None = None,
    progress: Any = None,
) -> Any:
    """Load a DICOM folder or a bare NIfTI folder as a Case (all or nothing).

    A remembered copy (echo times answered once) takes precedence over the source.
    """
    from ._case import load_case_files

    f = Path(folder)
    from ._bids import bids_parent, is_bids_root, load_bids_case

    if is_bids_root(f):
        return load_bids_case(f)
    if (bp := bids_parent(f)) is not None:  # a subject/session folder of a dataset
        return load_bids_case(bp[0], subject=bp[1], session=bp[2] or None)
    copy = remembered_copy(f)
    if copy is not None:
        from ._case import find_case_files

        files = find_case_files(copy)
        files.label = f.name
        return load_case_files(files, kinds=kinds)
    if _nifti_files(f):
        return load_case_files(bare_folder_files(f), kinds=kinds)
    from ._dicom import is_dicom_folder

    if is_dicom_folder(f) or any(p.name.upper() == "DICOMDIR" for p in f.iterdir()):
        from ._dicom_case import load_dicom_case

        return load_dicom_case(f, progress=progress)
    raise M1LoadError(f"{f.name}: no NIfTI or DICOM files found")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
        os.chmod(dst, 0o644)


def remember_echo_times(folder: str | os.PathLike[str], echo_times_ms: list[float]) -> Path:
    """Write ``case.json`` with the echo times beside a copy of the folder's files.

    The copy lives in the user's data folder (``folders/<hash of the path>``); files
    are hard-linked when the file system allows it, else copied. The source folder
    is only read.

    Returns
    -------
    Path of the copy (a case folder).
    """
    f = Path(folder)
    files = bare_folder_files(f)
    n = None
    from ._nifti import _load_header

    img = _load_header(files.gre[0])
    n = len(files.gre) if len(files.gre) > 1 else (img.shape[3] if len(img.shape) > 3 else 1)
    tes = [float(t) for t in echo_times_ms]
    if len(tes) != n or any(not t > 0 for t in tes):
        raise M1LoadError(f"{f.name}: {len(tes)} echo time(s) given for {n} echo(es)")
    dest = user_data_dir() / "folders" / folder_key(f)
    dest.mkdir(parents=True, exist_ok=True)
    names: dict[Path, str] = {}
    for p in [*files.gre, *files.phase, *([files.qsm] if files.qsm else []), *files.mrsi.values()]:
        rel = p.relative_to(f)
        name = "__".join(rel.parts)
        names[p] = name
        target = dest / name
        if not target.exists():
            _link_or_copy(p, target)
        side = p.with_name(p.name.split(".")[0] + ".json")
        if side.is_file() and not (dest / (name.split(".")[0] + ".json")).exists():
            _link_or_copy(side, dest / (name.split(".")[0] + ".json"))
    spec: dict[str, Any] = {
        "label": f.name,
        "gre": [names[p] for p in files.gre],
        "echo_times_ms": tes,
    }
    if files.phase:
        spec["phase"] = [names[p] for p in files.phase]
        if files.phase_difference:
            spec["phase_difference"] = True
    if files.qsm:
        spec["qsm"] = names[files.qsm]
    if files.mrsi:
        spec["mrsi"] = {k: names[p] for k, p in files.mrsi.items()}
    atomic_write_text(dest / CASE_JSON, json.dumps(spec, indent=2) + "\n")
    log.info("echo times remembered in a copy of the folder (source left untouched)")
    return dest
