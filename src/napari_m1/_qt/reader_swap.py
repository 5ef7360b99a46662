"""The Reader dock's case swap: put a loaded case on screen in small steps.

:class:`CaseSwapMixin` holds the part of :class:`~.reader_widget.ReaderWidget` that
changes what the viewer shows at a case change. The image layers of the case shown
are reused (the new volumes are swapped into them, :func:`~napari_m1._viewer.swap_layer`),
the contrast limits come precomputed from the loader thread, and the remaining work
runs as a queue of short steps, one per event-loop turn, so the window keeps
drawing and answering. The case after the next is read (prefetched) once the swap is done.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qtpy.QtCore import QTimer

from .._viewer import case_image_layers, m1_layers, reusable_layers, swap_layer
from ..session import ReaderController, SessionAnnotationStore

__all__ = ["CaseSwapMixin"]

log = logging.getLogger(__name__)


def _load_layers(rc: ReaderController, pseudonym: str, folder: Path) -> tuple[Any, list[Any]]:
    """Worker thread: the blinded case and its layer-data tuples (contrast limits
    computed here, not in the GUI thread)."""
    from .._reader import case_layer_data

    case = rc.load(pseudonym, folder)
    return case, case_layer_data(case)


@contextlib.contextmanager
def _no_full_gc() -> Iterator[None]:
    """napari runs a full ``gc.collect()`` for every layer it removes (a workaround for
    some Windows OpenGL drivers): about 1 s each with a large heap, in the GUI thread.
    Here the removed layers' resources are left to Python's automatic collection."""
    collect = gc.collect
    gc.collect = lambda *a, **k: 0
    try:
        yield
    finally:
        gc.collect = collect


class CaseSwapMixin:
    """Case swap methods of the Reader dock (needs ``viewer``, ``ctl``, ``reader_ctl``,
    ``orientation``, ``_reuse_layers``, ``_adding``, ``_set_busy``, ``_load_form``,
    ``_apply_hide_numbers`` and the ``case_opened`` signal)."""

    viewer: Any
    ctl: Any
    reader_ctl: ReaderController
    orientation: Any
    _reuse_layers: bool
    _adding: bool

    def _show(
        self, pseudonym: str, case: Any, *, block: bool = True, todo: list[Any] | None = None
    ) -> None:
        """Swap the case on screen.

        The layers of the case shown are reused: each takes the new case's volume in
        place (:func:`~napari_m1._viewer.swap_layer`; napari keeps its vispy node and
        controls, and the contrast limits come precomputed from the loader thread). Only
        layers the new case has more or fewer of are added or removed. Without
        ``block`` the swap is a queue of small steps (detach, one layer each, attach,
        form), one per event-loop turn, so the window keeps drawing and answering.
        ``todo``: the case's layer-data tuples when already made (in the worker thread).
        """
        from .._reader import case_layer_data

        todo = list(case_layer_data(case)) if todo is None else list(todo)
        old = case_image_layers(self.viewer) if self._reuse_layers else []
        n_reuse = reusable_layers(old, todo)
        added: list[Any] = list(old[:n_reuse])

        def swap(pairs: list[tuple[Any, Any]]) -> None:
            for layer, (data, kw, _) in pairs:
                swap_layer(layer, data, kw)

        def add(ld: tuple[Any, dict[str, Any], str]) -> None:
            added.append(self.viewer.add_image(ld[0], **ld[1]))

        pairs = list(zip(old[:n_reuse], todo[:n_reuse], strict=True))
        # One layer per step: the visible ones first (the picture the reader waits for).
        pairs.sort(key=lambda p: not p[1][1].get("visible", True))
        steps: list[Any] = [functools.partial(self._detach_case, keep_layer=n_reuse > 0)]
        steps += [functools.partial(self._remove_layer, ly) for ly in old[n_reuse:]]
        if not self._reuse_layers:  # the annotation layer and any other napari-m1 layer
            steps += [functools.partial(self._remove_layer, ly) for ly in m1_layers(self.viewer)]
        steps += [functools.partial(swap, [p]) for p in pairs]
        steps += [functools.partial(add, ld) for ld in todo[n_reuse:]]
        steps += [
            lambda: self._finish_view(added),
            lambda: self._finish_attach(pseudonym),
            lambda: self._finish_show(pseudonym, case),
        ]
        # the case after this one starts loading once this one is on screen (a loader
        # thread running during the swap slows the GUI thread's steps and frame)
        prefetch = functools.partial(self.reader_ctl.prefetch_next, pseudonym)
        if block:
            for step in [*steps, prefetch]:
                step()
            return
        last = steps[-1]
        self._adding = True
        self._set_busy(True)
        # The canvas keeps the previous case's frame until the new one is complete and
        # draws it once (a half-swapped mix of two cases is never shown, and the steps
        # do not each pay a full canvas repaint); the dock's progress bar moves meanwhile.
        # (The release is the last step, after the form: a swap started meanwhile by a
        # quick Next keeps its own hold.)
        self._swap_serial = serial = getattr(self, "_swap_serial", 0) + 1
        self._hold_canvas(True)
        steps.append(lambda: serial == self._swap_serial and self._hold_canvas(False))
        steps.append(prefetch)
        n = len(steps)

        def run_next() -> None:
            if self.reader_ctl.session is None:  # the session was closed meanwhile
                self._adding = False
                self._hold_canvas(False)
                return
            step = steps.pop(0)
            if step is last:  # the case is complete: the dock is no longer busy
                self._adding = False
                self._set_busy(False)
            t0 = time.perf_counter()
            try:
                step()
            except Exception as exc:  # a bug, not bad input: logged, said, never frozen
                log.exception("case swap step %d/%d failed", n - len(steps), n)
                steps.clear()
                self._adding = False
                self._hold_canvas(False)
                self.reader_ctl.failed(f"Could not show the case: {type(exc).__name__}: {exc}")
                self._set_busy(False)
                return
            ms = (time.perf_counter() - t0) * 1e3
            log.debug("case swap step %d/%d: %.0f ms", n - len(steps), n, ms)
            if steps:
                QTimer.singleShot(1, run_next)

        QTimer.singleShot(0, run_next)

    def _hold_canvas(self, hold: bool) -> None:
        """Keep the canvas's last frame on screen (``hold``) or draw it again: Qt
        ignores repaint requests of a widget whose updates are disabled, and enabling
        them requests one repaint.

        Before the release, napari's per-draw bookkeeping (camera sync, each layer's
        scale factor, e.g. the ROI labels' size for the new zoom) runs once here, so
        the first frame is final and is not followed at once by a second draw."""
        from .workstation import _private

        canvas = getattr(
            _private(getattr(self.viewer, "window", None), "_qt_viewer"), "canvas", None
        )
        native = getattr(canvas, "native", None)
        if native is None or native.updatesEnabled() != hold:
            return
        if not hold:
            with contextlib.suppress(Exception):  # napari's private hook; only an optimisation
                canvas.on_draw(None)
        native.setUpdatesEnabled(not hold)

    def _finish_view(self, added: list[Any]) -> None:
        """The new case's view: middle slice of echo 1, the GRE selected, orientation."""
        from .._viewer import _show_middle_slice

        _show_middle_slice(self.viewer, added[0])
        self.viewer.layers.selection.active = added[0]  # the GRE, not a hidden map
        self.orientation.apply()

    def _finish_attach(self, pseudonym: str) -> None:
        """Attach the annotation controller to the case (the read's annotations)."""
        s = self.reader_ctl.require()
        # Locked reads are refused (and the attempt logged) by the study database itself.
        self.ctl.reconfigure(reader=s.reader, store=SessionAnnotationStore(s, pseudonym))

    def _finish_show(self, pseudonym: str, case: Any) -> None:
        from napari.utils.notifications import show_warning

        rc = self.reader_ctl
        for w in case.warnings:
            show_warning(w)
        s = rc.require()
        rc.opened(pseudonym)
        self._apply_hide_numbers(bool(s.settings.get("hide_numbers", False)))
        self._load_form()
        self.case_opened.emit(pseudonym)

    def _clear_case(self) -> None:
        self._detach_case()
        for ly in m1_layers(self.viewer):
            self._remove_layer(ly)

    def _detach_case(self, *, keep_layer: bool = False) -> None:
        with _no_full_gc():
            self.ctl.detach(keep_layer=keep_layer)
        if self.reader_ctl.pseudonym is not None:
            self.reader_ctl.closed_case()

    def _remove_layer(self, layer: Any) -> None:
        if layer in self.viewer.layers:
            with _no_full_gc():
                self.viewer.layers.remove(layer)
