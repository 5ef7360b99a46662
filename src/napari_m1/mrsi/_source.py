"""One loaded MRSI fit with its spectra and its QC thresholds, and a small registry of them.

A case's ratio layers carry only an opaque id (``mrsi_source`` in the layer metadata): no
path, no header text, so nothing identifying reaches a blinded reader through metadata.
:func:`get_source` turns the id back into the :class:`MRSISource` (fit, spectra, current
thresholds), which the spectrum dock, the threshold form and the "MRSI voxel" slots read.
Pure numpy.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._fslmrs import MRSIFit
from ._qc import REASON_BITS, QCThresholds, RatioMap, ratio_maps
from ._spectra import CoordSpectra, GridSpectra

__all__ = [
    "QC_METABOLITES",
    "MRSISource",
    "VoxelQC",
    "get_source",
    "reason_names",
    "register_source",
]

#: metabolites whose QC the spectrum dock lists (the ratio maps' numerators and tCr)
QC_METABOLITES: tuple[str, ...] = ("tNAA", "tCr", "tCho", "Glx")
_KEEP = 8  # sources kept alive (a reader session holds the current and the prefetched case)


def reason_names(bits: int) -> list[str]:
    """The failed tests of a :data:`~napari_m1.mrsi.REASON_BITS` field, in table order.

    >>> reason_names(5), reason_names(0)
    (['crlb', 'snr'], [])
    """
    return [k for k, b in REASON_BITS.items() if int(bits) & b]


@dataclass
class VoxelQC:
    """QC of one MRSI voxel under the current thresholds.

    Attributes
    ----------
    ijk : (i, j, k)
        Voxel on the MRSI grid (file order).
    centre_ras_mm : (3,) ndarray
        The voxel centre in scanner RAS mm.
    metabolites : list of (name, sd_pct, fwhm_ppm, snr)
        NaN where the fit has no such map.
    ratios : list of (name, unfiltered value, failed tests)
        Failed tests empty = kept.
    """

    ijk: tuple[int, int, int]
    centre_ras_mm: np.ndarray
    metabolites: list[tuple[str, float, float, float]]
    ratios: list[tuple[str, float, list[str]]]

    @property
    def verdict(self) -> str:
        """``"kept"``, or ``"excluded (crlb, snr)"`` with every test any ratio failed."""
        failed = sorted({r for _, _, rs in self.ratios for r in rs}, key=list(REASON_BITS).index)
        return f"excluded ({', '.join(failed)})" if failed else "kept"


@dataclass
class MRSISource:
    """An MRSI fit in memory (see the module docstring).

    ``maps`` are the ratio maps under ``thresholds``; :meth:`remask` recomputes them.
    """

    fit: MRSIFit
    spectra: GridSpectra | CoordSpectra | None = None
    thresholds: QCThresholds = field(default_factory=QCThresholds)
    maps: list[RatioMap] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.maps:
            self.maps = ratio_maps(self.fit, self.thresholds)

    def remask(self, thresholds: QCThresholds) -> list[RatioMap]:
        """Ratio maps under new thresholds (kept as :attr:`maps`)."""
        self.thresholds = thresholds
        self.maps = ratio_maps(self.fit, thresholds)
        return self.maps

    def voxel_qc(self, ijk: tuple[int, int, int]) -> VoxelQC:
        """%SD, FWHM (ppm), S/N of :data:`QC_METABOLITES` and each ratio's verdict at ``ijk``."""
        f = self.fit

        def val(d: dict[str, np.ndarray], m: str) -> float:
            a = d.get(m)
            return float(a[ijk]) if a is not None else float("nan")

        mets = [
            (m, val(f.sd_pct, m), val(f.fwhm_ppm, m), val(f.snr, m))
            for m in QC_METABOLITES
            if m in f.conc
        ]
        ratios = [
            (r.name, float(r.unfiltered[ijk]), reason_names(r.reason[ijk])) for r in self.maps
        ]
        centre = (f.affine @ np.array([*ijk, 1.0]))[:3]
        return VoxelQC(tuple(int(v) for v in ijk), centre, mets, ratios)  # type: ignore[arg-type]


_REGISTRY: OrderedDict[str, MRSISource] = OrderedDict()
_LOCK = threading.Lock()


def register_source(source: MRSISource) -> str:
    """Keep ``source`` and return its opaque id (the last :data:`_KEEP` stay alive)."""
    sid = uuid.uuid4().hex
    with _LOCK:
        _REGISTRY[sid] = source
        while len(_REGISTRY) > _KEEP:
            _REGISTRY.popitem(last=False)
    return sid


def get_source(sid: Any) -> MRSISource | None:
    """The source registered under ``sid`` (None when unknown or dropped)."""
    if not isinstance(sid, str):
        return None
    with _LOCK:
        src = _REGISTRY.get(sid)
        if src is not None:
            _REGISTRY.move_to_end(sid)
        return src
