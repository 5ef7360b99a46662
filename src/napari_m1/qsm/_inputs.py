"""QSM inputs: magnitude + phase (radians) + echo times + B0 strength and direction.

Arrays follow the case loader's convention (:class:`napari_m1.io.Volume`): echo first,
then the three spatial axes in napari's canonical order; ``affine`` maps those voxel
indices to scanner RAS+ mm, so voxel sizes and the B0 direction (scanner +z) in the voxel
frame come from it — oblique slabs included.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import M1InputError, M1LoadError

__all__ = ["QSMInput", "b0_direction", "input_from_arrays", "load_case_input", "voxel_size_mm"]

log = logging.getLogger(__name__)


def voxel_size_mm(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) per voxel axis: the column norms of the affine's 3x3 part.

    >>> voxel_size_mm(np.diag([0.25, 0.25, 2.0, 1.0]))
    (0.25, 0.25, 2.0)
    """
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))  # type: ignore[return-value]


def b0_direction(affine: np.ndarray) -> tuple[float, float, float]:
    """Unit main-field direction (scanner +z, i.e. RAS +S) in the voxel frame.

    The voxel axes are the columns of the affine's 3x3 part normalised to unit length; B0
    expressed in that frame is ``R^-1 e_z``. An axial acquisition stored as (S, A, R)
    gives ``(1, 0, 0)``; an oblique slab gives the tilt.

    >>> b0_direction(np.diag([0.5, 0.5, 2.0, 1.0]))
    (0.0, 0.0, 1.0)
    """
    m = np.asarray(affine, dtype=np.float64)[:3, :3]
    r = m / np.linalg.norm(m, axis=0)
    b = np.linalg.solve(r, np.array([0.0, 0.0, 1.0]))
    b /= np.linalg.norm(b)
    return tuple(float(round(v, 12)) + 0.0 for v in b)  # type: ignore[return-value]


@dataclass
class QSMInput:
    """Everything the pipeline needs, in memory.

    Attributes
    ----------
    mag : float32 ndarray, shape (n_echoes, n0, n1, n2)
        Magnitude (any units).
    phase : float32 ndarray, shape (n_echoes, n0, n1, n2)
        Wrapped phase in radians, [-pi, pi).
    echo_times_ms : tuple of float
        One per echo, increasing.
    b0_tesla : float
        Main field strength.
    affine : float64 ndarray, shape (4, 4)
        Voxel index (n0, n1, n2 axes) -> scanner RAS+ mm.
    source : dict
        Provenance for qsm.json (files, phase scaling, where TE/B0 came from).
    warnings : list of str
    """

    mag: np.ndarray
    phase: np.ndarray
    echo_times_ms: tuple[float, ...]
    b0_tesla: float
    affine: np.ndarray
    source: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mag.ndim == 3:
            self.mag = self.mag[None]
        if self.phase.ndim == 3:
            self.phase = self.phase[None]
        self.mag = np.ascontiguousarray(self.mag, dtype=np.float32)
        self.phase = np.ascontiguousarray(self.phase, dtype=np.float32)
        if self.mag.shape != self.phase.shape:
            raise M1InputError(
                f"magnitude {self.mag.shape} and phase {self.phase.shape} differ in shape"
            )
        tes = tuple(float(t) for t in self.echo_times_ms)
        if len(tes) != self.mag.shape[0]:
            raise M1InputError(f"{len(tes)} echo times for {self.mag.shape[0]} echoes")
        if any(not np.isfinite(t) or t <= 0 for t in tes) or any(
            b <= a for a, b in itertools.pairwise(tes)
        ):
            raise M1InputError(f"echo times must be positive and increasing, got {list(tes)} ms")
        self.echo_times_ms = tes
        if not (np.isfinite(self.b0_tesla) and 0.1 <= self.b0_tesla <= 20):
            raise M1InputError(f"B0 of {self.b0_tesla} T is not plausible (0.1-20 T)")
        if len(tes) == 1:
            self.warnings.append(
                "one echo only: no phase-offset correction (phi0 assumed 0); field is less exact"
            )
        np.nan_to_num(self.mag, copy=False)
        np.nan_to_num(self.phase, copy=False)

    @property
    def voxel_size_mm(self) -> tuple[float, float, float]:
        """Voxel size (mm) per spatial axis."""
        return voxel_size_mm(self.affine)

    @property
    def b0_dir(self) -> tuple[float, float, float]:
        """Unit B0 direction in the voxel frame."""
        return b0_direction(self.affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape (n0, n1, n2)."""
        return tuple(self.mag.shape[1:])  # type: ignore[return-value]


_NOMINAL_RANGES = ((-4096.0, 4095.0), (0.0, 4095.0), (-2048.0, 2047.0), (0.0, 4096.0))


def _snap_scanner_range(
    data: np.ndarray, scaling: dict
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Re-scale phase that was mapped from its *observed* range onto a nominal scanner range.

    The loader maps the observed [min, max] onto [-pi, pi]; with noise the extremes of
    scanner integers (e.g. -4096..4095) are not always reached, which would scale every
    phase by up to a few per mille. When the observed range lies within 2 % of a nominal
    scanner range, map that range instead: ``radians = (v - lo) / (hi - lo + 1) 2 pi - pi``.
    Returns the phase and the nominal range used (None when the data were left alone).
    """
    if scaling.get("method") != "linear":
        return data, None
    lo, hi = float(scaling["min"]), float(scaling["max"])
    for nlo, nhi in _NOMINAL_RANGES:
        span = nhi - nlo
        if nlo <= lo and hi <= nhi and (hi - lo) >= 0.98 * span:
            raw = np.asarray(data, dtype=np.float64) / scaling["factor"] + scaling["offset"]
            rad = (raw - nlo) / (span + 1.0) * (2 * np.pi) - np.pi
            return rad.astype(np.float32), (nlo, nhi)
    return data, None


def input_from_arrays(
    mag: np.ndarray,
    phase: np.ndarray,
    echo_times_ms: tuple[float, ...] | list[float],
    b0_tesla: float,
    affine: np.ndarray,
    *,
    phase_scaling: dict | None = None,
    source: dict | None = None,
) -> QSMInput:
    """A :class:`QSMInput` from loaded arrays (e.g. napari layers of a case).

    ``phase`` is in radians as the case loader leaves it; ``phase_scaling`` (the loader's
    record, layer metadata ``phase_scaling``) lets scanner-integer phase be re-mapped from
    its nominal range (see :func:`_snap_scanner_range`).
    """
    pdata, nominal = _snap_scanner_range(phase, phase_scaling or {})
    src = dict(source or {})
    src["phase_scaling"] = phase_scaling
    src["phase_nominal_range"] = list(nominal) if nominal else None
    return QSMInput(
        mag=mag,
        phase=pdata,
        echo_times_ms=tuple(echo_times_ms),
        b0_tesla=float(b0_tesla),
        affine=np.asarray(affine, dtype=np.float64),
        source=src,
    )


def load_case_input(
    case_dir: str | os.PathLike[str], *, b0_tesla: float | None = None
) -> QSMInput:
    """Read a case folder's multi-echo magnitude and phase for QSM.

    Phase is rescaled to radians whatever its stored range (see
    :func:`napari_m1.io.rescale_phase`); echo times come from ``case.json`` or the JSON
    sidecars, B0 from ``b0_tesla``, else ``case.json`` (``b0_tesla``), else the sidecars'
    ``MagneticFieldStrength``.

    Raises
    ------
    M1LoadError
        No phase, unknown echo times or field strength, phase and magnitude on different
        grids — each as one line naming the folder or file.
    """
    from ..io import load_case
    from ..io._case import field_strength

    folder = Path(case_dir)
    case = load_case(folder, kinds=("gre", "phase"))
    gre = case.volumes[0]
    phase = next((v for v in case.volumes[1:] if v.kind == "phase"), None)
    if phase is None:
        raise M1LoadError(f"{folder.name}: no GRE phase images (*_part-phase_*); QSM needs phase")
    if phase.extra.get("resampled") or phase.data.shape != gre.data.shape:
        raise M1LoadError(f"{phase.sources[0]}: phase is not on the magnitude's grid")
    tes = gre.echo_times_ms or phase.echo_times_ms
    if not tes:
        raise M1LoadError(
            f"{folder.name}: echo times unknown (add EchoTime to the JSON sidecars or "
            "echo_times_ms to case.json)"
        )
    where = "argument --b0"
    if b0_tesla is None:
        b0_tesla, where = field_strength(case.files)
        if b0_tesla is None:
            raise M1LoadError(
                f"{folder.name}: field strength unknown (no MagneticFieldStrength in the "
                "sidecars); pass --b0 TESLA"
            )
    pdata, nominal = _snap_scanner_range(phase.data, phase.extra.get("phase_scaling") or {})
    inp = QSMInput(
        mag=gre.data,
        phase=pdata,
        echo_times_ms=tuple(tes),
        b0_tesla=float(b0_tesla),
        affine=gre.ras_affine,
        source={
            "case": folder.name,
            "magnitude_files": list(gre.sources),
            "phase_files": list(phase.sources),
            "phase_scaling": phase.extra.get("phase_scaling"),
            "phase_nominal_range": list(nominal) if nominal else None,
            "b0_from": where,
            "source_axcodes": list(gre.source_axcodes),
        },
    )
    inp.warnings[:0] = [w for w in case.warnings if "echo times unknown" not in w]
    return inp
