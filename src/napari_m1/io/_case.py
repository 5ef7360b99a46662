"""Case folders: find the GRE, phase, QSM and MRSI files, load them on one display grid.

A *case* is one scan session of one person. The first GRE magnitude is the
reference grid: every other map is placed in its world exactly (when its grid is
axis-aligned with the reference) or resampled onto it (when rotated). Accepted
layouts are documented in ``docs/case-folders.md``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._files import read_user_json, shown
from ..errors import M1Error, M1LoadError
from ..geometry import (
    DisplayPlacement,
)
from ._nifti import (
    Volume,
    _stem,
    is_nifti_path,
    metabolite_name,
    read_sidecar,
)
from ._read import load_multi_echo

__all__ = [
    "Case",
    "CaseFiles",
    "case_input_files",
    "find_case_files",
    "is_case_folder",
    "load_case",
    "load_case_files",
]

log = logging.getLogger(__name__)

CASE_JSON = "case.json"
_ECHO_RE = re.compile(r"(?:^|_)echo-(\d+)(?:_|$)", re.I)
_FSL_MRS_PREFERENCE = ("internal", "molarity", "molality", "raw")
_MAX_DEPTH = 3
_MAX_LABEL = 200
_LABEL_OK = re.compile(rf"[^\x00-\x1f\x7f]{{1,{_MAX_LABEL}}}")
#: Longest echo time accepted from case.json, ms (GRE echoes at 7T are well under 100 ms).
_MAX_TE_MS = 1000.0


@dataclass
class CaseFiles:
    """The files that make up a case, in load order.

    Attributes
    ----------
    folder : Path
    label : str
        Short case label (``sub-<label>`` entity, ``case.json`` label, or folder name).
    gre : list of Path
        GRE magnitude: one 4D file or one 3D file per echo, in echo order.
    phase : list of Path
        GRE phase, same convention; may be empty.
    qsm : Path or None
    mrsi : dict of str -> Path
        Metabolite or ratio name -> map.
    echo_times_ms : list of float or None
        From ``case.json``; overrides sidecars.
    phase_difference : bool
        ``phase`` is one phase-difference image for two magnitude echoes (Siemens
        field map; ``case.json`` ``"phase_difference": true``, a ``*_phasediff``
        name or a sidecar with ``EchoTime1``/``EchoTime2``).
    fsl_mrsi : Path or None
        An FSL-MRS ``fsl_mrsi`` output (the case folder, ``fsl_mrsi/`` or ``mrsi/``): its
        concentration maps are in ``mrsi``; the loader adds QC'd ratio maps (docs/mrsi.md).
    """

    folder: Path
    label: str
    gre: list[Path]
    phase: list[Path] = field(default_factory=list)
    qsm: Path | None = None
    mrsi: dict[str, Path] = field(default_factory=dict)
    echo_times_ms: list[float] | None = None
    phase_difference: bool = False
    fsl_mrsi: Path | None = None


def field_strength(files: CaseFiles) -> tuple[float | None, str]:
    """Main field strength (T) of a case and where it came from, or ``(None, "")``.

    ``case.json`` (``b0_tesla``, ``field_strength_t`` or ``MagneticFieldStrength``) wins;
    else the first GRE magnitude or phase JSON sidecar with ``MagneticFieldStrength``.
    """
    import json

    cj = Path(files.folder) / CASE_JSON
    if cj.is_file():
        try:
            spec = json.loads(cj.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            spec = {}
        for key in ("b0_tesla", "field_strength_t", "MagneticFieldStrength"):
            v = spec.get(key) if isinstance(spec, dict) else None
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v), f"{CASE_JSON} {key}"
    for p in [*files.gre, *files.phase]:
        v = read_sidecar(p).get("MagneticFieldStrength")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v), "JSON sidecar MagneticFieldStrength"  # no file name: blinding
    return None, ""


def case_input_files(files: CaseFiles) -> list[Path]:
    """Every file a case is read from: maps, their JSON sidecars, ``case.json``.

    Commands that write check their outputs against these (no output over an input).
    """
    maps = [*files.gre, *files.phase, *([files.qsm] if files.qsm else []), *files.mrsi.values()]
    sidecars = [p.with_name(_stem(p) + ".json") for p in maps]
    return [*maps, *(p for p in sidecars if p.exists()), files.folder / CASE_JSON]


def _nifti_files(folder: Path) -> list[Path]:
    out: list[Path] = []
    base_depth = len(folder.parts)
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if len(Path(root).parts) - base_depth >= _MAX_DEPTH:
            dirs[:] = []
        out.extend(Path(root) / f for f in sorted(files) if is_nifti_path(f) and f[0] != ".")
    return out


def _echo_number(p: Path) -> int:
    m = _ECHO_RE.search(p.name.split(".")[0])
    return int(m.group(1)) if m else 0


def _from_case_json(folder: Path) -> CaseFiles:
    try:
        spec = read_user_json(folder / CASE_JSON)
    except M1Error as exc:
        why = str(exc).removeprefix(f"{CASE_JSON}: ")
        raise M1LoadError(f"{CASE_JSON}: malformed ({why})") from None

    def files(key: str) -> list[Path]:
        val = spec.get(key, [])
        vals = [val] if isinstance(val, str) else val
        if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
            raise M1LoadError(f"{CASE_JSON}: '{key}' must be a file name or a list of them")
        return [_case_json_file(folder, v, key) for v in vals]

    mrsi_spec = spec.get("mrsi", {})
    if not isinstance(mrsi_spec, dict):
        raise M1LoadError(f"{CASE_JSON}: 'mrsi' must map metabolite names to files")
    mrsi = {}
    for met, v in mrsi_spec.items():
        if not isinstance(v, str):
            raise M1LoadError(f"{CASE_JSON}: 'mrsi.{_short(met)}' must be a file name")
        mrsi[str(met)] = _case_json_file(folder, v, f"mrsi.{_short(met)}")
    qsm = files("qsm")
    if len(qsm) > 1:
        raise M1LoadError(f"{CASE_JSON}: 'qsm' must name one file")
    label = spec.get("label", folder_label(folder))
    if not isinstance(label, str) or not _LABEL_OK.fullmatch(label):
        raise M1LoadError(
            f"{CASE_JSON}: 'label' must be text of 1-{_MAX_LABEL} characters on one line"
        )
    return CaseFiles(
        folder=folder,
        label=label,
        gre=files("gre"),
        phase=files("phase"),
        qsm=qsm[0] if qsm else None,
        mrsi=mrsi,
        echo_times_ms=_echo_times(spec.get("echo_times_ms")),
        phase_difference=spec.get("phase_difference") is True,
    )


def _short(text: object) -> str:
    s = str(text)
    return s if len(s) <= 40 else s[:40] + "…"


def _echo_times(tes: object) -> list[float] | None:
    """case.json ``echo_times_ms``: a list of positive, finite numbers of ms (or absent)."""
    if tes is None:
        return None
    ok = isinstance(tes, list) and all(
        isinstance(t, (int, float)) and not isinstance(t, bool) for t in tes
    )
    if not ok:
        raise M1LoadError(f"{CASE_JSON}: 'echo_times_ms' must be a list of numbers")
    vals = [float(t) for t in tes]
    if not vals or not all(0.0 < t <= _MAX_TE_MS for t in vals):
        raise M1LoadError(
            f"{CASE_JSON}: 'echo_times_ms' must hold echo times in ms, each above 0 and at "
            f"most {_MAX_TE_MS:g} (got {_short(tes)})"
        )
    return vals


def folder_label(folder: Path) -> str:
    """A case label from a folder name; bytes that are not UTF-8 become ``\\xNN``.

    A name that is not valid UTF-8 reaches Python with surrogate escapes, which
    cannot be written to a UTF-8 file or printed; this keeps the label printable
    and distinct.
    """
    return shown(folder.absolute().name)


def _case_json_file(folder: Path, rel: str, key: str) -> Path:
    """One file named in case.json, relative to the folder; checked to exist."""
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise M1LoadError(f"{CASE_JSON}: '{key}' entry {rel!r} must be relative to the folder")
    p = folder / rel
    if not p.is_file():
        raise M1LoadError(f"{CASE_JSON}: '{key}' file {rel!r} not found")
    return p


def _from_names(folder: Path) -> CaseFiles:
    niftis = _nifti_files(folder)
    subs = sorted({m.group(1) for p in niftis if (m := re.match(r"sub-([A-Za-z0-9]+)", p.name))})
    if len(subs) > 1:
        raise M1LoadError(
            f"{folder.name}: files of {len(subs)} subjects ({', '.join(subs[:4])}); "
            "a case folder holds one case"
        )
    low = {p: p.name.lower() for p in niftis}
    mag = [p for p in niftis if "part-mag" in low[p]]
    if not mag:
        mag = [p for p in niftis if "megre" in low[p] and "part-phase" not in low[p]]
    mag.sort(key=_echo_number)
    phase = sorted((p for p in niftis if "part-phase" in low[p]), key=_echo_number)
    phasediff = [p for p in niftis if re.search(r"_phasediff\.nii", low[p])]
    if not phase and len(phasediff) == 1:
        phase = phasediff
    qsm = [p for p in niftis if re.search(r"(^|_)(chimap|qsm)\.nii", low[p])]
    mrsi: dict[str, Path] = {}
    for p in niftis:
        met = metabolite_name(p)
        if met:
            if met in mrsi:
                raise M1LoadError(f"two files for metabolite {met}: {mrsi[met].name}, {p.name}")
            mrsi[met] = p
    # FSL-MRS fsl_mrsi output (here, in fsl_mrsi/ or mrsi/): concs/<scaling>/<METAB>.nii.gz
    from ..mrsi import find_fsl_mrsi

    fsl = find_fsl_mrsi(folder)
    concs = (fsl or folder) / "concs"
    if concs.is_dir():
        for sub in _FSL_MRS_PREFERENCE:
            d = concs / sub
            if d.is_dir():
                for p in sorted(d.iterdir()):
                    if is_nifti_path(p):
                        mrsi.setdefault(p.name.split(".")[0], p)
                break
    mrsi = dict(sorted(mrsi.items(), key=lambda kv: _metabolite_rank(kv[0])))
    if len(qsm) > 1:
        # A napari-m1 reconstruction (Chimap.nii.gz beside its qsm.json) wins over other maps.
        own = [
            p for p in qsm if low[p].startswith("chimap.nii") and (p.parent / "qsm.json").is_file()
        ]
        if len(own) == 1:
            qsm = own
    if len(qsm) > 1:
        raise M1LoadError(f"more than one QSM map: {', '.join(p.name for p in qsm)}")
    label = subs[0] if subs else folder_label(folder)
    out = CaseFiles(folder, label, mag, phase, qsm[0] if qsm else None, mrsi)
    out.phase_difference = bool(phase) and phase == phasediff
    out.fsl_mrsi = fsl
    return out


_MET_ORDER = (
    "naa",
    "tnaa",
    "naa+naag",
    "cr",
    "tcr",
    "cr+pcr",
    "cho",
    "tcho",
    "gpc+pch",
    "glx",
    "glu",
    "gln",
    "ins",
    "mi",
)


def _metabolite_rank(name: str) -> tuple[int, str]:
    low = name.lower()
    return (_MET_ORDER.index(low) if low in _MET_ORDER else len(_MET_ORDER), low)


def find_case_files(folder: str | os.PathLike[str]) -> CaseFiles:
    """Discover a case's files (``case.json`` first, else BIDS-like names).

    Raises
    ------
    M1LoadError
        Not a folder, malformed case.json, duplicate maps, or no GRE magnitude.
    """
    f = Path(folder)
    if not f.is_dir():
        raise M1LoadError(f"{f.name}: not a folder")
    files = _from_case_json(f) if (f / CASE_JSON).is_file() else _from_names(f)
    if not files.gre:
        raise M1LoadError(
            f"{f.name}: no GRE magnitude found (expected *_part-mag_*.nii[.gz], *_MEGRE.nii[.gz] "
            f"or a case.json)"
        )
    if len(files.phase) == 1 and not files.phase_difference:
        side = read_sidecar(files.phase[0])
        files.phase_difference = "EchoTime1" in side and "EchoTime2" in side
    if files.phase and not files.phase_difference and len(files.phase) != len(files.gre):
        raise M1LoadError(
            f"{f.name}: {len(files.phase)} phase file(s) for {len(files.gre)} magnitude file(s)"
        )
    return files


def is_case_folder(folder: str | os.PathLike[str]) -> bool:
    """Cheap check for the npe2 reader: a folder with case.json or a GRE magnitude name."""
    f = Path(folder)
    if not f.is_dir():
        return False
    if (f / CASE_JSON).is_file():
        return True
    return any(
        ("part-mag" in p.name.lower() or "megre" in p.name.lower()) for p in _nifti_files(f)
    )


# --------------------------------------------------------------------------- the case


@dataclass
class Case:
    """A loaded case: volumes on one display grid.

    Attributes
    ----------
    files : CaseFiles
    volumes : list of Volume
        GRE magnitude first (the reference), then phase, QSM, MRSI maps.
    placements : list of DisplayPlacement
        One per volume, in the reference's world.
    """

    files: CaseFiles
    volumes: list[Volume]
    placements: list[DisplayPlacement]

    @property
    def reference(self) -> Volume:
        """The reference volume (first GRE magnitude)."""
        return self.volumes[0]

    @property
    def warnings(self) -> list[str]:
        """Every volume's warnings, in order."""
        return [w for v in self.volumes for w in v.warnings]


def load_case(
    folder: str | os.PathLike[str],
    *,
    kinds: tuple[str, ...] | None = None,
    progress: Any = None,
    mrsi_thresholds: Any = None,
) -> Case:
    """Load every map of a case folder; all or nothing.

    Parameters
    ----------
    folder : path
        A case folder (see :func:`find_case_files`), a DICOM folder or a bare NIfTI
        folder (see :mod:`napari_m1.io._folder`).
    kinds : tuple of str, optional
        Restrict to these kinds (``gre`` is always loaded).
    progress : callable (done, total), optional
        File-count progress (DICOM folders).
    mrsi_thresholds : napari_m1.mrsi.QCThresholds, optional
        QC thresholds of the MRSI ratio maps (default thresholds if None).

    Raises
    ------
    M1LoadError
        Anything that makes the case unusable; nothing is returned half-loaded.
    """
    f = Path(folder)
    if f.is_dir() and not (f / CASE_JSON).is_file():
        from ._bids import bids_parent, is_bids_root
        from ._folder import is_openable_folder, load_folder

        if (
            is_bids_root(f)
            or bids_parent(f) is not None
            or (not is_case_folder(f) and is_openable_folder(f))
        ):
            return load_folder(f, kinds=kinds, progress=progress)
    return load_case_files(find_case_files(folder), kinds=kinds, mrsi_thresholds=mrsi_thresholds)


def load_case_files(
    files: CaseFiles, *, kinds: tuple[str, ...] | None = None, mrsi_thresholds: Any = None
) -> Case:
    """Load the maps named by ``files`` (see :func:`load_case`).

    Every header is checked and the total size compared with the memory available
    before anything is allocated; each map then streams into its one buffer (see
    :class:`~napari_m1.io.CaseLoad`, which also loads in stages for a first frame
    before the whole case is read).
    """
    from ._caseload import CaseLoad

    return CaseLoad(files, kinds=kinds, mrsi_thresholds=mrsi_thresholds).run()


def _load_phase_difference(path: Path, gre: Volume) -> Volume:
    """One phase-difference image (3D) for a two-echo magnitude; dTE from the sidecar
    (``EchoTime1``/``EchoTime2``, seconds) or the magnitude's echo times."""
    vol = load_multi_echo([path], kind="phase", name=PHASE_DIFFERENCE_NAME)
    return finish_phase_difference(vol, path, gre)


PHASE_DIFFERENCE_NAME = "GRE phase difference"


def finish_phase_difference(vol: Volume, path: Path, gre: Volume) -> Volume:
    """Echo times and facts of a loaded phase-difference volume (see above)."""
    if vol.data.ndim != 3:
        raise M1LoadError(f"{path.name}: a phase-difference image must be 3D")
    side = read_sidecar(path)
    te1, te2 = side.get("EchoTime1"), side.get("EchoTime2")
    if isinstance(te1, (int, float)) and isinstance(te2, (int, float)):
        tes = [float(t) * 1000.0 if t < 1.0 else float(t) for t in (te1, te2)]
    elif gre.echo_times_ms is not None and len(gre.echo_times_ms) == 2:
        tes = list(gre.echo_times_ms)
    else:
        tes = None
    vol.warnings = [w for w in vol.warnings if "echo times unknown" not in w]
    vol.extra["phase_kind"] = "difference"
    if tes:
        vol.echo_times_ms = [tes[1]]
        vol.extra.update(echo_time1_ms=tes[0], echo_time2_ms=tes[1], delta_te_ms=tes[1] - tes[0])
    return vol


def _grid_word(p: DisplayPlacement, ref: DisplayPlacement) -> str:
    if p.resample_to_reference:
        return "resampled"
    same = np.allclose(p.scale, ref.scale) and np.allclose(p.translate, ref.translate, atol=1e-4)
    return "reference" if same else "own grid, aligned"


def case_summary(case: Case) -> list[dict[str, Any]]:
    """One row per layer: name, kind, shape, voxel size, placement (for the widget and CSV)."""
    rows = []
    for v, p in zip(case.volumes, case.placements, strict=True):
        rows.append(
            {
                "layer": v.name,
                "kind": v.kind,
                "n_echoes": v.n_echoes,
                "shape": "x".join(map(str, v.spatial_shape)),
                "voxel_mm": "x".join(f"{s:.3g}" for s in v.voxel_size_mm),
                "grid": _grid_word(p, case.placements[0]),
            }
        )
    return rows
