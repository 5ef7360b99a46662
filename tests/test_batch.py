"""Cohort batch: plan, run (in process and on a real dask LocalCluster), resume, failures."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from napari_m1.batch import plan_from_bids, plan_from_cases_csv, run_batch
from napari_m1.cli import main as cli_main
from napari_m1.errors import M1Error

sys.path.insert(0, str(Path(__file__).parent / "data"))
from cohort import annotate_case, make_cohort


@pytest.fixture(scope="module")
def cohort20(tmp_path_factory) -> Path:
    return make_cohort(tmp_path_factory.mktemp("cohort"), 20)


def _rows_without_time(text: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(text)))
    i = rows[0].index("exported_at_utc")
    return [r[:i] + r[i + 1 :] for r in rows]


def _expected_from_measure(cases_csv: Path, tmp: Path, keys: list[str]) -> str:
    """The per-case ``napari-m1 measure`` outputs, rows concatenated under one header."""
    root = cases_csv.parent
    parts = []
    for k, label in enumerate(keys):
        out = tmp / f"{label}.csv"
        rc = cli_main(
            ["measure", str(root / label), str(root / "annotations" / f"{label}.m1ann.jsonl"),
             "--out", str(out)]
        )  # fmt: skip
        assert rc == 0
        text = out.read_text(encoding="utf-8")
        parts.append(text if k == 0 else text.partition("\n")[2])
    return "".join(parts)


def _subset(cases_csv: Path, n: int, dest: Path) -> Path:
    lines = cases_csv.read_text(encoding="utf-8").splitlines()
    dest.write_text("\n".join(lines[: n + 1]) + "\n", encoding="utf-8")
    return dest


def test_plan_refuses_bad_steps_and_columns(tmp_path):
    p = tmp_path / "cases.csv"
    p.write_text("case_id,path\nA,a\n", encoding="utf-8")
    with pytest.raises(M1Error, match="unknown step"):
        plan_from_cases_csv(p, ["measure", "segment"])
    with pytest.raises(M1Error, match="needs an 'annotations' column"):
        plan_from_cases_csv(p, ["measure"])
    p.write_text("case_id,path,annotations\nA,a,x\nA,b,y\n", encoding="utf-8")
    with pytest.raises(M1Error, match="line 3: duplicate case_id"):
        plan_from_cases_csv(p, ["measure"])


def test_in_process_batch_equals_per_case_measure(cohort20, tmp_path):
    cases = _subset(cohort20, 4, cohort20.parent / "four.csv")
    out = tmp_path / "out"
    rc = cli_main(["batch", "measure", "--cases", str(cases), "--out", str(out), "--no-progress"])
    assert rc == 0
    combined = (out / "measurements.csv").read_text(encoding="utf-8")
    expected = _expected_from_measure(cohort20, tmp_path, ["C001", "C002", "C003", "C004"])
    assert _rows_without_time(combined) == _rows_without_time(expected)
    assert len(_rows_without_time(combined)) > 4 * 17  # every slot of every case
    assert (out / "failures.csv").read_text(encoding="utf-8").strip() == (
        "task,step,case_id,source,reason"
    )
    rec = json.loads((out / "measure" / "C002" / "record.json").read_text(encoding="utf-8"))
    assert rec["schema"] == "napari-m1/batch-task/1" and rec["case_id"] == "C002"
    assert rec["inputs"]["annotations_sha256"] and rec["inputs"]["code"]["code_sha256"]
    assert set(rec["timings_s"]) >= {"import_s", "load_s", "measure_s"}


def test_failing_cases_are_listed_and_do_not_stop_the_others(cohort20, tmp_path):
    root = cohort20.parent
    bad_ann = tmp_path / "broken.m1ann.jsonl"
    bad_ann.write_text('{"schema": "napari-m1/annotations/1"\n', encoding="utf-8")
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "case_id,path,annotations\n"
        f"C001,{root / 'C001'},{root / 'annotations' / 'C001.m1ann.jsonl'}\n"
        f"GONE,{tmp_path / 'no-such-case'},{root / 'annotations' / 'C001.m1ann.jsonl'}\n"
        f"BAD,{root / 'C002'},{bad_ann}\n"
        f"C003,{root / 'C003'},{root / 'annotations' / 'C003.m1ann.jsonl'}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    res = run_batch(plan_from_cases_csv(cases, ["measure"]), out, progress=False)
    assert sorted(res.done) == ["measure/C001", "measure/C003"]
    fails = list(csv.DictReader(io.StringIO((out / "failures.csv").read_text("utf-8"))))
    assert [f["case_id"] for f in fails] == ["BAD", "GONE"]
    assert all(f["reason"] and "\n" not in f["reason"] for f in fails)
    assert "broken.m1ann.jsonl" in fails[0]["reason"]
    assert "Traceback" not in fails[1]["reason"]
    rc = cli_main(["batch", "measure", "--cases", str(cases), "--out", str(out), "--no-progress"])
    assert rc == 1  # the exit status says some failed
    labels = {r[2] for r in _rows_without_time((out / "measurements.csv").read_text("utf-8"))[1:]}
    assert labels == {"C001", "C003"}


def test_resume_reuses_matching_tasks_and_redoes_changed_ones(cohort20, tmp_path):
    root = cohort20.parent
    cases = tmp_path / "cases.csv"
    lines = ["case_id,path,annotations"]
    for label in ("C001", "C002", "C003"):
        ann = tmp_path / f"{label}.m1ann.jsonl"
        ann.write_bytes((root / "annotations" / f"{label}.m1ann.jsonl").read_bytes())
        lines.append(f"{label},{root / label},{ann}")
    cases.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    first = run_batch(plan_from_cases_csv(cases, ["measure"]), out, progress=False)
    assert len(first.done) == 3
    # a reader's annotation file changes: only that case is redone
    ann = tmp_path / "C002.m1ann.jsonl"
    ann.write_text(ann.read_text("utf-8").replace('"author": "R1"', '"author": "R2"', 1), "utf-8")
    second = run_batch(plan_from_cases_csv(cases, ["measure"]), out, resume=True, progress=False)
    assert second.done == ["measure/C002"]
    assert sorted(second.skipped) == ["measure/C001", "measure/C003"]
    # a damaged output is noticed and redone
    (out / "measure" / "C003" / "measurements.csv").write_text("x\n", encoding="utf-8")
    third = run_batch(plan_from_cases_csv(cases, ["measure"]), out, resume=True, progress=False)
    assert third.done == ["measure/C003"]


def test_output_folder_inside_a_case_is_refused(cohort20, tmp_path):
    root = cohort20.parent
    cases = _subset(cohort20, 1, tmp_path / "one.csv")
    cases.write_text(
        cases.read_text("utf-8").replace("C001,C001,", f"C001,{root / 'C001'},"), "utf-8"
    )
    cases.write_text(
        cases.read_text("utf-8").replace("annotations/C001", str(root / "annotations" / "C001")),
        "utf-8",
    )
    with pytest.raises(M1Error, match="overlaps an input"):
        run_batch(plan_from_cases_csv(cases, ["measure"]), root / "C001" / "out", progress=False)
    assert not (root / "C001" / "out").exists()


def _records(out: Path) -> dict[str, str]:
    recs = {}
    for f in (out / "measure").glob("*/record.json"):
        recs[f.parent.name] = json.loads(f.read_text(encoding="utf-8"))["run_id"]
    return recs


@pytest.mark.slow
def test_local_cluster_sigkill_then_resume_does_nothing_twice(cohort20, tmp_path):
    """A real dask LocalCluster (2 workers on 127.0.0.1) over 20 cases, killed mid-run."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "napari_m1.cli", "batch", "measure", "--cases", str(cohort20),
           "--out", str(out), "--workers", "2", "--no-progress"]  # fmt: skip
    env = dict(os.environ)
    proc = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 240
    while len(_records(out)) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the batch, its cluster and workers
    proc.wait()
    stderr = proc.stderr.read().decode()
    assert "dask scheduler tcp://127.0.0.1:" in stderr
    before = _records(out)
    assert 4 <= len(before) < 20, (len(before), stderr[-2000:])

    done = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    after = _records(out)
    assert len(after) == 20
    # nothing done twice: every record of the killed run is untouched...
    assert {k: after[k] for k in before} == before
    # ...and every other task ran exactly once, in the resumed run
    second = {v for k, v in after.items() if k not in before}
    assert len(second) == 1 and second.isdisjoint(set(before.values()))
    assert f"{len(before)} reused (--resume)" in done.stdout
    expected = _expected_from_measure(cohort20, tmp_path, [f"C{k:03d}" for k in range(1, 21)])
    combined = (out / "measurements.csv").read_text(encoding="utf-8")
    assert _rows_without_time(combined) == _rows_without_time(expected)


def test_study_reads_are_measured_like_study_export(cohort20, tmp_path):
    """--study: every submitted read, labelled by pseudonym, equals `study export`."""
    from napari_m1.annotation import load_annotations
    from napari_m1.session import ReaderSession, create_study

    root = cohort20.parent
    cases = _subset(cohort20, 3, tmp_path / "cases.csv")
    cases.write_text(
        "case_id,path\n" + "".join(f"{c},{root / c}\n" for c in ("C001", "C002", "C003")),
        encoding="utf-8",
    )
    study = tmp_path / "study"
    create_study(study, cases, ["R1"], seed=3).close()
    rs = ReaderSession(study, "R1")
    try:
        reads = rs.reads()
        for r in reads[:2]:  # two reads submitted, the third left in progress
            rs.open_read(r.pseudonym)
            case_id = next(
                c for c in ("C001", "C002", "C003") if rs.case_folder(r.pseudonym).name == c
            )
            aset = load_annotations(root / "annotations" / f"{case_id}.m1ann.jsonl")
            for a in aset.items.values():
                rs.save_annotation(r.pseudonym, a.slot, a.to_json(), "add")
            for f in ("hypointensity", "thinning", "als_consistent"):
                rs.set_answer(r.pseudonym, f, 1)
            rs.set_answer(r.pseudonym, "confidence", 4)
            rs.submit(r.pseudonym)
        rs.open_read(reads[2].pseudonym)
    finally:
        rs.close()
    out = tmp_path / "out"
    rc = cli_main(["batch", "measure", "--study", str(study), "--out", str(out), "--no-progress"])
    assert rc == 0
    assert cli_main(
        ["study", "export", str(study), "--out", str(tmp_path / "readings.csv"),
         "--measurements", str(tmp_path / "export.csv")]
    ) == 0  # fmt: skip
    got = _rows_without_time((out / "measurements.csv").read_text("utf-8"))
    want = _rows_without_time((tmp_path / "export.csv").read_text("utf-8"))
    assert sorted(got[1:]) == sorted(want[1:]) and got[0] == want[0]
    assert {r[2] for r in got[1:]} == {reads[0].pseudonym, reads[1].pseudonym}
    assert not any("C00" in cell for r in got for cell in r)  # stays blinded


@pytest.mark.slow
def test_bids_root_measure_and_qsm_steps_with_resume(tmp_path):
    """--bids: one case per subject; measure where derivatives/napari-m1 has annotations;
    qsm for every subject (Chimap and its record); a second run with --resume reuses all."""
    import shutil

    from napari_m1.phantom import write_phantom_case

    ph = write_phantom_case(tmp_path / "ph", "control", 1, n_slices=16, with_phase=True)
    root = tmp_path / "bids"
    (root).mkdir()
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    for sub in ("01", "02"):
        anat = root / f"sub-{sub}" / "anat"
        anat.mkdir(parents=True)
        for f in ph.iterdir():
            if "MEGRE" in f.name:
                shutil.copy(f, anat / f.name.replace("sub-phantomcontrol1", f"sub-{sub}"))
    ann = root / "derivatives" / "napari-m1" / "sub-01" / "sub-01_R1.m1ann.jsonl"
    annotate_case(root / "sub-01", ann, "R1", truth_json=ph / "truth.json")
    out = tmp_path / "out"
    args = ["batch", "measure,qsm", "--bids", str(root), "--out", str(out), "--preset",
            "fast", "--no-progress"]  # fmt: skip
    assert cli_main(args) == 0
    assert (out / "measure" / "sub-01" / "measurements.csv").is_file()
    assert not (out / "measure" / "sub-02").exists()  # no annotations for sub-02
    for sub in ("sub-01", "sub-02"):
        rec = json.loads((out / "qsm" / sub / "record.json").read_text("utf-8"))
        assert "Chimap.nii.gz" in rec["outputs"] and rec["inputs"]["params"]["preset"] == "fast"
    import nibabel as nib
    import numpy as np

    chi = np.asarray(nib.load(out / "qsm" / "sub-01" / "Chimap.nii.gz").dataobj)
    assert np.isfinite(chi).all() and np.abs(chi).max() > 0
    res = run_batch(
        plan_from_bids(root, ["measure", "qsm"]),
        out,
        resume=True,
        params={"preset": "fast", "b0_tesla": None},
        progress=False,
    )
    assert res.done == [] and len(res.skipped) == 3
