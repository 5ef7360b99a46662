"""The live (GUI) engine's MRSI rows carry the same overlap/QC/tissue columns as the CLI's."""

from __future__ import annotations

import math

import numpy as np
import pytest

from napari_m1.measure._mrsi_rows import MRSI_COLUMNS

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_gui_engine_mrsi_rows_equal_the_cli_engine(make_napari_viewer, tmp_path, qtbot):
    from napari_m1._annotate._case import build_engine
    from napari_m1.annotation import roi_annotation
    from napari_m1.io import load_case
    from napari_m1.measure import engine_for_case
    from napari_m1.phantom import make_phantom, write_phantom_case
    from napari_m1.protocol import get_protocol

    case = write_phantom_case(tmp_path / "c", "control", 1, n_slices=16, with_mrs=True)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    with qtbot.waitSignal(widget.case_loaded, timeout=120_000):
        widget.open_case(case)
    proto = get_protocol("m1-7t")
    ref = viewer.layers[0]
    live = build_engine(viewer, ref, proto, case_label="x", reader="r")
    cli = engine_for_case(load_case(case), proto, reader="r")
    ph = make_phantom("control", 1, n_slices=16)
    centre = (ph.mrsi_affine @ [10, 16, 4, 1])[:3]  # the planted noisy voxel's corner
    centre[:2] -= 2.5
    centre[2] = 59.0  # a GRE slice in MRSI slice 4
    r4 = math.sqrt(4 / math.pi)
    ann = roi_annotation("L_hand_roi", centre, [r4, 0, 0], [0, r4, 0])
    rows = []
    for eng in (live, cli):
        eng.update(ann.slot, ann)
        rows.append(
            {r["metabolite"]: r for r in eng.rows_for(ann.slot) if r["layer_kind"] == "mrsi"}
        )
    assert set(rows[0]) == set(rows[1]) >= {"NAA", "tNAA/tCr", "tCho/tCr", "Glx/tCr"}
    for met, r in rows[1].items():
        for col in (*MRSI_COLUMNS, "mean", "n_voxels"):
            a, b = rows[0][met][col], r[col]
            assert (a == b) or (isinstance(a, float) and np.isnan(a) and np.isnan(b)), (met, col)
    naa = rows[0]["tNAA/tCr"]
    assert naa["mrsi_n_voxels_contributing"] == 3  # a corner of four, the noisy one excluded
    assert naa["mrsi_n_excluded_voxels"] == 1
    assert naa["mrsi_flag"] == "largest_weight<0.5"
    assert naa["f_gm_weighted"] is not None and naa["qc_min_snr"] == 5.0
