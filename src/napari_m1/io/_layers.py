"""Volume -> napari layer-data tuple ``(data, kwargs, 'image')``. No napari import needed.

Every layer's ``metadata['napari_m1']`` carries the geometry that all later
computations use; read it with :class:`~napari_m1.io.LayerMeta`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..geometry import DisplayPlacement
from ._meta import METADATA_KEY
from ._nifti import Volume

__all__ = ["layer_metadata", "robust_limits", "volume_to_layer_data"]

# Blue (diamagnetic, negative chi) - white - red (paramagnetic, positive chi).
QSM_COLORMAP: dict[str, Any] = {
    "name": "m1_chi_bwr",
    "colors": [[0.1, 0.25, 0.9, 1.0], [1.0, 1.0, 1.0, 1.0], [0.9, 0.1, 0.1, 1.0]],
    "controls": [0.0, 0.5, 1.0],
}


def robust_limits(
    data: np.ndarray, lo: float = 0.5, hi: float = 99.5, max_samples: int = 250_000
) -> tuple[float, float]:
    """Percentile contrast limits from a strided subsample of the finite values.

    Returns ``(0.0, 1.0)`` when nothing is finite, and widens equal limits slightly
    so napari gets a non-empty range.
    """
    # Strided sub-grid of the (possibly non-contiguous) array: no full-size copy.
    step = max(1, int(np.ceil((data.size / max_samples) ** (1 / data.ndim))))
    sample = np.asarray(data[(slice(None, None, step),) * data.ndim], dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    a, b = np.percentile(sample, [lo, hi])
    if not b > a:
        a, b = float(sample.min()), float(sample.max())
        if not b > a:
            a, b = a - 0.5, a + 0.5
    return float(a), float(b)


def layer_metadata(
    vol: Volume, placement: DisplayPlacement, *, case_label: str = ""
) -> dict[str, Any]:
    """The ``metadata['napari_m1']`` dict of a layer.

    Keys: ``kind``; ``ras_affine`` (4x4 list: napari spatial index -> RAS mm);
    ``source_affine`` and ``source_axcodes`` (the file's own); ``voxel_size_mm``;
    ``echo_times_ms`` (list or None); ``has_echo_axis``; ``resampled`` (bool);
    ``sources`` (file base names); ``case_label``; plus kind-specific ``extra``
    entries; ``aux`` (the Volume's small companion arrays, e.g. MRSI QC reasons and
    tissue fractions, for the measurement engine) when there are any. Read it back with
    :meth:`napari_m1.io.LayerMeta.of`.
    """
    md: dict[str, Any] = {
        "kind": vol.kind,
        "ras_affine": np.asarray(vol.ras_affine).tolist(),
        "source_affine": np.asarray(vol.source_affine).tolist(),
        "source_axcodes": list(vol.source_axcodes),
        "voxel_size_mm": list(vol.voxel_size_mm),
        "echo_times_ms": vol.echo_times_ms,
        "has_echo_axis": vol.data.ndim == 4,
        "resampled": placement.resample_to_reference,
        "sources": list(vol.sources),
        "case_label": case_label,
    }
    md.update(vol.extra)
    if vol.aux:
        md["aux"] = dict(vol.aux)
    return md


def volume_to_layer_data(
    vol: Volume,
    placement: DisplayPlacement,
    *,
    visible: bool | None = None,
    case_label: str = "",
) -> tuple[np.ndarray, dict[str, Any], str]:
    """napari layer-data tuple for a volume placed in the reference's world.

    Display choices per kind: GRE grey with robust limits; phase cyclic
    (``twilight``) on [-pi, pi], hidden by default; QSM blue-white-red with limits
    symmetric about 0, half transparent; MRSI ``inferno`` blocks (nearest
    interpolation), 40 % opaque. Only the GRE is visible at first: overlays are
    switched on by the reader (eye icon), so the anatomy is never hidden by default.
    """
    lead = (1.0,) if vol.data.ndim == 4 else ()
    zero = (0.0,) if vol.data.ndim == 4 else ()
    kwargs: dict[str, Any] = {
        "name": vol.name,
        "scale": lead + tuple(placement.scale),
        "translate": zero + tuple(placement.translate),
        "metadata": {METADATA_KEY: layer_metadata(vol, placement, case_label=case_label)},
        "axis_labels": (("echo",) if vol.data.ndim == 4 else ()) + ("S-I", "A-P", "R-L"),
        "units": (("dimensionless",) if vol.data.ndim == 4 else ()) + ("mm", "mm", "mm"),
        "interpolation2d": "nearest",
    }
    if vol.kind == "phase":
        kwargs.update(colormap="twilight", contrast_limits=(-np.pi, np.pi), visible=False)
    elif vol.kind == "qsm":
        lo, hi = robust_limits(vol.data, 1.0, 99.0)
        m = max(abs(lo), abs(hi), 1e-6)
        kwargs.update(colormap=QSM_COLORMAP, contrast_limits=(-m, m), opacity=0.5, visible=False)
    elif vol.kind == "mrsi":
        kwargs.update(
            colormap="inferno",
            contrast_limits=robust_limits(vol.data, 2.0, 98.0),
            opacity=0.4,
            blending="translucent",
            visible=False,
        )
    else:
        # Limits from echo 1, the echo shown first (and the only one read at the first
        # frame of a staged load: a LoadingArray's data[0] waits for echo 1 alone).
        first = vol.data[0] if vol.data.ndim == 4 else vol.data
        kwargs.update(colormap="gray", contrast_limits=robust_limits(first))
    if visible is not None:
        kwargs["visible"] = visible
    return vol.data, kwargs, "image"
