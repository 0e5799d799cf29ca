"""Corrupt masks (RLE run lengths not summing to h * w) give an error naming the mask.

pycocotools can loop forever on such masks. Path 1 checks GT frames given as uncompressed counts
lists (``ytvis_iou._check_total``), GT of a category with a detection in the video; the packed
path checks every mask the kernel decodes (status 2): detections, and GT tracks of a group with a
detection in the video. GT lists give the same message in every path. Compressed strings are not
checked by path 1 (pycocotools semantics): those cases run the packed path alone, and never run
path 1 on overlapping corrupt strings (it may hang; a timeout guards each such test).
"""

import numpy as np
import pycocotools.mask as mask_util
import pytest
from _packed_helpers import (
    base_scene,
    compare,
    compressed,
    corrupt_message,
    errors,
    new_result,
    packed_error,
    rect,
    requires_kernels,
    runs_of,
    str_from_counts,
    uncompressed,
    video_of,
)

pytestmark = requires_kernels

VIDEOS = (4, 8, 12)  # the videos of base_scene, in evaluation order (annotation ids 1..6)
HW = {4: (20, 30), 8: (9, 12), 12: (20, 30)}


def _corrupt_string(frame: dict, extra=None) -> dict:
    """The compressed frame with its last run 1 pixel short (or ``extra`` runs appended)."""
    h, w = frame["size"]
    mask = mask_util.decode({"size": [h, w], "counts": frame["counts"].encode()})
    runs = runs_of(mask)
    if extra is None:
        runs[-1] -= 1
    else:
        runs += extra
    return {"size": [h, w], "counts": str_from_counts(runs, h, w)}


def _kernel_status(spy):
    assert len(spy.kernel) == 1, "the kernel was not called"
    _, _, status, bad = spy.kernel[0]
    return status.tolist(), [tuple(b) for b in bad.tolist()]


# ------------------------------------------------------------------ GT lists: every path


def _gt_short(gt, res):
    gt["annotations"][1]["segmentations"][1]["counts"][-1] -= 3  # overlaps the detections
    return "GT annotation id=2", 4, 1, [2, 0, 0], (-2, 1)


def _gt_long(gt, res):
    gt["annotations"][1]["segmentations"][2]["counts"].append(5)  # a run past h * w
    return "GT annotation id=2", 4, 2, [2, 0, 0], (-2, 2)


def _gt_short_disjoint_boxes(gt, res):
    counts = runs_of(rect(20, 30, 3, 9, 0, 2))
    counts[-1] -= 7
    gt["annotations"][1]["segmentations"][3] = {"size": [20, 30], "counts": counts}
    gt["annotations"][0]["segmentations"][3] = None
    for r in res:
        if r["video_id"] == 4 and r["segmentations"][3] is not None:
            r["segmentations"][3] = compressed(rect(20, 30, 0, 6, 25, 30))
    return "GT annotation id=2", 4, 3, [2, 0, 0], (-2, 3)


def _gt_long_in_video_8(gt, res):
    gt["annotations"][3]["segmentations"][0]["counts"][0] += 1
    return "GT annotation id=4", 8, 0, [0, 2, 0], (-2, 0)


def _gt_short_in_a_flagged_video(gt, res):
    # frame 0 of another size would leave video 4 to path 1; the kernel still reads the video
    # to the end and reports the corrupt mask, as path 1 does
    gt["annotations"][0]["segmentations"][0] = compressed(np.ones((21, 30), np.uint8))
    gt["annotations"][1]["segmentations"][2]["counts"][-1] -= 1
    return "GT annotation id=2", 4, 2, [2, 0, 0], (-2, 2)


GT_LIST_CASES = [_gt_short, _gt_long, _gt_short_disjoint_boxes, _gt_long_in_video_8]
GT_LIST_CASES += [_gt_short_in_a_flagged_video]


@pytest.mark.parametrize("class_agnostic", [False, True])
@pytest.mark.parametrize("case", GT_LIST_CASES, ids=lambda f: f.__name__[1:])
def test_corrupt_gt_list_gives_the_same_error_in_every_path(tmp_path, spy, case, class_agnostic):
    gt, res = base_scene()
    what, vid, t, status, bad = case(gt, res)
    message = corrupt_message(what, vid, t, *HW[vid])
    assert errors(tmp_path, gt, res, class_agnostic) == [message] * 3
    assert _kernel_status(spy) == (status, [bad if s == 2 else (0, 0) for s in status])


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_corrupt_gt_list_without_a_detection_of_its_category(
    tmp_path, spy, monkeypatch, class_agnostic
):
    gt, res = base_scene()
    res[:] = [r for r in res if not (r["video_id"] == 4 and r["category_id"] == 5)]
    gt["annotations"][1]["segmentations"][1]["counts"][-1] -= 3  # category 5, video 4
    if not class_agnostic:  # never converted nor decoded: no error, the same numbers
        packed, status = compare(tmp_path, spy, monkeypatch, gt, res)
        assert packed[0] == "ok" and status.tolist() == [0, 0, 0]
    else:  # one group: it pairs with the detections of category 2
        message = corrupt_message("GT annotation id=2", 4, 1, 20, 30)
        assert errors(tmp_path, gt, res, class_agnostic) == [message] * 3
        assert _kernel_status(spy) == ([2, 0, 0], [(-2, 1), (0, 0), (0, 0)])


# ------------------------------------------------------ compressed strings: the packed path


def _det_short(gt, res):
    res[6]["segmentations"][2] = _corrupt_string(res[6]["segmentations"][2])
    return "results[6]", 8, 2, [0, 2, 0], (2, 3)  # bad item: (by category, class-agnostic)


def _det_long(gt, res):
    res[0]["segmentations"][0] = _corrupt_string(res[0]["segmentations"][0], extra=[3])
    return "results[0]", 4, 0, [2, 0, 0], (0, 0)


def _det_negative_value(gt, res):  # "@" is -16: uint32 wrap-around, far more than h * w
    seg = res[13]["segmentations"][3]
    seg["counts"] = "@" + seg["counts"][1:]
    return "results[13]", 12, 3, [0, 0, 2], (4, 4)


def _det_empty_string(gt, res):
    res[2]["segmentations"][3] = {"size": [20, 30], "counts": ""}
    return "results[2]", 4, 3, [2, 0, 0], (3, 1)


def _det_of_a_category_without_gt(gt, res):
    gt["categories"].append({"id": 9})
    segs = [compressed(rect(20, 30, 2, 9, 4, 9 + t)) for t in range(4)]
    segs[1] = _corrupt_string(segs[1])
    res.append(new_result(12, segs, cat=9, score=0.5))
    return "results[15]", 12, 1, [0, 0, 2], (5, 3)


def _det_after_a_bypassed_video_and_a_dropped_result(gt, res):
    res.insert(0, new_result(8, [compressed(np.ones((9, 12), np.uint8))] * 4, cat=77))
    gt["annotations"][0]["segmentations"][1] = [[1.0, 1.0, 8.0, 1.0, 8.0, 6.0]]  # unpacked
    res[8]["segmentations"][1] = _corrupt_string(res[8]["segmentations"][1])  # was results[7]
    return "results[8]", 8, 1, [2, 0], (3, 1)  # video 4 never reaches the kernel


def _gt_string(gt, res):
    seg = gt["annotations"][0]["segmentations"]
    seg[3] = _corrupt_string(seg[3])
    return "GT annotation id=1", 4, 3, [2, 0, 0], (-1, -1)


def _gt_string_in_video_12(gt, res):
    seg = gt["annotations"][4]["segmentations"]
    seg[1] = _corrupt_string(seg[1], extra=[0, 2])
    return "GT annotation id=5", 12, 1, [0, 0, 2], (-1, -1)


STRING_CASES = [_det_short, _det_long, _det_negative_value, _det_empty_string]
STRING_CASES += [_det_of_a_category_without_gt, _det_after_a_bypassed_video_and_a_dropped_result]
STRING_CASES += [_gt_string, _gt_string_in_video_12]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("class_agnostic", [False, True])
@pytest.mark.parametrize("case", STRING_CASES, ids=lambda f: f.__name__[1:])
def test_corrupt_compressed_string_is_an_error_of_the_packed_path(
    tmp_path, spy, case, class_agnostic
):
    gt, res = base_scene()
    what, vid, t, status, items = case(gt, res)
    message = corrupt_message(what, vid, t, *HW[vid])
    assert packed_error(tmp_path, gt, res, class_agnostic) == message
    bad = (items[int(class_agnostic)], t)
    assert _kernel_status(spy) == (status, [bad if s == 2 else (0, 0) for s in status])


@pytest.mark.timeout(60)
def test_corrupt_string_in_a_dropped_result_is_not_an_error(tmp_path, spy, monkeypatch):
    gt, res = base_scene()
    segs = [_corrupt_string(compressed(rect(9, 12, 0, 3, 0, 3)))] * 4
    res.append(new_result(8, segs, cat=77))  # unknown category: dropped, never decoded
    packed, status = compare(tmp_path, spy, monkeypatch, gt, res)
    assert packed[0] == "ok" and status.tolist() == [0, 0, 0]


# ------------------------------------------------------------------ which error comes first


def test_corrupt_gt_list_past_the_detections_length(tmp_path):
    # the kernel reads paired GT tracks to their end, as path 1 converts them
    gt, res = base_scene()
    video_of(gt, 4)["length"] = None
    for r in res:
        if r["video_id"] == 4:
            r["segmentations"] = r["segmentations"][:2]
    gt["annotations"][1]["segmentations"][3]["counts"][-1] -= 3
    message = corrupt_message("GT annotation id=2", 4, 3, 20, 30)
    assert errors(tmp_path, gt, res) == [message] * 3


def test_first_corrupt_gt_list_of_a_video(tmp_path):
    # two corrupt tracks: the first by (track, frame) is reported, not the first frame
    gt, res = base_scene(gt_counts="list")
    gt["annotations"][0]["segmentations"][2]["counts"][-1] -= 3
    gt["annotations"][1]["segmentations"][1]["counts"][-1] -= 3
    message = corrupt_message("GT annotation id=1", 4, 2, 20, 30)
    assert errors(tmp_path, gt, res) == [message] * 3


def test_corrupt_gt_list_of_a_flagged_video_before_a_corrupt_video(tmp_path):
    # the earlier video is reported even though the kernel hands it to path 1
    gt, res = base_scene(gt_counts="list")
    gt["annotations"][0]["segmentations"][0] = uncompressed(np.ones((21, 30), np.uint8))
    gt["annotations"][0]["segmentations"][2]["counts"][-1] -= 3  # video 4, flagged
    gt["annotations"][2]["segmentations"][2]["counts"][-1] -= 3  # video 8, status 2
    message = corrupt_message("GT annotation id=1", 4, 2, 20, 30)
    assert errors(tmp_path, gt, res) == [message] * 3


def test_corrupt_gt_list_before_a_bad_result_frame_of_a_later_video(tmp_path):
    # errors come in video order, whichever check finds them
    gt, res = base_scene()
    gt["annotations"][1]["segmentations"][1]["counts"][-1] -= 3
    res[7]["segmentations"][2] = compressed(np.ones((21, 30), np.uint8))  # video 8 is 9x12
    message = corrupt_message("GT annotation id=2", 4, 1, 20, 30)
    assert errors(tmp_path, gt, res) == [message] * 3


@pytest.mark.timeout(60)
def test_corrupt_result_string_in_a_flagged_video(tmp_path):
    # a video with a frame of another size is still read to the end: no pycocotools hang
    gt, res = base_scene()
    gt["annotations"][0]["segmentations"][0] = uncompressed(np.ones((21, 30), np.uint8))
    # box apart from every GT box of the frame: pycocotools never merges it (no hang)
    res[0]["segmentations"][2] = _corrupt_string(compressed(rect(20, 30, 15, 20, 27, 30)))
    message = corrupt_message("results[0]", 4, 2, 20, 30)
    assert packed_error(tmp_path, gt, res) == message
