"""Tissue fractions per MRSI voxel against analytic box fractions."""

from __future__ import annotations

import numpy as np
import pytest

from napari_m1.mrsi import tissue_fractions
from napari_m1.mrsi._tissue import _class_maps, _sampled

# A 7T GRE-like tissue grid: 0.25 x 0.25 x 2 mm, 160 x 160 x 30 (40 x 40 x 60 mm)
T_AFF = np.diag([0.25, 0.25, 2.0, 1.0])
T_AFF[:3, 3] = [-20.0, -20.0, 0.0]
T_SHAPE = (160, 160, 30)


def _x_plane_labels(i_edge: int) -> tuple[np.ndarray, float]:
    """GM (2) where tissue x index < i_edge, WM (3) beyond; the boundary in RAS mm."""
    lab = np.full(T_SHAPE, 3, np.int16)
    lab[:i_edge] = 2
    return lab, -20.0 + 0.25 * (i_edge - 0.5)


def _box_fraction_below(edge: float, lo: np.ndarray, width: float) -> np.ndarray:
    return np.clip((edge - lo) / width, 0.0, 1.0)


def test_aligned_box_fractions_equal_analytic_including_partial_fov():
    lab, x0 = _x_plane_labels(77)
    mrsi = np.diag([5.0, 5.0, 5.0, 1.0])
    mrsi[:3, 3] = [-21.3, -14.0, 6.7]  # boxes straddle the plane and the map's x edge
    f = tissue_fractions(mrsi, (9, 6, 6), lab, T_AFF)
    lo = -21.3 + 5 * np.arange(9) - 2.5
    t_lo, t_hi = -20.0 - 0.125, -20.0 + 0.25 * 159.5  # the map's x extent
    inside = np.clip((np.minimum(lo + 5, t_hi) - np.maximum(lo, t_lo)) / 5, 0, 1)
    gm = np.clip((x0 - np.maximum(lo, t_lo)) / 5, 0, None)
    gm = np.minimum(gm, inside)
    np.testing.assert_allclose(
        f["GM"], np.broadcast_to(gm[:, None, None], f["GM"].shape), atol=1e-5
    )
    np.testing.assert_allclose(f["outside"][:, 0, 0], 1 - inside, atol=1e-6)
    np.testing.assert_allclose(f["GM"] + f["WM"] + f["CSF"] + f["outside"], 1.0, atol=1e-5)
    assert np.all(f["CSF"] == 0)
    assert np.any((gm > 0.05) & (gm < 0.95))  # the plane does cut a box
    assert 0.05 < inside[0] < 0.95  # and the map's edge another


def test_flipped_and_permuted_mrsi_axes_give_the_same_boxes():
    lab, _ = _x_plane_labels(90)
    a = np.diag([5.0, 5.0, 5.0, 1.0])
    a[:3, 3] = [-17.1, -12.0, 8.0]
    ref = tissue_fractions(a, (7, 5, 4), lab, T_AFF)["GM"]
    b = a.copy()  # x flipped
    b[0, 0], b[0, 3] = -5.0, -17.1 + 5 * 6
    np.testing.assert_allclose(tissue_fractions(b, (7, 5, 4), lab, T_AFF)["GM"], ref[::-1])
    c = np.zeros((4, 4))  # MRSI axes (y, x, z)
    c[0, 1] = c[1, 0] = c[2, 2] = 5.0
    c[:, 3] = [-17.1, -12.0, 8.0, 1.0]
    got = tissue_fractions(c, (5, 7, 4), lab, T_AFF)["GM"]
    np.testing.assert_allclose(got, ref.transpose(1, 0, 2))


def test_probability_maps():
    p = np.zeros((*T_SHAPE, 3), np.float32)
    p[..., 0], p[..., 1], p[..., 2] = 0.1, 0.3, 0.6
    p[:80, :, :, 1], p[:80, :, :, 2] = 0.7, 0.2  # x index < 80: GM richer
    x0 = -20.0 + 0.25 * 79.5
    a = np.diag([5.0, 5.0, 5.0, 1.0])
    a[:3, 3] = [-16.0, -10.0, 10.0]
    f = tissue_fractions(a, (6, 3, 3), p, T_AFF)
    below = _box_fraction_below(x0, -16.0 + 5 * np.arange(6) - 2.5, 5.0)
    np.testing.assert_allclose(f["GM"][:, 1, 1], 0.7 * below + 0.3 * (1 - below), atol=1e-5)
    np.testing.assert_allclose(f["CSF"], 0.1, atol=1e-5)
    with pytest.raises(ValueError, match="probability maps with 3 classes"):
        tissue_fractions(a, (2, 2, 2), p[..., :2], T_AFF)


def test_oblique_grid_within_0_01_of_analytic():
    lab = np.full(T_SHAPE, 3, np.int16)
    lab[:, :, :12] = 2  # GM below z = 2 * 11.5 = 23 mm (a tissue slice edge)
    z0 = 23.0
    th = np.deg2rad(25.0)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1.0]])
    a = np.eye(4)
    a[:3, :3] = rot * 5.0
    a[:3, 3] = [-3.0, -4.0, 16.3]  # z boxes: [13.8, 18.8], [18.8, 23.8], [23.8, 28.8]
    f = tissue_fractions(a, (3, 3, 3), lab, T_AFF, min_samples_per_axis=50)
    lo = 16.3 + 5 * np.arange(3) - 2.5
    truth = _box_fraction_below(z0, lo, 5.0)
    assert np.abs(f["GM"] - truth[None, None, :]).max() < 0.01
    assert truth[1] == pytest.approx(0.84)
    assert np.all(f["outside"] == 0)


def test_sampled_path_agrees_with_exact_path():
    lab, _ = _x_plane_labels(71)
    a = np.diag([5.0, 5.0, 5.0, 1.0])
    a[:3, 3] = [-15.2, -9.0, 9.0]
    exact = tissue_fractions(a, (6, 3, 3), lab, T_AFF)
    maps, classes = _class_maps(lab, None, ())
    m = np.linalg.inv(T_AFF) @ a
    approx = _sampled(maps, classes, m[:3, :3], m[:3, 3], (6, 3, 3), (40, 40, 6))
    assert np.abs(approx["GM"] - exact["GM"]).max() <= 1 / (2 * 40) + 1e-9
