"""``_ytvis_kernels.pack_json``: the YTVIS JSON packed into flat tables, everything else kept.

Every ``"segmentations"`` list of plain RLE frames becomes ``"#<track>"`` and rows of the frame
tables (``kind & 3``: 0 null, 1 compressed string, 2 run lengths; ``kind & 4``: ``counts`` written
before ``size``); every ``"areas"`` list of integers / nulls becomes ``"#<list>"``. Anything the
packer does not take keeps its original text, so the JSON parser sees (and reports) it unchanged.
"""

import json

import numpy as np
import orjson
import pycocotools.mask as mask_util
import pytest
from _packed_helpers import (
    compare,
    compressed,
    random_mask,
    requires_kernels,
    scene,
)

from wsovvis.evaluation import ytvis_packed
from wsovvis.evaluation.ytvis_data import load_json_packed_file
from wsovvis.evaluation.ytvis_packed import load_json_packed

pytestmark = requires_kernels


_pack = ytvis_packed.pack


def _restore(value, packed):
    """The document with every marker replaced by its packed list (``areas`` nulls read 0)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("segmentations", "areas") and isinstance(v, str) and v[:1] == "#":
                i = int(v[1:])
                if k == "segmentations":
                    out[k] = packed.segmentations(i)
                else:
                    a0, a1 = packed.area_start[i], packed.area_start[i + 1]
                    out[k] = ["A", *packed.area_values[a0:a1].tolist()]
            else:
                out[k] = _restore(v, packed)
        return out
    if isinstance(value, list):
        return [_restore(v, packed) for v in value]
    return value


def _areas_tagged(value):
    """The original document with ``areas`` lists of ints/nulls tagged like :func:`_restore`."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if (
                k == "areas"
                and isinstance(v, list)
                and all(x is None or (type(x) is int and abs(x) <= 2**40) for x in v)
            ):
                out[k] = ["A", *[0 if x is None else x for x in v]]
            else:
                out[k] = _areas_tagged(v)
        return out
    if isinstance(value, list):
        return [_areas_tagged(v) for v in value]
    return value


SMALL_DOC = rb"""{"annotations": [{"id": 1, "segmentations": [null,
 {"size": [2, 3], "counts": [1, 2, 3]}, {"counts" : "0a\\b\/c", "size":[4,5]}], "areas": [3, null, -5]}],
 "t": {"segmentations" :[ ]}, "other": {"areas": [1, 2.5]}, "name": "segmentations"}"""


def test_pack_json_tables_of_a_small_document():
    text, p = _pack(SMALL_DOC)
    assert p.track_start.tolist() == [0, 3, 3]
    assert p.kind.tolist() == [0, 2, 1 | 4]  # the string frame is written counts first
    assert p.h.tolist() == [0, 2, 4] and p.w.tolist() == [0, 3, 5]
    assert p.off.tolist() == [0, 0, 0] and p.length.tolist() == [0, 3, 6]
    assert p.strings.tobytes() == b"0a" + bytes([92]) + b"b/c"  # "\\" -> chr(92), "\/" -> "/"
    assert p.runs.tolist() == [1, 2, 3]
    assert p.area_start.tolist() == [0, 3] and p.area_values.tolist() == [3, 0, -5]
    doc = orjson.loads(text)
    ann = doc["annotations"][0]
    assert ann["segmentations"] == "#0" and ann["areas"] == "#0"
    assert doc["t"]["segmentations"] == "#1"
    assert doc["other"]["areas"] == [1, 2.5]  # a float: kept as it was
    assert doc["name"] == "segmentations"
    original = orjson.loads(SMALL_DOC)
    assert p.segmentations(0) == original["annotations"][0]["segmentations"]
    assert [list(f) for f in p.segmentations(0)[1:]] == [["size", "counts"], ["counts", "size"]]
    assert p.segmentations(0)[2]["counts"] == "0a\\b/c"
    assert p.segmentations(1) == []
    assert p.area_means(np.array([0])).tolist() == [-1.0]  # (3 - 5) / 2 non-zero values
    # only the packed lists changed, everything else is byte for byte the original
    seg = SMALL_DOC[SMALL_DOC.index(b"[null") : SMALL_DOC.index(b'}], "areas"') + 2]
    expected = SMALL_DOC.replace(seg, b'"#0"').replace(b"[3, null, -5]", b'"#0"')
    assert text == expected.replace(b"[ ]", b'"#1"')
    # the same through the public reader
    doc2, p2 = load_json_packed(SMALL_DOC, orjson.loads)
    assert doc2 == doc and p2.track_start.tolist() == [0, 3, 3]


def test_kind_records_the_type_and_the_written_key_order():
    frames = [
        None,
        {"size": [2, 3], "counts": "06"},
        {"counts": "06", "size": [2, 3]},
        {"size": [2, 3], "counts": [1, 5]},
        {"counts": [1, 5], "size": [2, 3]},
        {"counts": [], "size": [0, 0]},
        {"counts": "", "size": [0, 0]},
    ]
    data = json.dumps({"segmentations": frames}, indent=1).encode()
    text, p = _pack(data)
    assert orjson.loads(text) == {"segmentations": "#0"}
    assert p.kind.tolist() == [0, 1, 5, 2, 6, 6, 5]
    assert p.h.tolist() == [0, 2, 2, 2, 2, 0, 0] and p.w.tolist() == [0, 3, 3, 3, 3, 0, 0]
    assert p.length.tolist() == [0, 2, 2, 2, 2, 0, 0]
    # rebuilt as written, key order included (error messages show the frame's repr)
    assert json.dumps(p.segmentations(0)) == json.dumps(frames)
    assert [repr(p.frame(f)) for f in range(len(frames))] == [repr(f) for f in frames]


def test_json_escapes_in_compressed_strings():
    rng = np.random.default_rng(0)
    masks = [random_mask(rng, 20, 30) for _ in range(60)]
    strings = [compressed(m)["counts"] for m in masks]
    assert any(chr(92) in s for s in strings), "no backslash in the test strings"
    segs = [{"size": [20, 30], "counts": s} for s in strings]
    data = json.dumps({"segmentations": segs}).encode()
    assert b"\\\\" in data
    # also the optional escape of "/" (written by some encoders) and "\\" right before the quote
    extra = b'{"size": [1, 2], "counts": "a\\/b\\\\"}'
    data = data[:-2] + b", " + extra + b"]}"
    text, p = _pack(data)
    assert orjson.loads(text) == {"segmentations": "#0"}
    assert p.kind.tolist() == [1] * (len(strings) + 1)
    assert [f["counts"] for f in p.segmentations(0)] == strings + ["a/b\\"]
    assert p.segmentations(0) == orjson.loads(data)["segmentations"]
    for s, m in zip(p.segmentations(0)[:3], masks):  # the unescaped bytes are the pycocotools RLE
        back = mask_util.decode({"size": s["size"], "counts": s["counts"].encode()})
        assert np.array_equal(back, m)


@pytest.mark.parametrize(
    "data",
    [
        b'{"segmentations": "#0", "areas": [1, 2]}',
        b'{"areas": [1], "x": {"segmentations": [null]}, "y": {"segmentations" :\n "abc"}}',
        b'{"annotations": [{"segmentations": [null], "areas" : "n/a"}]}',
    ],
)
def test_key_already_holding_a_string_declines_packing(data):
    assert ytvis_packed._kernels.pack_json(data) is None
    doc, packed = load_json_packed(data, orjson.loads)
    assert packed is None and doc == orjson.loads(data)


@pytest.mark.parametrize(
    "fragment",
    [
        b'[{"size": [1, 2], "counts": [1,, 1]}]',
        b'[{"size": [1, 2], "counts": [01, 1]}]',  # leading zero
        b'[{"size": [1, 2], "counts": [1, 1]},]',
        b"[nul]",
        b'[{"size": [1, 2], "counts": "0\\q"}]',  # invalid escape
        b'[{"size": [1, 2] "counts": "02"}]',
        b'[{"size": [1, 2], "counts": "02"}',  # unterminated
    ],
)
def test_invalid_syntax_inside_a_list_is_reported_by_the_json_parser(tmp_path, fragment):
    data = b'{"ok": {"segmentations": [null], "areas": [1]}, "bad": {"segmentations": ' + fragment
    data += b"}}"
    with pytest.raises(orjson.JSONDecodeError) as original:
        orjson.loads(data)
    out = _pack(data)
    assert out is not None
    assert fragment in out[0]  # the original text is kept for the parser to see
    with pytest.raises(orjson.JSONDecodeError) as packed:
        load_json_packed(data, orjson.loads)
    assert str(packed.value) == str(original.value)
    path = tmp_path / "bad.json"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        load_json_packed_file(str(path), "ground-truth file")


@pytest.mark.parametrize(
    "key, fragment",
    [
        ("segmentations", b"[[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]]"),  # polygon
        (
            "segmentations",
            b'[{"size": [2, 3], "counts": [1, 5]}, [[0.0, 0.0, 1.0, 1.0, 0.0, 1.0]]]',
        ),
        ("segmentations", b'[{"size": [2, 3], "counts": [1.0, 5]}]'),  # float
        ("segmentations", b'[{"size": [2, 3], "counts": [1e3, 5]}]'),
        ("segmentations", b'[{"size": [2, 3], "counts": [-1, 7]}]'),  # negative
        ("segmentations", b'[{"size": [2, 3], "counts": [-0, 6]}]'),
        ("segmentations", b'[{"size": [2, 3], "counts": [4294967296, 0]}]'),  # > 2**32 - 1
        ("segmentations", b'[{"size": [2, 3], "counts": [1, 5], "iscrowd": 0}]'),  # extra key
        ("segmentations", b'[{"size": [2, 3], "counts": "06", "areas": [1, 2]}]'),
        ("segmentations", b'[{"size": [2, 3], "size": [2, 3], "counts": "06"}]'),
        ("segmentations", b'[{"size": [2, 3]}]'),
        ("segmentations", b'[{"counts": "06"}]'),
        ("segmentations", b"[{}]"),
        ("segmentations", b'[{"size": [2.0, 3], "counts": "06"}]'),
        ("segmentations", b'[{"size": [2, 3, 1], "counts": "06"}]'),
        ("segmentations", b'[{"size": [2147483648, 1], "counts": "0"}]'),
        ("segmentations", b'[{"size": [2, 3], "counts": "0\\u00306"}]'),  # \u escape
        ("segmentations", b'[{"size": [2, 3], "counts": "0\\"6"}]'),
        ("segmentations", '[{"size": [2, 3], "counts": "\u00e9"}]'.encode()),  # non-ASCII
        ("segmentations", b'[{"size": [2, 3], "counts": null}]'),
        ("segmentations", b"[null, 5]"),
        ("segmentations", b"[[]]"),
        ("segmentations", b"[true]"),
        ("areas", b"[1.5, 2]"),
        ("areas", b"[1e3]"),
        ("areas", b"[-1.0, null]"),
        ("areas", b"[true, 2]"),
        ("areas", b'["3"]'),
        ("areas", b"[[1]]"),
        ("areas", b"[1099511627777]"),  # > 2**40
    ],
)
def test_unpackable_lists_keep_their_text(key, fragment):
    head = b'{"ok": {"segmentations": [null, {"size": [1, 1], "counts": "01"}], "areas": [7]}, '
    data = head + b'"x": {"' + key.encode() + b'" :  ' + fragment + b', "y": 1}}'
    text, p = _pack(data)
    if b'"areas"' in fragment:  # the list is kept; the "areas" list inside it is packed
        assert fragment.replace(b"[1, 2]", b'"#1"') in text
    else:
        assert fragment in text
    doc = orjson.loads(text)
    original = orjson.loads(data)
    assert doc["x"][key] == original["x"][key] or key == "segmentations" and b'"areas"' in fragment
    # with the markers restored, the rewritten document is the original one
    assert _restore(doc, p) == _areas_tagged(original)
    assert p.segmentations(0) == original["ok"]["segmentations"]


@pytest.mark.parametrize("fragment", [b"[01, 1]", b"[-01]", b"[+1]", b"[-]", b"[1 2]"])
def test_invalid_areas_keep_their_text(fragment):
    data = b'{"ok": {"areas": [7]}, "x": {"areas": ' + fragment + b"}}"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(data)
    text, p = _pack(data)
    assert fragment in text and p.area_values.tolist() == [7]
    with pytest.raises(orjson.JSONDecodeError):
        load_json_packed(data, orjson.loads)


def test_boundary_values_are_packed():
    data = (
        b'{"segmentations": [{"size": [2147483647, 0], "counts": [4294967295, 0]}],'
        b' "areas": [1099511627776, -1099511627776, -0, 0, null]}'
    )
    text, p = _pack(data)
    assert orjson.loads(text) == {"segmentations": "#0", "areas": "#0"}
    assert p.runs.tolist() == [4294967295, 0]
    assert p.h.tolist() == [2147483647] and p.w.tolist() == [0]
    assert p.area_values.tolist() == [2**40, -(2**40), 0, 0, 0]


def test_marker_like_strings_elsewhere_are_data(tmp_path, spy, monkeypatch):
    gt, res = scene(3, gt_counts="string", num_videos=3)
    gt["info"] = {"description": "#0", "segmentations-note": '"segmentations": "#1"'}
    gt["categories"][0]["name"] = "#0"
    for r in res:
        r["note"] = "#0"
    packed, status = compare(tmp_path, spy, monkeypatch, gt, res)
    assert packed[0] == "ok" and status is not None and status.tolist() == [0, 0, 0]
    doc, p = load_json_packed_file(str(tmp_path / "gt.json"), "gt")
    assert doc["info"] == gt["info"] and doc["categories"][0]["name"] == "#0"
