"""Benchmark: QSM stages at 256^3 x 4 echoes (1 mm isotropic), and the phantom's accuracy.

Run:  .venv/bin/python benchmarks/bench_qsm.py [--size 256] [--repeats 1] [--accuracy]

Input: a synthetic head (ellipsoid mask, smooth random chi of +-0.05 ppm, an air sphere's
background field), TE 4/8/12/16 ms at 7 T, wrapped phase. Times each stage of the
default preset (path unwrapping + template, V-SHARP 12 mm -> 1 voxel, TV-ADMM 40
iterations) and TKD, medians over ``--repeats``; tracemalloc's peak during the whole
default run is printed in float32 volumes (beyond the 8 input volumes).

Baseline measured in the same run: one complex128 ``numpy.fft.fftn`` / ``ifftn`` pair on the
same grid (the textbook TKD), so ratios survive the shared machine's noise.

Targets (2 cores): field <= 15 s, V-SHARP <= 15 s, TKD <= 2 s, TV <= 60 s, whole default
<= 90 s; <= 16 float32 volumes of working memory. ``--accuracy`` also prints the phantom
figures (TKD/TV NRMSE from the true field, 60 slices).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc

import numpy as np


def synthetic(n: int, n_echoes: int = 4):
    from scipy.fft import irfftn, rfftn
    from scipy.ndimage import gaussian_filter

    from napari_m1.qsm import QSMInput, dipole_kernel

    shape = (n, n, n)
    g = np.meshgrid(*[(np.arange(k) - (k - 1) / 2) / (0.42 * k) for k in shape], indexing="ij")
    head = (g[0] ** 2 + g[1] ** 2 + g[2] ** 2) <= 1.0
    rng = np.random.default_rng(0)
    chi = (gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 2.0) * 0.1).astype(
        np.float32
    )
    chi *= head
    field = irfftn(rfftn(chi) * dipole_kernel(shape, (1, 1, 1), (0, 0, 1)), s=shape)
    r2 = (g[0] * 0.42 * n) ** 2 + (g[1] * 0.42 * n - 0.6 * n) ** 2 + (g[2] * 0.42 * n) ** 2
    field += (-9.4 / 3 * 1000.0 / r2**1.5 * (1 - 3 * (g[2] * 0.42 * n) ** 2 / r2)).astype(
        np.float32
    )  # an air sphere (radius 10 mm) in front of the head
    del chi
    tes = (4.0, 8.0, 12.0, 16.0)[:n_echoes]
    hz_per_ppm = 42.577478 * 7.0
    mag = np.empty((n_echoes, *shape), np.float32)
    phase = np.empty((n_echoes, *shape), np.float32)
    for e, te in enumerate(tes):
        mag[e] = np.where(head, 300 * np.exp(-te / 30), 5.0)
        p = 0.4 + 2 * np.pi * hz_per_ppm * field * te / 1000
        phase[e] = np.where(head, np.angle(np.exp(1j * p)), rng.uniform(-np.pi, np.pi, shape))
    aff = np.eye(4)
    aff[:3, 3] = -n / 2
    return QSMInput(mag, phase, tes, 7.0, aff)


def timed(fn, repeats: int):
    out, ts = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return out, statistics.median(ts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--accuracy", action="store_true")
    args = ap.parse_args(argv)

    from napari_m1.qsm import PRESETS, brain_mask, run_qsm, tkd, total_field, tv_admm, vsharp
    from napari_m1.qsm._fourier import pad_shape

    n = args.size
    t = time.perf_counter()
    inp = synthetic(n)
    print(f"input {n}^3 x 4 echoes built in {time.perf_counter() - t:.1f} s")
    vol_bytes = n**3 * 4

    def baseline():
        a = np.fft.fftn(inp.phase[0])
        return np.fft.ifftn(a / 3.0).real

    _, t_base = timed(baseline, args.repeats)
    p = PRESETS["default"]
    mask, _ = brain_mask(inp.mag, inp.phase, voxel_size_mm=inp.voxel_size_mm)
    ps = pad_shape(inp.shape, mask, inp.b0_dir)
    (field, _), t_field = timed(lambda: total_field(inp, mask, p), args.repeats)
    (local, fmask, _), t_vsharp = timed(
        lambda: vsharp(field, mask, inp.voxel_size_mm, padded_shape=ps), args.repeats
    )
    _, t_tkd = timed(
        lambda: tkd(local, fmask, inp.voxel_size_mm, inp.b0_dir, padded_shape=ps), args.repeats
    )
    (_, info), t_tv = timed(
        lambda: tv_admm(
            local,
            fmask,
            inp.voxel_size_mm,
            inp.b0_dir,
            lam=p.tv_lambda,
            n_iter=p.tv_iterations,
            tol=0.0,
            padded_shape=pad_shape(inp.shape, fmask, inp.b0_dir, cut="both"),
        ),
        args.repeats,
    )
    tracemalloc.start()
    _, t_all = timed(lambda: run_qsm(inp, p), 1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    rows = [
        ("baseline: numpy complex128 fftn+ifftn", t_base, None),
        ("total field (path + template, 4 echoes)", t_field, 15),
        ("V-SHARP 12 mm -> 1 voxel", t_vsharp, 15),
        ("TKD", t_tkd, 2),
        (f"TV-ADMM {info['iterations']} iterations", t_tv, 60),
        ("whole default preset (incl. mask)", t_all, 90),
    ]
    print(f"grid {inp.shape}, padded {ps}; medians of {args.repeats} run(s)")
    for name, secs, target in rows:
        tgt = f"target <= {target} s" if target else ""
        print(f"  {name:42s} {secs:7.2f} s  {secs / t_base:6.1f}x baseline  {tgt}")
    print(
        f"  peak traced memory during the default run: {peak / vol_bytes:.1f} float32 volumes "
        f"({peak / 2**20:.0f} MiB; inputs mag+phase = 8 volumes, not counted by the target)"
    )
    if args.accuracy:
        accuracy()
    return 0


def accuracy() -> None:
    from scipy import ndimage as ndi

    from napari_m1.phantom import make_phantom
    from napari_m1.qsm import PRESETS, hfen, nrmse, tkd, tv_admm, xsim

    ph = make_phantom("als", 0, n_slices=60, with_phase=True)
    head = ndi.binary_fill_holes(ph.gre[..., 0] > 300)
    lab, _ = ndi.label(head)
    mask = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
    vs = (0.25, 0.25, 2.0)
    for name, chi in (
        ("TKD", tkd(ph.field_ppm, mask, vs, (0, 0, 1))),
        ("TV", tv_admm(ph.field_ppm, mask, vs, (0, 0, 1), lam=PRESETS["default"].tv_lambda)[0]),
    ):
        print(
            f"  phantom, true field -> {name}: NRMSE {nrmse(chi, ph.chi_ppm, mask):.1f} %, "
            f"HFEN {hfen(chi, ph.chi_ppm, mask):.1f} %, XSIM {xsim(chi, ph.chi_ppm, mask):.3f}"
        )


if __name__ == "__main__":
    sys.exit(main())
