"""Hostile case folders: ``info`` on damaged case.json, NIfTI headers and sidecars."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._base import DEEP, MAG1, MAG2, SIDE, Work, _nifti, add

# ============================================================================ info: case folders


def _info(prep: Callable[[Work, Path], object]) -> Callable[[Work], list[str]]:
    def build(w: Work) -> list[str]:
        c = w.case()
        prep(w, c)
        return ["info", str(c)]

    return build


def _case_json(spec: object, raw: str | bytes | None = None) -> Callable[[Work], list[str]]:
    def prep(w: Work, c: Path) -> None:
        data = raw if raw is not None else json.dumps(spec)
        (c / "case.json").write_bytes(data.encode() if isinstance(data, str) else data)

    return _info(prep)


_GRE = [MAG1, MAG2]
add("info-valid", _info(lambda w, c: None), expect=0)
add("info-empty-folder", lambda w: [(w.root / "e").mkdir() or "info", str(w.root / "e")], expect=2)
add("info-not-a-folder", lambda w: ["info", str(w.file("x.txt", "hi"))], expect=2)
add("info-missing", lambda w: ["info", str(w.root / "nope")], expect=2)
add("casejson-not-json", _case_json(None, "{gre: ["), expect=2, match="case.json")
add("casejson-deep-list", _case_json(None, "[" * DEEP + "]" * DEEP), expect=2, match="case.json")
add(
    "casejson-deep-dict",
    _case_json(None, '{"a":' * DEEP + "1" + "}" * DEEP),
    expect=2,
    match="case.json",
)
add(
    "casejson-deep-value",
    _case_json(None, '{"gre": ' + "[" * DEEP + "]" * DEEP + "}"),
    expect=2,
    match="case.json",
)
add("casejson-list", _case_json([1, 2]), expect=2, match="case.json")
add("casejson-empty", _case_json(None, ""), expect=2, match="case.json")
add("casejson-not-utf8", _case_json(None, b'{"gre": "\xff\xfe"}'), expect=2, match="case.json")
add("casejson-nul", _case_json(None, b'{"gre": "a\x00b"}'), expect=2, match="case.json")
add("casejson-gre-number", _case_json({"gre": 5}), expect=2, match="case.json")
add("casejson-gre-dict", _case_json({"gre": {"a": 1}}), expect=2, match="case.json")
add("casejson-gre-missing", _case_json({"gre": ["nope.nii"]}), expect=2, match="case.json")
add("casejson-gre-absolute", _case_json({"gre": ["/etc/passwd"]}), expect=2, match="case.json")
add("casejson-gre-dotdot", _case_json({"gre": ["../case/" + MAG1]}), expect=2, match="case.json")
add("casejson-gre-folder", _case_json({"gre": ["."]}), expect=2, match="case.json")
add("casejson-gre-empty", _case_json({"gre": []}), expect=2)
add(
    "casejson-gre-textfile",
    lambda w: _case_json({"gre": ["x.nii"]})(w) if False else _gre_text(w),
    expect=2,
)
add(
    "casejson-echo-negative",
    _case_json({"gre": _GRE, "echo_times_ms": [-5, 10]}),
    expect=2,
    match="case.json",
)
add(
    "casejson-echo-zero",
    _case_json({"gre": _GRE, "echo_times_ms": [0, 10]}),
    expect=2,
    match="case.json",
)
add(
    "casejson-echo-nan",
    _case_json(None, json.dumps({"gre": _GRE}).replace("}", ', "echo_times_ms": [NaN, 10]}')),
    expect=2,
    match="case.json",
)
add(
    "casejson-echo-inf",
    _case_json(None, json.dumps({"gre": _GRE}).replace("}", ', "echo_times_ms": [Infinity, 10]}')),
    expect=2,
    match="case.json",
)
add(
    "casejson-echo-bool",
    _case_json({"gre": _GRE, "echo_times_ms": [True, 10]}),
    expect=2,
    match="case.json",
)
add(
    "casejson-echo-strings",
    _case_json({"gre": _GRE, "echo_times_ms": ["5", "10"]}),
    expect=2,
    match="case.json",
)
add("casejson-echo-count", _case_json({"gre": _GRE, "echo_times_ms": [5, 10, 15]}), expect=2)
add(
    "casejson-echo-huge",
    _case_json({"gre": _GRE, "echo_times_ms": [1e308, 1e308]}),
    expect=2,
    match="case.json",
)
add(
    "casejson-echo-dict",
    _case_json({"gre": _GRE, "echo_times_ms": {"a": 1}}),
    expect=2,
    match="case.json",
)
add("casejson-mrsi-list", _case_json({"gre": _GRE, "mrsi": ["a"]}), expect=2, match="case.json")
add(
    "casejson-mrsi-number",
    _case_json({"gre": _GRE, "mrsi": {"NAA": 3}}),
    expect=2,
    match="case.json",
)
add(
    "casejson-qsm-two", _case_json({"gre": _GRE, "qsm": [MAG1, MAG2]}), expect=2, match="case.json"
)
add(
    "casejson-label-dict",
    _case_json({"gre": _GRE, "label": {"x": [1]}}),
    expect=2,
    match="case.json",
)
add(
    "casejson-label-huge",
    _case_json({"gre": _GRE, "label": "L" * 200_000}),
    expect=2,
    match="case.json",
)
add(
    "casejson-label-newline",
    _case_json({"gre": _GRE, "label": "a\nb=cmd"}),
    expect=2,
    match="case.json",
)
add("casejson-is-folder", _info(lambda w, c: (c / "case.json").mkdir()))


def _gre_text(w: Work) -> list[str]:
    c = w.case()
    (c / "x.nii").write_text("not a nifti at all\n" * 30)
    (c / "case.json").write_text(json.dumps({"gre": ["x.nii"]}))
    return ["info", str(c)]


# ---- NIfTI headers (uncompressed echo-1 magnitude, patched byte by byte)


def _patch(fmt: str, offset: int, *vals: object, file: str = MAG1):
    def prep(w: Work, c: Path) -> None:
        p = c / file
        b = bytearray(p.read_bytes())
        struct.pack_into("<" + fmt, b, offset, *vals)
        p.write_bytes(bytes(b))

    return _info(prep)


add("hdr-dims-32767-cubed", _patch("8h", 40, 3, 32767, 32767, 32767, 1, 1, 1, 1), expect=2)
add("hdr-dims-negative", _patch("8h", 40, 3, -24, 24, 8, 1, 1, 1, 1), expect=2)
add("hdr-dims-zero", _patch("8h", 40, 3, 0, 24, 8, 1, 1, 1, 1), expect=2)
add("hdr-ndim-9", _patch("h", 40, 9), expect=2)
add("hdr-ndim-0", _patch("h", 40, 0), expect=2)
add("hdr-ndim-2", _patch("8h", 40, 2, 24, 24, 1, 1, 1, 1, 1), expect=2)
add("hdr-5d", _patch("8h", 40, 5, 24, 24, 2, 2, 2, 1, 1), expect=2)
add("hdr-dims-larger", _patch("8h", 40, 3, 24, 24, 9, 1, 1, 1, 1), expect=2)
add("hdr-datatype-unknown", _patch("h", 70, 1234), expect=2)
add("hdr-datatype-complex", _patch("2h", 70, 32, 64), expect=2)
add("hdr-datatype-rgb", _patch("2h", 70, 128, 24), expect=2)
add("hdr-bitpix-wrong", _patch("h", 72, 8))
add("hdr-pixdim-nan", _patch("f", 80, float("nan")), expect=2)
add(
    "hdr-pixdim-zero-sform0",
    _info(lambda w, c: _patch_many(c, [("f", 80, 0.0), ("h", 254, 0), ("h", 252, 0)])),
)
add("hdr-pixdim-negative", _patch("f", 80, -1.0))
add("hdr-pixdim-huge", _patch("f", 80, 3e38))
add("hdr-vox-offset-beyond", _patch("f", 108, 1e9), expect=2)
add("hdr-vox-offset-negative", _patch("f", 108, -352.0), expect=2)
add("hdr-vox-offset-nan", _patch("f", 108, float("nan")), expect=2)
add("hdr-slope-nan", _patch("f", 112, float("nan")))
add("hdr-slope-inf", _patch("f", 112, float("inf")))
add("hdr-inter-inf", _patch("2f", 112, 1.0, float("inf")))
add(
    "hdr-sform-zero",
    _info(lambda w, c: _patch_many(c, [("12f", 280, *([0.0] * 12)), ("h", 252, 0)])),
    expect=2,
)
add("hdr-sform-nan", _patch("f", 280, float("nan")))
add("hdr-sform-inf", _patch("f", 280, float("inf")))
add("hdr-sform-huge", _patch("4f", 280, 1e30, 0.0, 0.0, 1e30))
add(
    "hdr-sform-singular",
    _info(lambda w, c: _patch_many(c, [("8f", 280, 1, 1, 0, 0, 1, 1, 0, 0), ("h", 252, 0)])),
    expect=2,
)
add(
    "hdr-qform-garbage",
    _info(lambda w, c: _patch_many(c, [("h", 254, 0), ("h", 252, 1), ("3f", 256, 5.0, 5.0, 5.0)])),
)
add("hdr-magic-bad", _patch("4s", 344, b"xx1\0"), expect=2)
add("hdr-sizeof-bad", _patch("i", 0, 1000))
add("hdr-big-endian-flip", _patch("i", 0, 348 << 24 & 0x7FFFFFFF))
add("hdr-sform-code-99", _patch("h", 254, 99))
add(
    "hdr-truncated",
    _info(lambda w, c: (c / MAG1).write_bytes((c / MAG1).read_bytes()[:200])),
    expect=2,
)
add(
    "data-truncated",
    _info(lambda w, c: (c / MAG1).write_bytes((c / MAG1).read_bytes()[:2000])),
    expect=2,
)
add("nii-empty", _info(lambda w, c: (c / MAG1).write_bytes(b"")), expect=2)
add(
    "nii-random",
    _info(lambda w, c: (c / MAG1).write_bytes(np.random.default_rng(1).bytes(9000))),
    expect=2,
)
add(
    "nii-gz-not-gzip",
    _info(lambda w, c: (c / "sub-T1_Chimap.nii.gz").write_bytes(b"\x1f\x8bxx")),
    expect=2,
)
add("nii-gz-truncated", _info(lambda w, c: _truncate(c / "sub-T1_Chimap.nii.gz", 300)), expect=2)
add(
    "nii-gz-of-garbage",
    _info(lambda w, c: _gzip(c / "sub-T1_Chimap.nii.gz", b"\0" * 5000)),
    expect=2,
)
add("nii2-100000-cubed", _info(lambda w, c: _nifti2_huge(c / MAG1)), expect=2)
add("nii-is-folder", _info(lambda w, c: ((c / MAG1).unlink(), (c / MAG1).mkdir())))
add(
    "nii-all-nan", _info(lambda w, c: _rewrite(c / MAG1, np.full((24, 24, 8), np.nan, np.float32)))
)
add(
    "nii-all-inf", _info(lambda w, c: _rewrite(c / MAG1, np.full((24, 24, 8), np.inf, np.float32)))
)
add(
    "nii-int64-extremes",
    _info(
        lambda w, c: _rewrite(
            c / MAG1, np.full((24, 24, 8), np.iinfo(np.int64).max, np.int64), dtype=np.int64
        )
    ),
)
add("nii-bool", _info(lambda w, c: _rewrite(c / MAG1, np.ones((24, 24, 8), np.uint8))))
add(
    "nii-4d-mixed-shapes",
    _info(lambda w, c: _rewrite(c / MAG2, np.ones((24, 24, 9), np.float32))),
    expect=2,
)
add(
    "nii-one-voxel",
    _info(
        lambda w, c: (
            _rewrite(c / MAG1, np.ones((1, 1, 1), np.float32)),
            _rewrite(c / MAG2, np.ones((1, 1, 1), np.float32)),
        )
    ),
)
add(
    "mrsi-4d",
    _info(
        lambda w, c: _rewrite(c / "sub-T1_met-NAA_mrsi.nii.gz", np.ones((6, 6, 2, 3), np.float32))
    ),
    expect=2,
)
add(
    "mrsi-far-away",
    _info(
        lambda w, c: _rewrite(
            c / "sub-T1_met-NAA_mrsi.nii.gz",
            np.ones((6, 6, 2), np.float32),
            np.array([[4.0, 0, 0, 5000], [0, 4, 0, 0], [0, 0, 8, 0], [0, 0, 0, 1]]),
        )
    ),
    expect=2,
)
add(
    "qsm-2d",
    _info(lambda w, c: _rewrite(c / "sub-T1_Chimap.nii.gz", np.ones((24, 24), np.float32))),
    expect=2,
)
add(
    "two-subjects",
    _info(lambda w, c: shutil.copy(c / MAG1, c / "sub-T2_echo-1_part-mag_MEGRE.nii")),
    expect=2,
)
add(
    "two-qsm",
    _info(lambda w, c: shutil.copy(c / "sub-T1_Chimap.nii.gz", c / "sub-T1_QSM.nii.gz")),
    expect=2,
)
add(
    "phase-count-mismatch",
    _info(lambda w, c: shutil.copy(c / MAG1, c / "sub-T1_echo-1_part-phase_MEGRE.nii")),
    expect=2,
)
add("symlink-loop", _info(lambda w, c: (c / "loop").symlink_to(c, target_is_directory=True)))
add(
    "symlink-dangling",
    _info(lambda w, c: (c / "sub-T1_met-Cr_mrsi.nii.gz").symlink_to(c / "nowhere.nii.gz")),
    expect=2,
)
add("deep-subfolders", _info(lambda w, c: (c / ("d/" * 60)).mkdir(parents=True)))
add("unicode-names", lambda w: ["info", str(w.case("cäse-ü 名前"))])


# ---- JSON sidecars


def _sidecar(raw: str | bytes, file: str = "sub-T1_echo-1_part-mag_MEGRE.json"):
    def prep(w: Work, c: Path) -> None:
        (c / file).write_bytes(raw.encode() if isinstance(raw, str) else raw)

    return _info(prep)


add("sidecar-echotime-dict", _sidecar('{"EchoTime": {}}'), expect=2, match=SIDE)
add("sidecar-echotime-text", _sidecar('{"EchoTime": "ten ms"}'), expect=2, match=SIDE)
add("sidecar-echotime-list-text", _sidecar('{"EchoTime": ["a"]}'), expect=2, match=SIDE)
add("sidecar-echotime-nested", _sidecar('{"EchoTime": [[0.01]]}'), expect=2, match=SIDE)
add("sidecar-echotime-null", _sidecar('{"EchoTime": null}'))
add("sidecar-echotime-bool", _sidecar('{"EchoTime": true}'), expect=2, match=SIDE)
add("sidecar-echotime-negative", _sidecar('{"EchoTime": -0.005}'), expect=2, match=SIDE)
add("sidecar-echotime-nan", _sidecar('{"EchoTime": NaN}'), expect=2, match=SIDE)
add("sidecar-echotime-huge", _sidecar('{"EchoTime": 1e400}'), expect=2, match=SIDE)
add("sidecar-echotimes-empty", _sidecar('{"EchoTimes": []}'), expect=2, match=SIDE)
add("sidecar-deep", _sidecar("[" * DEEP + "]" * DEEP), expect=2, match=SIDE)
add(
    "sidecar-deep-value",
    _sidecar('{"EchoTime": 0.005, "X": ' + "[" * DEEP + "]" * DEEP + "}"),
    expect=2,
    match=SIDE,
)
add("sidecar-list", _sidecar("[0.005]"), expect=2, match=SIDE)
add("sidecar-not-json", _sidecar("EchoTime=5"), expect=2, match=SIDE)
add("sidecar-not-utf8", _sidecar(b'{"EchoTime": 0.005, "x": "\xff"}'), expect=2, match=SIDE)
add("sidecar-empty", _sidecar(""), expect=2, match=SIDE)
add("sidecar-is-folder", _info(lambda w, c: ((c / SIDE).unlink(), (c / SIDE).mkdir())))


def _patch_many(c: Path, patches: list[tuple]) -> None:
    p = c / MAG1
    b = bytearray(p.read_bytes())
    for fmt, off, *vals in patches:
        struct.pack_into("<" + fmt, b, off, *vals)
    p.write_bytes(bytes(b))


def _truncate(p: Path, n: int) -> None:
    p.write_bytes(p.read_bytes()[:n])


def _gzip(p: Path, data: bytes) -> None:
    import gzip

    p.write_bytes(gzip.compress(data))


def _rewrite(p: Path, data: np.ndarray, aff: np.ndarray | None = None, dtype=None) -> None:
    p.unlink()
    _nifti(p, data, np.diag([1.0, 1.0, 2.0, 1.0]) if aff is None else aff, dtype)


def _nifti2_huge(p: Path) -> None:
    """A NIfTI-2 header claiming 100000^3 float32 voxels, with 1 kB of data."""
    import nibabel as nib

    img = nib.Nifti2Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    hdr = img.header
    hdr.set_data_shape((100_000, 100_000, 100_000))
    p.unlink()
    raw = hdr.binaryblock + b"\0" * 4 + b"\0" * 1024
    p.with_name(p.name).write_bytes(raw)
