"""MRSI in a napari viewer (napari, no Qt): voxel under the cursor, live QC thresholds and
the "excluded (reason)" layers. One :class:`MRSIView` per viewer (:func:`get_mrsi_view`).

* :meth:`MRSIView.voxel_at` maps a world point to the MRSI voxel through scanner RAS and
  the MRSI grid's own affine (never through screen or display position).
* :meth:`MRSIView.set_thresholds` re-masks every ratio layer in place (and its excluded
  layer) from the fit kept in memory (:class:`~napari_m1.mrsi.MRSISource`), then has the
  annotations re-measured through :attr:`MRSIView.defer` (after the frame).
* When a QC'd ratio layer arrives, a hidden Labels layer "<ratio> excluded (reason)" is
  added after it through :attr:`MRSIView.defer` (the Qt side defers it past the first
  frame), labels = the bit field of failed tests, hover shows the reason.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import psygnal

from ._viewer import reference_layer, world_to_ras_in_viewer
from .io import METADATA_KEY, LayerMeta
from .mrsi import REASON_BITS, MRSISource, QCThresholds, get_source, reason_names, voxel_index

__all__ = [
    "EXCLUDED_KIND",
    "REASON_COLOURS",
    "MRSIView",
    "VoxelHit",
    "get_mrsi_view",
    "reason_label",
]

EXCLUDED_KIND = "mrsi_excluded"
#: colour of each test in the excluded layer (a voxel failing several: its first test's)
REASON_COLOURS: dict[str, str] = {
    "crlb": "#e4572e",
    "fwhm": "#f3a712",
    "snr": "#a23b72",
    "mask": "#7f7f7f",
}


def reason_label(bits: int) -> str:
    """Text of a label value: ``"crlb + snr"``; ``""`` for 0.

    >>> reason_label(3)
    'crlb + fwhm'
    """
    return " + ".join(reason_names(bits))


@dataclass
class VoxelHit:
    """The MRSI voxel at a world point: its source, ``ijk`` and the point's RAS (mm)."""

    source: MRSISource
    ijk: tuple[int, int, int]
    ras_mm: np.ndarray


def _excluded_colormap() -> Any:
    from napari.utils.colormaps import DirectLabelColormap

    colours: dict[Any, Any] = {None: "transparent", 0: "transparent"}
    for v in range(1, 16):
        colours[v] = REASON_COLOURS[reason_names(v)[0]]
    return DirectLabelColormap(color_dict=colours)


class MRSIView:
    """See the module docstring. Signals: ``thresholds_changed(QCThresholds)``,
    ``sources_changed()`` (a ratio layer came or went)."""

    thresholds_changed = psygnal.Signal(object)
    sources_changed = psygnal.Signal()

    def __init__(self, viewer: Any) -> None:
        self.viewer = viewer
        #: how to run the excluded-layer insertion (the Qt side: after the next frame)
        self.defer: Callable[[Callable[[], None]], None] = lambda f: f()
        #: a blinded reader session: show data only, never file names or header fields
        self.blinded = False
        self.thresholds = QCThresholds()
        self._remeasure_pending = False
        self._gather: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        viewer.layers.events.inserted.connect(self._on_inserted)
        viewer.layers.events.removed.connect(self._on_removed)

    # ------------------------------------------------------------------ layers
    def ratio_layers(self) -> list[tuple[Any, MRSISource, str]]:
        """``(layer, source, ratio name)`` of every QC'd ratio layer whose fit is in memory."""
        out = []
        for ly in self.viewer.layers:
            meta = LayerMeta.of(ly)
            if meta is None or meta.kind != "mrsi" or not meta.raw.get("mrsi_ratio"):
                continue
            src = get_source(meta.raw.get("mrsi_source"))
            if src is not None:
                out.append((ly, src, str(meta.metabolite)))
        return out

    def excluded_layer(self, ratio_layer: Any) -> Any | None:
        """The "excluded (reason)" Labels layer of a ratio layer, if added."""
        name = f"{ratio_layer.name} excluded (reason)"
        return next((ly for ly in self.viewer.layers if ly.name == name), None)

    def source(self) -> MRSISource | None:
        """The fit of the first ratio layer (a case has one MRSI fit)."""
        rl = self.ratio_layers()
        return rl[0][1] if rl else None

    def _on_inserted(self, event: Any) -> None:
        layer = event.value
        meta = LayerMeta.of(layer)
        if meta is None or meta.kind != "mrsi" or not meta.raw.get("mrsi_ratio"):
            return
        src = get_source(meta.raw.get("mrsi_source"))
        if src is None:
            return
        if src.thresholds != self.thresholds:  # a new case under the reader's thresholds
            src.remask(self.thresholds)
            self._apply(layer, src, str(meta.metabolite))
        self.defer(lambda: self._add_excluded(layer))
        self.sources_changed.emit()

    def _on_removed(self, event: Any) -> None:
        layer = event.value
        self._gather.pop(id(layer), None)
        meta = LayerMeta.of(layer)
        if meta is not None and meta.kind == "mrsi" and meta.raw.get("mrsi_ratio"):
            ex = self.excluded_layer(layer)
            if ex is not None:
                self.viewer.layers.remove(ex)
            self.sources_changed.emit()

    # ------------------------------------------------------------------ geometry
    def _gather_index(self, layer: Any, src: MRSISource) -> tuple[np.ndarray, np.ndarray]:
        """Per layer voxel: the flat index of its MRSI voxel and whether there is one.

        Layer index -> RAS (the layer's ``ras_affine``) -> MRSI voxel (the fit's affine),
        nearest voxel: an exact permutation/flip on the native grid, nearest-neighbour
        when the map was resampled onto the GRE grid.
        """
        hit = self._gather.get(id(layer))
        if hit is not None and hit[0].shape == layer.data.shape:
            return hit
        rel = np.linalg.inv(src.fit.affine) @ LayerMeta.of(layer).ras_affine
        shape = layer.data.shape
        flat = np.empty(shape, dtype=np.int32)  # an MRSI grid has far fewer than 2**31 voxels
        ok = np.empty(shape, dtype=bool)
        jk = np.indices(shape[1:], dtype=np.float64).reshape(2, -1)
        lim = np.asarray(src.fit.shape)[:, None]
        for i in range(shape[0]):  # plane by plane: bounded memory on a resampled GRE grid
            idx = np.vstack([np.full((1, jk.shape[1]), float(i)), jk])
            ijk = np.floor(rel[:3, :3] @ idx + rel[:3, 3:4] + 0.5).astype(np.int64)
            good = np.all((ijk >= 0) & (ijk < lim), axis=0)
            f = np.ravel_multi_index(tuple(np.where(good, ijk, 0)), src.fit.shape)
            flat[i] = f.reshape(shape[1:])
            ok[i] = good.reshape(shape[1:])
        hit = (flat, ok)
        self._gather[id(layer)] = hit
        return hit

    def voxel_at(self, world: Any) -> VoxelHit | None:
        """The MRSI voxel at a napari world point (None off the grid or without MRSI)."""
        src = self.source()
        ref = reference_layer(self.viewer)
        if src is None or ref is None:
            return None
        ras = world_to_ras_in_viewer(ref, world)
        ijk = voxel_index(src.fit.affine, src.fit.shape, ras)
        return None if ijk is None else VoxelHit(src, ijk, ras)

    # ------------------------------------------------------------------ thresholds
    def set_thresholds(self, thresholds: QCThresholds) -> None:
        """Re-mask every ratio layer (and its excluded layer) under ``thresholds``."""
        self.thresholds = thresholds
        done: set[int] = set()
        for layer, src, name in self.ratio_layers():
            if id(src) not in done:
                src.remask(thresholds)
                done.add(id(src))
            self._apply(layer, src, name)
        self.thresholds_changed.emit(thresholds)
        if not self._remeasure_pending:  # once for a burst of changes (typing, spinning)
            self._remeasure_pending = True
            self.defer(self.remeasure)

    def remeasure(self) -> None:
        """Re-measure the annotations on the re-masked maps (rows carry the new exclusions
        and thresholds); run after the frame by :meth:`set_thresholds`."""
        from ._annotate import find_controller

        self._remeasure_pending = False
        ctl = find_controller(self.viewer)
        if ctl is not None and ctl.has_case:
            ctl.case.maps_changed.emit()

    def _apply(self, layer: Any, src: MRSISource, name: str) -> None:
        rmap = next((r for r in src.maps if r.name == name), None)
        if rmap is None:
            return
        flat, ok = self._gather_index(layer, src)
        vals = np.where(ok, rmap.values.ravel()[flat], np.nan).astype(layer.data.dtype)
        np.copyto(layer.data, vals)  # in place: the measurement engine reads the same array
        md = layer.metadata[METADATA_KEY]
        md["qc"] = rmap.summary
        md["n_excluded"] = rmap.summary["n_excluded"]
        layer.refresh()
        ex = self.excluded_layer(layer)
        if ex is not None:
            np.copyto(ex.data, np.where(ok, rmap.reason.ravel()[flat], 0).astype(ex.data.dtype))
            ex.refresh()

    def _add_excluded(self, layer: Any) -> Any | None:
        """Add the hidden "<ratio> excluded (reason)" Labels layer right after ``layer``."""
        from napari.layers import Labels

        if layer not in self.viewer.layers or self.excluded_layer(layer) is not None:
            return None
        meta = LayerMeta.of(layer)
        src = get_source(meta.raw.get("mrsi_source"))
        rmap = (
            None if src is None else next((r for r in src.maps if r.name == meta.metabolite), None)
        )
        if rmap is None:
            return None
        flat, ok = self._gather_index(layer, src)  # type: ignore[arg-type]
        data = np.where(ok, rmap.reason.ravel()[flat], 0).astype(np.uint8)
        values = list(range(1, 16))
        md = {k: v for k, v in layer.metadata[METADATA_KEY].items() if k != "qc"}
        md.update(kind=EXCLUDED_KIND, mrsi_ratio=False, reason_bits=dict(REASON_BITS))
        ex = Labels(
            data,
            name=f"{layer.name} excluded (reason)",
            scale=layer.scale,
            translate=layer.translate,
            colormap=_excluded_colormap(),
            features={"index": values, "reason": [reason_label(v) for v in values]},
            metadata={METADATA_KEY: md},
            opacity=0.6,
            visible=False,
        )
        ex.axis_labels = layer.axis_labels
        ex.units = layer.units  # mm, as every map (napari warns on mixed units)
        layers = self.viewer.layers
        active, selected = layers.selection.active, set(layers.selection)
        layers.insert(layers.index(layer) + 1, ex)
        layers.selection.clear()  # napari selects a new layer: keep the reader's selection
        layers.selection.update(selected)
        layers.selection.active = active
        return ex


_VIEWS: weakref.WeakKeyDictionary[Any, MRSIView] = weakref.WeakKeyDictionary()


def get_mrsi_view(viewer: Any) -> MRSIView:
    """The viewer's :class:`MRSIView` (created on first use)."""
    view = _VIEWS.get(viewer)
    if view is None:
        view = MRSIView(viewer)
        _VIEWS[viewer] = view
    return view
