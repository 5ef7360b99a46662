"""Benchmark: an oval ROI's coverage weights cost no more than the slice (issue 8, item 7).

    .venv/bin/python benchmarks/bench_roi_window.py [--repeats 5]

``ellipse_weights`` on a 448 x 448 slice at 0.25 mm (the phantom's grid) for ovals
with semi-axes of 1.2 mm (a protocol ROI), 20 mm, 250 mm and 10 m. Before the
window was clipped to the image the 250 mm oval supersampled its whole 2001-pixel box
(4.3 GiB per array); now every oval larger than the slice costs what the slice costs.
The baseline is the protocol ROI measured in the same run; the column ``vs slice`` is
the ratio to a 56 mm oval, which just covers the slice.

Prints, per oval: median time (ms), peak traced memory (MiB, ``tracemalloc``), the
window's size in pixels, and the ratio to the slice-sized oval. Targets: peak memory
of every oval <= 1.1x the slice-sized oval's; no oval allocates its unclipped box.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from napari_m1.measure import ellipse_weights

PIXEL_MM = 0.25
SHAPE = (448, 448)
CENTRE = (224.3, 223.7)
RADII_MM = {
    "protocol 1.2 mm": 1.2,
    "20 mm": 20.0,
    "slice 56 mm": 56.0,
    "250 mm": 250.0,
    "10 m": 10_000.0,
}


def _one(radius_mm: float) -> tuple[float, int, int]:
    axes = np.eye(2) * radius_mm / PIXEL_MM
    tracemalloc.start()
    t0 = time.perf_counter()
    w = ellipse_weights(CENTRE, axes, SHAPE)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return dt, peak, int(w.weights.size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in RADII_MM}
    peaks: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every oval
        for name, r in RADII_MM.items():
            dt, peak, size = _one(r)
            times[name].append(dt)
            peaks[name] = max(peaks.get(name, 0), peak)
            sizes[name] = size
    ref_t = statistics.median(times["slice 56 mm"])
    ref_m = peaks["slice 56 mm"]
    print(f"ellipse_weights on {SHAPE[0]}x{SHAPE[1]} px at {PIXEL_MM} mm, {args.repeats} repeats")
    print(
        f"{'oval':>16} {'median ms':>10} {'peak MiB':>9} {'window px':>10} "
        f"{'time vs slice':>14} {'memory vs slice':>16}"
    )
    for name in RADII_MM:
        t = statistics.median(times[name])
        print(
            f"{name:>16} {1e3 * t:10.1f} {peaks[name] / 2**20:9.1f} {sizes[name]:10d} "
            f"{t / ref_t:14.2f} {peaks[name] / ref_m:16.2f}"
        )


if __name__ == "__main__":
    main()
