"""Dock widget "M1 workstation": the case, annotation and measurement docks in one column.

One dock instead of three stacked ones, so the window fits the screen: the annotation,
case and view tools are tabs (each scrolls on its own when the screen is small) above
the measurements, in a splitter the reader can move. It also puts the reader's position
on screen: slice position in mm next to the slice slider, the echo's TE next to the echo
slider (1-based), both in the status bar; and it turns on the viewer's reading tools
(slice keys, window/level drag, per-echo contrast, hover readout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import (
    QFrame,
    QLabel,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from .._reading import ReadingTools, get_reading_tools
from .annotation_widget import AnnotationWidget
from .case_widget import CaseWidget
from .image_tools import ImageToolsWidget
from .measurement_widget import MeasurementWidget
from .spectrum_widget import SpectrumWidget

if TYPE_CHECKING:
    import napari

__all__ = ["PositionLabels", "WorkstationWidget", "scrolled"]

COMPACT_LIST_HEIGHT = 150  # the checklist scrolls inside this at small screens


class _FitScrollArea(QScrollArea):
    """A vertical scroll area that gives its widget the viewport's height whenever the
    widget's minimum fits (so nothing scrolls at 1920×1080), and its minimum otherwise.

    Qt's own ``widgetResizable`` sizes a layout with word-wrapped labels by
    height-for-width, which asks for far more than the minimum and scrolls needlessly.
    """

    def __init__(self, widget: QWidget) -> None:
        super().__init__()
        self.setWidget(widget)
        self.setWidgetResizable(False)
        widget.installEventFilter(self)

    def _fit(self) -> None:
        w, vp = self.widget(), self.viewport()
        if w is None:
            return
        h = max(vp.height(), w.minimumSizeHint().height())
        if (w.width(), w.height()) != (vp.width(), h):
            w.resize(vp.width(), h)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit()

    def eventFilter(self, obj: Any, event: Any) -> bool:
        if obj is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self._fit()
        return False


def scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless vertical scroll area (so it never forces the window's size)."""
    area = _FitScrollArea(widget)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setMinimumHeight(60)
    # as wide as the content needs (no horizontal scrolling), as short as the screen allows
    area.setMinimumWidth(
        widget.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width()
    )
    return area


class WorkstationWidget(QWidget):
    """Case, annotation, view tools and measurements for a whole reading day, in one dock.

    Attributes
    ----------
    case, annotation, measurements, view, spectrum : the sub-widgets (the same classes as the
        separate docks, so everything they do works here too).
    tabs : QTabWidget
        "Annotate", "Case", "View", "MRSI" (the spectrum under the cursor, QC thresholds).
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.tools: ReadingTools = get_reading_tools(napari_viewer)
        self.case = CaseWidget(napari_viewer)
        self.annotation = AnnotationWidget(napari_viewer, dock_measurements=False)
        self.measurements = MeasurementWidget(napari_viewer)
        self.view = ImageToolsWidget(napari_viewer)
        self.spectrum = SpectrumWidget(napari_viewer)
        _compact(self.annotation)

        self.tabs = QTabWidget()
        self.tabs.addTab(scrolled(self.annotation), "Annotate")
        self.tabs.addTab(scrolled(self.case), "Case")
        self.tabs.addTab(scrolled(self.view), "View")
        self.tabs.addTab(scrolled(self.spectrum), "MRSI")
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.tabs)
        self.splitter.addWidget(scrolled(self.measurements))
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.splitter)

        if not self.annotation.ctl.has_case:
            self.tabs.setCurrentIndex(1)  # open a case first
        self.case.case_loaded.connect(lambda _label: self.tabs.setCurrentIndex(0))
        # a case put on screen by another dock (the Reader session): annotate it
        self.annotation.ctl.case_changed.connect(self._on_case_changed)
        self.positions = PositionLabels(napari_viewer, self.tools)

    def _on_case_changed(self) -> None:
        if self.annotation.ctl.has_case and self.tabs.currentIndex() == 1:
            self.tabs.setCurrentIndex(0)


def _compact(widget: QWidget) -> None:
    """Tighter spacing and a checklist that scrolls in less height (small screens)."""
    lay = widget.layout()
    if lay is not None:
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(3)
    checklist = getattr(widget, "checklist", None)
    if checklist is not None:
        checklist.setMinimumHeight(COMPACT_LIST_HEIGHT)
        if lay is not None:
            lay.setStretchFactor(checklist, 10)  # spare height goes to the list


def _private(obj: Any, name: str) -> Any:
    """napari's Qt window parts: no public API gives the status bar or the dims sliders
    (napari-orthogonal-views does the same); None when absent."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return getattr(obj, name, None)


class PositionLabels:
    """Slice position (mm) beside the slice slider, TE beside the echo slider, both in the
    status bar. napari's sliders show 0-based step numbers only; these labels say what
    the step *is*."""

    def __init__(self, viewer: Any, tools: ReadingTools) -> None:
        self.viewer = viewer
        self.tools = tools
        self.status = QLabel("")
        self.status.setObjectName("m1_position")
        self._slider_labels: dict[int, QLabel] = {}
        qt_window = _private(getattr(viewer, "window", None), "_qt_window")
        if qt_window is not None:
            qt_window.statusBar().addPermanentWidget(self.status)
        viewer.dims.events.current_step.connect(self.refresh)
        viewer.dims.events.ndim.connect(self.refresh)
        viewer.dims.events.order.connect(self.refresh)
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        self.refresh()

    def _qt_dims(self) -> Any:
        qtv = _private(getattr(self.viewer, "window", None), "_qt_viewer")
        return getattr(qtv, "dims", None)

    def slider_text(self, axis: int) -> str:
        """The text beside a slider: ``"S 12.0 mm"`` or ``"echo 2/2 · TE 20 ms"``."""
        if axis == self.tools.echo_axis():
            return self.tools.echo_text()
        if axis == self.tools.slice_axis():
            return self.tools.slice_position_text()
        return ""

    def refresh(self, event: Any = None) -> None:
        """Update the status bar and the slider labels."""
        self.status.setText(self.tools.position_text())
        qt_dims = self._qt_dims()
        if qt_dims is None:
            return
        for axis, slider in enumerate(qt_dims.slider_widgets):
            label = self._slider_labels.get(axis)
            if label is None or label.parent() is not slider:
                label = QLabel("")
                label.setObjectName("m1_slider_position")
                label.setMinimumWidth(90)
                slider.layout().addWidget(label)
                self._slider_labels[axis] = label
            text = self.slider_text(axis)
            if label.text() != text:
                label.setText(text)
