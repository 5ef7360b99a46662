"""A cohort of phantom cases with annotations, cheap to make (tests and benchmarks).

One phantom per group is written; every further case is a folder of *hard links* to
its files under the case's own label (``sub-<label>_...``), so 100 cases cost no
extra disk and no extra phantom time. Each case gets an annotations file placed at
the phantom's truth positions (what a reader would draw), written through the
annotation model itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def annotate_case(case_dir: Path, out: Path, reader: str, truth_json: Path | None = None) -> Path:
    """Annotations at the phantom's truth positions, written for the case in ``case_dir``."""
    from napari_m1.annotation import (
        AnnotationSet,
        caliper_annotation,
        roi_annotation,
        save_annotations,
    )
    from napari_m1.io import load_case
    from napari_m1.measure import case_fingerprint_of
    from napari_m1.protocol import get_protocol

    truth_path = truth_json or case_dir / "truth.json"
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    proto = get_protocol("m1-7t")
    case = load_case(case_dir)
    aset = AnnotationSet(proto, case_fingerprint_of(case), reader)
    regions = {(r["area"], r["hemisphere"]): r for r in truth["regions"]}
    r_mm = float(np.sqrt(1.0 / np.pi))
    for slot in proto.slots:
        if slot.id == proto.reference_slot:
            c = np.asarray(truth["reference"]["centre_ras_mm"], float)
            aset.put(roi_annotation(slot.id, c, [r_mm, 0, 0], [0, r_mm, 0], author=reader))
            continue
        reg = regions[(slot.region, slot.hemisphere)]
        if slot.kind == "roi":
            c = np.asarray(reg["centre_ras_mm"], float)
            aset.put(roi_annotation(slot.id, c, [r_mm, 0, 0], [0, r_mm, 0], author=reader))
        else:
            p1, p2 = (np.asarray(p, float) for p in reg["caliper_ras_mm"])
            aset.put(caliper_annotation(slot.id, p1, p2, author=reader))
    return save_annotations(out, aset)


def make_cohort(root: Path, n: int, *, reader: str = "R1", n_slices: int = 16) -> Path:
    """Write ``n`` cases and ``root/cases.csv`` (``case_id,path,annotations``); return it."""
    from napari_m1.phantom import write_phantom_case

    root.mkdir(parents=True, exist_ok=True)
    templates = {}
    for group, seed in (("control", 1), ("als", 2)):
        src = root / f"_template_{group}"
        if not src.is_dir():
            write_phantom_case(src, group, seed, n_slices=n_slices, label=f"T{group}")
        templates[group] = src
    lines = ["case_id,path,annotations"]
    for k in range(n):
        group = "als" if k % 2 else "control"
        label = f"C{k + 1:03d}"
        src = templates[group]
        dst = root / label
        dst.mkdir(exist_ok=True)
        for f in src.iterdir():
            name = f.name.replace(f"sub-T{group}", f"sub-{label}")
            target = dst / name
            if not target.exists():
                os.link(f, target)
        ann = root / "annotations" / f"{label}.m1ann.jsonl"
        if not ann.is_file():
            annotate_case(dst, ann, reader)
        lines.append(f"{label},{label},annotations/{label}.m1ann.jsonl")
    csv_path = root / "cases.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return csv_path
