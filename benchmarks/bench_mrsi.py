"""MRSI: open an fsl_mrsi folder (20 metabolites, 32x32x8) and re-mask after a threshold change.

    .venv/bin/python benchmarks/bench_mrsi.py [--repeats 15]

Targets (issue 12): open < 1 s; re-masking the three ratio maps < 50 ms. Baselines measured
in the same run: nibabel loading only the 20 concentration maps (the floor of any reader),
and one float division over the grid (the floor of any ratio map).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    import nibabel as nib

    from napari_m1.mrsi import QCThresholds, ratio_maps, read_fsl_mrsi
    from napari_m1.mrsi._synth import write_fsl_mrsi_folder

    with tempfile.TemporaryDirectory() as tmp:
        syn = write_fsl_mrsi_folder(Path(tmp) / "fsl", (32, 32, 8), n_extra=15)
        concs = sorted((syn.folder / "concs" / "molarity").iterdir())
        n = len(concs)
        base_open = _median_s(
            lambda: [np.asarray(nib.load(p).dataobj, dtype=float) for p in concs], args.repeats
        )
        t_open = _median_s(lambda: read_fsl_mrsi(syn.folder), args.repeats)
        fit = read_fsl_mrsi(syn.folder)
        a, b = fit.conc["tNAA"], fit.conc["tCr"]
        base_div = _median_s(lambda: a / np.where(b == 0, 1, b), args.repeats * 10)
        ths = [QCThresholds(max_sd_pct=v) for v in (10, 15, 20, 25, 30)]
        t_mask = _median_s(lambda: [ratio_maps(fit, t) for t in ths], args.repeats) / len(ths)
    print(f"fsl_mrsi folder: {n} metabolites on 32x32x8 (each with %SD, S/N, FWHM maps)")
    print(f"open (read_fsl_mrsi)        median {t_open * 1e3:8.1f} ms   target < 1000 ms")
    print(
        f"  baseline: nibabel concs   median {base_open * 1e3:8.1f} ms   "
        f"ratio {t_open / base_open:.1f}x"
    )
    print(f"re-mask 3 ratio maps        median {t_mask * 1e3:8.2f} ms   target < 50 ms")
    print(
        f"  baseline: one division    median {base_div * 1e3:8.3f} ms   "
        f"ratio {t_mask / base_div:.0f}x"
    )


if __name__ == "__main__":
    main()
