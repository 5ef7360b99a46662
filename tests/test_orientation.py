"""Orientation: all 48 axis codes and oblique affines load to true RAS positions."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, ornt_transform

from conftest import make_nifti
from napari_m1.geometry import (
    conventional_orientation,
    edge_letters,
    hemisphere,
    reference_placement,
    world_to_ras,
)
from napari_m1.io import load_nifti

PAIRS = (("R", "L"), ("A", "P"), ("S", "I"))
ALL_AXCODES = [
    tuple(PAIRS[a][f] for a, f in zip(perm, flips, strict=True))
    for perm in itertools.permutations(range(3))
    for flips in itertools.product((0, 1), repeat=3)
]
ZOOMS = np.array([0.5, 0.75, 2.0])


def test_there_are_48_axis_codes():
    assert len(set(ALL_AXCODES)) == 48


def _ras_volume():
    """A RAS+ volume with two markers, left (x<0) and right (x>0) of the midline."""
    shape = (20, 18, 12)
    aff = np.diag([*ZOOMS, 1.0])
    aff[:3, 3] = -(np.array(shape) - 1) / 2 * ZOOMS + np.array([0.3, -12.0, 40.0])
    data = np.zeros(shape, np.float32)
    left, right = (3, 11, 4), (15, 5, 8)
    data[left], data[right] = 100.0, 200.0
    return data, aff, left, right


def _marker_ras(vol, value):
    idx = np.argwhere(vol.data == value)
    assert len(idx) == 1, "marker lost or duplicated"
    return vol.ras_affine @ np.r_[idx[0], 1.0], idx[0]


@pytest.mark.parametrize("axcodes", ALL_AXCODES, ids="".join)
def test_marker_lands_at_its_ras_point(tmp_path, axcodes):
    data, aff, left, right = _ras_volume()
    img = nib.Nifti1Image(data, aff)
    xform = ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(axcodes))
    img2 = img.as_reoriented(xform)
    assert nib.aff2axcodes(img2.affine) == axcodes
    path = make_nifti(tmp_path / "vol.nii.gz", np.asarray(img2.dataobj), img2.affine)

    vol = load_nifti(path, kind="gre")
    for marker, value, side in ((left, 100.0, "L"), (right, 200.0, "R")):
        truth = aff @ np.r_[marker, 1.0]
        got, _ = _marker_ras(vol, value)
        np.testing.assert_allclose(got[:3], truth[:3], atol=ZOOMS.max() / 2)
        assert hemisphere(got[:3]) == side
    # Canonical order: axis 0 -> S, axis 1 -> A, axis 2 -> R.
    dirs = vol.ras_affine[:3, :3]
    assert [int(np.argmax(np.abs(dirs[:, m]))) for m in range(3)] == [2, 1, 0]
    assert np.all(np.diag(dirs[::-1]) > 0)
    np.testing.assert_allclose(vol.voxel_size_mm, ZOOMS[::-1])
    # Through napari's world: axis-aligned grids show world == RAS (z, y, x).
    place = reference_placement(vol.ras_affine, vol.spatial_shape)
    _, idx = _marker_ras(vol, 100.0)
    world = np.asarray(place.scale) * idx + np.asarray(place.translate)
    np.testing.assert_allclose(world[::-1], (aff @ np.r_[left, 1.0])[:3], atol=1e-6)
    np.testing.assert_allclose(
        world_to_ras(world, vol.ras_affine, place.scale, place.translate),
        (aff @ np.r_[left, 1.0])[:3],
        atol=1e-6,
    )


def _rotation(ax_deg, az_deg):
    ax, az = np.deg2rad([ax_deg, az_deg])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ rx


@pytest.mark.parametrize(
    ("ax_deg", "az_deg", "axcodes"),
    [(15.0, 20.0, ("L", "P", "S")), (-25.0, 35.0, ("A", "I", "R"))],
)
def test_oblique_affine_marker(tmp_path, ax_deg, az_deg, axcodes):
    data, aff, left, right = _ras_volume()
    obl = aff.copy()
    obl[:3, :3] = _rotation(ax_deg, az_deg) @ aff[:3, :3]
    img = nib.Nifti1Image(data, obl)
    cur = nib.io_orientation(obl)
    xform = ornt_transform(cur, axcodes2ornt(axcodes))
    img2 = img.as_reoriented(xform)
    path = make_nifti(tmp_path / "obl.nii", np.asarray(img2.dataobj), img2.affine)
    vol = load_nifti(path, kind="gre")
    for marker, value, _side in ((left, 100.0, "L"), (right, 200.0, "R")):
        truth = obl @ np.r_[marker, 1.0]
        got, _ = _marker_ras(vol, value)
        np.testing.assert_allclose(got[:3], truth[:3], atol=1e-6)
        assert hemisphere(got[:3]) == ("L" if truth[0] < 0 else "R")
    # Sanity: the reorientation really exercised a permutation.
    assert nib.aff2axcodes(img2.affine) == axcodes
    np.testing.assert_allclose(inv_ornt_aff(xform, data.shape)[3], [0, 0, 0, 1])


@pytest.mark.parametrize(
    ("x", "expected"), [(-0.01, "L"), (0.01, "R"), (0.0, "M"), (-50.0, "L"), (73.2, "R")]
)
def test_hemisphere_from_x(x, expected):
    assert hemisphere([x, 10.0, -5.0]) == expected


def test_hemisphere_custom_midline_and_tolerance():
    assert hemisphere([1.0, 0, 0], midline_x_mm=2.0) == "L"
    assert hemisphere([1.9, 0, 0], midline_x_mm=2.0, tol_mm=0.2) == "M"


def _canonical_ras():
    # napari axis 0 -> +S (2 mm), 1 -> +A, 2 -> +R (0.25 mm)
    r = np.zeros((4, 4))
    r[2, 0], r[1, 1], r[0, 2], r[3, 3] = 2.0, 0.25, 0.25, 1.0
    return r


@pytest.mark.parametrize(
    ("displayed", "radiological", "expected"),
    [
        ((1, 2), True, {"top": "A", "bottom": "P", "left": "R", "right": "L"}),
        ((1, 2), False, {"top": "A", "bottom": "P", "left": "L", "right": "R"}),
        ((0, 2), True, {"top": "S", "bottom": "I", "left": "R", "right": "L"}),
        ((0, 2), False, {"top": "S", "bottom": "I", "left": "L", "right": "R"}),
        ((0, 1), True, {"top": "S", "bottom": "I", "left": "A", "right": "P"}),
    ],
)
def test_reading_view_letters(displayed, radiological, expected):
    ras = _canonical_ras()
    v, h = conventional_orientation(ras, displayed, radiological=radiological)
    assert edge_letters(ras, displayed, v, h) == expected


def test_letters_follow_a_flipped_source_axis():
    # If the displayed column axis increased towards L, neurological must flip it.
    ras = _canonical_ras()
    ras[0, 2] = -0.25
    v, h = conventional_orientation(ras, (1, 2), radiological=False)
    assert h == "left"
    assert edge_letters(ras, (1, 2), v, h)["right"] == "R"
