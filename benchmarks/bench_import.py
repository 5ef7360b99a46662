"""Benchmark: import a 7T multi-echo DICOM series, napari-m1's pydicom path vs dcm2niix.

Run (after `bash scripts/test.sh` has set up .venv, which installs dcm2niix):

    .venv/bin/python benchmarks/bench_import.py [--repeats 3] [--slices 60] [--echoes 4]

Series (synthesized with pydicom, Siemens-style classic single-frame files): a
448x448 x SLICES x ECHOES magnitude series and the matching phase series
(2 x 240 files, 192 MB for the defaults). Measured in the same run, medians printed:

* ``dcm2niix``: the dcm2niix binary alone, DICOM -> uncompressed NIfTI (``-z n``);
* ``dcm2niix + load``: the same followed by reading its NIfTIs into arrays
  (what a dcm2niix-based importer would need before napari can show anything);
* ``napari-m1 load``: ``load_dicom_case`` -- header scan, grouping, pixels straight
  into the layer arrays (what dropping the folder on napari does);
* ``napari-m1 import``: ``napari-m1 import`` to a case folder (.nii + sidecars);
* ``napari-m1 load (warm scan)``: pixels only, the header scan reused (the dock's
  series picker has scanned already).

Peak Python-heap memory of ``napari-m1 load`` (tracemalloc) is compared with the
size of the arrays it returns.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path


def _dcm2niix() -> str:
    try:
        import dcm2niix

        exe = Path(dcm2niix.bin)
        if exe.is_file():
            return str(exe)
    except (ImportError, AttributeError):
        pass
    exe = shutil.which("dcm2niix")
    if exe is None:
        sys.exit("dcm2niix not installed (pip install dcm2niix)")
    return exe


def _timeit(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--echoes", type=int, default=4)
    ap.add_argument("--matrix", type=int, default=448)
    args = ap.parse_args()

    import numpy as np

    from napari_m1.io import load_case, load_dicom_case, scan_dicom
    from napari_m1.io._dicom_synth import orientation_iop, write_dicom_series
    from napari_m1.io._import import import_case

    exe = _dcm2niix()
    tmp = Path(tempfile.mkdtemp(prefix="m1-bench-import-"))
    src = tmp / "dicom"
    n, ne, ns = args.matrix, args.echoes, args.slices
    rng = np.random.default_rng(0)
    tes = [4.0 + 5.0 * e for e in range(ne)]
    t0 = time.perf_counter()
    for series, comp in ((5, "M"), (6, "P")):
        hi = 4095 if comp == "P" else 3000
        data = rng.integers(0, hi, (ne, ns, n, n), dtype=np.uint16)
        write_dicom_series(
            src,
            data,
            iop=orientation_iop("oblique", degrees=12),
            pixel_spacing=(0.47, 0.47),
            slice_spacing=1.0,
            echo_times_ms=tes,
            series_number=series,
            component=comp,
        )
    n_files = len(list(src.iterdir()))
    mb = sum(p.stat().st_size for p in src.iterdir()) / 1e6
    print(
        f"series: {n}x{n}x{ns} x {ne} echoes, magnitude + phase: {n_files} files, {mb:.0f} MB "
        f"(written in {time.perf_counter() - t0:.1f} s)"
    )

    def run_dcm2niix() -> Path:
        out = tmp / "d2n"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        subprocess.run(
            [exe, "-o", str(out), "-f", "%s_%e", "-z", "n", str(src)],
            check=True,
            capture_output=True,
        )
        return out

    def dcm2niix_and_load() -> None:
        out = run_dcm2niix()
        import nibabel as nib

        for f in sorted(out.glob("*.nii")):
            np.asarray(nib.load(f).dataobj)

    def m1_load() -> None:
        load_dicom_case(src)

    scan = scan_dicom(src)

    def m1_warm() -> None:
        load_dicom_case(src, scan=scan)

    def m1_import() -> None:
        import_case(src, tmp / "case", force=True)

    # Correctness first: the arrays napari-m1 shows equal dcm2niix's, affine to 1e-3 mm.
    case = load_dicom_case(src)
    out = run_dcm2niix()
    from napari_m1.io import load_nifti

    refs = sorted(out.glob("5_*.nii"))
    worst = 0.0
    for e, r in enumerate(refs):
        ref = load_nifti(r, kind="gre")
        assert np.array_equal(ref.data, case.volumes[0].data[e]), r.name
        worst = max(worst, float(np.abs(ref.ras_affine - case.volumes[0].ras_affine).max()))
    print(f"check: {len(refs)} magnitude echoes equal dcm2niix's; affine max diff {worst:.1e} mm")
    load_case(tmp / "case") if (tmp / "case").exists() else None

    rows = [
        ("dcm2niix (DICOM -> .nii)", _timeit(run_dcm2niix, args.repeats)),
        ("dcm2niix + load arrays", _timeit(dcm2niix_and_load, args.repeats)),
        ("napari-m1 load (scan + pixels)", _timeit(m1_load, args.repeats)),
        ("napari-m1 load (warm scan)", _timeit(m1_warm, args.repeats)),
        ("napari-m1 import (.nii)", _timeit(m1_import, args.repeats)),
    ]
    base = statistics.median(rows[0][1])
    print(f"{'step':34s} {'median s':>9s} {'min s':>7s} {'vs dcm2niix':>12s}")
    for name, ts in rows:
        med = statistics.median(ts)
        print(f"{name:34s} {med:9.2f} {min(ts):7.2f} {med / base:11.2f}x")

    tracemalloc.start()
    case = load_dicom_case(src)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = sum(v.data.nbytes for v in case.volumes)
    print(
        f"napari-m1 load peak traced memory {peak / 1e6:.0f} MB for {size / 1e6:.0f} MB of "
        f"arrays ({peak / size:.2f}x)"
    )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
