"""MRS readers against real files (../shared/data/mrs-small) and independent peers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_m1.errors import M1LoadError
from napari_m1.mrsi import (
    canonical_name,
    display_header,
    find_metabolite,
    read_lcmodel_coord,
    read_lcmodel_csv,
    read_nifti_mrs,
    read_table,
)

MRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "mrs-small"
needs_data = pytest.mark.skipif(
    not MRS.is_dir(), reason="shared MRS test data (../shared/data/mrs-small) not present"
)

# Every $$CONC line of svs_97.TABLE: (Conc., %SD, /Cr+PCr, metabolite), typed from the file.
SVS97 = [
    (2.88e-02, 88, 0.115, "2HG"),
    (1.38e-02, 64, 5.5e-02, "Ala"),
    (1.86e-02, 94, 7.4e-02, "Asp"),
    (0.000, 999, 0.000, "Cr"),
    (4.05e-02, 32, 0.162, "GABA"),
    (0.115, 2, 0.457, "GPC"),
    (1.06e-02, 177, 4.2e-02, "Glc"),
    (2.95e-02, 53, 0.118, "Gln"),
    (1.46e-02, 49, 5.8e-02, "Glth"),
    (3.27e-02, 55, 0.131, "Glu"),
    (0.297, 5, 1.186, "Ins"),
    (0.112, 22, 0.446, "Lac"),
    (7.97e-02, 11, 0.318, "NAA"),
    (6.83e-02, 13, 0.273, "NAAG"),
    (0.000, 999, 0.000, "PCh"),
    (0.251, 3, 1.000, "PCr"),
    (3.45e-03, 88, 1.4e-02, "Scyllo"),
    (0.000, 999, 0.000, "Tau"),
    (6.78e-02, 16, 0.271, "-CrCH2"),
    (2.05e-02, 40, 8.2e-02, "Gua"),
    (0.115, 2, 0.457, "GPC+PCh"),
    (0.148, 6, 0.591, "NAA+NAAG"),
    (0.251, 3, 1.000, "Cr+PCr"),
    (6.22e-02, 40, 0.248, "Glu+Gln"),
    (0.000, 999, 0.000, "Lip13a"),
    (0.200, 22, 0.798, "Lip13b"),
    (3.42e-02, 60, 0.137, "Lip09"),
    (8.84e-02, 33, 0.353, "MM09"),
    (3.26e-02, 42, 0.130, "Lip20"),
    (0.154, 31, 0.615, "MM20"),
    (2.89e-02, 49, 0.115, "MM12"),
    (0.129, 35, 0.513, "MM14"),
    (6.83e-02, 37, 0.272, "MM17"),
    (0.200, 22, 0.798, "Lip13a+Lip13b"),
    (0.357, 17, 1.426, "MM14+Lip13a+Lip13b+MM12"),
    (0.123, 23, 0.489, "MM09+Lip09"),
    (0.187, 26, 0.745, "MM20+Lip20"),
]


@pytest.mark.parametrize(
    ("label", "canon"),
    [
        ("NAA+NAAG", "tNAA"),
        ("NAAG+NAA", "tNAA"),
        ("tNAA", "tNAA"),
        ("Cr+PCr", "tCr"),
        ("GPC+PCh", "tCho"),
        ("PCh+GPC", "tCho"),
        ("Glu+Gln", "Glx"),
        ("glx", "Glx"),
        ("Ins", "Ins"),
        ("NAA", "NAA"),
    ],
)
def test_name_table(label, canon):
    assert canonical_name(label) == canon


def test_find_metabolite_across_spellings():
    assert find_metabolite(["Ins", "NAA+NAAG", "Cr+PCr"], "tNAA") == "NAA+NAAG"
    assert find_metabolite(["Ins"], "tCr") is None


@needs_data
def test_lcmodel_table_every_value():
    t = read_table(MRS / "lcmodel" / "svs_97.TABLE")
    assert list(t.conc) == [m for *_, m in SVS97]
    for conc, sd, ratio, met in SVS97:
        assert t.conc[met] == pytest.approx(conc, rel=1e-12)
        assert t.sd_pct[met] == sd
        assert t.ratio[met] == pytest.approx(ratio, rel=1e-12)
    assert t.ratio_to == "Cr+PCr"
    assert t.fwhm_ppm == pytest.approx(0.043)
    assert t.snr == 13
    assert t.hz_per_ppm == pytest.approx(123.226103)


@needs_data
def test_lcmodel_csv_every_value_matches_table():
    rows = read_lcmodel_csv(MRS / "lcmodel" / "svs_97.CSV")
    assert len(rows) == 1
    r = rows[0]
    assert (r["Row"], r["Col"]) == (1, 1)
    # The CSV truncates long names (MM14+Lip13a+L); every other metabolite has 3 columns.
    for conc, sd, ratio, met in SVS97:
        if met.startswith("MM14+"):
            met = "MM14+Lip13a+L"
        assert r[met] == pytest.approx(conc, rel=1e-12)
        assert r[f"{met} %SD"] == sd
        assert r[f"{met}/Cr+PCr"] == pytest.approx(ratio, rel=1e-12)
    assert len(r) == 2 + 3 * len(SVS97)


@needs_data
@pytest.mark.parametrize(("name", "ny"), [("svs_97.COORD", 799), ("liver.COORD", 821)])
def test_lcmodel_coord_arrays(name, ny):
    c = read_lcmodel_coord(MRS / "lcmodel" / name)
    for a in (c.ppm, c.data, c.fit, c.baseline):
        assert a.shape == (ny,)
        assert np.isfinite(a).all()
    assert np.all(np.diff(c.ppm) < 0)  # LCModel writes ppm descending
    if name == "svs_97.COORD":
        assert c.ppm[0] == pytest.approx(4.0)
        assert c.ppm[-1] == pytest.approx(0.203982)
        assert c.table.fwhm_ppm == pytest.approx(0.043)
        assert c.table.conc["NAA+NAAG"] == pytest.approx(0.148)


@needs_data
@pytest.mark.parametrize("name", ["svs_97.COORD", "liver.COORD"])
def test_lcmodel_coord_identical_to_suspect(name):
    suspect = pytest.importorskip("suspect", reason="suspect (MIT) is the COORD peer")
    ref = suspect.io.lcmodel.read_coord(str(MRS / "lcmodel" / name))
    c = read_lcmodel_coord(MRS / "lcmodel" / name)
    for key in ("ppm", "data", "fit", "baseline"):
        np.testing.assert_array_equal(getattr(c, key), np.asarray(ref[key], dtype=float))


def test_lcmodel_bad_input_is_one_clear_error(tmp_path):
    p = tmp_path / "broken.COORD"
    p.write_text("hello\n  799 points on ppm-axis = NY\n 4.0 3.9\n")
    with pytest.raises(M1LoadError, match="broken.COORD"):
        read_lcmodel_coord(p)
    q = tmp_path / "x.TABLE"
    q.write_text("not a table\n")
    with pytest.raises(M1LoadError, match=r"x\.TABLE: no LCModel concentration table"):
        read_table(q)
    r = tmp_path / "x.CSV"
    r.write_text("a, b\n1, 2\n")
    with pytest.raises(M1LoadError, match="not an LCModel CSV"):
        read_lcmodel_csv(r)


@needs_data
def test_nifti_mrs_real_file_against_nifti_mrs_package():
    p = MRS / "nifti-mrs" / "metab_7T_steam.nii.gz"
    n = read_nifti_mrs(p)
    assert n.data.shape == (1, 1, 1, 4095)
    assert np.iscomplexobj(n.data)
    assert n.spectrometer_frequency_mhz == pytest.approx(297.219948)
    assert n.nucleus == "1H"
    assert n.dwell_time_s == pytest.approx(8.33e-05)
    nm = pytest.importorskip("nifti_mrs.nifti_mrs", reason="nifti-mrs (BSD-3) is the peer")
    ref = nm.NIFTI_MRS(str(p))
    # nifti-mrs conjugates on access (FSL-MRS's left-handed frame); the file holds ref.image
    np.testing.assert_array_equal(n.data, np.asarray(ref.image[:]))
    np.testing.assert_array_equal(n.data, np.asarray(ref[:]).conj())
    assert n.spectrometer_frequency_mhz == ref.spectrometer_frequency[0]
    assert n.dwell_time_s == pytest.approx(ref.dwelltime)
    assert n.nucleus == ref.nucleus[0]
    np.testing.assert_allclose(n.affine, ref.getAffine("voxel", "world"))
    # the spectral width follows from the dwell time
    ppm = n.ppm_axis()
    assert (ppm[0] - ppm[1]) * n.spectrometer_frequency_mhz * n.n_points == pytest.approx(
        ref.bandwidth
    )
    # physical check: the two tallest peaks of a brain 1H spectrum are NAA 2.01 and Cr 3.03
    mag = np.abs(n.spectrum())
    band = (ppm > 0.5) & (ppm < 4.2)
    top = ppm[band][np.argsort(mag[band])[::-1][:30]]
    assert np.any(np.abs(top - 2.01) < 0.03)
    assert np.any(np.abs(top - 3.03) < 0.03)
    assert not np.any((top > 2.2) & (top < 2.9))


def _planted_nifti_mrs(tmp_path: Path) -> Path:
    import nibabel as nib

    data = (np.ones((2, 2, 1, 32)) * (1 + 1j)).astype(np.complex64)
    img = nib.Nifti2Image(data, np.eye(4))
    img.header["pixdim"][4] = 2.5e-4
    meta = {
        "SpectrometerFrequency": [297.2],
        "ResonantNucleus": ["1H"],
        "dim_5": "DIM_DYN",
        "PatientName": "Doe^TOKENNAME",
        "PatientDoB": "19400101",
        "InstitutionAddress": "TOKENSTREET 1, Town",
        "OriginalFile": ["TOKENFILE.dat"],
        "EchoTime": 0.011,
        "nested": {"PatientName": "TOKENNESTED", "ok": 1},
    }
    img.header.extensions.append(nib.nifti1.Nifti1Extension(44, json.dumps(meta).encode()))
    p = tmp_path / "svs.nii.gz"
    nib.save(img, str(p))
    return p


def test_nifti_mrs_identifying_keys_never_returned(tmp_path):
    n = read_nifti_mrs(_planted_nifti_mrs(tmp_path))
    text = json.dumps(n.header)
    assert "TOKEN" not in text
    assert n.header["EchoTime"] == 0.011
    assert n.header["nested"] == {"ok": 1}
    assert n.dim_tags == ["DIM_DYN", None, None]
    assert display_header({"PatientDoB": 1, "x": 2}) == {"x": 2}


def test_nifti_mrs_rejects_plain_nifti(tmp_path):
    import nibabel as nib

    p = tmp_path / "plain.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 4), np.float32), np.eye(4)), str(p))
    with pytest.raises(M1LoadError, match=r"plain\.nii\.gz: no NIfTI-MRS header extension"):
        read_nifti_mrs(p)
