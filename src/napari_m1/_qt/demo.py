"""The demo: napari with the M1 workstation dock and the sample phantom loaded.

Headless (``--headless``) it runs a scripted reading session instead of waiting
for the user: open the sample through the workstation's case tab, check every truth
point's hemisphere through the viewer's geometry, fill the whole m1-7t protocol
through the annotation controller (ovals at the deep-layer centres, rough
calipers replaced by the profile's suggested end points), and write
``demo.png`` (the window at the left hand knob), ``measurements.csv`` (the
measurements schema), ``demo_points.csv`` and ``demo_layers.csv``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .._atomic import atomic_write_text
from ..formats import csv_text

__all__ = ["run_demo", "write_csv"]

log = logging.getLogger(__name__)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write dict rows as CSV atomically (header from the first row)."""
    return atomic_write_text(path, csv_text(rows))


def _process_events(n: int = 5) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(n):
        QApplication.processEvents()


def _scripted_reading(ctl: Any, truth: dict[str, Any]) -> int:
    """Fill the protocol as a reader would, from the phantom's truth positions."""
    import numpy as np

    regions = {(r["area"], r["hemisphere"]): r for r in truth["regions"]}
    ctl.area_override_mm2 = 1.0
    for slot in ctl.protocol.slots:
        if slot.id == ctl.protocol.reference_slot:
            ctl.place_roi_at(ctl.ras_to_world(truth["reference"]["centre_ras_mm"]), slot=slot.id)
            continue
        r = regions[(slot.region, slot.hemisphere)]
        if slot.kind == "roi":
            ctl.place_roi_at(ctl.ras_to_world(r["centre_ras_mm"]), slot=slot.id)
        else:
            p1, p2 = (np.asarray(p, float) for p in r["caliper_ras_mm"])
            e = (p2 - p1) / np.linalg.norm(p2 - p1)
            ctl.place_caliper(
                ctl.ras_to_world(p1 - 0.2 * e), ctl.ras_to_world(p2 + 0.3 * e), slot=slot.id
            )
            ctl.accept_suggestion(slot.id)
    return len(ctl.annset.items)


def run_demo(*, headless: bool, out_dir: Path, group: str = "als") -> int:
    """Open napari with the plugin docked and the sample case; see the module docstring.

    Returns the process exit status (non-zero when a scripted check failed).
    """
    import napari

    from .._sample_data import phantom_case_dir
    from .._viewer import hemisphere_at_world, reference_layer, world_to_ras_in_viewer
    from ..geometry import ras_to_world
    from ..io import LayerMeta

    viewer = napari.Viewer(title="napari-m1 demo")
    # The reading workstation: case, annotation and view tabs above the measurements.
    _dock, ws = viewer.window.add_plugin_dock_widget("napari-m1", "M1 workstation")
    widget, ann_widget = ws.case, ws.annotation
    widget.open_sample(group, block=True)
    truth = json.loads((phantom_case_dir(group) / "truth.json").read_text(encoding="utf-8"))
    ref = reference_layer(viewer)
    ras_affine = LayerMeta.of(ref).ras_affine

    hand = next(r for r in truth["regions"] if r["area"] == "hand" and r["hemisphere"] == "L")
    world_hand = ras_to_world(hand["centre_ras_mm"], ras_affine, ref.scale, ref.translate)
    viewer.dims.set_point(viewer.dims.ndim - 3, float(world_hand[0]))

    if not headless:
        napari.run()
        return 0

    out_dir.mkdir(parents=True, exist_ok=True)
    n_done = _scripted_reading(ann_widget.ctl, truth)
    ann_widget.ctl.active = "L_hand_caliper"
    from .._viewer import camera_of

    cam = camera_of(viewer)
    cam.center = tuple(world_hand)
    cam.zoom = 9.0
    viewer.window.resize(1920, 1080)
    _process_events()
    shot = out_dir / "demo.png"
    viewer.window.screenshot(str(shot), canvas_only=False)
    from ..measure import write_measurements_csv

    write_measurements_csv(out_dir / "measurements.csv", ann_widget.ctl.export_rows())

    rows = []
    ok = True
    points = [*truth["regions"], truth["reference"]]
    for r in points:
        world = ras_to_world(r["centre_ras_mm"], ras_affine, ref.scale, ref.translate)
        ras = world_to_ras_in_viewer(ref, world)
        hemi = hemisphere_at_world(viewer, world)
        ok &= hemi == r["hemisphere"]
        rows.append(
            {
                "area": r["area"],
                "hemisphere_truth": r["hemisphere"],
                "hemisphere_from_affine": hemi,
                "x_mm": round(float(ras[0]), 3),
                "y_mm": round(float(ras[1]), 3),
                "z_mm": round(float(ras[2]), 3),
            }
        )
    write_csv(out_dir / "demo_points.csv", rows)
    layer_rows = []
    for ly in viewer.layers:
        meta = LayerMeta.of(ly)
        if meta is None or not hasattr(ly.data, "shape"):
            continue  # the annotation layer
        m = meta.raw
        layer_rows.append(
            {
                "layer": ly.name,
                "kind": m.get("kind", ""),
                "shape": "x".join(map(str, ly.data.shape)),
                "voxel_size_mm": "x".join(f"{v:.4g}" for v in m.get("voxel_size_mm", [])),
                "resampled": bool(m.get("resampled", False)),
                "visible": bool(ly.visible),
            }
        )
    write_csv(out_dir / "demo_layers.csv", layer_rows)
    letters = widget.orientation.letters()
    print(f"screenshot: {shot}")
    print(
        f"csv: {out_dir / 'measurements.csv'} ({n_done} annotations), "
        f"{out_dir / 'demo_points.csv'}, {out_dir / 'demo_layers.csv'}"
    )
    print(f"canvas letters: {letters}; hemispheres {'OK' if ok else 'MISMATCH'}")
    viewer.close()
    return 0 if ok else 1
