"""The GUI benchmarks' screen: a 1920x1080x24 virtual display when none is set."""

from __future__ import annotations

import os
import sys


def virtual_display(size: tuple[int, int] = (1920, 1080)) -> object | None:
    """Start a virtual X display of ``size`` (pixels) on Linux when ``DISPLAY`` is unset;
    returns it (call ``.stop()`` at the end) or None when a display is already there."""
    if os.environ.get("DISPLAY") or sys.platform != "linux":
        return None
    from pyvirtualdisplay import Display

    d = Display(visible=False, size=size, color_depth=24)
    d.start()
    return d
