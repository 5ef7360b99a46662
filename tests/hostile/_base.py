"""The hostile inputs of ``test_hostile.py``: each builds files in a folder, returns argv.

An input is a function ``build(w: Work) -> argv`` registered with :func:`add`;
``Work`` holds the test's folder and copies of the valid base material (a tiny case,
its annotations, a study's cases.csv, readings and clinical CSVs) that the input then
damages. Declared outputs are ``w.out`` (a file or folder that may appear only on
success).
"""

from __future__ import annotations

import json
import shutil
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

    def report_m(self, measurements: str | bytes | None = None) -> list[str]:
        """``report`` of a synthetic study with ``--measurements`` (the base's, or these)."""
        syn = self.base / "synthetic"
        m = (syn / "measurements.csv").read_text() if measurements is None else measurements
        mp = self.file("measurements.csv", m)
        return [
            *["report", "--readings", str(syn / "readings.csv")],
            *["--clinical", str(syn / "clinical.csv")],
            *["--measurements", str(mp), "--out", str(self.out)],
        ]

    def base_measurements(self) -> str:
        return (self.base / "synthetic" / "measurements.csv").read_text()


INPUTS: list[Hostile] = []


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
SIDE = "sub-T1_echo-1_part-mag_MEGRE.json"


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
    key = sr / "coordinator.key"
    create_study(sr / "study", sr / "cases.csv", ["R1", "R2"], coordinator_key=key).close()

    import sys

    sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/, for data.m1_study
    from data.m1_study import published_study, synthetic_study, write_study

    readings, clinical = published_study()
    readings.to_csv(base / "readings.csv", index=False, lineterminator="\n")
    clinical.to_csv(base / "clinical.csv", index=False, lineterminator="\n")
    frames = synthetic_study(2, 12, seed=3, repeat_fraction=0.0)
    write_study(base / "synthetic", frames)  # readings, clinical, measurements


def _bytes_name(p: Path, name: bytes) -> Path:
    import os

    dst = os.path.join(os.fsencode(p.parent), name)
    os.rename(os.fsencode(p), dst)
    return Path(os.fsdecode(dst))


def _out(argv: list[str], out: str) -> list[str]:
    argv[argv.index("--out") + 1] = out
    return argv


def _no_sub_label(c: Path) -> Path:
    """Drop the sub- entity and name the GRE in case.json: the label is the folder name."""
    for p in list(c.iterdir()):
        p.rename(c / p.name.replace("sub-T1_", ""))
    mags = [m.replace("sub-T1_", "") for m in (MAG1, MAG2)]
    (c / "case.json").write_text(json.dumps({"gre": mags}))
    return c
