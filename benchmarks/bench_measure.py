"""Benchmark: live update of the full M1 protocol after one edit.

Run:  .venv/bin/python benchmarks/bench_measure.py [--edits 300]

Volume: GRE 448 x 448 x 60 x 2 echoes float32, QSM on the same grid, four 5 mm
MRSI maps. Protocol m1-7t filled: 9 ROIs (x 2 echoes + QSM + 4 MRSI + ratios) and
8 calipers. One "edit" moves one ROI; we time what the GUI does after it:
``engine.update(slot, ann)`` + ``engine.rows()`` (every row, normalised SI included).

Baseline measured in the same run, the obvious napari approach: a Shapes layer of
the 9 ovals, ``Shapes.to_masks(image_shape)`` and numpy means of every map under
every mask (MRSI through the mask's voxel coordinates).

Targets: median <= 2 ms per edit, >= 50x faster than the baseline, and no
full-volume allocation per edit (tracemalloc peak printed).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc

import numpy as np


def build(rng: np.random.Generator):
    from napari_m1.annotation import caliper_annotation, roi_annotation
    from napari_m1.measure import MapSource, MeasurementEngine
    from napari_m1.protocol import PROTOCOLS

    shape = (60, 448, 448)
    gre = rng.normal(400, 20, (2, *shape)).astype(np.float32)
    qsm = rng.normal(0, 0.02, shape).astype(np.float32)
    ras = np.zeros((4, 4))
    ras[2, 0], ras[1, 1], ras[0, 2], ras[3, 3] = 2.0, 0.25, 0.25, 1.0
    ras[:3, 3] = [-56.0, -76.0, -9.0]
    mras = np.zeros((4, 4))
    mras[2, 0], mras[1, 1], mras[0, 2], mras[3, 3] = 5.0, 5.0, 5.0, 1.0
    mras[:3, 3] = [-57.5, -77.5, 36.0]
    sources = [
        MapSource("gre", "GRE", gre, ras, [10.0, 20.0], source_affine=ras),
        MapSource("qsm", "QSM", qsm, ras),
    ] + [
        MapSource("mrsi", m, rng.uniform(1, 9, (6, 24, 24)).astype(np.float32), mras, None, m)
        for m in ("NAA", "Cr", "Cho", "Glx")
    ]
    proto = PROTOCOLS["m1-7t"]
    engine = MeasurementEngine(sources, proto, case_label="bench")
    anns = {}
    r = np.sqrt(4.0 / np.pi)
    for s in proto.slots:
        k = int(rng.integers(10, 50))
        c = (ras @ np.r_[k, rng.uniform(100, 350), rng.uniform(100, 350), 1.0])[:3]
        if s.kind == "roi":
            anns[s.id] = roi_annotation(s.id, c, [r, 0, 0], [0, r, 0])
        else:
            anns[s.id] = caliper_annotation(s.id, c, c + np.array([1.2, 1.5, 0.0]))
    engine.set_all(anns.values())
    return engine, anns, sources, ras, mras, shape


def ours(engine, anns, rng, n_edits):
    from dataclasses import replace

    rois = [a for a in anns.values() if a.kind == "roi"]
    times = []
    for i in range(n_edits):
        a = rois[i % len(rois)]
        moved = replace(
            a, points_ras=tuple(tuple(p + np.r_[rng.normal(0, 0.3, 2), 0]) for p in a.points)
        )
        t0 = time.perf_counter()
        engine.update(a.slot, moved)
        rows = engine.rows()
        times.append(time.perf_counter() - t0)
        assert rows
    return times


def baseline(anns, sources, ras, mras, shape, repeats):
    from napari.layers import Shapes

    inv = np.linalg.inv(ras)
    minv = np.linalg.inv(mras)
    ellipses = []
    for a in anns.values():
        if a.kind != "roi":
            continue
        c = a.centre_ras
        u, v = a.semi_axes_ras
        corners = np.array([c - u - v, c + u - v, c + u + v, c - u + v])
        ellipses.append(corners @ inv[:3, :3].T + inv[:3, 3])
    layer = Shapes(ellipses, shape_type="ellipse", ndim=3)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        masks = layer.to_masks(mask_shape=shape)
        out = []
        for m in masks:
            for src in sources:
                if src.kind == "mrsi":
                    idx = np.argwhere(m).astype(float)
                    rasp = idx @ ras[:3, :3].T + ras[:3, 3]
                    mi = np.rint(rasp @ minv[:3, :3].T + minv[:3, 3]).astype(int)
                    mi = np.clip(mi, 0, np.array(src.data.shape) - 1)
                    out.append(np.nanmean(src.data[mi[:, 0], mi[:, 1], mi[:, 2]]))
                elif src.data.ndim == 4:
                    out.extend(float(np.nanmean(e[m])) for e in src.data)
                else:
                    out.append(float(np.nanmean(src.data[m])))
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=300)
    ap.add_argument("--baseline-repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    engine, anns, sources, ras, mras, shape = build(rng)
    ours(engine, anns, rng, 20)  # warm-up
    t_ours = ours(engine, anns, rng, args.edits)
    t_base = baseline(anns, sources, ras, mras, shape, args.baseline_repeats)

    tracemalloc.start()
    ours(engine, anns, rng, 5)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    vol_bytes = int(np.prod(shape)) * 4

    mo, mb = statistics.median(t_ours), statistics.median(t_base)
    print(
        f"protocol: 9 ROIs x (2 echoes + QSM + 4 MRSI + 3 ratios), 8 calipers; "
        f"volume {shape[2]}x{shape[1]}x{shape[0]}x2 float32"
    )
    print(
        f"napari-m1 live update   median {mo * 1000:8.3f} ms  "
        f"(p90 {np.percentile(t_ours, 90) * 1000:.3f} ms, {len(t_ours)} edits; target <= 2 ms)"
    )
    print(f"baseline to_masks+means median {mb * 1000:8.1f} ms  ({len(t_base)} runs)")
    print(f"speed-up = {mb / mo:.0f}x  (target >= 50x)")
    print(
        f"peak traced allocation during edits: {peak / 1024:.0f} KiB "
        f"({peak / vol_bytes:.4%} of one echo volume; no full-volume masks)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
