"""The one adapter between napari-m1 and a napari viewer (no Qt).

* :func:`add_case_layers` puts a loaded case into a viewer.
* :class:`OrientationController` keeps the radiological/neurological camera
  orientation and the anatomical letters on the canvas edges in step with the view.
* :func:`reference_layer` and :func:`world_to_ras_in_viewer` let other code turn a
  world point into scanner RAS mm and a hemisphere.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from .geometry import conventional_orientation, edge_letters, hemisphere, world_to_ras
from .io import METADATA_KEY, Case, LayerMeta

__all__ = [
    "OrientationController",
    "StagedCaseLayers",
    "add_case_layers",
    "case_image_layers",
    "case_is_complete",
    "get_orientation",
    "hemisphere_at_world",
    "m1_layers",
    "reference_layer",
    "reusable_layers",
    "swap_layer",
    "world_to_ras_in_viewer",
]

log = logging.getLogger(__name__)

LETTER_KEYS = {
    "top": "top_center",
    "bottom": "bottom_center",
    "left": "middle_left",
    "right": "middle_right",
}


def camera_of(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None and hasattr(scene, "camera") else viewer.camera


def m1_layers(viewer: Any) -> list[Any]:
    """Layers that carry napari-m1 geometry metadata, in layer-list order."""
    return [ly for ly in viewer.layers if LayerMeta.of(ly) is not None]


def reference_layer(viewer: Any) -> Any | None:
    """The display reference: the first GRE layer, else the first napari-m1 layer."""
    layers = m1_layers(viewer)
    for ly in layers:
        if LayerMeta.of(ly).kind == "gre":
            return ly
    return layers[0] if layers else None


def world_to_ras_in_viewer(layer: Any, world: Sequence[float]) -> np.ndarray:
    """Scanner RAS mm ``(x, y, z)`` of a napari world point, through ``layer``'s geometry."""
    return world_to_ras(world, LayerMeta.of(layer).ras_affine, layer.scale, layer.translate)


def hemisphere_at_world(viewer: Any, world: Sequence[float]) -> str | None:
    """``'L'``, ``'R'`` (or ``'M'`` on the midline) of a world point; None without a case."""
    ref = reference_layer(viewer)
    if ref is None:
        return None
    return hemisphere(world_to_ras_in_viewer(ref, world))


def add_case_layers(viewer: Any, case: Case) -> list[Any]:
    """Add every layer of ``case`` to ``viewer``, show the middle axial slice, select the GRE.

    Returns the new layers (GRE first).
    """
    from ._reader import case_layer_data

    added = []
    for data, kwargs, _ in case_layer_data(case):
        added.append(viewer.add_image(data, **kwargs))
    _show_middle_slice(viewer, added[0])
    viewer.layers.selection.active = added[0]  # the GRE, not the last (hidden) map added
    return added


IMAGE_KINDS = ("gre", "phase", "qsm", "mrsi")


def case_image_layers(viewer: Any) -> list[Any]:
    """The napari-m1 image layers of the case shown (GRE, phase, QSM, MRSI), in order."""
    return [ly for ly in m1_layers(viewer) if LayerMeta.of(ly).kind in IMAGE_KINDS]


def reusable_layers(layers: Sequence[Any], todo: Sequence[tuple[Any, dict[str, Any], str]]) -> int:
    """How many leading ``layers`` can take the leading layer-data tuples of ``todo`` in
    place (:func:`swap_layer`): same kind, same name and same number of dimensions.

    QC'd MRSI ratio layers are never reused: the MRSI view sets them up (thresholds,
    the "excluded (reason)" layer) when they are inserted.
    """
    n = 0
    for ly, (data, kw, _) in zip(layers, todo, strict=False):
        md = LayerMeta.of(ly)
        new = LayerMeta.of(kw["metadata"])
        if md is None or new is None or md.kind != new.kind or ly.name != kw["name"]:
            break
        if md.raw.get("mrsi_ratio") or new.raw.get("mrsi_ratio"):
            break
        if getattr(ly, "rgb", False) or ly.data.ndim != np.ndim(data):
            break
        n += 1
    return n


def _image_defaults() -> dict[str, Any]:
    """The display settings ``viewer.add_image`` gives a new layer unless told."""
    import inspect

    from napari.layers import Image

    params = inspect.signature(Image.__init__).parameters
    out = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
    out["blending"] = "translucent_no_depth"  # add_image's default, not Image's
    return out


def swap_layer(layer: Any, data: Any, kwargs: dict[str, Any]) -> None:
    """Show another case's volume in an existing Image layer (see :func:`reusable_layers`).

    Much cheaper than removing the layer and adding a new one: napari keeps its vispy
    node and its layer controls, never scans the data (the contrast limits come
    precomputed in ``kwargs``) and re-slices the layer once, not once per property.
    Geometry (scale, translate), metadata and every display setting are reset to the
    values a new layer would get, so nothing of the previous case stays with the layer.
    ``kwargs`` are :func:`~napari_m1.io.volume_to_layer_data`'s.
    """
    from napari.utils.colormaps import ensure_colormap

    layer.metadata = dict(kwargs["metadata"])
    clim = tuple(float(c) for c in kwargs.get("contrast_limits", (0.0, 1.0)))
    cmap = kwargs.get("colormap", "gray")
    name = cmap if isinstance(cmap, str) else cmap.get("name", "")
    defaults = _image_defaults()
    settings = {k: kwargs.get(k, defaults[k]) for k in ("gamma", "opacity", "blending", "visible")}
    # one re-slice below, not one per property (napari's private helper; without it the
    # swap is only slower)
    block = getattr(layer, "_block_refresh", contextlib.nullcontext)
    with block():
        if tuple(layer.contrast_limits_range) != clim:
            layer.contrast_limits_range = clim  # no data scan: precomputed limits
        if tuple(layer.contrast_limits) != clim:
            layer.contrast_limits = clim
        if layer.colormap.name != name:
            layer.colormap = ensure_colormap(cmap)
        for key, value in settings.items():
            if getattr(layer, key) != value:
                setattr(layer, key, value)
        scale, translate = np.asarray(kwargs["scale"]), np.asarray(kwargs["translate"])
        if layer.scale.shape != scale.shape or not np.array_equal(layer.scale, scale):
            layer.scale = scale
        if layer.translate.shape != translate.shape or not np.array_equal(
            layer.translate, translate
        ):
            layer.translate = translate
        layer.data = data
    if layer.visible:
        layer.refresh()
    else:  # not sliced while hidden: no picture of the previous case in the layer list
        layer.thumbnail = np.zeros_like(layer.thumbnail)


def _show_middle_slice(viewer: Any, ref: Any) -> None:
    """Echo 1 (the contrast limits are set from it), middle axial slice, whole view."""
    viewer.reset_view()
    if ref.ndim == 4:
        viewer.dims.set_point(0, ref.translate[0])
    slice_axis = viewer.dims.ndim - 3  # first spatial world axis (S/I)
    middle = ref.translate[-3] + ref.scale[-3] * (ref.data.shape[-3] // 2)
    viewer.dims.set_point(slice_axis, middle)


class StagedCaseLayers:
    """Puts a case into a viewer while :class:`~napari_m1.io.CaseLoad` streams it.

    Feed it every :class:`~napari_m1.io.LoadEvent` (in the GUI thread):

    * ``first``: the GRE is added (visible, echo 1 complete, its data a
      :class:`~napari_m1.io.LoadingArray` whose reads wait for later echoes) and the
      middle slice shown -- the first frame;
    * ``volume`` 0: the GRE's data becomes the plain, complete numpy array;
    * ``volume`` i > 0: a phase, QSM or MRSI map is complete: its layer is added
      (hidden, as always) at its usual place in the layer list;
    * ``done``: :attr:`complete` becomes True -- the case's "ready" moment.

    :meth:`discard` removes what was added (a failed or cancelled load).
    """

    def __init__(self, viewer: Any, label: str) -> None:
        self.viewer = viewer
        self.label = label
        self.layers: list[Any] = []
        self._by_index: dict[int, Any] = {}
        self.complete = False
        _LOADING.setdefault(viewer, set()).add(self)

    def handle(self, event: Any) -> Any | None:
        """Apply one load event; returns the layer it added, if any."""
        from .io import volume_to_layer_data

        if event.kind == "first" or (event.kind == "volume" and not self.layers):
            vol, place = event.payload
            data, kwargs, _ = volume_to_layer_data(vol, place, case_label=self.label)
            # Added hidden: napari slices a new layer at once, at the sliders' middle
            # (a later echo, still being read); shown once echo 1 is selected.
            visible = kwargs.pop("visible", True)
            layer = self.viewer.add_image(data, visible=False, **kwargs)
            self.layers.append(layer)
            self._by_index[0] = layer
            _show_middle_slice(self.viewer, layer)
            layer.visible = visible
            if event.kind == "first":
                return layer
        if event.kind == "volume" and event.index == 0:
            vol, place = event.payload
            ref = self.layers[0]
            if ref.data is not vol.data:
                ref.data = vol.data  # the complete array: no waiting wrapper from here on
            ref.metadata[METADATA_KEY].update(vol.extra)  # n_nan, known once read
            return None
        if event.kind == "volume":
            # A map is complete: its layer goes where a blocking load would put it
            # (GRE, phase, QSM, MRSI order), hidden as always.
            from napari.layers import Image

            vol, place = event.payload
            data, kwargs, _ = volume_to_layer_data(vol, place, case_label=self.label)
            layer = Image(data, **kwargs)
            before = [ly for k, ly in self._by_index.items() if k < event.index]
            pos = max(self.viewer.layers.index(ly) for ly in before) + 1
            self.viewer.layers.insert(pos, layer)
            self._by_index[event.index] = layer
            self.layers.append(layer)
            self.viewer.layers.selection.active = self.layers[0]  # keep the GRE's controls
            return layer
        if event.kind == "done":
            self.viewer.layers.selection.active = self.layers[0]  # the GRE, not a hidden map
            self.complete = True
            _LOADING.get(self.viewer, set()).discard(self)
        return None

    def discard(self) -> None:
        """Remove every layer this load added."""
        _LOADING.get(self.viewer, set()).discard(self)
        for layer in self.layers:
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.layers.clear()


_LOADING: weakref.WeakKeyDictionary[Any, set[StagedCaseLayers]] = weakref.WeakKeyDictionary()


def case_is_complete(viewer: Any) -> bool:
    """True unless a case is still streaming into ``viewer`` (see :class:`StagedCaseLayers`).

    False from the first frame of a staged load until its last map is added, and while
    any napari-m1 layer's data is still a :class:`~napari_m1.io.LoadingArray`.
    """
    from .io import LoadingArray

    if _LOADING.get(viewer):
        return False
    return not any(isinstance(ly.data, LoadingArray) for ly in m1_layers(viewer))


_ORIENTATION: weakref.WeakKeyDictionary[Any, OrientationController] = weakref.WeakKeyDictionary()


def get_orientation(viewer: Any) -> OrientationController:
    """The viewer's orientation controller (one per viewer, created on first use)."""
    ctl = _ORIENTATION.get(viewer)
    if ctl is None:
        ctl = OrientationController(viewer)
        _ORIENTATION[viewer] = ctl
    return ctl


class OrientationController:
    """Radiological/neurological display and anatomical letters for one viewer.

    The camera's 2D orientation (napari >= 0.6 ``camera.orientation2d``) is set from
    the reference layer's ``ras_affine`` whenever the displayed axes change, so the
    usual reading view holds for axial, coronal and sagittal slicing. The letters are
    four napari canvas text overlays; they follow any later change of the camera
    orientation too, so they never lie.

    Parameters
    ----------
    viewer : napari.Viewer
    radiological : bool
        Patient's left on the screen's right (default, as in radiology).
    """

    def __init__(self, viewer: Any, *, radiological: bool = True) -> None:
        self.viewer = viewer
        self._radiological = radiological
        self._overlays: dict[str, Any] = {}
        self._make_overlays()
        viewer.dims.events.order.connect(self._on_view_changed)
        viewer.dims.events.ndisplay.connect(self._on_view_changed)
        viewer.layers.events.inserted.connect(self._on_view_changed)
        viewer.layers.events.removed.connect(self._on_view_changed)
        camera_of(viewer).events.orientation.connect(self._on_camera_orientation)
        self.apply()

    # ------------------------------------------------------------------ state
    @property
    def radiological(self) -> bool:
        """True: patient's left on the screen's right."""
        return self._radiological

    @radiological.setter
    def radiological(self, value: bool) -> None:
        self._radiological = bool(value)
        self.apply()

    def disconnect(self) -> None:
        """Stop following the viewer and remove the letters."""
        for ev, cb in (
            (self.viewer.dims.events.order, self._on_view_changed),
            (self.viewer.dims.events.ndisplay, self._on_view_changed),
            (self.viewer.layers.events.inserted, self._on_view_changed),
            (self.viewer.layers.events.removed, self._on_view_changed),
            (camera_of(self.viewer).events.orientation, self._on_camera_orientation),
        ):
            ev.disconnect(cb)
        for key in list(self._overlays):
            self.viewer.canvas.overlays.pop(f"m1_{key}", None)
        self._overlays.clear()

    # ------------------------------------------------------------------ internals
    def _make_overlays(self) -> None:
        from napari.components.overlays import TextOverlay

        for key, pos in LETTER_KEYS.items():
            ov = TextOverlay(
                text="", position=pos, visible=False, font_size=16, color="yellow", box=False
            )
            self.viewer.canvas.overlays[f"m1_{key}"] = ov
            self._overlays[key] = ov

    def _spatial_displayed(self) -> tuple[Any, tuple[int, int]] | None:
        ref = reference_layer(self.viewer)
        if ref is None or self.viewer.dims.ndisplay != 2:
            return None
        ndim = self.viewer.dims.ndim
        shift = ndim - 3  # world axes before the three spatial ones (e.g. echo)
        disp = tuple(int(d) - shift for d in self.viewer.dims.displayed)
        if any(d < 0 or d > 2 for d in disp):
            return None
        return ref, disp  # type: ignore[return-value]

    def apply(self) -> None:
        """Set the camera orientation for the current view and refresh the letters."""
        found = self._spatial_displayed()
        if found is None:
            self._set_letters(None)
            return
        ref, disp = found
        ras = LayerMeta.of(ref).ras_affine
        vertical, horizontal = conventional_orientation(ras, disp, radiological=self._radiological)
        cam = camera_of(self.viewer)
        if tuple(map(str, cam.orientation2d)) != (vertical, horizontal):
            cam.orientation2d = (vertical, horizontal)  # emits -> _on_camera_orientation
        else:
            self._refresh_letters()

    def letters(self) -> dict[str, str] | None:
        """The letters now shown at the top/bottom/left/right edges (None when hidden)."""
        found = self._spatial_displayed()
        if found is None:
            return None
        ref, disp = found
        ras = LayerMeta.of(ref).ras_affine
        v, h = (str(o) for o in camera_of(self.viewer).orientation2d)
        return edge_letters(ras, disp, v, h)

    def _refresh_letters(self) -> None:
        self._set_letters(self.letters())

    def _set_letters(self, letters: dict[str, str] | None) -> None:
        for key, ov in self._overlays.items():
            if letters is None:
                ov.visible = False
            else:
                ov.text = letters[key]
                ov.visible = True

    def _on_view_changed(self, event: Any = None) -> None:
        self.apply()

    def _on_camera_orientation(self, event: Any = None) -> None:
        self._refresh_letters()
