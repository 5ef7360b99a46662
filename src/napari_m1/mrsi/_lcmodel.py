"""LCModel output: ``.TABLE``, ``.CSV`` and ``.COORD`` text files (parsed here, no LCModel).

Formats (LCModel manual, section 11): ``.TABLE`` holds sections ``$$CONC`` (Conc., %SD,
ratio to the reference, metabolite), ``$$MISC`` (``FWHM = x ppm``, ``S/N = y``) and
``$$INPU`` (input changes, ``HZPPPM`` = spectrometer frequency in MHz). ``.CSV`` has one row
per fitted voxel (``Row, Col`` 1-based) with ``<M>``, ``<M> %SD``, ``<M>/<ref>`` columns.
``.COORD`` carries the same tables without ``$$`` markers, then ``NY points on ppm-axis``
followed by the ppm axis, the phased data, the fit and the background (``NY ...`` headers).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import M1LoadError

if TYPE_CHECKING:
    from ._fslmrs import MRSIFit

__all__ = [
    "LCModelCoord",
    "LCModelTable",
    "lcmodel_csv_fit",
    "read_lcmodel_coord",
    "read_lcmodel_csv",
    "read_table",
]

_CONC_LINE = re.compile(r"^\s*(\S+)\s+(\d+)%\s+(\S+)\s+(\S.*?)\s*$")
_FWHM = re.compile(r"FWHM\s*=\s*([-+0-9.Ee]+)\s*ppm", re.I)
_SNR = re.compile(r"S/N\s*=\s*([-+0-9.Ee]+)", re.I)
_HZPPPM = re.compile(r"HZPPPM\s*=\s*([-+0-9.Ee]+)", re.I)
_NY = re.compile(r"^\s*(\d+)\s+points on ppm-axis", re.I)
_REF = re.compile(r"Conc\.\s+%SD\s+/(\S+)")


@dataclass
class LCModelTable:
    """One LCModel fit (a ``.TABLE``, or the header of a ``.COORD``).

    Attributes
    ----------
    conc : dict of str -> float
        Concentration (institutional units) per metabolite label, in file order.
    sd_pct : dict of str -> float
        Cramér-Rao lower bound, % of the concentration (999 = not determined).
    ratio : dict of str -> float
        Concentration divided by the reference (``ratio_to``, usually ``Cr+PCr``).
    ratio_to : str
        The reference of the ratio column.
    fwhm_ppm, snr : float or None
        Linewidth (ppm) and signal-to-noise from ``$$MISC``.
    hz_per_ppm : float or None
        Spectrometer frequency (MHz = Hz/ppm) from ``HZPPPM`` in ``$$INPU``.
    """

    conc: dict[str, float] = field(default_factory=dict)
    sd_pct: dict[str, float] = field(default_factory=dict)
    ratio: dict[str, float] = field(default_factory=dict)
    ratio_to: str = "Cr+PCr"
    fwhm_ppm: float | None = None
    snr: float | None = None
    hz_per_ppm: float | None = None


def _float(text: str, path: Path) -> float:
    try:
        return float(text)
    except ValueError:
        raise M1LoadError(f"{path.name}: not a number: {text[:20]!r}") from None


def _parse_tables(lines: list[str], path: Path) -> LCModelTable:
    t = LCModelTable()
    in_conc = False
    for line in lines:
        if m := _REF.search(line):
            t.ratio_to = m.group(1)
            in_conc = True
            continue
        if in_conc:
            m = _CONC_LINE.match(line)
            if m and not line.lstrip().startswith("$$"):
                met = m.group(4)
                t.conc[met] = _float(m.group(1), path)
                t.sd_pct[met] = _float(m.group(2), path)
                t.ratio[met] = _float(m.group(3), path)
                continue
            in_conc = False
        if t.fwhm_ppm is None and (m := _FWHM.search(line)):
            t.fwhm_ppm = _float(m.group(1), path)
        if t.snr is None and (m := _SNR.search(line)):
            t.snr = _float(m.group(1), path)
        if t.hz_per_ppm is None and (m := _HZPPPM.search(line)):
            t.hz_per_ppm = _float(m.group(1), path)
    if not t.conc:
        raise M1LoadError(f"{path.name}: no LCModel concentration table found")
    return t


def _read_text(path: str | os.PathLike[str]) -> tuple[Path, list[str]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise M1LoadError(f"{p.name}: cannot read ({exc.strerror or exc})") from None
    return p, text.splitlines()


def read_table(path: str | os.PathLike[str]) -> LCModelTable:
    """Read an LCModel ``.TABLE`` file (see :class:`LCModelTable`).

    Raises
    ------
    M1LoadError
        Unreadable file or no ``$$CONC`` table.
    """
    p, lines = _read_text(path)
    return _parse_tables(lines, p)


def read_lcmodel_csv(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Read an LCModel ``.CSV`` (one row per fitted voxel).

    Returns
    -------
    list of dict
        One dict per row; keys are the header cells stripped of spaces (``"Row"``, ``"Col"``,
        ``"NAA"``, ``"NAA %SD"``, ``"NAA/Cr+PCr"``, ...), values floats. ``Row``/``Col`` are
        LCModel's 1-based voxel indices.
    """
    p, lines = _read_text(path)
    lines = [ln for ln in lines if ln.strip()]
    if not lines:
        raise M1LoadError(f"{p.name}: empty LCModel CSV")
    head = [c.strip() for c in lines[0].split(",")]
    if head[:2] != ["Row", "Col"]:
        raise M1LoadError(f"{p.name}: not an LCModel CSV (first columns are not Row, Col)")
    rows = []
    for i, ln in enumerate(lines[1:], start=2):
        cells = [c.strip() for c in ln.split(",")]
        if len(cells) != len(head):
            raise M1LoadError(f"{p.name}: line {i} has {len(cells)} cells, header {len(head)}")
        rows.append({h: _float(c, p) for h, c in zip(head, cells, strict=True)})
    return rows


@dataclass
class LCModelCoord:
    """A ``.COORD`` file: the fit's tables and its spectra (all arrays shape (NY,)).

    ``ppm`` runs from high to low as LCModel writes it; ``data`` is the phased real spectrum,
    ``fit`` the complete fit and ``baseline`` the background, in LCModel's arbitrary units.
    """

    table: LCModelTable
    ppm: np.ndarray
    data: np.ndarray
    fit: np.ndarray
    baseline: np.ndarray


def read_lcmodel_coord(path: str | os.PathLike[str]) -> LCModelCoord:
    """Read an LCModel ``.COORD`` file (see :class:`LCModelCoord`).

    Raises
    ------
    M1LoadError
        No ``points on ppm-axis`` header, or fewer numbers than announced.
    """
    p, lines = _read_text(path)
    start = next((i for i, ln in enumerate(lines) if _NY.match(ln)), None)
    if start is None:
        raise M1LoadError(f"{p.name}: no 'points on ppm-axis' line (not an LCModel COORD)")
    ny = int(_NY.match(lines[start]).group(1))  # type: ignore[union-attr]
    table = _parse_tables(lines[:start], p)
    arrays: list[np.ndarray] = []
    i = start + 1
    for _ in range(4):
        vals: list[float] = []
        while len(vals) < ny:
            if i >= len(lines):
                raise M1LoadError(f"{p.name}: truncated (expected {ny} values per array)")
            parts = lines[i].split()
            i += 1
            if parts and not re.match(r"^[-+0-9.]", parts[0]):
                if vals:
                    raise M1LoadError(f"{p.name}: array interrupted at line {i}")
                continue  # a "NY ... follow" header
            vals.extend(_float(x, p) for x in parts)
        arrays.append(np.asarray(vals[:ny], dtype=float))
    return LCModelCoord(table, *arrays)


def lcmodel_csv_fit(
    path: str | os.PathLike[str],
    shape: tuple[int, int, int],
    affine: np.ndarray,
    *,
    slice_index: int = 0,
    hz_per_ppm: float | None = None,
) -> MRSIFit:
    """Scatter an LCModel MRSI ``.CSV`` onto its MRSI grid as an :class:`MRSIFit`.

    ``Col`` (1-based) is the grid's first voxel axis (x), ``Row`` the second (y), as LCModel's
    ``ICOLST``/``IROWST``; every row lands in slice ``slice_index`` (LCModel fits one slice
    per run). ``shape``/``affine`` come from the matching NIfTI (the MRSI grid). Voxels
    without a row are outside the mask. ``%SD`` columns give the CRLB; optional ``FWHM``
    (ppm) and ``S/N`` columns give the other QC maps (absent -> those tests not applied).
    ``hz_per_ppm`` is recorded as the spectrometer frequency.

    Raises
    ------
    M1LoadError
        A Row/Col outside the grid, or a CSV that is not LCModel's.
    """
    from ._fslmrs import MRSIFit
    from ._names import canonical_name

    p = Path(path)
    rows = read_lcmodel_csv(p)
    if not 0 <= slice_index < shape[2]:
        raise M1LoadError(f"{p.name}: slice {slice_index} outside the grid {shape}")
    mets = [h for h in rows[0] if h not in ("Row", "Col") and " " not in h and "/" not in h]
    conc = {canonical_name(m): np.full(shape, np.nan) for m in mets}
    sd = {canonical_name(m): np.full(shape, np.nan) for m in mets if f"{m} %SD" in rows[0]}
    fwhm = np.full(shape, np.nan) if "FWHM" in rows[0] else None
    snr = np.full(shape, np.nan) if "S/N" in rows[0] else None
    mask = np.zeros(shape, dtype=bool)
    for r in rows:
        i, j = int(r["Col"]) - 1, int(r["Row"]) - 1
        if not (0 <= i < shape[0] and 0 <= j < shape[1]):
            raise M1LoadError(f"{p.name}: Row {j + 1}, Col {i + 1} outside the grid {shape}")
        v = (i, j, slice_index)
        mask[v] = True
        for m in mets:
            conc[canonical_name(m)][v] = r[m]
            if f"{m} %SD" in r:
                sd[canonical_name(m)][v] = r[f"{m} %SD"]
        if fwhm is not None:
            fwhm[v] = r["FWHM"]
        if snr is not None:
            snr[v] = r["S/N"]
    # one FWHM and S/N per spectrum (LCModel): the same map for every metabolite
    return MRSIFit(
        conc=conc,
        sd_pct=sd,
        snr={m: snr for m in conc} if snr is not None else {},
        fwhm_ppm={m: fwhm for m in conc} if fwhm is not None else {},
        mask=mask,
        affine=np.asarray(affine, dtype=float),
        spectrometer_frequency_mhz=hz_per_ppm,
        scaling="lcmodel",
        source=p,
        labels={canonical_name(m): m for m in mets},
    )
