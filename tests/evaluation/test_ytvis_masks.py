"""Edge cases of the scorer's mask path: JSON text -> run lengths -> pycocotools-exact IoU.

Oracles are independent of this code: pycocotools (``mask.merge`` / ``mask.area``, what the
official evaluator calls), the reference transcription and hand-built masks.
"""

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
from _ytvis_cases import random_case
from _ytvis_reference import reference_evaluate
from pycocotools import _mask

from wsovvis.evaluation import _ytvis_rle_py, evaluate_ytvis, ytvis_masks
from wsovvis.utils.rle import encode_mask


def _square(h, w, y0, x0, size=3):
    m = np.zeros((h, w), np.uint8)
    m[y0 : y0 + size, x0 : x0 + size] = 1
    return m


def _case(gt_frames, det_frames, h=8, w=8):
    n = len(gt_frames)
    gt = {
        "videos": [{"id": 5, "height": h, "width": w, "length": n}],
        "categories": [{"id": 1}, {"id": 2}],
        "annotations": [
            {"id": 7, "video_id": 5, "category_id": 1, "segmentations": gt_frames,
             "areas": [4] * n}
        ],
    }
    res = [{"video_id": 5, "category_id": 1, "score": 0.9, "segmentations": det_frames}]
    return gt, res


def _write(tmp_path, gt, res):
    g, r = tmp_path / "gt.json", tmp_path / "res.json"
    g.write_text(json.dumps(gt))
    r.write_text(json.dumps(res))
    return str(g), str(r)


def _counts_string(counts, h, w):
    """Compressed string of uncompressed run lengths, as pycocotools writes it."""
    rle = _mask.frUncompressedRLE([{"size": [h, w], "counts": counts}], h, w)[0]
    return rle["counts"].decode()


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_python_fallback_equals_the_compiled_module(monkeypatch, class_agnostic):
    for seed in range(6):
        gt, res = random_case(seed, num_videos=4, big=seed % 3 == 0)
        compiled = evaluate_ytvis(gt, res, class_agnostic=class_agnostic, with_scores=True)
        monkeypatch.setattr(ytvis_masks, "rle", _ytvis_rle_py)
        fallback = evaluate_ytvis(gt, res, class_agnostic=class_agnostic, with_scores=True)
        monkeypatch.undo()
        for key in ("stats", "precision", "recall", "scores"):
            assert np.array_equal(getattr(compiled, key), getattr(fallback, key)), key


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_files_equal_memory(tmp_path, class_agnostic):
    for seed in (20, 21, 22):
        gt, res = random_case(seed, num_videos=5, big=seed == 20)
        stats, precision, _ = reference_evaluate(gt, res, class_agnostic)
        from_files = evaluate_ytvis(*_write(tmp_path, gt, res), class_agnostic=class_agnostic)
        assert np.array_equal(from_files.precision, precision)
        assert np.array_equal(from_files.stats, stats)


def test_zero_runs_follow_pycocotools_merge():
    # zero-length runs met at the same place in both masks stop pycocotools' merge early: the
    # official I and U of this frame are those of merge(), not |d & g| and |d | g|
    h, w, counts = 4, 5, [3, 2, 0, 0, 4, 11]
    g = _mask.frUncompressedRLE([{"size": [h, w], "counts": counts}], h, w)[0]
    inter = mask_util.area(mask_util.merge([g, g], intersect=True))
    union = mask_util.area(mask_util.merge([g, g], intersect=False))
    assert (inter, union, mask_util.area(g)) == (2, 2, 13)
    det_frame = {"size": [h, w], "counts": g["counts"].decode()}
    gt, res = _case([{"size": [h, w], "counts": counts}], [det_frame], h, w)
    gt["annotations"][0]["areas"] = [13]
    r = evaluate_ytvis(gt, res)
    assert r.stats[1] == pytest.approx(1.0)  # IoU 2 / 2 = 1: matched at every threshold
    assert r.stats[0] == pytest.approx(1.0)


def test_json_escapes_in_compressed_strings(tmp_path):
    # the RLE alphabet holds "\\"; JSON writers may also escape it as \u005c
    rng = np.random.default_rng(0)
    frame = {"counts": ""}
    while "\\" not in frame["counts"]:
        frame = encode_mask((rng.random((40, 40)) < 0.5).astype(np.uint8))
    gt, res = _case([frame], [frame], 40, 40)
    g, r = _write(tmp_path, gt, res)
    expected = evaluate_ytvis(g, r)
    text = open(r).read().replace("\\\\", "\\u005c")
    assert "\\u005c" in text
    open(r, "w").write(text)
    assert np.array_equal(evaluate_ytvis(g, r).precision, expected.precision)
    assert expected.stats[0] == pytest.approx(1.0)


def test_corrupt_gt_list_names_file_annotation_video_and_frame(tmp_path):
    m = _square(8, 8, 1, 1)
    counts = [9, 3, 5, 3, 5, 3, 36]
    assert sum(counts) == 64
    bad = {"size": [8, 8], "counts": counts[:-1] + [35]}
    gt, res = _case([encode_mask(m), bad], [encode_mask(m), None])
    g, r = _write(tmp_path, gt, res)
    message = rf"{g}: GT annotation id=7 \(video_id=5\) frame 1: the RLE run lengths do not sum"
    with pytest.raises(ValueError, match=message + r" to height x width = 8 x 8"):
        evaluate_ytvis(g, r)
    with pytest.raises(ValueError, match=r"^GT annotation id=7 \(video_id=5\) frame 1: .*corrupt"):
        evaluate_ytvis(gt, res)


def test_corrupt_result_string_names_the_result(tmp_path):
    m = _square(8, 8, 1, 1)
    short = _counts_string([9, 3, 5, 3, 5, 3, 35], 8, 8)  # one pixel short
    gt, res = _case([encode_mask(m)], [{"size": [8, 8], "counts": short}])
    g, r = _write(tmp_path, gt, res)
    with pytest.raises(ValueError, match=rf"{r}: results\[0\] \(video_id=5\) frame 0: .*corrupt"):
        evaluate_ytvis(g, r)
    res[0]["segmentations"][0]["counts"] = "0#"  # '#' is outside the RLE alphabet
    message = r"results\[0\] \(video_id=5\) frame 0: 'counts' is not a valid RLE"
    with pytest.raises(ValueError, match=message):
        evaluate_ytvis(gt, res)


@pytest.mark.parametrize(
    "frame, message",
    [
        ({"size": [8, 8], "counts": [64]}, "expected a compressed RLE dict"),
        ([[1.0, 1.0, 4.0, 1.0, 4.0, 4.0]], "expected a compressed RLE dict"),
        (encode_mask(np.ones((9, 8), np.uint8)), r"RLE size \[9, 8\] differs from the video size"),
        ({"size": [8, 8]}, "expected a compressed RLE dict"),
    ],
)
def test_bad_result_frames_are_named(frame, message):
    gt, res = _case([encode_mask(_square(8, 8, 1, 1))], [frame])
    with pytest.raises(ValueError, match=rf"results\[0\] \(video_id=5\) frame 0: .*{message}"):
        evaluate_ytvis(gt, res)
    res[0]["category_id"] = 99  # dropped (unknown category): not checked, as officially
    assert evaluate_ytvis(gt, res).counts["dropped_unknown_category"] == 1


def test_empty_dict_frames_are_absent():
    m = encode_mask(_square(8, 8, 1, 1))
    with_none = evaluate_ytvis(*_case([m, None], [m, None]))
    with_empty = evaluate_ytvis(*_case([m, {}], [m, {}]))
    assert np.array_equal(with_none.precision, with_empty.precision)


def test_iou_pruning_keeps_every_pair_that_can_match():
    # boxes overlap, but the masks barely: the pair's IoU (< 0.5) is never needed; a pair at
    # exactly 0.5 must still match at the 0.5 threshold
    ring = np.zeros((20, 20), np.uint8)
    ring[0:20, 0:2] = 1
    ring[0:2, 0:20] = 1
    block = np.zeros((20, 20), np.uint8)
    block[1:20, 1:20] = 1
    half = np.zeros((20, 20), np.uint8)
    half[0:20, 0:10] = 1
    gt, res = _case([encode_mask(half)], [encode_mask(ring)], 20, 20)
    res.append(dict(res[0], score=0.5, segmentations=[encode_mask(block)]))
    full = np.zeros((20, 20), np.uint8)
    full[0:20, 0:20] = 1
    res.append(dict(res[0], score=0.4, segmentations=[encode_mask(full)]))  # IoU = 200 / 400
    gt["annotations"][0]["areas"] = [200]
    r = evaluate_ytvis(gt, res)
    stats, precision, _ = reference_evaluate(gt, res, False)
    assert np.array_equal(r.precision, precision) and np.array_equal(r.stats, stats)
    assert r.stats[1] > 0 and r.stats[2] == 0  # matched at 0.5, not at 0.75
