"""Hostile annotation files and outputs for ``measure`` (items 5, 6, 8, 10)."""

from __future__ import annotations

from collections.abc import Callable

from ._base import DEEP, MAG1, SIDE, Work, _bytes_name, _no_sub_label, _out, add

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
    lambda w: _replace_out(w.measure()),
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


def _replace_out(argv: list[str]) -> list[str]:
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
