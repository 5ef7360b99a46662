"""BIDS datasets: list subjects/sessions with their GRE, QSM and MRSI; load one. No Qt.

Raw data: ``sub-<S>[/ses-<T>]/anat/*_MEGRE.nii[.gz]`` with ``part-mag``/``part-phase``
and ``echo-<N>`` entities (BIDS 1.x multi-echo GRE). Derivatives: every pipeline
folder under ``derivatives/`` is searched for the same subject/session: QSM as
``*_Chimap.nii[.gz]``, MRSI metabolite maps as ``*_met-<NAME>_*.nii[.gz]`` or
``*_mrsi.nii[.gz]``. Nothing here imports pybids: the layout rules are few and a
walk of the tree is fast.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import M1LoadError
from ._case import CaseFiles, _echo_number, _metabolite_rank
from ._nifti import is_nifti_path, metabolite_name

__all__ = [
    "BidsEntry",
    "bids_parent",
    "is_bids_root",
    "list_bids",
    "load_bids_case",
    "write_bids_cases_csv",
]

_SUB = re.compile(r"^sub-([A-Za-z0-9]+)$")
_SES = re.compile(r"^ses-([A-Za-z0-9]+)$")


def is_bids_root(path: str | os.PathLike[str]) -> bool:
    """A folder with ``dataset_description.json`` or ``sub-*`` folders."""
    p = Path(path)
    if not p.is_dir():
        return False
    if (p / "dataset_description.json").is_file():
        return True
    return any(d.is_dir() and _SUB.match(d.name) for d in p.iterdir())


@dataclass
class BidsEntry:
    """One subject (and session) of a BIDS dataset.

    Attributes
    ----------
    subject, session : str
        Labels without the ``sub-``/``ses-`` prefix; session ``""`` when none.
    gre, phase : list of Path
        MEGRE magnitude and phase files in echo order.
    qsm : Path or None
        A ``Chimap`` from derivatives (or raw).
    mrsi : dict of str -> Path
        Metabolite -> map.
    """

    subject: str
    session: str
    gre: list[Path] = field(default_factory=list)
    phase: list[Path] = field(default_factory=list)
    qsm: Path | None = None
    mrsi: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.subject + (f"_ses-{self.session}" if self.session else "")

    def summary(self) -> str:
        """One line for the dock's list."""
        parts = [f"sub-{self.subject}" + (f" ses-{self.session}" if self.session else "")]
        parts.append(f"GRE {len(self.gre)} echo file(s)" if self.gre else "no MEGRE")
        if self.phase:
            parts.append(f"phase {len(self.phase)}")
        if self.qsm:
            parts.append("QSM")
        if self.mrsi:
            parts.append(f"MRSI {', '.join(self.mrsi)}")
        return " · ".join(parts)

    def case_files(self) -> CaseFiles:
        """The entry as case files (refused without a GRE magnitude)."""
        if not self.gre:
            raise M1LoadError(f"sub-{self.subject}: no MEGRE magnitude in this dataset")
        if self.phase and len(self.phase) != len(self.gre):
            raise M1LoadError(
                f"sub-{self.subject}: {len(self.phase)} phase file(s) for "
                f"{len(self.gre)} magnitude file(s)"
            )
        return CaseFiles(
            folder=self.gre[0].parent,
            label=self.label,
            gre=list(self.gre),
            phase=list(self.phase),
            qsm=self.qsm,
            mrsi=dict(self.mrsi),
        )


def _niftis(d: Path) -> list[Path]:
    out: list[Path] = []
    for root, dirs, files in os.walk(d):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        out.extend(Path(root) / f for f in sorted(files) if is_nifti_path(f) and f[0] != ".")
    return out


def _sessions(sub_dir: Path) -> list[tuple[str, Path]]:
    ses = [(m.group(1), d) for d in sorted(sub_dir.iterdir()) if (m := _SES.match(d.name))]
    return ses or [("", sub_dir)]


def _fill(entry: BidsEntry, files: list[Path], *, raw: bool) -> None:
    for p in files:
        low = p.name.lower()
        if "_megre." in low and raw:
            (entry.phase if "part-phase" in low else entry.gre).append(p)
        elif re.search(r"_chimap\.nii", low):
            if entry.qsm is None:
                entry.qsm = p
            else:
                entry.problems.append(f"more than one Chimap ({entry.qsm.name}, {p.name})")
        elif (met := metabolite_name(p)) or "_mrsi." in low:
            entry.mrsi.setdefault(met or p.name.split(".")[0], p)


def list_bids(root: str | os.PathLike[str]) -> list[BidsEntry]:
    """Every subject/session of a BIDS dataset with its GRE, phase, QSM and MRSI files.

    Raises
    ------
    M1LoadError
        ``root`` is not a BIDS dataset.
    """
    r = Path(root)
    if not is_bids_root(r):
        raise M1LoadError(f"{r.name}: not a BIDS dataset (no dataset_description.json or sub-*)")
    deriv = r / "derivatives"
    pipelines = sorted(d for d in deriv.iterdir() if d.is_dir()) if deriv.is_dir() else []
    out: list[BidsEntry] = []
    for sub_dir in sorted(d for d in r.iterdir() if d.is_dir() and _SUB.match(d.name)):
        sub = _SUB.match(sub_dir.name).group(1)  # type: ignore[union-attr]
        for ses, ses_dir in _sessions(sub_dir):
            e = BidsEntry(sub, ses)
            _fill(e, _niftis(ses_dir), raw=True)
            for pl in pipelines:
                d = pl / sub_dir.name / (f"ses-{ses}" if ses else "")
                if d.is_dir():
                    _fill(e, _niftis(d), raw=False)
            e.gre.sort(key=_echo_number)
            e.phase.sort(key=_echo_number)
            e.mrsi = dict(sorted(e.mrsi.items(), key=lambda kv: _metabolite_rank(kv[0])))
            out.append(e)
    return out


def find_entry(root: str | os.PathLike[str], subject: str | None, session: str | None = None):
    """The one entry for ``subject`` (and ``session``); the only one when not given."""
    entries = list_bids(root)
    sub = subject[4:] if subject and subject.startswith("sub-") else subject
    ses = session[4:] if session and session.startswith("ses-") else session
    hits = [
        e
        for e in entries
        if (sub is None or e.subject == sub) and (ses is None or e.session == ses)
    ]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        have = ", ".join(sorted({f"sub-{e.subject}" for e in entries})) or "none"
        raise M1LoadError(f"{Path(root).name}: no subject {subject!r} (have: {have})")
    labels = ", ".join(
        f"sub-{e.subject}" + (f"/ses-{e.session}" if e.session else "") for e in hits[:6]
    )
    raise M1LoadError(
        f"{Path(root).name}: {len(hits)} subjects/sessions ({labels}); choose one in the "
        "M1 case dock (DICOM / BIDS…) or with --subject"
        + (" and --session" if any(e.session for e in hits) else "")
    )


def load_bids_case(
    root: str | os.PathLike[str], *, subject: str | None = None, session: str | None = None
) -> Any:
    """Load one subject/session of a BIDS dataset as a Case (all or nothing)."""
    from ._case import load_case_files

    entry = find_entry(root, subject, session)
    if entry.problems:
        raise M1LoadError(f"sub-{entry.subject}: {entry.problems[0]}")
    return load_case_files(entry.case_files())


def bids_parent(folder: str | os.PathLike[str]) -> tuple[Path, str, str] | None:
    """``(root, subject, session)`` when ``folder`` is a ``sub-*`` or ``sub-*/ses-*``
    folder of a BIDS dataset, else None (so its derivatives load with it)."""
    f = Path(folder).resolve()
    ses = ""
    if m := _SES.match(f.name):
        ses, f = m.group(1), f.parent
    m = _SUB.match(f.name)
    if not m or not is_bids_root(f.parent):
        return None
    return f.parent, m.group(1), ses


def write_bids_cases_csv(root: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[str]:
    """Write a study's ``cases.csv`` (``case_id,path``) for every subject/session with a
    MEGRE magnitude; returns one-line notes on the entries left out.

    ``case_id`` is ``sub-<S>[_ses-<T>]``; ``path`` the subject (or session) folder,
    which :func:`~napari_m1.io.load_case` opens with its derivatives.
    """
    from .._atomic import atomic_write_text

    r = Path(root).resolve()
    rows, notes = [], []
    for e in list_bids(r):
        cid = f"sub-{e.subject}" + (f"_ses-{e.session}" if e.session else "")
        if not e.gre or e.problems:
            notes.append(f"{cid}: left out ({e.problems[0] if e.problems else 'no MEGRE'})")
            continue
        folder = r / f"sub-{e.subject}" / (f"ses-{e.session}" if e.session else "")
        rows.append(f"{cid},{folder}\n")
    if not rows:
        raise M1LoadError(f"{r.name}: no subject with a MEGRE magnitude")
    atomic_write_text(dest, "case_id,path\n" + "".join(rows))
    return notes
