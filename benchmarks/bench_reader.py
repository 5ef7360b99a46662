"""Benchmark: a reader's case change in the Reader session dock — event-loop stall and wait.

Run (after `bash scripts/test.sh` has set up .venv):

    .venv/bin/python benchmarks/bench_reader.py [--cases 7] [--slices 60]

(a 1920x1080 virtual display is started when there is no DISPLAY).

A real napari window (1920x1080) with the Reader session dock and the M1 workstation
(the reader's layout; it fits the screen) and a one-reader study of ALS phantom cases
(GRE 448x448xS x 2 echoes, QSM, 4 MRSI maps each). The reader looks at each case for
``--dwell`` seconds, then presses Next.
Measured for every case change:

* **worst stall**: the longest time the Qt event loop could not run (a 5 ms timer's
  largest gap, minus 5 ms) from Next until the next case is drawn — the freeze the
  reader feels (target <= 100 ms);
* **Next -> drawn**: from the click to the first canvas draw after the case is shown;
* **floor**: the worst stall of one slice step (a re-slice and redraw) measured in the
  same run between case changes — what any action costs on this machine at this load
  (software OpenGL under xvfb, shared cores); the case change is quoted against it.

Both paths are measured in the same run: the **baseline** is how the dock worked
before: the case loads in the GUI thread (``go(+1, block=True)``) and its layers are
removed and added anew (~11 s frozen per change on the real data). napari-m1 loads
in a worker thread (the next case prefetched while the reader looks at the current
one) and swaps the new volumes into the layers already shown, a few small steps per
event-loop turn, the canvas holding the previous frame until the new case is drawn
once. Medians are printed with the ratio to the baseline, and every change's stall.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from _display import virtual_display


def _study(root: Path, n: int, slices: int) -> Path:
    from napari_m1.phantom import write_phantom_case
    from napari_m1.session import create_study

    lines = ["case_id,path"]
    for i in range(n):
        write_phantom_case(root / f"c{i}", "als" if i % 2 else "control", i, n_slices=slices)
        lines.append(f"K{i:03d},c{i}")
    (root / "cases.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    create_study(root / "study", root / "cases.csv", ["R1"], seed=1).close()
    return root / "study"


class StallMonitor:
    """Largest gap between ticks of a 5 ms Qt timer (the event loop's longest block)."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(5)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.worst = 0.0

    def _tick(self) -> None:
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last - 0.005)
        self.last = now

    def reset(self) -> None:
        self.last = time.perf_counter()
        self.worst = 0.0
        self.timer.start()


def _wait(app, cond, timeout: float = 120.0) -> None:
    t0 = time.perf_counter()
    while not cond():
        app.processEvents()
        time.sleep(0.001)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("case change did not finish")


def _pause(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    _wait(app, lambda: time.perf_counter() > end)


def _floor(app, viewer, mon: StallMonitor, n: int = 5) -> list[float]:
    """Worst stall of a plain slice step (one re-slice and redraw): what any action
    costs on this machine now, measured between the case changes."""
    axis = viewer.dims.ndim - 3
    out = []
    for i in range(n):
        _pause(app, 0.3)
        mon.reset()
        viewer.dims.set_current_step(axis, viewer.dims.current_step[axis] + (1 if i % 2 else -1))
        _pause(app, 0.4)
        out.append(mon.worst)
        mon.timer.stop()
    return out


def _changes(
    app, viewer, rw, study: Path, *, block: bool, dwell: float, floor: list[float]
) -> list[tuple]:
    """Start the session, then Next through every case; (stall_s, wait_s) per change.
    The slice-step stalls measured meanwhile are appended to ``floor``."""
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    drawn = []
    canvas.events.draw.connect(lambda e: drawn.append(time.perf_counter()))
    rw.start(study, "R1", block=True)
    mon = StallMonitor()
    out = []
    shown: list[float] = []

    def on_opened(_p: str) -> None:
        shown.append(time.perf_counter())
        canvas.update()  # the frame with the whole case (a swap may have drawn it already)

    rw.case_opened.connect(on_opened)
    for _ in range(len(rw.session.reads()) - 1):
        t_end = time.perf_counter() + dwell  # the reader looks at the case
        floor.extend(_floor(app, viewer, mon))
        _wait(app, lambda t=t_end: time.perf_counter() > t)
        shown.clear()
        mon.reset()
        t0 = time.perf_counter()
        rw.go(+1, block=block)
        _wait(app, lambda: shown and drawn and drawn[-1] > shown[-1])
        out.append((mon.worst, drawn[-1] - t0))
        mon.timer.stop()
    rw.close_session()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=7)
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--dwell", type=float, default=4.0, help="seconds on each case")
    args = ap.parse_args()
    os.environ.setdefault("QT_API", "pyqt6")
    display = virtual_display()
    import napari
    from qtpy.QtWidgets import QApplication

    study = _study(Path(tempfile.mkdtemp(prefix="m1-bench-reader-")), args.cases, args.slices)
    res = {}
    floor: list[float] = []
    base_name = "baseline (GUI thread, new layers)"
    for name, block in ((base_name, True), ("napari-m1", False)):
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1920, 1080)
        app = QApplication.instance()
        _, rw = viewer.window.add_plugin_dock_widget("napari-m1", "Reader session")
        # the reader's layout: the session dock beside the M1 workstation (annotation,
        # measurements, case and MRSI as tabs), which fits 1920x1080
        viewer.window.add_plugin_dock_widget("napari-m1", "M1 workstation")
        rw._reuse_layers = not block  # the baseline removes and adds layers, as before
        res[name] = _changes(app, viewer, rw, study, block=block, dwell=args.dwell, floor=floor)
        viewer.close()
    if display is not None:
        display.stop()
    print(
        f"{args.cases} cases, {args.slices} slices, {args.dwell:.0f} s on each case; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    base = res[base_name]
    for name, rows in res.items():
        stall = statistics.median(s for s, _ in rows) * 1000
        wait = statistics.median(w for _, w in rows) * 1000
        worst = max(s for s, _ in rows) * 1000
        print(
            f"{name:36s} worst stall: median {stall:7.0f} ms (max {worst:6.0f}); "
            f"Next -> drawn: median {wait:6.0f} ms; stalls "
            + " ".join(f"{s * 1000:.0f}" for s, _ in rows)
        )
    print(
        f"{'floor: one slice step':36s} worst stall: median "
        f"{statistics.median(floor) * 1000:7.0f} ms (max {max(floor) * 1000:6.0f}) "
        "— the cost of any redraw on this machine now"
    )
    new = res["napari-m1"]
    print(
        "reader case change: worst stall median "
        f"{statistics.median(s for s, _ in new) * 1000:.0f} ms (target <= 100; baseline "
        f"{statistics.median(s for s, _ in base) * 1000:.0f} ms), Next -> drawn median "
        f"{statistics.median(w for _, w in new) * 1000:.0f} ms (baseline "
        f"{statistics.median(w for _, w in base) * 1000:.0f} ms, ratio "
        f"{statistics.median(w for _, w in new) / statistics.median(w for _, w in base):.2f}); "
        "stall / slice-step floor "
        f"{statistics.median(s for s, _ in new) / statistics.median(floor):.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
