"""File input (packed path: ``pack_json`` + ``video_iou``) == in-memory input (path 1).

Unusual inputs must either stay unpacked or be flagged by the kernel (status 1) and re-scored by
path 1, so every case below compares file input with in-memory input (and with file input, kernels
disabled) bit for bit, and spies on ``ytvis_videos.packed_video_iou`` to check which route was
really taken. Result frames that are not valid must give the same error in every path.
"""

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
from _packed_helpers import (
    assert_same_outcome,
    base_scene,
    compare,
    compressed,
    errors,
    new_ann,
    new_result,
    outcome,
    overlong_first_value,
    rect,
    requires_kernels,
    scene,
    str_from_counts,
    swap_first_digit_char,
    uncompressed,
    video_of,
    write_files,
)
from _ytvis_cases import random_case

from wsovvis.evaluation import evaluate_ytvis
from wsovvis.evaluation.ytvis_data import load_json_packed_file

pytestmark = requires_kernels

VIDEOS = (4, 8, 12)  # the videos of base_scene, in evaluation order


def _walk_markers(doc):
    """Every ``segmentations`` / ``areas`` value that is not a packed marker."""
    out = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k in ("segmentations", "areas") and not (isinstance(v, str) and v[:1] == "#"):
                out.append(v)
            else:
                out.extend(_walk_markers(v))
    elif isinstance(doc, list):
        for v in doc:
            out.extend(_walk_markers(v))
    return out


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("gt_counts", ["string", "list", "mixed"])
@pytest.mark.parametrize("class_agnostic", [False, True])
def test_file_input_takes_the_packed_path_and_equals_memory(
    tmp_path, spy, monkeypatch, gt_counts, class_agnostic
):
    saw_backslash = False
    for seed in range(5):
        gt, res = scene(100 * seed + len(gt_counts), gt_counts=gt_counts)
        saw_backslash |= "\\\\" in json.dumps(gt) or "\\\\" in json.dumps(res)
        for path, what in zip(write_files(tmp_path, gt, res), ("gt", "res")):
            doc, packed = load_json_packed_file(path, what)
            assert packed is not None
            assert not any("counts" in str(x) for x in _walk_markers(doc)), "all masks packed"
        packed, status = compare(
            tmp_path, spy, monkeypatch, gt, res, class_agnostic, indent=2 if seed == 3 else None
        )
        assert packed[0] == "ok"
        if res:
            assert status is not None, "the kernel was not called"
            assert status.tolist() == [0] * len(gt["videos"]), "plain masks: all scored by it"
    assert saw_backslash, "no compressed string with a JSON-escaped backslash was exercised"


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_mixed_random_cases_equal_memory(tmp_path, spy, monkeypatch, class_agnostic):
    # polygons, frames of another size, float areas, uncompressed lists: some videos take path 1
    for seed in (1, 2, 5, 8):
        gt, res = random_case(seed, num_videos=5)
        packed, _ = compare(tmp_path, spy, monkeypatch, gt, res, class_agnostic)
        assert packed[0] == "ok"


@pytest.mark.parametrize("which", ["gt", "results"])
def test_only_one_file_packed(tmp_path, spy, which):
    gt, res = scene(7, gt_counts="mixed")
    g, r = write_files(tmp_path, gt, res)
    a = outcome(gt, res)
    b = outcome(g, res) if which == "gt" else outcome(gt, r)
    assert a[0] == "ok"
    assert_same_outcome(a, b)
    assert not spy.kernel  # the kernel needs both sides packed


def test_forked_workers_with_packed_and_flagged_videos(tmp_path, spy):
    gt, res = scene(21, gt_counts="list", num_videos=5)
    vid = gt["videos"][0]["id"]
    h, w = gt["videos"][0]["height"], gt["videos"][0]["width"]
    # a GT frame of another size than its video: the kernel flags the video, path 1 scores it
    gt["annotations"].append(new_ann(gt, vid, [uncompressed(np.ones((h + 1, w), np.uint8))]))
    res.append(new_result(vid, [compressed(np.ones((h, w), np.uint8))]))
    video_of(gt, vid)["length"] = None
    g, r = write_files(tmp_path, gt, res)
    a = outcome(gt, res)
    b = ("ok", evaluate_ytvis(g, r, with_scores=True, num_workers=2))
    assert_same_outcome(a, b)
    status = spy.kernel[0][2]
    pos = sorted(v["id"] for v in gt["videos"]).index(vid)
    assert status.tolist() == [int(p == pos) for p in range(len(status))]


# ------------------------------------------------------------------------------ fallbacks
# each case edits base_scene; it returns where the videos must go: "kernel" (all scored by the
# kernel), ("flagged", videos) (these left to path 1 by the kernel, status 1), "bypassed"
# (some videos never reach the kernel), "escape" (see the test), "unpacked" (nothing packed)


def _case_gt_frame_of_other_size(gt, res):
    a = gt["annotations"][0]
    a["segmentations"][1] = compressed(np.ones((21, 30), np.uint8))  # video is 20x30
    a["segmentations"][2] = uncompressed(rect(20, 31, 2, 9, 3, 12))
    return "flagged", [4]


def _case_result_char_outside_alphabet(gt, res):
    seg = res[0]["segmentations"][2]
    bad = swap_first_digit_char(seg["counts"])
    assert any(c in bad for c in "pqrstuvwxyz{|}~\x7f")
    same = mask_util.decode({"size": seg["size"], "counts": bad.encode()})
    assert np.array_equal(
        same, mask_util.decode({"size": seg["size"], "counts": seg["counts"].encode()})
    )
    res[0]["segmentations"][2] = {"size": seg["size"], "counts": bad}
    return "flagged", [4]


def _case_gt_string_char_outside_alphabet(gt, res):
    seg = gt["annotations"][2]["segmentations"][0]  # video 8
    seg["counts"] = swap_first_digit_char(seg["counts"])
    return "flagged", [8]


def _case_result_value_of_7_chars(gt, res):
    seg = res[11]["segmentations"][0]  # video 12
    seg["counts"] = overlong_first_value(seg["counts"], 7)
    return "flagged", [12]


def _case_result_value_of_6_chars(gt, res):
    seg = res[1]["segmentations"][0]
    seg["counts"] = overlong_first_value(seg["counts"], 6)
    return "kernel"  # the longest value pycocotools reads in a defined way: scored by the kernel


def _case_gt_zero_runs(gt, res):
    # zero-length runs after the first inside GT lists of video 4: pycocotools stops merging
    # at a zero run (see test_ytvis_packed_iou), so the video takes path 1
    for s in gt["annotations"][1]["segmentations"]:
        if len(s["counts"]) > 2:
            s["counts"][2:2] = [0, 0]
    return "flagged", [4]


def _case_result_zero_run(gt, res):
    seg = res[5]["segmentations"][1]  # video 8 (9x12)
    runs = [5, 3, 0, 2, 0, 0, 4, 9 * 12 - 14]
    seg["counts"] = str_from_counts(runs, 9, 12)
    return "flagged", [8]


def _case_first_run_zero(gt, res):
    # masks covering pixel (0, 0) start with a zero background run: not unusual
    gt["annotations"][1]["segmentations"][2] = uncompressed(rect(20, 30, 0, 8, 0, 9))
    gt["annotations"][1]["areas"][2] = 72
    res[2]["segmentations"][2] = compressed(rect(20, 30, 0, 9, 0, 9))
    res[3]["segmentations"][0] = compressed(rect(20, 30, 0, 20, 0, 30))
    assert gt["annotations"][1]["segmentations"][2]["counts"][0] == 0
    return "kernel"


def _case_frames_written_counts_first(gt, res):
    # {"counts": ..., "size": ...}: kind & 4 in the tables, same masks
    for item in gt["annotations"][:4] + res[::2]:
        item["segmentations"] = [
            None if s is None else {"counts": s["counts"], "size": s["size"]}
            for s in item["segmentations"]
        ]
    return "kernel"


def _case_gt_polygons(gt, res):
    a = gt["annotations"][2]  # video 8 (9x12)
    a["segmentations"][0] = [[1.0, 1.0, 8.0, 1.0, 8.0, 6.0, 1.0, 6.0]]
    a["segmentations"][3] = [[0.0, 0.0, 5.0, 0.0, 5.0, 5.0], [6.0, 6.0, 9.0, 6.0, 9.0, 8.0]]
    return "bypassed"


def _case_float_areas(gt, res):
    gt["annotations"][0]["areas"] = [20000.5, 20000.5, None, 9216.0]
    gt["annotations"][3]["areas"] = [1.5, 0.0, 3, None]
    return "kernel"


def _case_video_without_size(gt, res):
    v = video_of(gt, 8)
    del v["height"], v["width"]
    return "bypassed"


def _case_no_video_with_size(gt, res):
    for v in gt["videos"]:
        del v["height"]
    return "bypassed"


def _case_empty_segmentations(gt, res):
    video_of(gt, 12)["length"] = None  # any number of frames is then accepted
    gt["annotations"][4]["segmentations"] = []
    gt["annotations"][4]["areas"] = []
    for r in res:
        if r["video_id"] == 12 and r["category_id"] == 5:
            r["segmentations"] = []
    res.append(new_result(12, [], cat=2, score=0.95))
    return "kernel"


def _case_tracks_of_other_lengths(gt, res):
    video_of(gt, 4)["length"] = None
    for r in res:
        if r["video_id"] == 4:
            r["segmentations"] = (
                r["segmentations"][:2] if r["score"] > 0.5 else r["segmentations"] * 2
            )
    gt["annotations"][1]["segmentations"].append(uncompressed(rect(20, 30, 0, 5, 0, 5)))
    gt["annotations"][1]["areas"].append(25)
    return "kernel"


def _case_null_frames(gt, res):
    gt["annotations"][0]["segmentations"] = [None] * 4
    gt["annotations"][0]["areas"] = [None] * 4
    gt["annotations"][5]["segmentations"][1:3] = [None, None]
    for r in res[:3]:
        r["segmentations"] = [None] * 4
    res[4]["segmentations"][0] = None
    return "kernel"


def _case_all_zero_masks(gt, res):
    z = np.zeros((20, 30), np.uint8)
    gt["annotations"][0]["segmentations"] = [compressed(z), uncompressed(z), None, compressed(z)]
    gt["annotations"][0]["areas"] = [0, 0, None, 0]
    gt["annotations"][1]["segmentations"][2] = {"size": [20, 30], "counts": [600]}
    res[0]["segmentations"] = [compressed(z)] * 4
    res.append(new_result(12, [compressed(z)] * 4, cat=5, score=0.99))
    return "kernel"


def _case_gt_frames_empty_dict_or_list(gt, res):
    gt["annotations"][0]["segmentations"][1] = {}
    gt["annotations"][2]["segmentations"][2] = []
    return "bypassed"


def _case_gt_string_with_unicode_escape(gt, res):
    # a "\u00XX" escape is valid JSON the packer does not take: the track keeps its text (the
    # JSON text is edited in the test)
    return "escape"


def _case_document_with_areas_string(gt, res):
    gt["info"] = {"areas": "see the paper"}  # a marker would be ambiguous: nothing is packed
    return "unpacked"


FALLBACKS = {
    name[len("_case_") :]: fn for name, fn in globals().items() if name.startswith("_case_")
}


def _escape_first_gt_string(gt) -> str:
    """The GT JSON text with one counts string hand-escaped as \\u0030... (same document)."""
    text = json.dumps(gt)
    s = gt["annotations"][0]["segmentations"][0]["counts"]
    i = text.index(json.dumps(s))
    escaped = "".join(f"\\u{ord(c):04x}" if c in "0123" else c for c in s)
    text = text[:i] + '"' + escaped + '"' + text[i + len(json.dumps(s)) :]
    assert json.loads(text) == gt
    return text


@pytest.mark.parametrize("class_agnostic", [False, True])
@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_fallback_cases_equal_path_one(tmp_path, spy, monkeypatch, case, class_agnostic):
    gt, res = base_scene()
    expect = FALLBACKS[case](gt, res)
    write_kw = {"gt_text": _escape_first_gt_string(gt)} if expect == "escape" else {}
    packed, status = compare(tmp_path, spy, monkeypatch, gt, res, class_agnostic, **write_kw)
    assert packed[0] == "ok", packed
    if isinstance(expect, tuple):
        assert expect[0] == "flagged" and status is not None
        assert status.tolist() == [int(v in expect[1]) for v in VIDEOS]
    elif expect == "kernel":
        assert status is not None and status.tolist() == [0, 0, 0]
    elif expect in ("bypassed", "escape"):
        assert status is None or (len(status) < len(VIDEOS) and not status.any())
    else:
        assert expect == "unpacked" and status is None
        assert load_json_packed_file(str(tmp_path / "gt.json"), "gt")[1] is None
    if expect == "escape":
        doc, _ = load_json_packed_file(str(tmp_path / "gt.json"), "gt")
        assert isinstance(doc["annotations"][0]["segmentations"], list)  # kept, not packed
        assert doc["annotations"][1]["segmentations"][:1] == "#"


def test_fallback_base_scene_is_scored_by_the_kernel(tmp_path, spy, monkeypatch):
    gt, res = base_scene()
    packed, status = compare(tmp_path, spy, monkeypatch, gt, res)
    assert status is not None and status.tolist() == [0, 0, 0]
    stats = packed[1].stats
    assert 0 < stats[0] < 1  # the IoU values straddle the thresholds: a meaningful comparison


# ------------------------------------------------------------------------------ error messages


def test_result_frame_of_another_size_names_the_result_and_video(tmp_path, spy):
    gt, res = base_scene()
    res[7]["segmentations"][2] = compressed(np.ones((21, 30), np.uint8))  # video 8 is 9x12
    assert res[7]["video_id"] == 8
    messages = errors(tmp_path, gt, res)
    assert (
        messages
        == [
            "results[7] (video_id=8) frame 2: RLE size [21, 30] differs from the video size [9, 12]"
        ]
        * 3
    )


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_bad_frame_in_a_dropped_result_is_not_an_error(tmp_path, spy, monkeypatch, class_agnostic):
    gt, res = base_scene()
    res.append(new_result(4, [compressed(np.ones((3, 3), np.uint8))] * 4, cat=77))  # unknown cat
    packed, status = compare(tmp_path, spy, monkeypatch, gt, res, class_agnostic)
    assert packed[0] == "ok" and status is not None and status.tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    "frame, shown",
    [
        ({"size": [20, 30], "counts": [600]}, "{'size': [20, 30], 'counts': [600]}"),
        ({"size": [20, 30], "counts": []}, "{'size': [20, 30], 'counts': []}"),
        ({"size": [20, 30], "counts": [0, 600]}, "{'size': [20, 30], 'counts': [0, 600]}"),
        # written counts first: the packed path rebuilds the object in the written key order
        ({"counts": [600], "size": [20, 30]}, "{'counts': [600], 'size': [20, 30]}"),
        ({"counts": [1, 599], "size": [20, 30]}, "{'counts': [1, 599], 'size': [20, 30]}"),
    ],
)
def test_uncompressed_result_frame_is_an_error(tmp_path, frame, shown):
    gt, res = base_scene()
    res[1]["segmentations"][3] = frame
    expected = "expected a compressed RLE dict {'size', 'counts': str} or null, got "
    assert errors(tmp_path, gt, res) == [f"results[1] (video_id=4) frame 3: {expected}{shown}"] * 3


def test_polygon_result_frames_are_an_error(tmp_path):
    gt, res = base_scene()
    res[9]["segmentations"][1] = [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0]]
    message = (
        "results[9] (video_id=8) frame 1: expected a compressed RLE dict {'size', 'counts': str} "
        "or null, got [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0]]"
    )
    assert errors(tmp_path, gt, res) == [message] * 3


_POLYGON = [[1.0, 1.0, 5.0, 1.0, 5.0, 5.0]]  # makes the result's track unpacked
_OTHER_SIZE = {"size": [21, 30], "counts": "0"}  # a packed frame of the wrong size


@pytest.mark.parametrize("class_agnostic", [False, True])
@pytest.mark.parametrize(
    "edits, first",
    [
        # (result, frame, value): the error path 1 meets first is in video order, then block
        # order (category, score desc, file order; class-agnostic: score desc, category, file)
        ([(0, 0, _POLYGON), (7, 2, _OTHER_SIZE)], (0, 0)),  # unpacked video 4, packed 8
        ([(7, 2, _POLYGON), (0, 3, _OTHER_SIZE)], (0, 0)),  # packed video 4, unpacked 8
        ([(1, 3, _OTHER_SIZE), (0, 2, _POLYGON)], (0, 0)),  # result 0 (0.9) before 1 (0.4)
        ([(0, 3, _OTHER_SIZE), (1, 0, _POLYGON)], (0, 0)),
        # video 12: 11 (category 2, 0.4) before 12 (category 5, 0.8); class-agnostic: after
        ([(12, 1, _OTHER_SIZE), (13, 3, _OTHER_SIZE), (11, 2, _POLYGON)], (11, 12)),
    ],
)
def test_first_bad_result_is_reported_in_both_paths(tmp_path, edits, first, class_agnostic):
    gt, res = base_scene()
    for i, t, value in edits:
        res[i]["segmentations"][t] = value
    memory, packed, disabled = errors(tmp_path, gt, res, class_agnostic)
    assert memory == packed == disabled
    first = first[int(class_agnostic)]
    t = next(t for i, t, _ in edits if i == first)
    assert memory.startswith(f"results[{first}] (video_id={res[first]['video_id']}) frame {t}: ")


@pytest.mark.parametrize("key,value", [("height", -1), ("width", 2**31), ("height", 2**40)])
def test_video_size_outside_the_kernel_range_takes_path_1(tmp_path, spy, monkeypatch, key, value):
    gt, res = scene(31, gt_counts="string")
    vid = gt["videos"][0]["id"]
    video_of(gt, vid)[key] = value
    res = [r for r in res if r["video_id"] != vid]  # they would fail the size check (below)
    packed, status = compare(tmp_path, spy, monkeypatch, gt, res)
    assert packed[0] == "ok"
    assert status is not None and len(status) == len(gt["videos"]) - 1, "others: the kernel"


@pytest.mark.parametrize("value", [-1, 2**40])
def test_result_on_a_video_of_out_of_range_size_gets_the_size_error(tmp_path, value):
    gt, res = scene(31, gt_counts="string")
    vid = gt["videos"][0]["id"]
    assert any(r["video_id"] == vid for r in res)
    video_of(gt, vid)["height"] = value
    messages = errors(tmp_path, gt, res)
    assert len(set(messages)) == 1 and "differs from the video size" in messages[0], messages
