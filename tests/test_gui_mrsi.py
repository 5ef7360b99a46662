"""QC'd MRSI ratio maps of a case's fsl_mrsi output, opened through the "M1 case" dock."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest

from napari_m1.io import METADATA_KEY
from napari_m1.mrsi import ratio_maps, read_fsl_mrsi
from napari_m1.mrsi._synth import write_fsl_mrsi_folder

pytestmark = pytest.mark.gui


def test_ratio_maps_open_as_mrsi_layers(make_napari_viewer, phantom_case, tmp_path, shots, qtbot):
    case = tmp_path / "case"
    shutil.copytree(phantom_case, case)
    grid = nib.load(next(case.glob("*_met-NAA_mrsi.nii.gz")))
    syn = write_fsl_mrsi_folder(case / "mrsi", grid.shape, seed=2, affine=grid.affine)
    viewer = make_napari_viewer(show=True)
    _, widget = viewer.window.add_plugin_dock_widget("napari-m1", "M1 case")
    with qtbot.waitSignal(widget.case_loaded, timeout=60_000):
        widget.open_case(case)
    names = [ly.name for ly in viewer.layers]
    assert names[-3:] == ["MRSI tNAA/tCr", "MRSI tCho/tCr", "MRSI Glx/tCr"]
    fit = read_fsl_mrsi(syn.folder)
    maps = {r.name: r for r in ratio_maps(fit)}
    layer = viewer.layers["MRSI tNAA/tCr"]
    md = layer.metadata[METADATA_KEY]
    assert md["kind"] == "mrsi" and md["metabolite"] == "tNAA/tCr"
    assert md["qc"] == maps["tNAA/tCr"].summary
    assert md["n_excluded"] == maps["tNAA/tCr"].summary["n_excluded"]
    # the layer voxel at each fit voxel's RAS point holds its ratio (NaN where excluded)
    ras_aff = np.asarray(md["ras_affine"])
    for ijk in [(12, 12, 3), (5, 17, 2), (0, 0, 0)]:
        ras = fit.affine @ np.array([*ijk, 1.0])
        idx = tuple(np.rint(np.linalg.inv(ras_aff) @ ras)[:3].astype(int))
        got = float(layer.data[idx])
        want = maps["tNAA/tCr"].values[ijk]
        assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, rel=1e-6)
    layer.visible = True
    layer.opacity = 0.7
    viewer.layers.selection.active = layer
    z = float((fit.affine @ np.array([0, 0, 3, 1.0]))[2])
    viewer.dims.set_point(1, z)
    qtbot.wait(50)
    from napari_m1._reading import get_reading_tools

    centre = tuple(np.array(fit.shape) // 2)
    ras = fit.affine @ np.array([*centre, 1.0])
    idx = np.rint(np.linalg.inv(ras_aff) @ ras)[:3]
    world = [0.0, *np.asarray(layer.data_to_world(idx))]  # (echo, S, A, R)
    rows = {name: (val, unit) for name, val, unit in get_reading_tools(viewer).readout(world)}
    want = maps["tNAA/tCr"].values[centre]
    if np.isfinite(want):
        assert rows["MRSI tNAA/tCr"][1] == ""  # a ratio has no unit
        assert float(rows["MRSI tNAA/tCr"][0]) == pytest.approx(want, rel=0.01)
    viewer.window.screenshot(str(shots / "mrsi_ratio_tnaa_tcr.png"), canvas_only=False)
    canvas = viewer.screenshot(canvas_only=True)
    assert canvas.std() > 5  # not a blank canvas
