"""Benchmark: open a full sample case to the first drawn frame vs nibabel's raw load.

Run (after `bash scripts/test.sh` has set up .venv):

    .venv/bin/python benchmarks/bench_load.py [--repeats 5] [--slices 60]

Case: the ALS phantom, GRE 448x448x60 x 2 echoes float32 (2 files), QSM on the same
grid, four 5 mm MRSI maps. Both sides are measured in the same run:

* baseline: ``np.asanyarray(nibabel.load(f).dataobj)`` for every file of the case;
* napari-m1: ``load_case`` + adding every layer to an open napari viewer + the
  canvas's first draw event.

Peak memory is measured with tracemalloc (numpy allocations are traced) around the
pure loading step and compared with the size of the loaded arrays. Targets:
time ratio <= 1.3, peak memory <= 1.5x the data size. Medians are printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path


def nibabel_load(folder: Path) -> int:
    import nibabel as nib
    import numpy as np

    total = 0
    for f in sorted(folder.glob("*.nii*")):
        total += np.asanyarray(nib.load(f).dataobj).nbytes
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--slices", type=int, default=60)
    args = ap.parse_args()

    import os

    os.environ.setdefault("QT_API", "pyqt6")
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_m1._viewer import add_case_layers
    from napari_m1.io import load_case
    from napari_m1.phantom import write_phantom_case

    tmp = Path(tempfile.mkdtemp(prefix="m1-bench-"))
    folder = write_phantom_case(tmp / "case", "als", 0, n_slices=args.slices)

    viewer = napari.Viewer(show=True)
    scene_canvas = viewer.window._qt_viewer.canvas._scene_canvas  # first-draw hook
    drawn = {"t": None}

    def on_draw(event=None):
        if drawn["t"] is None:
            drawn["t"] = time.perf_counter()

    scene_canvas.events.draw.connect(on_draw)
    app = QApplication.instance()

    def ours() -> float:
        viewer.layers.clear()
        for _ in range(5):
            app.processEvents()
        drawn["t"] = None
        t0 = time.perf_counter()
        case = load_case(folder)
        add_case_layers(viewer, case)
        deadline = time.perf_counter() + 60
        while drawn["t"] is None and time.perf_counter() < deadline:
            app.processEvents()
        return drawn["t"] - t0

    def base() -> float:
        t0 = time.perf_counter()
        nibabel_load(folder)
        return time.perf_counter() - t0

    base()  # warm the page cache for both
    t_base, t_ours = [], []
    for _ in range(args.repeats):  # interleave so machine noise hits both alike
        t_base.append(base())
        t_ours.append(ours())
    med_b, med_o = statistics.median(t_base), statistics.median(t_ours)

    viewer.layers.clear()
    tracemalloc.start()
    case = load_case(folder)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    data_bytes = sum(v.data.nbytes for v in case.volumes)
    del case
    tracemalloc.start()
    nb_bytes = nibabel_load(folder)
    _, nb_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(
        f"case: GRE {args.slices}x448x448 x 2 echoes + QSM + 4 MRSI maps "
        f"({data_bytes / 2**20:.0f} MiB loaded)"
    )
    print(
        f"nibabel raw load      median {med_b * 1000:8.1f} ms  (runs: "
        + ", ".join(f"{t * 1000:.0f}" for t in t_base)
        + ")"
    )
    print(
        f"napari-m1 first frame median {med_o * 1000:8.1f} ms  (runs: "
        + ", ".join(f"{t * 1000:.0f}" for t in t_ours)
        + ")"
    )
    print(f"time ratio napari-m1 / nibabel = {med_o / med_b:.2f}  (target <= 1.30)")
    print(
        f"peak memory napari-m1 load {peak / 2**20:.0f} MiB = {peak / data_bytes:.2f} x data "
        f"(target <= 1.50); nibabel {nb_peak / 2**20:.0f} MiB = {nb_peak / nb_bytes:.2f} x"
    )
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
