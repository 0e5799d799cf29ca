"""The GT fast path for uncompressed RLE lists (:mod:`wsovvis.evaluation.ytvis_rle_codec`)."""

import json

import numpy as np
import orjson
import pytest
from _ytvis_cases import random_case
from pycocotools import _mask

from wsovvis.evaluation import evaluate_ytvis
from wsovvis.evaluation.ytvis_rle_codec import compact_counts_json, encode_marked, marked_to_list


def _random_lists(seed, n=800):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        hi = [3, 40, 5000, 2**20][i % 4]
        out.append([int(v) for v in rng.integers(0, hi, int(rng.integers(1, 30)))])
    return out


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": "), (" ,\n ", " :\t")])
def test_encode_is_byte_identical_to_pycocotools(separators):
    lists = _random_lists(len(separators[0]))
    doc = json.dumps({"a": [{"size": [7, 9], "counts": c} for c in lists]}, separators=separators)
    parsed = orjson.loads(compact_counts_json(doc.encode()))
    marked = [x["counts"] for x in parsed["a"]]
    if "\n" in separators[0]:  # multi-line lists are left as lists (one-element ones not)
        assert [marked_to_list(m) if isinstance(m, str) else m for m in marked] == lists
        assert any(isinstance(m, list) for m in marked)
        return
    assert all(m.startswith("#") for m in marked)
    assert [marked_to_list(m) for m in marked] == lists
    ref = _mask.frUncompressedRLE([{"size": [7, 9], "counts": c} for c in lists], 7, 9)
    counts, areas = encode_marked(marked)
    assert counts == [r["counts"] for r in ref]
    assert areas == [int(a) for i in range(0, len(ref), 200) for a in _mask.area(ref[i : i + 200])]
    assert encode_marked(["#", "# ", "#5, 2"]) == ([b"", b"", b"52"], [0, 0, 2])


def test_documents_with_marker_like_strings_are_not_rewritten():
    assert compact_counts_json(b'{"x": "#1", "counts": [1, 2]}') is None


@pytest.mark.parametrize("bad", ["#1,,2", "#1 2", "#01, 2", "#1,2,", "#,1", "#1.5, 2", "#null"])
def test_unusual_lists_take_the_json_path(bad):
    assert encode_marked(["#3, 4", bad]) is None
    if bad in ("#1.5, 2", "#null"):
        assert marked_to_list(bad) == json.loads("[" + bad[1:] + "]")
    else:
        with pytest.raises(ValueError, match="malformed"):
            marked_to_list(bad)


def test_nested_or_quoted_lists_are_not_rewritten():
    doc = b'{"a": {"counts": [[1, 2], [3]]}, "b": {"counts": ["x"]}, "c": {"counts" :\n[]}}'
    out = compact_counts_json(doc)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(out)  # the caller then parses the original document
    assert orjson.loads(compact_counts_json(b'{"b": {"counts": ["x"]}}')) == {
        "b": {"counts": ["x"]}
    }
    assert orjson.loads(compact_counts_json(b'{"c": {"counts" :\n[]}}')) == {"c": {"counts": "#"}}


def test_large_run_lengths_fall_back():
    assert encode_marked(["#1, 4294967296"]) is None


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_file_input_equals_dict_input(tmp_path, class_agnostic):
    for seed in (1, 4, 9):
        gt, res = random_case(seed, num_videos=6, big=seed == 4)
        gt_path, res_path = tmp_path / f"gt{seed}.json", tmp_path / f"res{seed}.json"
        gt_path.write_text(json.dumps(gt))
        res_path.write_text(json.dumps(res))
        a = evaluate_ytvis(gt, res, class_agnostic=class_agnostic, with_scores=True)
        b = evaluate_ytvis(str(gt_path), str(res_path), class_agnostic, with_scores=True)
        assert np.array_equal(a.stats, b.stats)
        assert np.array_equal(a.precision, b.precision)
        assert np.array_equal(a.recall, b.recall)
        assert np.array_equal(a.scores, b.scores)


def test_invalid_counts_list_in_gt_file_is_an_error(tmp_path):
    gt, res = random_case(2, num_videos=3)
    text = json.dumps(gt)
    assert '"counts": [' in text
    path = tmp_path / "gt.json"
    path.write_text(text.replace('"counts": [', '"counts": [1,, ', 1))
    # the packed reader reports the file, the lazy list decoder the list
    with pytest.raises(ValueError, match="(not valid|invalid) JSON"):
        evaluate_ytvis(str(path), res)


@pytest.mark.parametrize("body", ["-1, 2", "3, -0", "+1, 2", "1e3, 2", "1E2", "2.0"])
def test_signed_and_float_numbers_take_the_json_path(body):
    # np.fromstring reads "+1" (invalid JSON) and "-1" (refused by pycocotools) as plain ints
    assert encode_marked(["#3, 4", "#" + body]) is None
    try:
        expected = json.loads("[" + body + "]")
    except json.JSONDecodeError:
        with pytest.raises(ValueError, match="malformed"):
            marked_to_list("#" + body)
    else:
        assert marked_to_list("#" + body) == expected


def test_negative_gt_run_length_is_an_error_naming_the_video():
    with pytest.raises(OverflowError):
        _mask.frUncompressedRLE([{"size": [1, 4], "counts": [-1, 5]}], 1, 4)
    gt = {
        "videos": [{"id": 1, "height": 1, "width": 4, "length": 1}],
        "categories": [{"id": 1}],
        "annotations": [
            {
                "id": 1,
                "video_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "areas": [5],
                "segmentations": [{"size": [1, 4], "counts": [-1, 5]}],
            }
        ],
    }
    res = [
        {
            "video_id": 1,
            "category_id": 1,
            "score": 0.5,
            "segmentations": [{"size": [1, 4], "counts": "04"}],
        }
    ]
    marked = orjson.loads(compact_counts_json(json.dumps(gt).encode()))
    assert marked["annotations"][0]["segmentations"][0]["counts"] == "#-1, 5"
    for gt_input in (gt, marked):
        with pytest.raises(ValueError, match=r"GT video 1 \(annotation ids \[1\]\).*uint32"):
            evaluate_ytvis(gt_input, res)


@pytest.mark.parametrize(
    "doc",
    [
        '{"x\\"counts": [1, 2], "counts": [3]}',  # key x"counts (escaped quote) is not counts
        '{"name": "say \\"counts\\": [1]", "counts": [4, 5]}',  # key-like text inside a string
        '{"a":"x\\\\","counts":[6]}',  # a string ending in an escaped backslash before the key
        '{"names": ["caf\u00e9 \\u00e9", "\u65e5\u672c"], "counts": [1, 2]}',  # unicode
        '{"info": {"n": -3, "f": 1e3, "g": -2.5E-1}, "counts": [1, 2]}',  # numbers elsewhere
        '{ "counts"\t:\r [ 7 , 8 ] , "size" : [ 1 , 15 ] }',  # JSON whitespace
        '{"counts": [], "nested": {"counts": [9]}, "other": {"counts": [[1], [2]]}}',
    ],
)
def test_rewrite_only_changes_counts_lists(doc):
    data = doc.encode("utf-8")
    original = json.loads(data)
    out = compact_counts_json(data)
    try:
        rewritten = orjson.loads(out)
    except orjson.JSONDecodeError:  # the caller then parses the original document
        assert "[[" in doc
        return

    def restore(a, b):
        if isinstance(b, dict):
            assert isinstance(a, dict) and a.keys() == b.keys()
            for k in a:
                if k == "counts" and isinstance(b[k], str) and b[k][:1] == "#":
                    assert marked_to_list(b[k]) == a[k]
                else:
                    restore(a[k], b[k])
        else:
            assert a == b

    restore(original, rewritten)
    assert rewritten != original or '"counts"' not in doc.replace('\\"counts', "")
