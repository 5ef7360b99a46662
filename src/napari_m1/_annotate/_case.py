"""The case a viewer shows, as the annotation controller needs it (napari, no Qt).

:class:`ViewerCase` follows the viewer's layer list and emits events when the
reference GRE appears or disappears and when maps are added or removed after it;
it builds the :class:`~napari_m1.measure.MeasurementEngine` over every map shown
and names the default autosave file of a case.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from psygnal import Signal

from .._paths import user_data_dir
from .._viewer import m1_layers, reference_layer
from ..annotation import FileAnnotationStore, case_fingerprint
from ..io import LayerMeta
from ..measure import MapSource, MeasurementEngine
from ..protocol import Protocol

__all__ = ["ViewerCase", "build_engine", "default_store"]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "case"


def default_store(case: dict[str, Any], reader: str, protocol: Protocol) -> FileAnnotationStore:
    """The per-user autosave file of a case (by label and grid hash), reader and protocol."""
    folder = user_data_dir() / "annotations" / f"{_safe(case['label'])}-{case['hash']}"
    return FileAnnotationStore(folder / f"{_safe(reader or 'default')}-{protocol.id}.m1ann.jsonl")


def build_engine(
    viewer: Any, ref: Any, protocol: Protocol, *, case_label: str, reader: str
) -> MeasurementEngine:
    """A measurement engine over every napari-m1 map now in the viewer (``ref`` first)."""
    sources = []
    for ly in m1_layers(viewer):
        m = LayerMeta.of(ly)
        if m.is_map:
            tes = list(m.echo_times_ms) if m.echo_times_ms is not None else None
            sources.append(
                MapSource(
                    m.kind,
                    ly.name,
                    ly.data,
                    m.ras_affine,
                    tes,
                    m.metabolite,
                    m.source_affine,
                    aux=m.raw.get("aux") or None,
                    meta=m.raw,  # the live dict: QC thresholds as the GUI re-masks
                )
            )
    sources.sort(key=lambda src: src.name != ref.name)  # the reference GRE first
    return MeasurementEngine(sources, protocol, case_label=case_label, reader=reader)


class ViewerCase:
    """The reference GRE layer of a viewer and the maps beside it.

    Signals
    -------
    opened()
        A (new) reference GRE layer is in the viewer: :attr:`ref` is set.
    closed()
        The reference layer was removed (the case was closed).
    maps_changed()
        A napari-m1 map was added or removed while the case stays open.
    """

    opened = Signal()
    closed = Signal()
    maps_changed = Signal()

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        self.ref: Any = None
        #: Layers kept above every image (the annotation layer).
        self.on_top: list[Any] = []
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self._on_removed)

    def close(self) -> None:
        """Stop following the viewer."""
        self.viewer.layers.events.inserted.disconnect(self._on_inserted)
        self.viewer.layers.events.removed.disconnect(self._on_removed)

    def find(self) -> Any | None:
        """The viewer's napari-m1 GRE reference layer, or None."""
        ref = reference_layer(self.viewer)
        if ref is None or LayerMeta.of(ref).kind != "gre":
            return None
        return ref

    @property
    def meta(self) -> LayerMeta:
        """The reference layer's napari-m1 metadata."""
        return LayerMeta.of(self.ref)

    @property
    def ras_affine(self) -> np.ndarray:
        """napari index -> RAS mm of the reference grid, (4, 4)."""
        return self.meta.ras_affine

    def fingerprint(self) -> dict[str, Any]:
        """:func:`~napari_m1.annotation.case_fingerprint` of the reference grid."""
        md = self.meta
        return case_fingerprint(md.case_label or "case", self.ref.data.shape[-3:], md.ras_affine)

    def engine(self, protocol: Protocol, reader: str) -> MeasurementEngine:
        """A fresh measurement engine over the maps now shown."""
        return build_engine(
            self.viewer,
            self.ref,
            protocol,
            case_label=self.meta.case_label or "case",
            reader=reader,
        )

    def keep_on_top(self) -> None:
        """The annotation layer stays above the images (maps added later included)."""
        layers = self.viewer.layers
        for ly in self.on_top:
            if ly is not None and ly in layers:
                i = layers.index(ly)
                if i != len(layers) - 1:
                    layers.move(i, len(layers))

    def _on_inserted(self, event: Any = None) -> None:
        self.keep_on_top()
        layer = getattr(event, "value", None)
        if layer is not None and layer in self.on_top:
            return
        ref = self.find()
        if ref is not self.ref:
            if ref is not None:
                self.ref = ref
                self.opened.emit()
        elif self.ref is not None and (layer is None or LayerMeta.of(layer) is not None):
            self.maps_changed.emit()

    def _on_removed(self, event: Any = None) -> None:
        layer = getattr(event, "value", None)
        if self.ref is None or layer is None or layer in self.on_top:
            return
        if layer is self.ref:
            self.ref = None
            self.closed.emit()
        elif LayerMeta.of(layer) is not None:
            self._on_inserted(None)

    def autosave_name(self, reader: str, protocol: Protocol) -> Path:
        """Path of the default autosave file for this case."""
        return default_store(self.fingerprint(), reader, protocol).path
