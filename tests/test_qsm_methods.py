"""QSM method options (RESHARP, PDF, SWIM-like, CSF/ROI reference) and cancel checkpoints.

Pure: no viewer. Accuracy against analytic fields (the sphere of ``test_qsm``); the phantom
figures are in ``test_qsm_phantom``.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_m1.errors import M1InputError
from napari_m1.qsm import (
    PRESETS,
    Cancelled,
    brain_mask,
    csf_mask,
    eroded_mask,
    fill_holes,
    iswim,
    nrmse,
    pdf,
    r2star_map,
    reference_chi,
    resharp,
    run_qsm,
    total_field,
    tv_admm,
    unwrap_laplacian,
    unwrap_path,
    vsharp,
)
from napari_m1.qsm._common import run_abandonable
from napari_m1.qsm._phase import _wrap
from test_qsm import ellipsoid, sphere_field, synthetic_input


@pytest.fixture(scope="module")
def sphere_case():
    """A 4 mm paramagnetic sphere inside an ellipsoid 'brain', plus a harmonic background
    (an air sphere outside the mask and a linear gradient)."""
    vs = (1.0, 1.0, 1.0)
    shape = (64, 64, 64)
    local, _ = sphere_field(shape, vs, (30, 34, 32), 4.0, 0.2)
    mask = ellipsoid(shape, 0.4)
    bg, _ = sphere_field(shape, vs, (32, 32, -20), 12.0, -9.4)
    bg += 0.001 * np.indices(shape)[0]
    return vs, local, bg, mask


def test_resharp_removes_harmonic_background(sphere_case):
    vs, local, bg, mask = sphere_case
    got, eroded, info = resharp(local + bg, mask, vs, radius_mm=4.0)
    assert info["iterations"] > 1 and info["relative_residual"] < 5e-3
    assert eroded.sum() > 0.6 * mask.sum() and not (eroded & ~mask).any()
    assert np.all(got[~eroded] == 0)
    err = nrmse(got, local, eroded)
    assert err < 15, err  # V-SHARP gets ~1 % here; RESHARP ~11 % (Tikhonov bias)
    assert nrmse(local + bg, local, eroded) > 100


def test_pdf_removes_the_field_of_outside_sources(sphere_case):
    vs, local, bg, mask = sphere_case
    got, kept, info = pdf(local + bg, mask, vs, (0, 0, 1))
    assert (kept == mask).all()  # PDF does not erode the mask
    truth = local - local[mask].mean()  # PDF removes the mean (no dipole field is uniform)
    truth[~mask] = 0
    eroded = eroded_mask(mask, vs, 4.0)  # 4 mm from the edge
    e_all, e_inner = nrmse(got, truth, mask), nrmse(got, truth, eroded)
    assert e_all < 25 and e_inner < 12, (e_all, e_inner, info)
    assert nrmse(local + bg, truth, mask) > 100


def test_iswim_inverts_a_sphere_and_refills_the_cone(sphere_case):
    """The SWIM-like research inversion: a paramagnetic sphere comes out paramagnetic with
    about its susceptibility, and the iterations change the thresholded-division map."""
    vs, local, _, mask = sphere_case
    _, inside = sphere_field(local.shape, vs, (30, 34, 32), 4.0, 0.2)
    chi0, info0 = iswim(local, mask, vs, (0, 0, 1), n_iter=0)
    chi, info = iswim(local, mask, vs, (0, 0, 1), n_iter=5, tol=0)
    assert info0["iterations"] == 0 and info["iterations"] == 5 and info["research"]
    core = inside & mask
    assert 0.12 < chi[core].mean() < 0.28, chi[core].mean()
    assert nrmse(chi, chi0, mask) > 1  # the refill did something
    assert np.all(chi[~mask] == 0)


def test_r2star_and_csf_mask():
    shape = (10, 10, 10)
    tes = (4.0, 8.0, 12.0)
    r2 = np.full(shape, 30.0, np.float32)  # grey matter
    r2[:5] = 10.0  # CSF: slow decay
    s0 = np.full(shape, 100.0, np.float32)
    s0[:5] = 200.0
    mag = np.stack([s0 * np.exp(-r2 * t / 1000) for t in tes]).astype(np.float32)
    np.testing.assert_allclose(r2star_map(mag, tes), r2, rtol=1e-4)
    mask = np.ones(shape, bool)
    mask[:, :, 0] = False
    csf = csf_mask(mag, tes, mask, r2star_max=20)
    assert csf[:5, :, 1:].all() and not csf[5:].any() and not csf[:, :, 0].any()
    with pytest.raises(M1InputError, match="two echoes"):
        r2star_map(mag[:1], tes[:1])


def test_reference_chi_subtracts_the_region_mean_and_refuses_tiny_regions():
    chi = np.arange(1000, dtype=np.float32).reshape(10, 10, 10) / 1000
    mask = np.ones(chi.shape, bool)
    mask[0] = False
    region = np.zeros(chi.shape, bool)
    region[5:7] = True
    out, ref, n = reference_chi(chi, mask, region, what="ROI")
    assert n == 200 and ref == pytest.approx(chi[region].mean())
    assert abs(out[region].mean()) < 1e-6 and np.all(out[~mask] == 0)
    with pytest.raises(M1InputError, match="ROI reference has 1 voxels"):
        reference_chi(
            chi, mask, np.eye(10, dtype=bool)[None].repeat(10, 0) & False | _one(chi), what="ROI"
        )


def _one(a):
    m = np.zeros(a.shape, bool)
    m[5, 5, 5] = True
    return m


@pytest.mark.parametrize(
    ("background", "dipole", "reference"),
    [("resharp", "tkd", "mean"), ("pdf", "iswim", "none"), ("vsharp", "tkd", "roi")],
)
def test_run_qsm_with_the_options(background, dipole, reference):
    inp, inside = synthetic_input()
    roi = np.zeros(inp.shape, bool)
    roi[8:16, 18:30, 18:30] = True  # a block around the sphere's centre
    p = PRESETS["fast"].replace(background=background, dipole=dipole, reference=reference)
    res = run_qsm(inp, p, reference_roi=roi if reference == "roi" else None)
    assert np.isfinite(res.chi_ppm).all()
    assert res.info["background"]["method"] == {"resharp": "RESHARP", "pdf": "PDF"}.get(
        background, "V-SHARP"
    )
    assert ("research" in res.info["dipole"]["method"]) == (dipole == "iswim")
    if reference == "roi":
        assert res.info["reference"]["method"].startswith("ROI")
        assert abs(res.chi_ppm[roi & res.mask].mean()) < 1e-6
    else:
        assert res.chi_ppm[inside & res.mask].mean() > 0.03  # the paramagnetic sphere shows
    if background == "pdf":
        assert (res.mask == res.input_mask).all()
    with pytest.raises(M1InputError, match="reference region"):
        run_qsm(inp, p.replace(reference="roi"))


def test_fill_holes_matches_scipy():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    for shape in [(30, 40, 20), (50, 50)]:
        m = ndi.binary_opening(rng.random(shape) > 0.45)
        np.testing.assert_array_equal(fill_holes(m), ndi.binary_fill_holes(m))


# ------------------------------------------------------------------ cancel checkpoints
class CancelAfter:
    """A cancel check that says True from its ``n``-th call on, and counts the calls."""

    def __init__(self, n: int) -> None:
        self.n, self.calls = n, 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


def _stage_calls():
    inp, _ = synthetic_input(n_echoes=3, shape=(24, 48, 48))
    mask = ellipsoid(inp.shape, 0.45)
    vs, b0 = inp.voxel_size_mm, inp.b0_dir
    field = np.where(mask, 0.01 * np.indices(inp.shape)[1], 0).astype(np.float32)
    return {
        "mask": lambda c: brain_mask(inp.mag, inp.phase, voxel_size_mm=vs, cancel=c),
        "field": lambda c: total_field(inp, mask, PRESETS["default"], cancel=c),
        "laplacian": lambda c: unwrap_laplacian(_wrap(inp.phase[0]), vs, mask, cancel=c),
        "vsharp": lambda c: vsharp(field, mask, vs, cancel=c),
        "resharp": lambda c: resharp(field, mask, vs, tol=0, n_iter=20, cancel=c),
        "pdf": lambda c: pdf(field, mask, vs, b0, tol=0, n_iter=20, cancel=c),
        "tv": lambda c: tv_admm(field, mask, vs, b0, tol=0, cancel=c),
        "iswim": lambda c: iswim(field, mask, vs, b0, tol=0, cancel=c),
    }


@pytest.mark.parametrize(
    "stage", ["mask", "field", "laplacian", "vsharp", "resharp", "pdf", "tv", "iswim"]
)
def test_every_stage_observes_cancel_between_chunks(stage):
    """Each stage looks at the flag repeatedly (between slices, filter passes, spheres,
    iterations), so a cancel set mid-stage stops it at the next chunk. The latency in
    seconds is measured by benchmarks/bench_qsm.py, not asserted here."""
    run = _stage_calls()[stage]
    count = CancelAfter(10**9)  # never cancels: how many checkpoints does the stage have?
    run(count)
    assert count.calls >= 3, count.calls
    mid = CancelAfter(max(2, count.calls // 2))
    with pytest.raises(Cancelled):
        run(mid)
    assert mid.calls == mid.n  # stopped at the checkpoint where the flag went up


def test_an_uninterruptible_call_is_abandoned_on_cancel():
    """run_abandonable (used for skimage's 3D unwrapper) returns control on cancel while
    the C call still runs, and passes results and errors through otherwise."""
    release = threading.Event()
    started = threading.Event()

    def blocking():
        started.set()
        release.wait(30)
        return 1

    flag = threading.Event()
    cancel = lambda: started.is_set() and flag.set() is None  # noqa: E731 - True once started
    try:
        with pytest.raises(Cancelled):
            run_abandonable(blocking, cancel)
        assert not release.is_set()  # the call was still blocked when we got control back
    finally:
        release.set()
    assert run_abandonable(lambda: 42, lambda: False) == 42
    with pytest.raises(ZeroDivisionError):
        run_abandonable(lambda: 1 / 0, lambda: False)


def test_path3d_unwrapping_is_abandonable():
    shape, vs = (20, 24, 16), (1.0, 1.0, 1.0)
    mask = ellipsoid(shape)
    g = np.indices(shape).astype(np.float32)
    wrapped = _wrap(0.9 * g[0] + 0.5 * g[1])
    with pytest.raises(Cancelled):
        unwrap_path(wrapped, mask, vs, mode="3d", cancel=lambda: True)
    got = unwrap_path(wrapped, mask, vs, mode="3d", cancel=lambda: False)
    d = (got - (0.9 * g[0] + 0.5 * g[1]))[mask]
    np.testing.assert_allclose(d, d[0], atol=1e-4)
