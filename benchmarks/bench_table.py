"""Benchmark: the measurement dock's refresh after one ROI edit (issue 17's table part).

Run:  xvfb-run -a .venv/bin/python benchmarks/bench_table.py [--edits 30]

A real napari window with the M1 workstation on the ALS phantom (16 slices), all 17
slots placed (98 measurement rows), the "All rows" tab shown. One edit moves one ROI by
0.1 mm; we time what the dock does after it: refresh of the summary and long tables and
of the profile (the active slot is a caliper, whose profile did not change), up to the
next processed event loop turn.

Baseline measured in the same run, the dock as it was: a QTableWidget whose header
resizes every column to its contents, every cell re-created with ``setItem`` on each
change, and the profile plot cleared and redrawn on each change.

Target: the dock's share of an edit <= 20 ms median with 98 rows (the baseline took
seconds on the 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=30)
    args = ap.parse_args(argv)

    import napari
    from qtpy.QtWidgets import QApplication, QHeaderView, QTableWidget, QTableWidgetItem

    from napari_m1._qt.measurement_widget import TABLE_COLUMNS, _map_name, fmt_number
    from napari_m1.phantom import write_phantom_case

    tmp = Path(tempfile.mkdtemp())
    os.environ["NAPARI_M1_DATA_DIR"] = str(tmp / "user-data")  # autosaves stay out of $HOME
    case = write_phantom_case(tmp / "case", "als", seed=1, n_slices=16)
    truth = json.loads((case / "truth.json").read_text())
    viewer = napari.Viewer(show=True)
    _, ws = viewer.window.add_plugin_dock_widget("napari-m1", "M1 workstation")
    ws.case.open_case(case, block=True)
    viewer.window._qt_window.resize(1920, 1080)
    ctl, mw = ws.annotation.ctl, ws.measurements
    ctl.auto_advance = False
    for r in truth["regions"]:
        sid = f"{r['hemisphere']}_{r['area']}"
        ctl.place_roi_at(ctl.ras_to_world(r["centre_ras_mm"]), slot=f"{sid}_roi")
        p1, p2 = (ctl.ras_to_world(p) for p in r["caliper_ras_mm"])
        ctl.place_caliper(p1, p2, slot=f"{sid}_caliper")
    ctl.place_roi_at(
        ctl.ras_to_world(truth["reference"]["centre_ras_mm"]), slot="ref_precuneus_roi"
    )
    ctl.active = "L_hand_caliper"
    mw.tabs.setCurrentIndex(1)
    QApplication.processEvents()
    rows = ctl.export_rows()
    hand = np.asarray(next(r for r in truth["regions"] if r["area"] == "hand")["centre_ras_mm"])
    slot = "L_hand_roi"

    def edit(i: int) -> None:
        """Move the ROI by 0.1 mm (alternating), as a drag released would."""
        ctl.place_roi_at(ctl.ras_to_world(np.add(hand, (0.1 * (1 + i % 2), 0, 0))), slot=slot)

    # ---- new dock: time its refresh (the controller emits measurements_changed)
    new_ms = []
    cells = []
    for i in range(args.edits):
        t0 = time.perf_counter()
        edit(i)
        QApplication.processEvents()
        new_ms.append(1000 * (time.perf_counter() - t0))
        cells.append(mw.table.cells_written)
    # the same edits with the dock's tables and profile disconnected: the rest of the edit
    ctl.measurements_changed.disconnect(mw._refresh)
    rest_ms = []
    for i in range(args.edits):
        t0 = time.perf_counter()
        edit(i)
        QApplication.processEvents()
        rest_ms.append(1000 * (time.perf_counter() - t0))

    # ---- baseline: the old table and profile behaviour, in the same window
    table = QTableWidget(0, len(TABLE_COLUMNS))
    table.setHorizontalHeaderLabels([c[0] for c in TABLE_COLUMNS])
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    mw.tabs.addTab(table, "baseline")
    mw.tabs.setCurrentWidget(table)

    def redraw() -> None:
        mw._draw_profile(ctl.active, *ctl.profile(ctl.active, echo=mw.current_echo()))

    def old(*_a) -> None:
        rows = ctl.export_rows()
        table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            r = dict(r, _map=_map_name(r))
            for j, (_h, key, f) in enumerate(TABLE_COLUMNS):
                table.setItem(i, j, QTableWidgetItem(fmt_number(r.get(key), f)))
        redraw()

    ctl.measurements_changed.connect(old)
    base_ms = []
    n_base = max(3, args.edits // 10)  # the baseline is slow
    for i in range(n_base):
        t0 = time.perf_counter()
        edit(i)
        QApplication.processEvents()
        base_ms.append(1000 * (time.perf_counter() - t0))
    ctl.measurements_changed.disconnect(old)

    med = statistics.median
    dock_new = max(med(new_ms) - med(rest_ms), 0.0)
    dock_old = max(med(base_ms) - med(rest_ms), 0.0)
    print(f"rows: {len(rows)}; cells rewritten per edit: median {med(cells):.0f}")
    print(f"edit without the dock (engine, shapes layer): median {med(rest_ms):.1f} ms")
    print(f"edit + new dock refresh:      median {med(new_ms):.1f} ms (n={len(new_ms)})")
    print(f"edit + baseline dock refresh: median {med(base_ms):.1f} ms (n={len(base_ms)})")
    print(
        f"dock share: new {dock_new:.1f} ms, baseline {dock_old:.1f} ms, "
        f"{dock_old / max(dock_new, 1e-3):.0f}x faster"
    )
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
