"""The workstation's "View" tab: window/level, MinIP, side by side, orthogonal views."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from qtpy.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .._reading import KEYS, get_reading_tools

if TYPE_CHECKING:
    import napari

__all__ = ["ImageToolsWidget", "toggle_orthogonal_views"]

log = logging.getLogger(__name__)


def toggle_orthogonal_views(viewer: Any, on: bool) -> bool:
    """Show or hide linked orthogonal views with a crosshair (napari-orthogonal-views).

    Returns whether they are shown.
    """
    # the plugin's own entry points defer show/hide to the event loop; call the
    # per-viewer manager directly so the button's state is right at once
    from napari_orthogonal_views.ortho_view_manager import _get_manager

    m = _get_manager(viewer)
    if on:
        m.show()
        m.set_cross_hairs(True)
        m.set_center_sync(True)
    else:
        m.hide()
    return bool(_get_manager(viewer).is_shown())


class ImageToolsWidget(QWidget):
    """Reading tools that change the display only (never the data or the annotations)."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.tools = get_reading_tools(napari_viewer)
        keys = ", ".join(f"{k} {v:+d}" for k, v in KEYS.items())
        self.help = QLabel(
            "Window/level: right-drag on the image (→ wider, ↓ darker); each echo keeps "
            f"its own. Slices: {keys}. Hover: value of every visible map."
        )
        self.help.setWordWrap(True)
        self.reset_button = QPushButton("Reset window/level")
        self.minip_box = QCheckBox("Min-IP over")
        self.minip_box.setToolTip("Minimum-intensity projection of the GRE over a slab")
        self.minip_slices = QSpinBox()
        self.minip_slices.setRange(2, 15)
        self.minip_slices.setValue(3)
        self.minip_slices.setSuffix(" slices")
        self.side_button = QPushButton("GRE | QSM side by side")
        self.side_button.setCheckable(True)
        self.ortho_button = QPushButton("Orthogonal views")
        self.ortho_button.setCheckable(True)
        self.ortho_button.setToolTip(
            "Linked sagittal and coronal views with a crosshair (T: centre on the mouse)"
        )
        row = QHBoxLayout()
        row.addWidget(self.minip_box)
        row.addWidget(self.minip_slices)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(3)
        lay.addWidget(self.help)
        lay.addWidget(self.reset_button)
        lay.addLayout(row)
        lay.addWidget(self.side_button)
        lay.addWidget(self.ortho_button)
        lay.addStretch(1)

        self.reset_button.clicked.connect(self._on_reset)
        self.minip_box.toggled.connect(self._on_minip)
        self.minip_slices.valueChanged.connect(
            lambda _v: self._on_minip(self.minip_box.isChecked())
        )
        self.side_button.toggled.connect(self.tools.set_side_by_side)
        self.ortho_button.toggled.connect(self._on_ortho)

    def _on_reset(self) -> None:
        self.tools.reset_limits()

    def _on_minip(self, on: bool) -> None:
        self.tools.set_min_projection(self.minip_slices.value() if on else 0)

    def _on_ortho(self, on: bool) -> None:
        try:
            shown = toggle_orthogonal_views(self.viewer, on)
        except ImportError:
            from napari.utils.notifications import show_error

            show_error("orthogonal views need the napari-orthogonal-views package")
            shown = False
        if shown != on:
            self.ortho_button.blockSignals(True)
            self.ortho_button.setChecked(shown)
            self.ortho_button.blockSignals(False)
