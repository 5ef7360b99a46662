"""An fsl_mrsi output inside a case folder: `info --json` QC summaries and ratio-map layers."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from napari_m1.cli import main
from napari_m1.io import find_case_files, load_case
from napari_m1.mrsi import ratio_maps, read_fsl_mrsi
from napari_m1.mrsi._synth import write_fsl_mrsi_folder


@pytest.fixture
def mrsi_case(tmp_path, phantom_case):
    case = tmp_path / "case"
    shutil.copytree(phantom_case, case)
    met = next(case.glob("*_met-NAA_mrsi.nii.gz"))
    img = nib.load(met)  # the phantom's MRSI grid: the fit lives on it
    syn = write_fsl_mrsi_folder(case / "fsl_mrsi", img.shape, seed=5, affine=img.affine)
    return case, syn


def test_case_finds_the_fsl_mrsi_folder(mrsi_case):
    case, syn = mrsi_case
    files = find_case_files(case)
    assert files.fsl_mrsi == syn.folder
    assert files.mrsi["NAA+NAAG"].is_relative_to(syn.folder / "concs")
    assert "NAA" in files.mrsi  # the phantom's own maps stay


def test_info_json_reports_per_ratio_qc(mrsi_case, capsys):
    case, syn = mrsi_case
    assert main(["info", str(case), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    want = [r.summary for r in ratio_maps(read_fsl_mrsi(syn.folder))]
    assert out["mrsi_qc"] == want
    by = {s["ratio"]: s for s in out["mrsi_qc"]}
    assert list(by) == ["tNAA/tCr", "tCho/tCr", "Glx/tCr"]
    n_out = int(syn.planted[("mask", "*")].sum())
    # planted: tNAA %SD at 1 voxel, tCr %SD at 2 (one of them also FWHM and S/N)
    assert by["tNAA/tCr"]["excluded_by"] == {"crlb": 3, "fwhm": 1, "snr": 1, "mask": n_out}
    assert by["tNAA/tCr"]["n_excluded"] == n_out + 3
    assert by["tCho/tCr"]["excluded_by"] == {"crlb": 2, "fwhm": 2, "snr": 1, "mask": n_out}
    assert by["Glx/tCr"]["n_excluded"] == n_out + 3
    assert by["Glx/tCr"]["n_voxels"] == syn.conc["tCr"].size
    assert "MRSI tNAA/tCr" in [row["layer"] for row in out["layers"]]


def test_info_json_without_mrsi_fit(phantom_case, capsys):
    assert main(["info", str(phantom_case), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mrsi_qc"] == []
    assert out["layers"][0]["kind"] == "gre"


def test_ratio_layers_sit_at_their_physical_place(mrsi_case):
    case, syn = mrsi_case
    loaded = load_case(case)
    vols = {v.name: v for v in loaded.volumes}
    fit = read_fsl_mrsi(syn.folder)
    maps = {r.name: r for r in ratio_maps(fit)}
    for name in ("tNAA/tCr", "tCho/tCr", "Glx/tCr"):
        v = vols[f"MRSI {name}"]
        assert v.kind == "mrsi" and v.extra["metabolite"] == name
        assert v.extra["qc"] == maps[name].summary
        assert np.isnan(v.data).sum() == maps[name].summary["n_excluded"]
        # every fit voxel's value is found at the same RAS point in the layer's own grid
        inv = np.linalg.inv(v.ras_affine)
        for ijk in [(2, 3, 1), (10, 12, 3), tuple(np.array(fit.shape) // 2)]:
            ras = fit.affine @ np.array([*ijk, 1.0])
            idx = np.rint(inv @ ras)[:3].astype(int)
            a, b = v.data[tuple(idx)], maps[name].values[ijk]
            assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, rel=1e-6)
