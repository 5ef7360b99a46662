"""The hostile inputs of ``test_hostile.py``: each builds files in a folder, returns argv.

An input is a function ``build(w: Work) -> argv`` registered with :func:`hostile`;
``Work`` holds the test's folder and copies of the valid base material (a tiny case,
its annotations, a study's cases.csv, readings and clinical CSVs) that the input then
damages. Declared outputs are ``w.out`` (a file or folder that may appear only on
success).
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEEP = 100_000  # nesting depth that overflows Python's recursion limit


@dataclass
class Hostile:
    id: str
    build: Callable[[Work], list[str]]
    expect: int | None = None  # exit status required (None: 0 or 2)
    match: str = ""  # substring of the one-line error
    why: str = ""


@dataclass
class Work:
    root: Path
    base: Path
    out: Path = field(init=False)
    #: Files a command may change: the study database, to which commands log.
    state: list[Path] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out = self.root / "out"

    # -- copies of the valid base material
    def case(self, name: str = "case") -> Path:
        dst = self.root / name
        shutil.copytree(self.base / "case", dst)
        return dst

    def study(self) -> Path:
        """A copy of a fresh two-case study: root/{K1,K2,cases.csv,study/}."""
        shutil.copytree(self.base / "studyroot", self.root, dirs_exist_ok=True)
        st = self.root / "study"
        self.state += [st / f"study.sqlite{x}" for x in ("", "-wal", "-shm", "-journal")]
        return st

    def file(self, rel: str, data: str | bytes) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        p.write_bytes(data)
        return p

    def base_text(self, name: str) -> str:
        return (self.base / name).read_text(encoding="utf-8")

    def ann_lines(self) -> tuple[dict, list[dict]]:
        lines = self.base_text("ann.m1ann.jsonl").splitlines()
        return json.loads(lines[0]), [json.loads(x) for x in lines[1:]]

    def ann(self, header: object = None, items: list | None = None, *, raw: str | None = None):
        """Write ``a.m1ann.jsonl`` (the base file, or a header/items, or raw text)."""
        h0, i0 = self.ann_lines()
        if raw is None:
            h = h0 if header is None else header
            it = i0 if items is None else items
            raw = "\n".join(json.dumps(x) for x in [h, *it]) + "\n"
        return self.file("a.m1ann.jsonl", raw)

    def measure(self, case: Path | None = None, ann: Path | None = None, *extra: str):
        case = case or self.case()
        ann = ann or self.ann()
        return ["measure", str(case), str(ann), "--out", str(self.out), *extra]

    def study_init(self, cases_text: str | bytes | None = None, *extra: str, readers="R1,R2"):
        self.case("K1")
        self.case("K2")
        cases = self.file(
            "cases.csv", self.base_text("cases.csv") if cases_text is None else cases_text
        )
        return [
            "study",
            "init",
            str(self.out),
            "--cases",
            str(cases),
            "--readers",
            readers,
            *extra,
        ]

    def report(self, readings: str | bytes | None = None, clinical: str | bytes | None = None):
        r = self.file(
            "readings.csv", self.base_text("readings.csv") if readings is None else readings
        )
        c = self.file(
            "clinical.csv", self.base_text("clinical.csv") if clinical is None else clinical
        )
        return ["report", "--readings", str(r), "--clinical", str(c), "--out", str(self.out)]


INPUTS: list[Hostile] = []


def hostile(id: str, *, expect: int | None = None, match: str = "", why: str = ""):
    def deco(fn: Callable[[Work], list[str]]) -> Callable[[Work], list[str]]:
        INPUTS.append(Hostile(id, fn, expect, match, why))
        return fn

    return deco


def add(id: str, fn: Callable[[Work], list[str]], **kw) -> None:
    INPUTS.append(Hostile(id, fn, **kw))


# ============================================================================ base material


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray, dtype=None) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(data, affine, dtype=dtype)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    nib.save(img, str(path))


MAG1 = "sub-T1_echo-1_part-mag_MEGRE.nii"
MAG2 = "sub-T1_echo-2_part-mag_MEGRE.nii"


def write_base(base: Path) -> None:
    """A tiny valid case, annotations for it, and valid study/report inputs."""
    from napari_m1.annotation import (
        AnnotationSet,
        caliper_annotation,
        roi_annotation,
        save_annotations,
    )
    from napari_m1.io import load_case
    from napari_m1.measure import case_fingerprint_of
    from napari_m1.protocol import get_protocol

    case = base / "case"
    case.mkdir(parents=True)
    aff = np.diag([1.0, 1.0, 2.0, 1.0])
    rng = np.random.default_rng(0)
    for n, te in ((1, 0.005), (2, 0.010)):
        stem = f"sub-T1_echo-{n}_part-mag_MEGRE"
        _nifti(case / f"{stem}.nii", (100 + 10 * rng.random((24, 24, 8))).astype(np.float32), aff)
        (case / f"{stem}.json").write_text(json.dumps({"EchoTime": te}))
    _nifti(case / "sub-T1_Chimap.nii.gz", rng.normal(0, 0.02, (24, 24, 8)).astype(np.float32), aff)
    _nifti(
        case / "sub-T1_met-NAA_mrsi.nii.gz",
        (5 + rng.random((6, 6, 2))).astype(np.float32),
        np.diag([4.0, 4.0, 8.0, 1.0]),
    )
    loaded = load_case(case)
    fp = case_fingerprint_of(loaded)
    proto = get_protocol("m1-7t")
    s = AnnotationSet(proto, fp, "R1")
    for i, slot in enumerate(proto.slots):
        c = np.array([6.0 + (i % 4) * 4, 6.0 + (i // 4) * 3, 8.0])
        if slot.kind == "roi":
            s.items[slot.id] = roi_annotation(slot.id, c, [1.5, 0, 0], [0, 1.0, 0])
        else:
            s.items[slot.id] = caliper_annotation(slot.id, c, c + np.array([2.0, 0.5, 0]))
    save_annotations(base / "ann.m1ann.jsonl", s)
    (base / "cases.csv").write_text("case_id,path\nK1,K1\nK2,K2\n")
    from napari_m1.session import create_study

    sr = base / "studyroot"
    sr.mkdir()
    for k in ("K1", "K2"):
        shutil.copytree(case, sr / k)
    shutil.copy(base / "cases.csv", sr / "cases.csv")
    create_study(sr / "study", sr / "cases.csv", ["R1", "R2"]).close()

    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from data.m1_study import published_study

    readings, clinical = published_study()
    readings.to_csv(base / "readings.csv", index=False, lineterminator="\n")
    clinical.to_csv(base / "clinical.csv", index=False, lineterminator="\n")


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
add("unicode-names", lambda w: ["info", str(_renamed(w.case("cäse-ü 名前")))])


def _renamed(c: Path) -> Path:
    return c


# ---- JSON sidecars


def _sidecar(raw: str | bytes, file: str = "sub-T1_echo-1_part-mag_MEGRE.json"):
    def prep(w: Work, c: Path) -> None:
        (c / file).write_bytes(raw.encode() if isinstance(raw, str) else raw)

    return _info(prep)


SIDE = "sub-T1_echo-1_part-mag_MEGRE.json"
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


# ============================================================================ measure: annotations


def _ann(mutate: Callable[[dict, list[dict]], object]) -> Callable[[Work], list[str]]:
    """Annotations whose header/items are mutated in place (or replaced by the return)."""

    def build(w: Work) -> list[str]:
        h, items = w.ann_lines()
        r = mutate(h, items)
        if isinstance(r, tuple):
            h, items = r
        return w.measure(None, w.ann(h, items))

    return build


def _ann_raw(text: str | bytes) -> Callable[[Work], list[str]]:
    return lambda w: w.measure(None, w.file("a.m1ann.jsonl", text))


def _item(i: int, **kv: object) -> Callable[[dict, list[dict]], None]:
    def mut(h: dict, items: list[dict]) -> None:
        for k, v in kv.items():
            if v is _DEL:
                del items[i][k]
            else:
                items[i][k] = v

    return mut


def _ann_raw_append(line: str) -> Callable[[Work], list[str]]:
    return lambda w: w.measure(None, w.file(ANN, w.base_text("ann.m1ann.jsonl") + line + "\n"))


def _ann_text_sub(old: str, new: str) -> Callable[[Work], list[str]]:
    return lambda w: w.measure(
        None, w.file(ANN, w.base_text("ann.m1ann.jsonl").replace(old, new, 1))
    )


def _caliper_pts(pts: list) -> Callable[[dict, list[dict]], None]:
    def mut(h: dict, items: list[dict]) -> None:
        next(i for i in items if i["kind"] == "caliper")["points_ras"] = pts

    return mut


_DEL = object()
ANN = "a.m1ann.jsonl"
_C = [6.0, 6.0, 8.0]  # slot 0's centre (an ROI; see write_base)


def _roi(u: list[float], v: list[float], c: list[float] = _C):
    return _item(
        0,
        points_ras=[
            c,
            [c[0] + u[0], c[1] + u[1], c[2] + u[2]],
            [c[0] + v[0], c[1] + v[1], c[2] + v[2]],
        ],
    )


add("measure-valid", lambda w: w.measure(), expect=0)
add("ann-empty", _ann_raw(""), expect=2, match=ANN)
add("ann-blank-lines", _ann_raw("\n\n\n"), expect=2, match=ANN)
add("ann-header-not-json", _ann_raw("{schema\n"), expect=2, match=ANN)
add("ann-header-deep", _ann_raw("[" * DEEP + "]" * DEEP + "\n"), expect=2, match=ANN)
add(
    "ann-header-deep-dict", _ann_raw('{"a":' * DEEP + "1" + "}" * DEEP + "\n"), expect=2, match=ANN
)
add("ann-header-list", _ann(lambda h, it: ([h], it)), expect=2, match=ANN)
add("ann-header-schema-other", _ann(lambda h, it: h.update(schema="x/1")), expect=2, match=ANN)
add("ann-header-schema-dict", _ann(lambda h, it: h.update(schema={})), expect=2, match=ANN)
add("ann-header-case-string", _ann(lambda h, it: h.update(case="K001")), expect=2, match=ANN)
add("ann-header-case-list", _ann(lambda h, it: h.update(case=[1, 2])), expect=2, match=ANN)
add("ann-header-case-number", _ann(lambda h, it: h.update(case=5)), expect=2, match=ANN)
add("ann-header-case-null", _ann(lambda h, it: h.update(case=None)), expect=2, match=ANN)
add(
    "ann-header-case-hash-dict", _ann(lambda h, it: h["case"].update(hash={})), expect=2, match=ANN
)
add(
    "ann-header-case-label-list",
    _ann(lambda h, it: h["case"].update(label=[1])),
    expect=2,
    match=ANN,
)
add(
    "ann-header-case-deep",
    lambda w: w.measure(
        None,
        w.file(
            ANN,
            w.base_text("ann.m1ann.jsonl").replace(
                '"case": {', '"case": {"x": ' + "[" * DEEP + "]" * DEEP + ", ", 1
            ),
        ),
    ),
    expect=2,
    match=ANN,
)
add(
    "ann-header-protocol-unknown",
    _ann(lambda h, it: h.update(protocol="nope")),
    expect=2,
    match=ANN,
)
add(
    "ann-header-protocol-dict",
    _ann(lambda h, it: h.update(protocol={"id": "m1-7t"})),
    expect=2,
    match=ANN,
)
add("ann-header-protocol-missing", _ann(lambda h, it: h.pop("protocol")), expect=2, match=ANN)
add("ann-header-reader-dict", _ann(lambda h, it: h.update(reader={"a": 1})), expect=2, match=ANN)
add("ann-header-reader-formula", _ann(lambda h, it: h.update(reader='=HYPERLINK("x")')), expect=0)
add(
    "ann-other-case-label",
    _ann(lambda h, it: h["case"].update(label="K999")),
    expect=2,
    match="another case",
    why="item 5",
)
add(
    "ann-other-case-grid",
    _ann(lambda h, it: h["case"].update(hash="0" * 16)),
    expect=2,
    match="another case",
)
add(
    "ann-other-case-forced",
    lambda w: [*_ann(lambda h, it: h["case"].update(label="K999"))(w), "--force"],
    expect=0,
    why="item 5: a deliberate transfer",
)
add("ann-line-not-json", _ann_raw_append("{slot"), expect=2, match=f"{ANN}, line 19")
add("ann-line-deep", _ann_raw_append("[" * DEEP + "]" * DEEP), expect=2, match="line 19")
add("ann-line-deep-points", _ann(_item(0, points_ras="[" * 3)), expect=2, match="line 2")
add(
    "ann-line-deep-value",
    _ann_raw_append('{"slot": ' + "[" * DEEP + "]" * DEEP + "}"),
    expect=2,
    match="line 19",
)
add("ann-line-list", _ann_raw_append("[1, 2]"), expect=2, match="line 19")
add("ann-line-number", _ann_raw_append("5"), expect=2, match="line 19")
add("ann-line-no-slot", _ann(_item(0, slot=_DEL)), expect=2, match="line 2")
add("ann-line-slot-unknown", _ann(_item(0, slot="nope")), expect=2, match="line 2")
add("ann-line-slot-list", _ann(_item(0, slot=["x"])), expect=2, match="line 2")
add("ann-line-slot-dup", _ann(lambda h, it: it.append(dict(it[0]))), expect=2, match="line 19")
add("ann-line-kind-wrong", _ann(_item(0, kind="caliper")), expect=2, match="line 2")
add("ann-line-kind-unknown", _ann(_item(0, kind="blob")), expect=2, match="line 2")
add("ann-line-kind-missing", _ann(_item(0, kind=_DEL)), expect=2, match="line 2")
add("ann-points-missing", _ann(_item(0, points_ras=_DEL)), expect=2, match="line 2")
add("ann-points-two", _ann(_item(0, points_ras=[_C, _C])), expect=2, match="line 2")
add("ann-points-four", _ann(_item(0, points_ras=[_C] * 4)), expect=2, match="line 2")
add("ann-points-2d", _ann(_item(0, points_ras=[[1, 2]] * 3)), expect=2, match="line 2")
add(
    "ann-points-strings",
    _ann(_item(0, points_ras=[["a", "b", "c"]] * 3)),
    expect=2,
    match="line 2",
)
add("ann-points-null", _ann(_item(0, points_ras=None)), expect=2, match="line 2")
add("ann-points-dict", _ann(_item(0, points_ras={"a": 1})), expect=2, match="line 2")
add("ann-points-nested", _ann(_item(0, points_ras=[[[1, 2, 3]]] * 3)), expect=2, match="line 2")
add(
    "ann-points-bool",
    _ann(_item(0, points_ras=[[True, False, True]] * 3)),
    expect=2,
    match="line 2",
)
add(
    "ann-points-nan", _ann_text_sub("[6.0, 6.0, 8.0]", "[NaN, 6.0, 8.0]"), expect=2, match="line 2"
)
add(
    "ann-points-inf",
    _ann_text_sub("[6.0, 6.0, 8.0]", "[Infinity, 6.0, 8.0]"),
    expect=2,
    match="line 2",
)
add("ann-points-1e308", _ann(_roi([1e308, 0, 0], [0, 1e308, 0])), expect=2, match="line 2")
add(
    "ann-points-bigint",
    _ann_text_sub("[6.0, 6.0, 8.0]", "[" + "9" * 5000 + ", 6.0, 8.0]"),
    expect=2,
    match="line 2",
)
add("roi-zero-axis", _ann(_roi([0, 0, 0], [0, 1, 0])), expect=2, match="line 2")
add(
    "roi-not-perpendicular",
    _ann(_roi([2, 0, 0], [1, 1.5, 0])),
    expect=2,
    match="line 2",
    why="item 8",
)
add("roi-collinear", _ann(_roi([2, 0, 0], [1, 0, 0])), expect=2, match="line 2", why="item 8")
add("roi-antiparallel", _ann(_roi([2, 0, 0], [-1, 0, 0])), expect=2, match="line 2")
add("roi-out-of-plane", _ann(_roi([2, 0, 0], [0, 0, 1.5])), expect=2, match="line 2", why="item 8")
add("roi-tilted", _ann(_roi([2, 0, 0.4], [0, 1.5, 0])), expect=2, match="line 2", why="item 8")
add(
    "roi-1000mm",
    _ann(_roi([1000, 0, 0], [0, 1000, 0])),
    expect=0,
    why="item 7: clip before supersampling (4.6 GB unclipped on this 1 mm grid)",
)
add("roi-5000mm-rotated", _ann(_roi([3000, 3000, 0], [-3000, 3000, 0])), expect=0, why="item 7")
add("roi-1e6mm", _ann(_roi([1e6, 0, 0], [0, 1e6, 0])), expect=2, match="line 2")
add("roi-far-outside", _ann(_roi([1, 0, 0], [0, 1, 0], [5000.0, -5000.0, 8.0])))
add("roi-other-slice-outside", _ann(_roi([1, 0, 0], [0, 1, 0], [6.0, 6.0, 900.0])))
add("roi-tiny", _ann(_roi([0.002, 0, 0], [0, 0.002, 0])))
add(
    "caliper-zero",
    _ann(lambda h, it: it[1].update(points_ras=[_C, _C]) if it[1]["kind"] == "caliper" else None),
    expect=None,
)
add("caliper-huge", _ann(_caliper_pts([[-1e6, 6, 8], [1e6, 6, 8]])))
add("caliper-outside", _ann(_caliper_pts([[-500, 6, 8], [-400, 6, 8]])))
add("caliper-3-points", _ann(_caliper_pts([_C, _C, _C])), expect=2)
add("ann-author-dict", _ann(_item(0, author={"x": [1]})))
add("ann-extra-key", _ann(_item(0, evil="=cmd()")), expect=None)
add(
    "ann-not-utf8",
    lambda w: w.measure(
        None, w.file(ANN, w.base_text(ANN.replace("a.", "ann.")).encode() + b'{"slot": "\xff"}\n')
    ),
    expect=2,
    match=ANN,
)
add(
    "ann-crlf",
    lambda w: w.measure(None, w.file(ANN, w.base_text("ann.m1ann.jsonl").replace("\n", "\r\n"))),
    expect=0,
)
add(
    "ann-bom",
    lambda w: w.measure(None, w.file(ANN, "\ufeff" + w.base_text("ann.m1ann.jsonl"))),
    expect=0,
)
add("ann-nul", _ann_raw("\0" * 100), expect=2, match=ANN)
add("ann-is-folder", lambda w: w.measure(None, (w.root / ANN).mkdir() or w.root / ANN), expect=2)
add("ann-missing", lambda w: w.measure(None, w.root / "none.m1ann.jsonl"), expect=2)
add(
    "ann-huge-line",
    _ann_raw_append('{"slot": "' + "x" * 3_000_000 + '"}'),
    expect=2,
    match="line 19",
)


# ---- outputs that are inputs (item 6) and awkward outputs


add(
    "out-is-annotations",
    lambda w: _replace_out(w.measure(), -1),
    expect=2,
    match=ANN,
    why="item 6",
)
add(
    "out-is-case-file",
    lambda w: _out(w.measure(), str(w.root / "case" / MAG1)),
    expect=2,
    why="item 6",
)
add("out-is-sidecar", lambda w: _out(w.measure(), str(w.root / "case" / SIDE)), expect=2)
add("out-hardlink-to-ann", lambda w: _hardlink_out(w), expect=2, why="item 6")
add("out-symlink-to-ann", lambda w: _symlink_out(w), expect=2, why="item 6")
add("out-is-folder", lambda w: _out(w.measure(), str(w.root / "case")), expect=2)
add("out-dir-missing", lambda w: _out(w.measure(), str(w.out / "no" / "such" / "o.csv")), expect=0)
add("out-in-a-file", lambda w: _out(w.measure(), str(w.file("f.txt", "x") / "o.csv")), expect=2)
add("measure-reader-formula", lambda w: [*w.measure(), "--reader", "=1+2"], expect=0)
add("measure-reader-math", lambda w: [*w.measure(), "--reader", r"R$\x$"], expect=0)
add(
    "measure-case-not-utf8",
    lambda w: w.measure(_bytes_name(w.case(), b"case-\xff\xfe"), None),
    expect=0,
    why="item 10",
)
add(
    "measure-case-not-utf8-label",
    lambda w: [*w.measure(_no_sub_label(_bytes_name(w.case(), b"c-\xff")), None), "--force"],
    expect=0,
    why="item 10: the label comes from a non-UTF-8 folder name",
)
add("info-case-not-utf8", lambda w: ["info", str(_bytes_name(w.case(), b"c\xe9as"))], expect=0)
add(
    "measure-ann-not-utf8-name",
    lambda w: w.measure(None, _bytes_name(w.ann(), b"a\xff.jsonl")),
    expect=0,
)


def _out(argv: list[str], out: str) -> list[str]:
    argv[argv.index("--out") + 1] = out
    return argv


def _replace_out(argv: list[str], _i: int) -> list[str]:
    return _out(argv, argv[2])


def _hardlink_out(w: Work) -> list[str]:
    argv = w.measure()
    import os

    os.link(argv[2], w.root / "link.csv")
    return _out(argv, str(w.root / "link.csv"))


def _symlink_out(w: Work) -> list[str]:
    argv = w.measure()
    (w.root / "sym.csv").symlink_to(argv[2])
    return _out(argv, str(w.root / "sym.csv"))


def _bytes_name(p: Path, name: bytes) -> Path:
    import os

    dst = os.path.join(os.fsencode(p.parent), name)
    os.rename(os.fsencode(p), dst)
    return Path(os.fsdecode(dst))


# ======================================================================= study init: cases.csv


def _cases(text: str | bytes, *extra: str, readers: str = "R1,R2", expect=2, match=""):
    return dict(
        fn=lambda w: w.study_init(text, *extra, readers=readers), expect=expect, match=match
    )


CSV = "cases.csv"
for _id, _kw in {
    "cases-valid": _cases("case_id,path\nK1,K1\nK2,K2\n", expect=0),
    "cases-empty": _cases("", match=CSV),
    "cases-header-only": _cases("case_id,path\n", match=CSV),
    "cases-no-columns": _cases("a,b\n1,2\n", match=CSV),
    "cases-200kB-id": _cases("case_id,path\n" + "K" * 200_000 + ",K1\n", match=CSV),
    "cases-200kB-path": _cases("case_id,path\nK1," + "p" * 200_000 + "\n", match=CSV),
    "cases-long-id": _cases("case_id,path\n" + "K" * 5000 + ",K1\nK2,K2\n", match=CSV),
    "cases-nul": _cases("case_id,path\nK\x001,K1\n", match=CSV),
    "cases-not-utf8": _cases(b"case_id,path\nK\xff,K1\n", match=CSV),
    "cases-utf16": _cases("case_id,path\nK1,K1\n".encode("utf-16"), match=CSV),
    "cases-dup-id": _cases("case_id,path\nK1,K1\nK1,K2\n", match=CSV),
    "cases-same-folder": _cases("case_id,path\nK1,K1\nK2,K1\n", match=CSV),
    "cases-empty-id": _cases("case_id,path\n,K1\n", match=CSV),
    "cases-missing-folder": _cases("case_id,path\nK1,nope\n", match=CSV),
    "cases-path-is-file": _cases("case_id,path\nK1,K1/" + MAG1 + "\n", match=CSV),
    "cases-formula-id": _cases('case_id,path\n"=HYPERLINK(""x"")",K1\nK2,K2\n', expect=None),
    "cases-newline-id": _cases('case_id,path\n"K\n1",K1\nK2,K2\n', match=CSV),
    "cases-unbalanced-quote": _cases('case_id,path\n"K1,K1\nK2,K2\n', match=CSV),
    "cases-bom-only": _cases("\ufeff", match=CSV),
    "cases-many-columns": _cases("case_id,path" + ",x" * 20000 + "\nK1,K1\nK2,K2\n", expect=None),
    "cases-deep-dirs": _cases("case_id,path\nK1," + "a/" * 2000 + "\n", match=CSV),
    "cases-short-row": _cases("case_id,path\nK1\nK2,K2\n", match=CSV),
    "readers-empty": _cases("case_id,path\nK1,K1\n", readers=""),
    "readers-commas": _cases("case_id,path\nK1,K1\n", readers=",,,"),
    "readers-dup": _cases("case_id,path\nK1,K1\n", readers="R1,R1"),
    "readers-huge": _cases("case_id,path\nK1,K1\n", readers="R" * 200_000, expect=None),
    "readers-formula": _cases("case_id,path\nK1,K1\n", readers="=cmd|' /C calc'!A0", expect=None),
    "repeat-negative": _cases("case_id,path\nK1,K1\n", "--repeat-fraction", "-1"),
    "repeat-two": _cases("case_id,path\nK1,K1\n", "--repeat-fraction", "2"),
    "repeat-nan": _cases("case_id,path\nK1,K1\n", "--repeat-fraction", "nan"),
    "seed-huge": _cases("case_id,path\nK1,K1\n", "--seed", "9" * 40, expect=None),
    "seed-negative": _cases("case_id,path\nK1,K1\n", "--seed", "-5", expect=None),
}.items():
    add(_id, _kw["fn"], expect=_kw["expect"], match=_kw["match"])


def _study_in_place(w: Work) -> list[str]:
    """cases.csv saved as the study's own study.json, then --force (item 6)."""
    argv = w.study_init()
    w.out.mkdir()
    cases = w.out / "study.json"
    cases.write_text(f"case_id,path\nK1,{w.root / 'K1'}\nK2,{w.root / 'K2'}\n")
    argv[argv.index("--cases") + 1] = str(cases)
    return [*argv, "--force"]


add("study-init-over-its-inputs", _study_in_place, expect=2, why="item 6")
add("study-dir-is-file", lambda w: _study_at(w, w.file("sfile", "x")), expect=2)
add("study-dir-is-case", lambda w: _study_at(w, w.root / "K1", "--force"))


def _study_at(w: Work, where: Path, *extra: str) -> list[str]:
    argv = w.study_init()
    argv[2] = str(where)
    w.out = where
    return argv + list(extra)


# ============================================================================ report: CSVs


def _readings_sub(old: str, new: str, n: int = 1):
    return lambda w: w.report(w.base_text("readings.csv").replace(old, new, n))


R, CL = "readings.csv", "clinical.csv"
add("report-readings-empty", lambda w: w.report(""), expect=2, match=R)
add("report-clinical-empty", lambda w: w.report(None, ""), expect=2, match=CL)
add(
    "report-readings-not-utf8", lambda w: w.report(b"case_id,reader\n\xff,R1\n"), expect=2, match=R
)
add(
    "report-readings-200kB",
    lambda w: w.report(w.base_text(R) + "X" * 200_000 + "\n"),
    expect=2,
    match=R,
)
add("report-clinical-200kB", lambda w: w.report(None, w.base_text(CL) + "C" * 200_000 + ",als\n"))
add("report-readings-nul", lambda w: w.report(w.base_text(R) + "A\0B\n"), expect=2, match=R)
add(
    "report-readings-header-only",
    lambda w: w.report(w.base_text(R).splitlines()[0] + "\n"),
    expect=None,
)
add("report-out-is-readings", lambda w: _out(w.report(), str(w.root / R)), expect=2, why="item 6")
add("report-out-is-a-file", lambda w: _out(w.report(), str(w.file("f.txt", "x"))), expect=2)
add("report-readings-is-folder", lambda w: _report_folder(w), expect=2)


def _report_folder(w: Work) -> list[str]:
    argv = w.report()
    p = Path(argv[argv.index("--readings") + 1])
    p.unlink()
    p.mkdir()
    return argv


# ============================================================================ study export/unblind


def _export(*extra: str, out: str = "out/readings.csv"):
    def build(w: Work) -> list[str]:
        st = w.study()
        more = [str(w.root / x) if x.startswith("out/") else x for x in extra]
        return ["study", "export", str(st), "--out", str(w.root / out), *more]

    return build


def _unblind(key: str | None = None, out: str = "out/unblinded.csv", clinical: str | None = None):
    def build(w: Work) -> list[str]:
        st = w.study()
        k = w.file("key.csv", key) if key is not None else w.root / "cases.csv"
        argv = ["study", "unblind", str(st), "--key", str(k), "--out", str(w.root / out)]
        if clinical is not None:
            argv += ["--clinical", str(w.file("clin.csv", clinical))]
        return argv

    return build


add("export-valid", _export(), expect=0)
add("export-out-is-db", _export(out="study/study.sqlite"), expect=2, why="item 6")
add("export-out-is-study-json", _export(out="study/study.json"), expect=2, why="item 6")
add(
    "export-out-equals-measurements",
    _export("--measurements", "out/readings.csv"),
    expect=2,
    why="item 6",
)
add("unblind-valid", _unblind(), expect=0)
add("unblind-out-is-key", _unblind(out="cases.csv"), expect=2, why="item 6")
add(
    "unblind-out-is-clinical",
    _unblind(clinical="case_id,group\nK1,als\n", out="clin.csv"),
    expect=2,
    why="item 6",
)
add("unblind-key-200kB", _unblind(key="case_id,path\n" + "K" * 200_000 + ",K1\n"), expect=2)
add("unblind-key-not-utf8", _unblind(key=b"case_id,path\n\xff,K1\n"), expect=2)
add("unblind-key-empty", _unblind(key=""), expect=2)
add("verify-not-a-study", lambda w: ["study", "verify", str(w.case())], expect=2)
add("verify-garbage-db", lambda w: ["study", "verify", str(_garbage_db(w))], expect=2)
add("verify-empty-db", lambda w: ["study", "verify", str(_garbage_db(w, b""))], expect=2)


def _garbage_db(w: Work, data: bytes = b"SQLite format 3\0" + b"\x07" * 4000) -> Path:
    st = w.study()
    (st / "study.sqlite").write_bytes(data)
    return st


def _no_sub_label(c: Path) -> Path:
    """Drop the sub- entity and name the GRE in case.json: the label is the folder name."""
    for p in list(c.iterdir()):
        p.rename(c / p.name.replace("sub-T1_", ""))
    mags = [m.replace("sub-T1_", "") for m in (MAG1, MAG2)]
    (c / "case.json").write_text(json.dumps({"gre": mags}))
    return c
