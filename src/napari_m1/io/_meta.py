"""The layer metadata contract: what napari-m1 keeps in ``layer.metadata['napari_m1']``.

napari stores layer metadata as a plain dict (it is saved with the layer), so the
dict stays the storage; :class:`LayerMeta` is the one typed way to read it. Code
that needs a layer's geometry asks ``LayerMeta.of(layer)`` instead of indexing the
dict by string keys. :func:`napari_m1.io.layer_metadata` writes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["METADATA_KEY", "LayerMeta"]

#: Key of napari-m1's entry in ``layer.metadata``.
METADATA_KEY = "napari_m1"


@dataclass(frozen=True)
class LayerMeta:
    """Typed view of one layer's napari-m1 metadata.

    Attributes
    ----------
    kind : str
        ``gre``, ``phase``, ``qsm``, ``mrsi`` (image layers) or ``annotations``.
    ras_affine : (4, 4) ndarray or None
        napari spatial index (S/I, A/P, R/L; no echo axis) -> scanner RAS mm.
        None for layers without a grid (the annotation layer).
    source_affine : (4, 4) ndarray or None
        The file's own voxel (i, j, k) -> RAS mm affine.
    echo_times_ms : tuple of float or None
        One TE per echo (leading axis of a 4D GRE), in ms.
    metabolite : str or None
        MRSI maps: the metabolite or ratio name.
    case_label : str
        The case's label (a pseudonym in a blinded reader session).
    protocol : str
        Annotation layer: the protocol id.
    raw : mapping
        The stored dict itself (read-only use; kind-specific extras live here).
    """

    kind: str
    ras_affine: NDArray[np.float64] | None = None
    source_affine: NDArray[np.float64] | None = None
    echo_times_ms: tuple[float, ...] | None = None
    metabolite: str | None = None
    case_label: str = ""
    protocol: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, md: Mapping[str, Any]) -> LayerMeta:
        """Read the stored dict (missing optional keys become None/empty)."""
        ras = md.get("ras_affine")
        src = md.get("source_affine")
        tes = md.get("echo_times_ms")
        return cls(
            kind=str(md.get("kind", "")),
            ras_affine=None if ras is None else np.asarray(ras, dtype=float),
            source_affine=None if src is None else np.asarray(src, dtype=float),
            echo_times_ms=None if tes is None else tuple(float(t) for t in tes),
            metabolite=md.get("metabolite"),
            case_label=str(md.get("case_label") or ""),
            protocol=str(md.get("protocol") or ""),
            raw=md,
        )

    @classmethod
    def of(cls, layer_or_metadata: Any) -> LayerMeta | None:
        """The napari-m1 metadata of a layer (or of a layer-data ``metadata`` dict).

        Returns None for layers that napari-m1 did not make.
        """
        md = getattr(layer_or_metadata, "metadata", layer_or_metadata)
        if not isinstance(md, Mapping) or not isinstance(md.get(METADATA_KEY), Mapping):
            return None
        return cls.from_dict(md[METADATA_KEY])

    @property
    def is_map(self) -> bool:
        """True for layers that hold measurable values on a grid (GRE, QSM, MRSI)."""
        return self.kind in ("gre", "qsm", "mrsi") and self.ras_affine is not None
