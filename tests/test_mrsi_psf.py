"""PSF-weighted tissue fractions and the exact-along-one-axis path for oblique MRSI grids."""

from __future__ import annotations

import numpy as np
import pytest

from napari_m1.mrsi import tissue_fractions
from napari_m1.mrsi._psf import hamming_psf, psf_fwhm, psf_tissue_fractions
from napari_m1.mrsi._tissue import _shared_axis

T_AFF = np.diag([0.25, 0.25, 2.0, 1.0])
T_AFF[:3, 3] = [-20.0, -20.0, 0.0]
T_SHAPE = (160, 160, 30)  # 40 x 40 x 60 mm


def _rot_z(deg: float) -> np.ndarray:
    th = np.deg2rad(deg)
    return np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1.0]])


def test_hamming_psf_fwhm_is_1_8_voxels_and_periodic():
    # the Hamming window's 6 dB (half-amplitude) main-lobe width: 1.81 bins
    for n in (8, 24, 32):
        assert psf_fwhm(n) == pytest.approx(1.81, abs=0.01)
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(hamming_psf(x, 24), hamming_psf(x + 24, 24), atol=1e-12)
    assert hamming_psf(np.array([0.0]), 24)[0] == pytest.approx(1.0)
    assert hamming_psf(np.array([0.905]), 24)[0] == pytest.approx(0.5, abs=0.005)


def test_psf_fractions_of_a_half_space_equal_the_integral_of_the_psf():
    lab = np.full(T_SHAPE, 3, np.int16)
    lab[:77] = 2  # GM where tissue x index < 77: x < -20 + 0.25 * 76.5 = -0.875 mm
    mrsi = np.diag([5.0, 5.0, 5.0, 1.0])
    mrsi[:3, 3] = [-17.625, -17.625, 10.0]  # 8 x 8 voxels cover the map's 40 x 40 mm exactly
    f = psf_tissue_fractions(mrsi, (8, 8, 4), lab, T_AFF)
    assert np.abs(f["outside"]).max() < 1e-6
    np.testing.assert_allclose(f["GM"] + f["WM"] + f["CSF"] + f["outside"], 1.0, atol=1e-6)
    # reference: the continuous periodic PSF integrated over the half-space (fine quadrature)
    x0 = (-0.875 - -17.625) / 5.0  # the boundary in voxel units
    x = (np.arange(8 * 2000) + 0.5) / 2000 - 0.5
    inside = x < x0
    for v in range(8):
        k = hamming_psf(v - x, 8)
        ref = k[inside].sum() / k.sum()
        np.testing.assert_allclose(f["GM"][v], ref, atol=0.005)
    # the PSF spreads GM past the boundary: the voxel just beyond it has more GM than its box
    box = tissue_fractions(mrsi, (8, 8, 4), lab, T_AFF)
    v = int(np.ceil(x0 + 0.5))  # the first voxel whose box is all WM
    assert box["GM"][v, 3, 1] == pytest.approx(0.0, abs=1e-6)
    assert f["GM"][v, 3, 1] > 0.03


def test_uniform_tissue_gives_one_everywhere_and_slice_axis_keeps_its_box():
    lab = np.full(T_SHAPE, 2, np.int16)
    lab[..., 15:] = 3  # WM above z = 29 mm: across the slice (box) axis
    mrsi = np.diag([5.0, 5.0, 5.0, 1.0])
    mrsi[:3, 3] = [-17.625, -17.625, 21.5]  # slices [19, 24], [24, 29], [29, 34]
    f = psf_tissue_fractions(mrsi, (8, 8, 3), lab, T_AFF)
    np.testing.assert_allclose(f["GM"][..., 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(f["GM"][..., 2], 0.0, atol=1e-6)
    with pytest.raises(ValueError, match="subdivisions"):
        psf_tissue_fractions(mrsi, (8, 8, 3), lab, T_AFF, subdivisions=0)


def test_rotation_about_one_axis_is_exact_along_it_and_accurate_in_plane():
    a = np.eye(4)
    a[:3, :3] = _rot_z(25.0) * 5.0
    a[:3, 3] = [-3.0, -4.0, 16.3]  # z boxes: [13.8, 18.8], [18.8, 23.8], [23.8, 28.8]
    assert _shared_axis(np.linalg.inv(T_AFF)[:3, :3] @ a[:3, :3]) == (2, 2)
    lab = np.full(T_SHAPE, 3, np.int16)
    lab[:, :, :12] = 2  # GM below z = 23 mm
    f = tissue_fractions(a, (3, 3, 3), lab, T_AFF)  # default sampling
    np.testing.assert_allclose(f["GM"][1, 1], [1.0, 0.84, 0.0], atol=1e-5)  # exact along z
    # an in-plane boundary: GM where x < 0.125 mm (tissue index < 81)
    lab = np.full(T_SHAPE, 3, np.int16)
    lab[:81] = 2
    f = tissue_fractions(a, (3, 3, 3), lab, T_AFF)
    u = (np.arange(1000) + 0.5) / 1000 - 0.5  # dense analytic sampling of each rotated box
    uu, vv = np.meshgrid(u, u, indexing="ij")
    for i in range(3):
        for j in range(3):
            x = a[0, 0] * (i + uu) + a[0, 1] * (j + vv) + a[0, 3]
            assert f["GM"][i, j, 1] == pytest.approx(np.mean(x < 0.125), abs=0.01)


def test_double_oblique_falls_back_to_3d_sampling():
    tilt = np.deg2rad(15.0)
    rx = np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    a = np.eye(4)
    a[:3, :3] = _rot_z(25.0) @ rx * 5.0
    a[:3, 3] = [-3.0, -4.0, 21.0]
    assert _shared_axis(np.linalg.inv(T_AFF)[:3, :3] @ a[:3, :3]) is None
    lab = np.full(T_SHAPE, 3, np.int16)
    lab[:, :, :12] = 2  # GM below z = 23 mm
    f = tissue_fractions(a, (3, 3, 3), lab, T_AFF, min_samples_per_axis=40)
    u = (np.arange(60) + 0.5) / 60 - 0.5
    g = np.stack(np.meshgrid(u, u, u, indexing="ij"), -1).reshape(-1, 3)
    z = (g + 1.0) @ a[2, :3] + a[2, 3]  # the centre voxel (1, 1, 1)
    assert f["GM"][1, 1, 1] == pytest.approx(np.mean(z < 23.0), abs=0.015)
