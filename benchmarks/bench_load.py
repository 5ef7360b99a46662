"""Benchmark: open a 7T case to the drawn frame, against nibabel and a plain read.

Run under a display (``xvfb-run -a`` on a server), after ``bash scripts/test.sh``:

    xvfb-run -a .venv/bin/python benchmarks/bench_load.py --size small
    xvfb-run -a .venv/bin/python benchmarks/bench_load.py --size whole-brain --repeats 1

The benchmark writes its case itself, into a temporary folder under /tmp that is
deleted at the end: a multi-echo GRE, magnitude and phase, both float32, as one 4D
file each (LAS voxel order, like a scanner's), with a BIDS sidecar and four 5 mm
MRSI maps. ``small``: 448x448x60 x 2 echoes (190 MB); ``whole-brain``:
768x768x160 x 4 echoes (2.9 GB, the case of issue 16). The values are integers
and 12-bit phase steps stored as float32, so gzip compresses them as it does
scanner data (about 3:1 magnitude, 1.5:1 phase). Each case is written as
``.nii.gz`` and as ``.nii``.

Every measurement runs in a fresh child process (so each peak RSS is its own, read
from /proc/self/status VmHWM), repeats interleaved so machine noise hits all sides:

* ``nibabel``: ``np.asanyarray(nibabel.load(f, mmap=False).dataobj)`` for every file
  (nibabel's forced read of the same dtype; ``get_fdata`` would be float64);
* ``plain read`` (``.nii`` only): ``readinto`` of each file's voxel bytes into one
  preallocated buffer -- the disk/page-cache floor;
* ``load_case`` alone in a child without napari: the reading itself (time, peak RSS);
* ``napari-m1`` in a real napari window with the M1 case dock: ``open_case`` as a
  click does (staged). *first frame*: clock stopped at the canvas draw that follows
  the GRE's first frame; *ready*: at the draw after ``case_loaded`` (every layer added,
  every array complete). *blocking*: the whole case loaded, every layer added, drawn
  (``open_case(block=True)``). Then echo switches and slice moves, each timed to
  the next drawn frame. Peak RSS is measured on the staged load, from an RSS
  taken after napari is up and a tiny case has been opened and closed.

Targets (issue 16): first frame <= 0.6x nibabel (.nii.gz), <= 1.1x plain read
(.nii); peak RSS <= 1.05x data; echo switch / slice move <= 50 ms; the small case
<= 1.0x nibabel.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"small": ((448, 448, 60), 2), "whole-brain": ((768, 768, 160), 4)}
ECHO_TIMES_S = [0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04]


# --------------------------------------------------------------------------- the case
def _slab(kind: str, shape: tuple[int, int, int], z: int, echo: int):
    """One axial slab (x, y) of the synthetic case, float32, scanner-like values."""
    import numpy as np

    nx, ny, _nz = shape
    rng = np.random.default_rng(1000 * echo + z)
    x, y = np.meshgrid(
        np.arange(nx, dtype=np.float32), np.arange(ny, dtype=np.float32), indexing="ij"
    )
    r = np.sqrt((x - nx / 2) ** 2 + (y - ny / 2) ** 2 * 1.3) / (0.42 * nx)
    if kind == "mag":
        head = np.clip(1.0 - r, 0, 1) ** 0.3 * (900 * np.exp(-echo * 0.25))
        pattern = 60 * np.sin(x / 9 + z / 7) * np.cos(y / 13)
        v = head + pattern * (r < 1) + np.abs(rng.normal(0, 12, (nx, ny)))
        return np.round(v).astype(np.float32)
    phi = (x * 0.04 + y * 0.027 + z * 0.05) * (echo + 1) + rng.normal(0, 0.25, (nx, ny))
    phi = np.angle(np.exp(1j * phi))
    return (np.round(phi * 2048 / np.pi) * (np.pi / 2048)).astype(np.float32)


def write_case(folder: Path, size: str, *, gz: bool) -> int:
    """Write the benchmark case; returns the bytes of voxel data. Memory: one slab."""
    import nibabel as nib
    import numpy as np

    (nx, ny, nz), n_echoes = SIZES[size]
    folder.mkdir(parents=True, exist_ok=True)
    aff = np.diag([-0.26, 0.26, 0.26 if size == "whole-brain" else 0.5, 1.0])
    aff[:3, 3] = [nx * 0.13, -ny * 0.13, -20.0]
    ext = ".nii.gz" if gz else ".nii"
    total = 0
    for kind in ("mag", "phase"):
        hdr = nib.Nifti1Header()
        hdr.set_data_shape((nx, ny, nz, n_echoes))
        hdr.set_data_dtype(np.float32)
        hdr.set_sform(aff, code=1)
        hdr.set_qform(aff, code=1)
        hdr.set_xyzt_units("mm", "sec")
        hdr["vox_offset"] = 352
        path = folder / f"sub-bench_part-{kind}_MEGRE{ext}"
        opener = __import__("gzip").open(path, "wb", compresslevel=1) if gz else open(path, "wb")
        with opener as f:
            f.write(hdr.binaryblock + b"\0" * (352 - len(hdr.binaryblock)))
            for e in range(n_echoes):
                for z in range(nz):
                    # NIfTI is Fortran-ordered: x fastest, so write each slab transposed.
                    f.write(np.ascontiguousarray(_slab(kind, (nx, ny, nz), z, e).T).tobytes())
        total += nx * ny * nz * n_echoes * 4
        side = {"EchoTime": ECHO_TIMES_S[:n_echoes]}
        (folder / f"sub-bench_part-{kind}_MEGRE.json").write_text(json.dumps(side))
    m_aff = np.diag([5.0, 5.0, 5.0, 1.0])
    m_aff[:3, 3] = [-60.0, -60.0, -20.0]
    for i, met in enumerate(("NAA", "Cr", "Cho", "Glx")):
        mrsi = np.full((24, 24, 8), 5.0 + i, np.float32)
        mrsi[:2] = np.nan
        nib.save(nib.Nifti1Image(mrsi, m_aff), folder / f"sub-bench_met-{met}_mrsi{ext}")
    return total


# --------------------------------------------------------------------------- children
def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def child_nibabel(folder: Path) -> dict:
    import nibabel as nib
    import numpy as np

    before = _status("VmRSS:")
    t0 = time.perf_counter()
    keep = [np.asanyarray(nib.load(f, mmap=False).dataobj) for f in sorted(folder.glob("*.nii*"))]
    t = time.perf_counter() - t0
    return {"t": t, "peak": _status("VmHWM:") - before, "data": sum(a.nbytes for a in keep)}


def child_plain(folder: Path) -> dict:
    import numpy as np

    files = sorted(folder.glob("*.nii"))
    before = _status("VmRSS:")
    t0 = time.perf_counter()
    keep = []
    for f in files:
        n = f.stat().st_size - 352
        buf = np.empty(n, np.uint8)
        with open(f, "rb", buffering=0) as fh:
            fh.seek(352)
            mv, got = memoryview(buf), 0
            while got < n:
                got += fh.readinto(mv[got:])
        keep.append(buf)
    t = time.perf_counter() - t0
    return {"t": t, "peak": _status("VmHWM:") - before, "data": sum(a.nbytes for a in keep)}


def child_pure(folder: Path, tiny: Path) -> dict:
    """``load_case`` alone (no napari): the reading itself, its time and peak RSS."""
    from napari_m1.io import load_case

    load_case(tiny)  # one-time imports first
    before = _status("VmRSS:")
    t0 = time.perf_counter()
    case = load_case(folder)
    t = time.perf_counter() - t0
    data = sum(v.data.nbytes for v in case.volumes)
    return {"t": t, "peak": _status("VmHWM:") - before, "data": data}


def child_gui(folder: Path, tiny: Path, moves: int) -> dict:
    os.environ.setdefault("QT_API", "pyqt6")
    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_m1._qt.case_widget import CaseWidget
    from napari_m1._viewer import case_is_complete

    viewer = napari.Viewer(show=True)
    widget = CaseWidget(viewer)
    viewer.window.add_dock_widget(widget, name="M1 case")
    app = QApplication.instance()
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    state: dict = {"draws": 0, "t_draw": None, "first": None, "ready": None}

    def on_draw(event=None):
        state["draws"] += 1
        state["t_draw"] = time.perf_counter()

    canvas.events.draw.connect(on_draw)
    widget.first_frame.connect(lambda _l: state.__setitem__("first", time.perf_counter()))
    widget.case_loaded.connect(lambda _l: state.__setitem__("ready", time.perf_counter()))

    def pump_until(cond, timeout=600.0):
        end = time.perf_counter() + timeout
        while not cond() and time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.001)
        if not cond():
            raise RuntimeError("timed out")

    def next_draw_after(t: float) -> float:
        pump_until(lambda: state["t_draw"] is not None and state["t_draw"] > t)
        return state["t_draw"]

    # warm up: napari, GL and every lazy import, then the RSS baseline
    widget.open_case(tiny, block=True)
    pump_until(lambda: state["draws"] > 0)
    viewer.layers.clear()
    for _ in range(20):
        app.processEvents()
    before = _status("VmRSS:")
    hwm_before = _status("VmHWM:")

    state.update(first=None, ready=None)
    t0 = time.perf_counter()
    widget.open_case(folder)  # staged, as a click
    pump_until(lambda: state["first"] is not None)
    t_first = next_draw_after(state["first"]) - t0
    pump_until(lambda: state["ready"] is not None)
    canvas.update()
    t_ready = next_draw_after(state["ready"]) - t0
    assert case_is_complete(viewer)
    peak = _status("VmHWM:")
    data = sum(ly.data.nbytes for ly in viewer.layers)
    n_layers = len(viewer.layers)

    # echo switch and slice move -> drawn frame
    gre = viewer.layers[0]
    echo_t, slice_t = [], []
    n_e = gre.data.shape[0]
    z_axis = viewer.dims.ndim - 3
    z0 = viewer.dims.point[z_axis]
    step = gre.scale[-3]
    for i in range(moves):
        for _ in range(3):
            app.processEvents()
        t = time.perf_counter()
        viewer.dims.set_point(0, (i + 1) % n_e)
        echo_t.append(next_draw_after(t) - t)
        for _ in range(3):
            app.processEvents()
        t = time.perf_counter()
        viewer.dims.set_point(z_axis, z0 + step * ((i % 5) - 2))
        slice_t.append(next_draw_after(t) - t)

    # the same case loaded whole, then every layer added and drawn (the old way)
    viewer.layers.clear()
    for _ in range(20):
        app.processEvents()
    t = time.perf_counter()
    widget.open_case(folder, block=True)
    # the clock stops at the first draw once every layer is added (not a draw napari
    # may have made in between)
    t_block = next_draw_after(time.perf_counter()) - t
    viewer.close()
    return {
        "first": t_first,
        "ready": t_ready,
        "block": t_block,
        "peak": max(peak, hwm_before) - before,
        "data": data,
        "layers": n_layers,
        "echo_ms": float(np.median(echo_t) * 1000),
        "slice_ms": float(np.median(slice_t) * 1000),
        "echo_p90_ms": float(np.percentile(echo_t, 90) * 1000),
        "slice_p90_ms": float(np.percentile(slice_t, 90) * 1000),
    }


def _run_child(*args: str) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main
def _warm_page_cache(folder: Path) -> None:
    for f in folder.iterdir():
        with open(f, "rb", buffering=0) as fh:
            while fh.read(64 << 20):
                pass


def _fmt_runs(ts: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in ts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--repeats", type=int, default=None, help="default 3 small, 1 whole-brain")
    ap.add_argument("--formats", default="gz,nii", help="comma list of gz, nii")
    ap.add_argument("--moves", type=int, default=20, help="echo switches and slice moves")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        kind, folder = args.child[0], Path(args.child[1])
        if kind == "nibabel":
            out = child_nibabel(folder)
        elif kind == "plain":
            out = child_plain(folder)
        elif kind == "pure":
            out = child_pure(folder, Path(args.child[2]))
        else:
            out = child_gui(folder, Path(args.child[2]), int(args.child[3]))
        print(json.dumps(out))
        return 0

    from napari_m1.io._stream import INFLATER

    repeats = args.repeats or (3 if args.size == "small" else 1)
    (nx, ny, nz), n_echoes = SIZES[args.size]
    tmp = Path(tempfile.mkdtemp(prefix="m1-bench-load-", dir="/tmp"))
    try:
        need = 2 * nx * ny * nz * n_echoes * 4 * 2
        free = shutil.disk_usage(tmp).free
        if free < need:
            print(f"not enough disk in /tmp: {free / 1e9:.1f} GB free, {need / 1e9:.1f} GB needed")
            return 1
        tiny = tmp / "tiny"
        from napari_m1.phantom import write_phantom_case

        write_phantom_case(tiny, "control", 0, n_slices=16)
        print(
            f"case: GRE {nx}x{ny}x{nz} x {n_echoes} echoes, magnitude + phase float32, "
            f"4 MRSI maps; inflater: {INFLATER}; {repeats} repeat(s); "
            f"{os.cpu_count()} CPU(s)",
            flush=True,
        )
        for fmt in [f.strip() for f in args.formats.split(",") if f.strip()]:
            folder = tmp / f"case-{fmt}"
            t = time.perf_counter()
            data = write_case(folder, args.size, gz=fmt == "gz")
            on_disk = sum(f.stat().st_size for f in folder.iterdir())
            print(
                f"\n[{fmt}] wrote {data / 1e9:.2f} GB of voxels ({on_disk / 1e9:.2f} GB on disk) "
                f"in {time.perf_counter() - t:.0f} s",
                flush=True,
            )
            _warm_page_cache(folder)  # every side then reads from memory, as after a copy
            res: dict[str, list[dict]] = {"nibabel": [], "plain": [], "pure": [], "gui": []}
            for _ in range(repeats):
                res["nibabel"].append(_run_child("nibabel", str(folder)))
                if fmt == "nii":
                    res["plain"].append(_run_child("plain", str(folder)))
                res["pure"].append(_run_child("pure", str(folder), str(tiny)))
                res["gui"].append(_run_child("gui", str(folder), str(tiny), str(args.moves)))
            _report(fmt, res)
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _report(fmt: str, res: dict[str, list[dict]]) -> None:
    med = statistics.median
    nb = [r["t"] for r in res["nibabel"]]
    g = res["gui"]
    first, ready, block = ([r[k] for r in g] for k in ("first", "ready", "block"))
    print(f"  nibabel forced read        median {med(nb):7.2f} s  (runs {_fmt_runs(nb)})")
    base_name, base = "nibabel", med(nb)
    if res["plain"]:
        pl = [r["t"] for r in res["plain"]]
        print(f"  plain readinto             median {med(pl):7.2f} s  (runs {_fmt_runs(pl)})")
    pu = [r["t"] for r in res["pure"]]
    print(f"  napari-m1 load_case alone  median {med(pu):7.2f} s  (runs {_fmt_runs(pu)})")
    print(f"  napari-m1 first frame      median {med(first):7.2f} s  (runs {_fmt_runs(first)})")
    print(f"  napari-m1 ready (complete) median {med(ready):7.2f} s  (runs {_fmt_runs(ready)})")
    print(f"  napari-m1 blocking + draw  median {med(block):7.2f} s  (runs {_fmt_runs(block)})")
    for label, v in (
        ("load_case", pu),
        ("first frame", first),
        ("ready", ready),
        ("blocking", block),
    ):
        line = f"  ratio {label:12s} / {base_name} = {med(v) / base:.2f}"
        if res["plain"]:
            line += f"   / plain read = {med(v) / med([r['t'] for r in res['plain']]):.2f}"
        print(line)
    pure_peak = med([r["peak"] / r["data"] for r in res["pure"]])
    print(f"  peak RSS load_case alone {pure_peak:.3f} x data")
    peak = med([r["peak"] / r["data"] for r in g])
    nbp = med([r["peak"] / r["data"] for r in res["nibabel"]])
    print(
        f"  peak RSS napari-m1 (staged, with napari) {peak:.3f} x data "
        f"({g[0]['data'] / 1e9:.2f} GB, {g[0]['layers']} layers); nibabel {nbp:.3f} x"
    )
    print(
        f"  echo switch -> drawn  median {med([r['echo_ms'] for r in g]):.1f} ms "
        f"(p90 {med([r['echo_p90_ms'] for r in g]):.1f});  slice move -> drawn median "
        f"{med([r['slice_ms'] for r in g]):.1f} ms (p90 {med([r['slice_p90_ms'] for r in g]):.1f})"
    )


if __name__ == "__main__":
    sys.exit(main())
