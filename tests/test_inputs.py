"""Files and inputs that must hold under accident and attack (issue 8, items 5-8 and 10).

Each test reproduces one reported failure: another case's annotations accepted,
an output written over an input, an ROI that allocates its whole box, oval
geometry that gives a wrong area silently, and tracebacks instead of one line
naming the file.
"""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from napari_m1.annotation import (
    Annotation,
    AnnotationFileError,
    AnnotationSet,
    case_fingerprint,
    load_annotations,
    roi_annotation,
    save_annotations,
)
from napari_m1.cli import main
from napari_m1.errors import M1Error
from napari_m1.io import load_case
from napari_m1.measure import case_fingerprint_of, ellipse_weights
from napari_m1.protocol import get_protocol

M1 = get_protocol("m1-7t")


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [ln for ln in err if ln.startswith("napari-m1: error: ")]
    assert len(errors) == 1, err
    assert "Traceback" not in "\n".join(err)
    return errors[0]


@pytest.fixture(scope="module")
def two_cases(tmp_path_factory) -> dict[str, Path]:
    """K001 and K002: phantoms on the same grid, neutral labels (a blinded-study setup)."""
    from napari_m1.phantom import write_phantom_case

    d = tmp_path_factory.mktemp("two")
    out = {
        k: write_phantom_case(d / k, "control", seed=i, n_slices=16, label=k)
        for i, k in enumerate(("K001", "K002"))
    }
    case = load_case(out["K001"])
    s = AnnotationSet(M1, case_fingerprint_of(case), "R1")
    ref = case.reference
    c = ref.ras_affine[:3, :3] @ (np.array(ref.spatial_shape) / 2) + ref.ras_affine[:3, 3]
    s.put(roi_annotation("L_hand_roi", c, [1.5, 0, 0], [0, 1.0, 0]))
    out["ann"] = save_annotations(d / "K001.m1ann.jsonl", s)
    return out


# ------------------------------------------------------------------ item 5: another case


def test_item5_annotations_of_another_case_on_the_same_grid_are_refused(
    two_cases, tmp_path, capsys
):
    k1, k2, ann = two_cases["K001"], two_cases["K002"], two_cases["ann"]
    assert case_fingerprint_of(load_case(k1))["hash"] == case_fingerprint_of(load_case(k2))["hash"]
    out = tmp_path / "m.csv"
    assert main(["measure", str(k2), str(ann), "--out", str(out)]) == 2
    err = _one_error(capsys)
    assert "K001.m1ann.jsonl: written for another case ('K001'" in err
    assert "this case is 'K002'" in err and "different label" in err
    assert not out.exists()
    # the same case is accepted; a deliberate transfer needs --force and says so
    assert main(["measure", str(k1), str(ann), "--out", str(out)]) == 0
    out.unlink()
    assert main(["measure", str(k2), str(ann), "--out", str(out), "--force"]) == 0
    assert "transferred onto this case (--force)" in capsys.readouterr().err
    assert "K002" in out.read_text()


def test_item5_old_files_and_autosaves_keep_their_hash():
    """The grid hash (autosave folder name) is unchanged; the label is compared besides."""
    fp = case_fingerprint("c1", (16, 448, 448), np.diag([0.25, 0.25, 2.0, 1.0]))
    assert fp["hash"] == "a689c5c6edb0ee6a"
    assert (
        case_fingerprint("other", (16, 448, 448), np.diag([0.25, 0.25, 2.0, 1.0]))["hash"]
        == (fp["hash"])
    )


# ------------------------------------------------------------------ item 6: outputs over inputs


def test_item6_measure_never_writes_over_its_annotations(two_cases, tmp_path, capsys):
    ann = tmp_path / "a.m1ann.jsonl"
    shutil.copy(two_cases["ann"], ann)
    before = ann.read_bytes()
    assert main(["measure", str(two_cases["K001"]), str(ann), "--out", str(ann)]) == 2
    assert "a.m1ann.jsonl: is an input of this command" in _one_error(capsys)
    link = tmp_path / "link.csv"
    link.symlink_to(ann)
    assert main(["measure", str(two_cases["K001"]), str(ann), "--out", str(link)]) == 2
    assert "is an input of this command" in _one_error(capsys)
    assert ann.read_bytes() == before and link.is_symlink()


def test_item6_measure_never_writes_over_a_case_file(two_cases, tmp_path, capsys):
    case = tmp_path / "case"
    shutil.copytree(two_cases["K001"], case)
    side = next(case.glob("*echo-1*_MEGRE.json"))
    before = side.read_bytes()
    assert main(["measure", str(case), str(two_cases["ann"]), "--out", str(side), "--force"]) == 2
    assert f"{side.name}: is an input of this command" in _one_error(capsys)
    assert side.read_bytes() == before


def test_item6_study_init_force_never_replaces_its_cases_csv(two_cases, tmp_path, capsys):
    study = tmp_path / "study"
    study.mkdir()
    cases = study / "study.json"  # cases.csv saved under the study's own file name
    text = f"case_id,path\nK1,{two_cases['K001']}\nK2,{two_cases['K002']}\n"
    cases.write_text(text)
    argv = ["study", "init", str(study), "--cases", str(cases), "--readers", "R1", "--force"]
    assert main(argv) == 2
    assert "study.json: is an input of this command" in _one_error(capsys)
    assert cases.read_text() == text and not (study / "study.sqlite").exists()


# ------------------------------------------------------------------ item 7: ROI windows clipped


def test_item7_huge_roi_is_clipped_before_supersampling():
    # 250 mm semi-axes on a 0.25 mm grid: a 2001-pixel box, 4.3 GiB supersampled
    axes = np.eye(2) * 1000.0
    tracemalloc.start()
    w = ellipse_weights((200.0, 200.0), axes, (448, 448))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 256 << 20, f"peak {peak / 2**20:.0f} MiB"
    assert (w.rows, w.cols) == (slice(0, 448), slice(0, 448))
    assert np.all(w.weights == 1.0)  # the slice lies wholly inside the oval
    assert w.total == pytest.approx(np.pi * 1000.0**2)


@pytest.mark.parametrize("centre", [(2.3, 30.1), (30.7, 61.2), (-3.0, -2.0), (63.5, 10.0)])
def test_item7_clipped_weights_equal_the_unclipped_ones(centre):
    """Clipping first changes no weight inside the image (reference: a padded grid)."""
    axes = np.array([[6.0, 2.0], [-1.0, 3.0]])
    w = ellipse_weights(centre, axes, (64, 64))
    pad = 40  # the same oval on a grid so large that nothing is clipped
    ref = ellipse_weights((centre[0] + pad, centre[1] + pad), axes, (64 + 2 * pad,) * 2)
    full = np.zeros((64 + 2 * pad,) * 2)
    full[ref.rows, ref.cols] = ref.weights
    inside = full[pad : pad + 64, pad : pad + 64]
    got = np.zeros((64, 64))
    got[w.rows, w.cols] = w.weights
    np.testing.assert_array_equal(got, inside)
    assert w.total == pytest.approx(ref.total, rel=2e-3)


# ------------------------------------------------------------------ item 8: oval geometry

AXIAL = np.array([[0, 0, 0.25, -56.0], [0, 0.25, 0, -76.0], [2.0, 0, 0, 35.0], [0, 0, 0, 1.0]])
CASE = case_fingerprint("c1", (16, 448, 448), AXIAL)


@pytest.mark.parametrize(
    ("u", "v", "match"),
    [
        ([2, 0, 0], [1, 1.5, 0], "not perpendicular"),  # pi|u||v| would be +20 %
        ([2, 0, 0], [1, 0, 0], "collinear"),
        ([2, 0, 0], [-1, 0.001, 0], "collinear"),
    ],
)
def test_item8_semi_axes_must_be_perpendicular(u, v, match):
    with pytest.raises(ValueError, match=match):
        roi_annotation("L_hand_roi", [0, 0, 51], u, v)


def _ann_file(tmp_path: Path, points: list) -> Path:
    header = {"schema": "napari-m1/annotations/1", "protocol": "m1-7t", "reader": "", "case": CASE}
    line = {"slot": "L_hand_roi", "kind": "roi", "points_ras": points}
    p = tmp_path / "h.m1ann.jsonl"
    p.write_text(json.dumps(header) + "\n" + json.dumps(line) + "\n")
    return p


@pytest.mark.parametrize(
    ("v", "match"),
    [
        ([1.0, 1.5, 51.0], "line 2: malformed annotation .*not perpendicular"),
        ([0.0, 0.0, 52.5], "line 2: malformed annotation .*not in a slice plane"),
        ([0.0, 1.5, 51.4], "line 2: malformed annotation .*tilts 14.9° out of it"),
    ],
)
def test_item8_files_with_bad_ovals_are_refused_with_the_line(tmp_path, v, match):
    p = _ann_file(tmp_path, [[0.0, 0.0, 51.0], [2.0, 0.0, 51.0], v])
    with pytest.raises(AnnotationFileError, match=match):
        load_annotations(p, case=CASE)


def test_item8_api_refuses_an_oval_out_of_the_slice():
    s = AnnotationSet(M1, CASE)
    with pytest.raises(M1Error, match="not in a slice plane"):
        s.put(roi_annotation("L_hand_roi", [0, 0, 51], [2, 0, 0], [0, 0, 1.5]))
    ok = s.put(roi_annotation("L_hand_roi", [0, 0, 51], [1.2, 1.6, 0], [-0.8, 0.6, 0]))
    assert ok.after.area_mm2 == pytest.approx(np.pi * 2.0 * 1.0)
    assert isinstance(ok.after, Annotation)


# ------------------------------------------------------------------ item 10: one line, the file


@pytest.fixture
def case(two_cases, tmp_path) -> Path:
    c = tmp_path / "case"
    shutil.copytree(two_cases["K001"], c)
    return c


DEEP = "[" * 100_000 + "]" * 100_000


def test_item10_deep_case_json(case, capsys):
    (case / "case.json").write_text(DEEP)
    assert main(["info", str(case)]) == 2
    assert _one_error(capsys) == (
        "napari-m1: error: case.json: malformed (not valid JSON (nested too deeply))"
    )


@pytest.mark.parametrize(
    ("sidecar", "match"),
    [
        (DEEP, r"echo-1_part-mag_MEGRE.json: not valid JSON \(nested too deeply\)"),
        ('{"EchoTime": {}}', "echo-1_part-mag_MEGRE.json: EchoTime must be a positive number"),
        ('{"EchoTime": "ten ms"}', 'echo-1_part-mag_MEGRE.json: EchoTime .* not "ten ms"'),
    ],
)
def test_item10_sidecars_name_the_file(case, capsys, sidecar, match):
    next(case.glob("*echo-1*_MEGRE.json")).write_text(sidecar)
    assert main(["info", str(case)]) == 2
    assert pytest.importorskip("re").search(match, _one_error(capsys))


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda h, line: (h, DEEP), "line 2: malformed annotation \\(not valid JSON \\(nested"),
        (lambda h, line: ({**h, "case": "K001"}, line), "line 1: 'case' must be an object"),
    ],
)
def test_item10_annotation_files(two_cases, tmp_path, capsys, edit, match):
    head, line = two_cases["ann"].read_text().splitlines()[:2]
    h, line = edit(json.loads(head), line)
    p = tmp_path / "x.m1ann.jsonl"
    p.write_text(json.dumps(h) + "\n" + line + "\n")
    assert main(["measure", str(two_cases["K001"]), str(p), "--out", str(tmp_path / "o.csv")]) == 2
    err = _one_error(capsys)
    assert "x.m1ann.jsonl" in err and pytest.importorskip("re").search(match, err)


def test_item10_200kB_case_id(two_cases, tmp_path, capsys):
    cases = tmp_path / "cases.csv"
    cases.write_text("case_id,path\n" + "K" * 200_000 + f",{two_cases['K001']}\n")
    argv = ["study", "init", str(tmp_path / "s"), "--cases", str(cases), "--readers", "R1"]
    assert main(argv) == 2
    assert _one_error(capsys).startswith("napari-m1: error: cases.csv, line ")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("tes", [[-5.0, 10.0], [0, 10.0], [1e308, 1e308]])
def test_item10_case_json_echo_times_must_be_positive(case, capsys, tes):
    mags = sorted(p.name for p in case.glob("*part-mag*.nii.gz"))
    (case / "case.json").write_text(json.dumps({"gre": mags, "echo_times_ms": tes}))
    assert main(["info", str(case)]) == 2
    assert "case.json: 'echo_times_ms' must hold echo times in ms" in _one_error(capsys)


def test_item10_non_utf8_folder_name(two_cases, tmp_path, capsys):
    """A folder whose name is not UTF-8 (and no sub- label) measures, printably."""
    raw = os.path.join(os.fsencode(tmp_path), b"case-\xff\xfe")
    shutil.copytree(two_cases["K001"], os.fsdecode(raw))
    case = Path(os.fsdecode(raw))
    for p in case.iterdir():  # drop the sub- entity: the label comes from the folder
        p.rename(case / p.name.replace("sub-K001_", ""))
    mags = sorted(p.name for p in case.glob("*part-mag*.nii.gz"))
    (case / "case.json").write_text(json.dumps({"gre": mags}))
    ann = tmp_path / "a.m1ann.jsonl"
    shutil.copy(two_cases["ann"], ann)
    out = tmp_path / "o.csv"
    assert main(["measure", str(case), str(ann), "--out", str(out), "--force"]) == 0
    assert "case-\\xff\\xfe" in out.read_text(encoding="utf-8")
    assert main(["info", str(case)]) == 0


def test_item6_import_force_never_replaces_its_source(two_cases, tmp_path, capsys):
    """``import SRC SRC --force`` used to replace the source folder by its own import."""
    anat = tmp_path / "bids" / "sub-K001" / "anat"
    anat.mkdir(parents=True)
    for f in two_cases["K001"].glob("*part-mag*"):
        shutil.copy(f, anat / f.name)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for out in (tmp_path / "bids", tmp_path):
        assert main(["import", str(tmp_path / "bids"), str(out), "--force"]) == 2
        err = _one_error(capsys)
        assert "is an input of this command" in err or "holds an input" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_item6_report_never_writes_over_its_readings(tmp_path, capsys):
    from data.m1_study import published_study

    readings, clinical = published_study()
    tables = tmp_path / "rep" / "tables"
    tables.mkdir(parents=True)
    readings.to_csv(tables / "subjects.csv", index=False)  # the name of a report table
    clinical.to_csv(tmp_path / "clinical.csv", index=False)
    before = (tables / "subjects.csv").read_bytes()
    argv = [
        "report",
        "--readings",
        str(tables / "subjects.csv"),
        "--clinical",
        str(tmp_path / "clinical.csv"),
        "--out",
        str(tmp_path / "rep"),
    ]
    assert main(argv) == 2
    assert "tables: would be replaced but holds an input" in _one_error(capsys)
    assert (tables / "subjects.csv").read_bytes() == before
    assert not (tmp_path / "rep" / "report.html").exists()


def test_item6_qsm_never_writes_over_its_mask(tmp_path, capsys):
    """``qsm CASE --out D --mask D/mask.nii.gz`` used to replace the user's mask by its own."""
    from napari_m1.phantom import write_phantom_case

    case = write_phantom_case(tmp_path / "case", "control", seed=0, n_slices=16, with_phase=True)
    out = tmp_path / "qsm"
    out.mkdir()
    mask = out / "mask.nii.gz"
    shutil.copy(next(case.glob("*echo-1_part-mag_MEGRE.nii.gz")), mask)
    before = mask.read_bytes()
    argv = ["qsm", str(case), "--out", str(out), "--preset", "fast", "--mask", str(mask)]
    assert main(argv) == 2
    assert "mask.nii.gz: is an input of this command" in _one_error(capsys)
    assert mask.read_bytes() == before and sorted(out.iterdir()) == [mask]
