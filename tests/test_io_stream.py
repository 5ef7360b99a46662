"""Streaming loads: one buffer, per-slab passes, fast gzip with CRC, size checks, stages."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import make_nifti
from napari_m1.errors import M1LoadError
from napari_m1.io import CaseLoad, LoadingArray, _stream, load_case, load_nifti, rescale_phase

INFLATERS = ["zlib"] + (["isal"] if _stream.INFLATER == "isal" else [])


def _grid(vox=(0.5, 0.5, 1.0)) -> np.ndarray:
    return np.diag([*vox, 1.0])


@pytest.fixture
def tiny_slabs(monkeypatch):
    """Slabs of 4 KiB so small test volumes cross many slab boundaries."""
    monkeypatch.setattr(_stream, "SLAB_BYTES", 4096)


def test_isal_is_the_inflater():
    """The fast inflater is a dependency; zlib stays only as the fallback."""
    pytest.importorskip("isal")
    assert _stream.INFLATER == "isal"


@pytest.mark.parametrize("inflater", INFLATERS)
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_scaled_int16_matches_nibabel(tmp_path, tiny_slabs, monkeypatch, inflater, suffix):
    monkeypatch.setattr(_stream, "INFLATER", inflater)
    rng = np.random.default_rng(3)
    raw = rng.integers(-3000, 3000, size=(20, 18, 7), dtype=np.int16)
    p = make_nifti(tmp_path / f"v{suffix}", raw, _grid(), scl_slope=0.25, scl_inter=10.0)
    want = np.asanyarray(nib.load(p).get_fdata(dtype=np.float32))
    vol = load_nifti(p, kind="other")
    assert vol.data.dtype == np.float32
    # canonical view of (x, y, z) = (R, A, S): napari order is (S, A, R) = reversed
    np.testing.assert_allclose(np.asarray(vol.data), want.transpose(2, 1, 0), rtol=1e-6)


def test_big_endian_float(tmp_path, tiny_slabs):
    data = np.random.default_rng(4).normal(size=(16, 12, 9)).astype(">f4")
    img = nib.Nifti1Image(data, _grid(), header=nib.Nifti1Header(endianness=">"))
    img.set_sform(_grid(), code=1)
    p = tmp_path / "be.nii"
    nib.save(img, p)
    assert nib.load(p).get_data_dtype().byteorder == ">"
    vol = load_nifti(p, kind="other")
    assert vol.data.dtype == np.dtype("=f4")
    np.testing.assert_array_equal(vol.data, data.astype("=f4").transpose(2, 1, 0))


def test_nan_inf_counted_across_slabs(tmp_path, tiny_slabs):
    data = np.ones((32, 32, 8), np.float32)
    data[0, 0, 0] = np.nan
    data[5, 7, 6] = np.inf
    data[31, 31, 7] = -np.inf
    data[10, 3, 2] = np.nan
    vol = load_nifti(make_nifti(tmp_path / "v.nii.gz", data, _grid()), kind="gre")
    assert vol.extra["n_nan"] == 4
    assert np.isnan(vol.data).sum() == 4 and not np.isinf(vol.data).any()
    assert any("2 NaN value(s)" in w for w in vol.warnings)
    assert any("2 infinite value(s)" in w for w in vol.warnings)


def test_phase_rescaled_from_streamed_range(tmp_path, tiny_slabs):
    rng = np.random.default_rng(5)
    raw = rng.integers(-4096, 4096, size=(24, 20, 6), dtype=np.int16)
    raw[0, 0, 0], raw[1, 1, 1] = -4096, 4095
    vol = load_nifti(make_nifti(tmp_path / "ph.nii.gz", raw, _grid()), kind="phase")
    sc = vol.extra["phase_scaling"]
    assert (sc["method"], sc["min"], sc["max"]) == ("linear", -4096.0, 4095.0)
    assert vol.data.min() == pytest.approx(-np.pi, abs=1e-5)
    assert vol.data.max() == pytest.approx(np.pi, abs=1e-5)
    # the in-memory function gives the same mapping
    ref = raw.astype(np.float32)
    assert rescale_phase(ref)["factor"] == pytest.approx(sc["factor"])
    np.testing.assert_allclose(vol.data, ref.transpose(2, 1, 0), atol=1e-6)


def _gzip_case_file(tmp_path: Path) -> Path:
    data = np.random.default_rng(0).normal(size=(32, 32, 16)).astype(np.float32)
    return make_nifti(tmp_path / "v.nii.gz", data, _grid())


@pytest.mark.parametrize("inflater", INFLATERS)
@pytest.mark.parametrize("where", ["crc", "isize", "truncated", "data"])
def test_corrupt_gzip_one_line(tmp_path, monkeypatch, inflater, where):
    """A damaged .nii.gz never loads: the CRC-32 and length in the trailer are checked."""
    monkeypatch.setattr(_stream, "INFLATER", inflater)
    p = _gzip_case_file(tmp_path)
    raw = bytearray(p.read_bytes())
    if where == "crc":
        crc = struct.unpack("<I", raw[-8:-4])[0]
        raw[-8:-4] = struct.pack("<I", crc ^ 1)
    elif where == "isize":
        raw[-4:] = struct.pack("<I", struct.unpack("<I", raw[-4:])[0] + 4)
    elif where == "truncated":
        raw = raw[: len(raw) * 3 // 4]
    else:  # a flipped bit inside the deflate data
        raw[len(raw) // 2] ^= 0x10
    p.write_bytes(bytes(raw))
    with pytest.raises(M1LoadError) as ei:
        load_nifti(p, kind="gre")
    msg = str(ei.value)
    assert msg.startswith("v.nii.gz: ") and "\n" not in msg
    assert "truncated" in msg or "corrupt" in msg


def _huge_header(path: Path) -> Path:
    img = nib.Nifti2Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    img.header.set_data_shape((100000, 100000, 100000))
    hdr = img.header.binaryblock + b"\0" * 4 + b"\0" * 32
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(hdr))
    else:
        path.write_bytes(hdr)
    return path


@pytest.mark.parametrize("name", ["huge.nii", "huge.nii.gz"])
def test_header_claiming_100000_cubed_is_refused_before_allocating(tmp_path, name):
    p = _huge_header(tmp_path / name)
    t0 = time.perf_counter()
    with pytest.raises(M1LoadError) as ei:
        load_nifti(p, kind="gre")
    msg = str(ei.value)
    assert msg.startswith(f"{name}: ") and "\n" not in msg
    assert "100000x100000x100000 float32" in msg and "PiB" in msg
    assert time.perf_counter() - t0 < 5


def test_header_claim_refused_in_a_memory_capped_child(tmp_path):
    """The whole CLI path, under a 1 GiB address-space cap: no MemoryError traceback."""
    case = tmp_path / "case"
    case.mkdir()
    _huge_header(case / "sub-01_part-mag_MEGRE.nii.gz")
    code = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (1 << 32, 1 << 32))
        from napari_m1.cli import main
        sys.exit(main(["info", {str(case)!r}]))
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "MemoryError" not in r.stderr
    assert "sub-01_part-mag_MEGRE.nii.gz" in r.stderr + r.stdout


def test_case_larger_than_memory_is_refused(tmp_path, monkeypatch):
    from conftest import make_nifti as mk

    mk(tmp_path / "sub-01_part-mag_MEGRE.nii.gz", np.ones((8, 8, 4), np.float32), _grid())
    monkeypatch.setattr(_stream, "available_memory", lambda: 100)
    with pytest.raises(M1LoadError, match=rf"^{tmp_path.name}: needs 1 KiB of memory"):
        load_case(tmp_path)


def _echo_case(tmp_path: Path, n_echoes=3) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(8)
    mag = rng.uniform(10, 100, size=(24, 20, 6, n_echoes)).astype(np.float32)
    make_nifti(tmp_path / "sub-01_part-mag_MEGRE.nii.gz", mag, _grid())
    ph = rng.uniform(-np.pi, np.pi, size=mag.shape).astype(np.float32)
    make_nifti(tmp_path / "sub-01_part-phase_MEGRE.nii.gz", ph, _grid())
    return tmp_path, mag


def test_staged_load_first_frame_then_echoes_then_maps(tmp_path, tiny_slabs):
    folder, mag = _echo_case(tmp_path)
    load = CaseLoad(folder)
    kinds = []
    first = None
    for ev in load.steps():
        kinds.append((ev.kind, ev.index))
        if ev.kind == "first":
            first = ev.payload[0]
            # echo 1 is complete and final; echo 3 is not read yet
            assert isinstance(first.data, LoadingArray) and not first.data.complete
            np.testing.assert_array_equal(first.data[0, 3], mag[:, :, 3, 0].T)
            assert not first.data.wait(3, timeout=0.01)
    staged = [k for k in kinds if k[0] != "progress"]
    assert staged == [
        ("first", 0),
        ("echo", 2),
        ("echo", 3),
        ("volume", 0),
        ("volume", 1),
        ("done", 0),
    ]
    assert first.data.complete
    np.testing.assert_array_equal(np.asarray(first.data), mag.transpose(3, 2, 1, 0))
    assert ev.done == ev.total == load.nbytes == 2 * mag.nbytes


def test_loading_array_reads_wait_for_their_echo():
    buf = np.zeros((3, 2, 4, 4), np.float32)
    arr = LoadingArray(buf)
    echo2 = arr[1]  # lazy: no wait yet
    assert isinstance(echo2, LoadingArray) and echo2.shape == (2, 4, 4)
    got = {}

    def reader():
        got["plane"] = echo2[1, :, :]  # as the measurement engine reads

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.1)
    assert "plane" not in got  # still waiting for echo 2
    buf[1] = 7.0
    arr.mark_ready(1)
    time.sleep(0.05)
    assert "plane" not in got  # echo 1 alone is not enough
    arr.mark_ready(2)
    t.join(5)
    assert (got["plane"] == 7.0).all()
    arr.fail(M1LoadError("v.nii.gz: truncated file"))
    with pytest.raises(M1LoadError, match="truncated"):
        np.asarray(arr)


def test_failed_staged_load_raises_and_releases_waiters(tmp_path, tiny_slabs):
    folder, _ = _echo_case(tmp_path)
    p = folder / "sub-01_part-phase_MEGRE.nii.gz"
    p.write_bytes(p.read_bytes()[:-40])
    load = CaseLoad(folder)
    with pytest.raises(M1LoadError, match="part-phase"):
        for _ in load.steps():
            pass
    assert load.reference_array.complete  # the GRE itself was complete


PEAK_RSS_CHILD = """
import json, sys
from napari_m1.io import load_case
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
load_case(sys.argv[2])  # a tiny case first: one-time imports and caches are not the load's
before = status("VmRSS:")
case = load_case(sys.argv[1])
data = sum(v.data.nbytes for v in case.volumes)
print(json.dumps({"before": before, "after": status("VmHWM:"), "data": data}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_rss_is_the_data(tmp_path):
    """Peak RSS of a child process that loads float32 GRE + int16 phase: <= 1.05x data."""
    rng = np.random.default_rng(1)
    shape = (160, 160, 40, 4)  # 2 x 16 MiB of float32 once loaded
    mag = rng.uniform(0, 1000, size=shape).astype(np.float32)
    ph = rng.integers(-4096, 4096, size=shape, dtype=np.int16)
    big, tiny = tmp_path / "big", tmp_path / "tiny"
    for folder, sl in ((big, np.s_[:]), (tiny, np.s_[:8, :8, :4])):
        folder.mkdir()
        make_nifti(folder / "sub-01_part-mag_MEGRE.nii", mag[sl], _grid())
        make_nifti(folder / "sub-01_part-phase_MEGRE.nii.gz", ph[sl], _grid())
    del mag, ph
    r = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_CHILD, str(big), str(tiny)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    import json

    m = json.loads(r.stdout)
    growth = m["after"] - m["before"]
    # the slab buffers (a few MiB) are the only allowance beyond the data
    assert growth <= 1.05 * m["data"] + 2 * _stream.SLAB_BYTES, m


def test_measurement_engine_waits_for_the_echoes_it_reads():
    """An engine built on a GRE still loading blocks until its echoes are read, then
    gives exactly the rows of the complete array (never a half-read echo)."""
    from napari_m1.annotation import roi_annotation
    from napari_m1.measure import MapSource, MeasurementEngine
    from napari_m1.protocol import PROTOCOLS

    m1 = PROTOCOLS["m1-7t"]
    full = np.random.default_rng(9).uniform(10, 100, size=(2, 6, 60, 60)).astype(np.float32)
    buf = np.zeros_like(full)
    buf[0] = full[0]
    arr = LoadingArray(buf)
    arr.mark_ready(1)
    ras = np.diag([2.0, 0.25, 0.25, 1.0])[[2, 1, 0, 3]]
    ras[:3, 3] = [-7.0, -7.0, 0.0]
    ras[3] = [0, 0, 0, 1]
    roi = roi_annotation(
        "L_hand_roi", (ras @ np.r_[2, 30.0, 30.0, 1.0])[:3], [1.128, 0, 0], [0, 1.128, 0]
    )
    eng = MeasurementEngine([MapSource("gre", "g", arr, ras, [10.0, 20.0])], m1)
    worker = threading.Thread(target=eng.update, args=("L_hand_roi", roi))
    worker.start()
    worker.join(0.3)
    assert worker.is_alive()  # echo 2 is not read: the measurement waits
    buf[1] = full[1]
    arr.mark_ready(2)
    worker.join(10)
    assert not worker.is_alive()
    ref = MeasurementEngine([MapSource("gre", "g", full, ras, [10.0, 20.0])], m1)
    ref.update("L_hand_roi", roi)
    assert repr(eng.rows()) == repr(ref.rows())
    assert len(eng.rows()) == 2
