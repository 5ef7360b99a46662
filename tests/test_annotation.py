"""The annotation model: undo/redo, storage round trip and bad files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_m1.annotation import (
    AnnotationFileError,
    AnnotationSet,
    caliper_annotation,
    case_fingerprint,
    load_annotations,
    roi_annotation,
    save_annotations,
)
from napari_m1.errors import M1Error
from napari_m1.protocol import PROTOCOLS, Protocol, Slot, get_protocol, load_protocol

M1 = PROTOCOLS["m1-7t"]
# napari index (S, A, R) -> RAS mm, as loaded cases are: slices are axial planes
RAS = np.array([[0, 0, 0.25, 0], [0, 0.25, 0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1.0]])
CASE = case_fingerprint("c1", (16, 448, 448), RAS)


def _set():
    return AnnotationSet(M1, CASE, reader="R1")


def test_protocol_slots():
    assert len(M1.slots) == 17
    assert sum(s.kind == "roi" for s in M1.slots) == 9
    assert sum(s.kind == "caliper" for s in M1.slots) == 8
    assert M1.slot("ref_precuneus_roi").hemisphere == "L"
    assert {s.region for s in M1.slots} == {"foot", "leg", "hand", "face", "precuneus"}
    qsm = PROTOCOLS["qsm-m1"]
    assert [s.region for s in qsm.slots].count("precentral_control") == 2


def test_site_protocol_from_json(tmp_path, monkeypatch):
    proto = Protocol(
        "site-x", "Hand only", (Slot("L_hand_roi", "roi", "hand", "L", area_mm2=3.0),)
    )
    (tmp_path / "protocols").mkdir()
    (tmp_path / "protocols" / "x.json").write_text(json.dumps(proto.to_dict()))
    monkeypatch.setenv("NAPARI_M1_DATA_DIR", str(tmp_path))
    assert get_protocol("site-x") == proto
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"id": "y", "name": "y", "slots": [{"id": "a", "kind": "blob", '
        '"region": "hand", "hemisphere": "L"}]}'
    )
    with pytest.raises(M1Error, match="unknown kind"):
        load_protocol(bad)


def test_undo_redo_add_move_resize_delete():
    s = _set()
    a1 = roi_annotation("L_hand_roi", [-25, -18, 51], [1.128, 0, 0], [0, 1.128, 0])
    s.put(a1)
    moved = roi_annotation("L_hand_roi", [-24, -18, 51], [1.128, 0, 0], [0, 1.128, 0])
    s.put(moved)
    resized = roi_annotation("L_hand_roi", [-24, -18, 51], [2.0, 0, 0], [0, 1.128, 0])
    s.put(resized)
    s.put(caliper_annotation("L_hand_caliper", [-25, -18, 51], [-25, -16, 51]))
    s.delete("L_hand_caliper")
    assert s.done() == ["L_hand_roi"]
    assert s.undo().action == "undo delete"
    assert "L_hand_caliper" in s
    s.undo()
    assert "L_hand_caliper" not in s
    s.undo()
    assert s.get("L_hand_roi").points_ras == moved.points_ras
    s.undo()
    assert s.get("L_hand_roi").points_ras == a1.points_ras
    s.undo()
    assert s.get("L_hand_roi") is None and not s.can_undo
    assert s.undo() is None
    for _ in range(3):
        s.redo()
    assert s.get("L_hand_roi").points_ras == resized.points_ras
    assert s.get("L_hand_roi").area_mm2 == pytest.approx(np.pi * 2.0 * 1.128)
    s.put(caliper_annotation("R_face_caliper", [25, -5, 41], [25, -3, 41]))
    assert not s.can_redo  # a new change clears redo


def test_listeners_see_every_change():
    s = _set()
    seen = []
    s.subscribe(lambda ch: seen.append((ch.slot, ch.after is not None)))
    s.put(caliper_annotation("L_leg_caliper", [-15, -20, 57], [-15, -18, 57]))
    s.undo()
    s.redo()
    assert seen == [("L_leg_caliper", True), ("L_leg_caliper", False), ("L_leg_caliper", True)]


def test_wrong_kind_for_slot():
    with pytest.raises(M1Error, match="takes a caliper"):
        _set().put(roi_annotation("L_hand_caliper", [0, 0, 0], [1, 0, 0], [0, 1, 0]))


def test_save_load_round_trip(tmp_path):
    s = _set()
    s.put(roi_annotation("ref_precuneus_roi", [-1.1, -55, 51], [1.1, 0.1, 0], [-0.1, 1.1, 0]))
    s.put(caliper_annotation("R_hand_caliper", [25.3, -18.6, 51], [25.1, -17.1, 51]))
    p = save_annotations(tmp_path / "a.m1ann.jsonl", s)
    back = load_annotations(p, case=CASE)
    assert back.items == s.items
    assert (back.reader == "R1" and back.protocol is M1) or back.protocol == M1


def _write(tmp_path, lines):
    p = tmp_path / "a.m1ann.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def _header(case=CASE):
    return json.dumps(
        {"schema": "napari-m1/annotations/1", "protocol": "m1-7t", "reader": "", "case": case}
    )


def test_annotations_of_another_case_are_refused(tmp_path):
    p = _write(tmp_path, [_header(case_fingerprint("other", (16, 448, 448), RAS * 2))])
    with pytest.raises(AnnotationFileError, match="written for another case"):
        load_annotations(p, case=CASE)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "line 2: malformed annotation"),
        ('{"slot": "L_hand_roi", "kind": "roi"}', "line 2: malformed annotation \\(points_ras"),
        (
            '{"slot": "nope", "kind": "roi", "points_ras": [[0,0,0],[1,0,0],[0,1,0]]}',
            "line 2: malformed annotation.*no slot 'nope'",
        ),
        (
            '{"slot": "L_hand_caliper", "kind": "caliper", "points_ras": [[1,2,3],[1,2,3]]}',
            "line 2: .*zero-length caliper",
        ),
        (
            '{"slot": "L_hand_roi", "kind": "caliper", "points_ras": [[1,2,3],[1,5,3]]}',
            "line 2: .*takes a roi",
        ),
    ],
)
def test_malformed_line_is_rejected_with_its_number(tmp_path, line, match):
    with pytest.raises(AnnotationFileError, match=match):
        load_annotations(_write(tmp_path, [_header(), line]), case=CASE)


def test_slot_filled_twice_in_file(tmp_path):
    ok = json.dumps(caliper_annotation("L_hand_caliper", [1, 2, 3], [1, 4, 3]).to_json())
    with pytest.raises(AnnotationFileError, match="line 3: slot L_hand_caliper filled twice"):
        load_annotations(_write(tmp_path, [_header(), ok, ok]), case=CASE)


def test_not_an_annotations_file(tmp_path):
    p = _write(tmp_path, ['{"schema": "something else"}'])
    with pytest.raises(AnnotationFileError, match="line 1: not a napari-m1 annotations file"):
        load_annotations(p)


class _Refusing:
    """A store that refuses every save (a full disk, a locked read)."""

    def __init__(self, exc):
        self.exc, self.calls = exc, 0

    def load(self, case, protocol):
        return {}

    def save(self, annset, items, change):
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize(
    ("exc", "match"),
    [
        (OSError(28, "No space left on device"), "could not save the annotation \\(No space"),
        (M1Error("this read is submitted and locked"), "submitted and locked"),
    ],
)
def test_a_refused_write_leaves_the_set_unchanged(exc, match):
    s = _set()
    first = roi_annotation("L_hand_roi", [-25, -18, 51], [1.1, 0, 0], [0, 1.1, 0])
    s.put(first)
    seen = []
    s.subscribe(seen.append)
    s.store = store = _Refusing(exc)
    with pytest.raises(M1Error, match=match):
        s.put(roi_annotation("L_hand_roi", [-20, -18, 51], [1.1, 0, 0], [0, 1.1, 0]))
    with pytest.raises(M1Error, match=match):
        s.undo()
    assert store.calls == 2
    assert s.items == {"L_hand_roi": first} and seen == []
    assert s.can_undo and not s.can_redo  # history untouched by the refusals


def test_file_store_saves_before_the_model_and_loads_back(tmp_path):
    from napari_m1.annotation import AnnotationStore, FileAnnotationStore
    from napari_m1.session import SessionAnnotationStore

    store = FileAnnotationStore(tmp_path / "sub" / "auto.m1ann.jsonl")
    assert isinstance(store, AnnotationStore)
    assert isinstance(SessionAnnotationStore(None, "p1"), AnnotationStore)
    s = AnnotationSet(M1, CASE, "R1", store=store)
    s.load()  # no file yet: empty
    assert s.items == {}
    order = []
    s.subscribe(lambda ch: order.append(store.path.is_file()))
    s.put(caliper_annotation("L_hand_caliper", [-25, -18, 51], [-25, -16, 51]))
    assert order == [True]  # the file existed when the listeners ran
    back = AnnotationSet(M1, CASE, "R1", store=FileAnnotationStore(store.path))
    back.load()
    assert back.items == s.items
    other = AnnotationSet(M1, case_fingerprint("x", (3, 3, 3), RAS), store=store)
    with pytest.raises(AnnotationFileError, match="written for another case"):
        other.load()
    assert other.items == {}


def test_midline_is_stored_with_the_annotations(tmp_path):
    from napari_m1.annotation import MIDLINE_SLOT, midline_annotation

    s = _set()
    s.put(midline_annotation([2.5, -30, 50]))
    s.put(roi_annotation("L_foot_roi", [1.5, -30, 60], [1.1, 0, 0], [0, 1.1, 0]))
    assert s.done() == ["L_foot_roi"] and MIDLINE_SLOT in s  # not a protocol slot
    assert s.get(MIDLINE_SLOT).centre_ras[0] == 2.5
    back = load_annotations(save_annotations(tmp_path / "m.m1ann.jsonl", s), case=CASE)
    assert back.items == s.items
    with pytest.raises(M1Error, match="only slot 'midline'"):
        s.put(roi_annotation(MIDLINE_SLOT, [0, 0, 0], [1, 0, 0], [0, 1, 0]))
    bad = json.dumps({"slot": "L_foot_roi", "kind": "midline", "points_ras": [[1, 2, 3]]})
    with pytest.raises(AnnotationFileError, match="line 2: .*only slot 'midline'"):
        load_annotations(_write(tmp_path, [_header(), bad]), case=CASE)
