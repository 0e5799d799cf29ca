"""``_ytvis_kernels.video_iou`` (``ytvis_packed.packed_video_iou``) called directly.

It returns ``(iou, mean_area, status, bad)``: status per video 0 (scored by the kernel), 1 (a
mask pycocotools reads in an unusual way: frame of another size, char outside 48..111, value of
more than 6 chars, empty run after the first, canvas >= 2**29 px; left to path 1) or 2 (a corrupt
mask: run lengths not summing to h * w; ``bad`` = (item, frame), item i >= 0 the i-th detection of
the video, -(j + 1) its j-th GT track). The IoU is checked against a brute-force numpy transcription
of the official video IoU.
"""

import json

import numpy as np
import orjson
import pycocotools.mask as mask_util
import pytest
from _packed_helpers import (
    compare,
    compressed,
    new_ann,
    new_result,
    overlong_first_value,
    perturb,
    random_mask,
    rect,
    requires_kernels,
    runs_of,
    str_from_counts,
    swap_first_digit_char,
    uncompressed,
)
from pycocotools import _mask

from wsovvis.evaluation.ytvis_packed import load_json_packed, packed_video_iou

pytestmark = requires_kernels


def _leb128_values(s: str) -> list:
    """Raw values of a pycocotools compressed string (before the ``counts[m - 2]`` delta)."""
    out, p = [], 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        out.append((x, k))
    return out


def _string_total(s: str) -> int:
    """Sum of the run lengths pycocotools reads from a string (deltas, uint32 wrap-around)."""
    counts = []
    for m, (x, _) in enumerate(_leb128_values(s)):
        counts.append((x + (counts[m - 2] if m > 2 else 0)) % 2**32)
    return sum(counts)


def _brute_iou(d_masks, g_masks):
    """Official video IoU from numpy masks (None = absent frame), zip over the shorter list."""
    inter = union = 0
    for d, g in zip(d_masks, g_masks):
        if d is not None and g is not None:
            inter += int((d & g).sum())
            union += int((d | g).sum())
        elif d is not None:
            union += int(d.sum())
        elif g is not None:
            union += int(g.sum())
    return inter / union if union > 0 else 0.0


def _kernel_iou(videos):
    """Run ``packed_video_iou`` on ``videos``: list of (hw, [(group, frames)] dets, same GT)
    with frames RLE dicts / None; all tracks in one packed document. Returns per video
    ``(iou matrix, mean areas, status, bad)``."""
    doc, d_tr, g_tr, d_grp, g_grp, d_b, g_b = [], [], [], [], [], [0], [0]
    for hw, dets, gts in videos:
        for group, frames in dets:
            d_tr.append(len(doc))
            d_grp.append(group)
            doc.append({"segmentations": frames})
        for group, frames in gts:
            g_tr.append(len(doc))
            g_grp.append(group)
            doc.append({"segmentations": frames})
        d_b.append(len(d_tr))
        g_b.append(len(g_tr))
    parsed, packed = load_json_packed(json.dumps(doc).encode(), orjson.loads)
    assert [x["segmentations"] for x in parsed] == [f"#{i}" for i in range(len(doc))]
    iou, area, status, bad = packed_video_iou(
        packed,
        packed,
        np.array([hw for hw, _, _ in videos]),
        np.array(d_b),
        np.array(d_tr),
        np.array(d_grp),
        np.array(g_b),
        np.array(g_tr),
        np.array(g_grp),
    )
    nv = len(videos)
    assert iou.dtype == area.dtype == np.float64 and len(area) == len(d_tr)
    assert status.dtype == np.int8 and status.shape == (nv,)
    assert bad.dtype == np.int64 and bad.shape == (nv, 2)
    out, i0 = [], 0
    for v, (hw, dets, gts) in enumerate(videos):
        nd, ng = len(dets), len(gts)
        mat = iou[i0 : i0 + nd * ng].reshape(nd, ng)
        out.append((mat, area[d_b[v] : d_b[v + 1]], int(status[v]), tuple(bad[v].tolist())))
        i0 += nd * ng
    assert i0 == len(iou)
    return out


def test_leb128_with_negative_deltas_decodes_right():
    rng = np.random.default_rng(5)
    videos, truth, values = [], [], []
    for hw in [(20, 30), (50, 60), (7, 3), (20, 30)]:
        h, w = hw
        n = int(rng.integers(3, 9))
        tracks = []
        for _ in range(int(rng.integers(2, 6))):
            length = n if rng.random() < 0.7 else int(rng.integers(1, n + 1))
            tracks.append(
                [None if rng.random() < 0.1 else random_mask(rng, h, w) for _ in range(length)]
            )
        dets = [
            [None if m is None or rng.random() < 0.1 else perturb(rng, m) for m in tr]
            for tr in tracks
        ]
        dets += [[random_mask(rng, h, w) for _ in range(n)] for _ in range(2)]
        d_groups = [int(g) for g in rng.integers(0, 2, len(dets))]
        g_groups = [int(g) for g in rng.integers(0, 2, len(tracks))]

        def enc(m, as_list=False):
            if m is None:
                return None
            return uncompressed(m) if as_list else compressed(m)

        d_frames = [[enc(m) for m in tr] for tr in dets]
        g_frames = [[enc(m, as_list=j % 2 == 1) for m in tr] for j, tr in enumerate(tracks)]
        for tr, masks in zip(d_frames, dets):
            for f, m in zip(tr, masks):
                if f is not None:
                    values.append(_leb128_values(f["counts"]))
                    back = mask_util.decode({"size": f["size"], "counts": f["counts"].encode()})
                    assert np.array_equal(back, m)
        videos.append((hw, list(zip(d_groups, d_frames)), list(zip(g_groups, g_frames))))
        truth.append((dets, d_groups, tracks, g_groups))
    # the strings exercise long counts, multi-char values and negative deltas (m > 2)
    assert max(len(v) for v in values) > 20
    assert any(k >= 3 for v in values for _, k in v)
    assert sum(x < 0 for v in values for x, _ in v[3:]) > 100
    for (iou, area, status, bad), (dets, d_groups, tracks, g_groups) in zip(
        _kernel_iou(videos), truth
    ):
        assert (status, bad) == (0, (0, 0))
        expected = np.array(
            [
                [_brute_iou(d, g) if dg == gg else 0.0 for g, gg in zip(tracks, g_groups)]
                for d, dg in zip(dets, d_groups)
            ]
        )
        assert np.array_equal(iou, expected)
        for a, d in zip(area.tolist(), dets):
            nz = [int(m.sum()) for m in d if m is not None and m.sum() > 0]
            assert a == (sum(nz) / len(nz) if nz else 0.0)
        assert 0.0 < expected.max() and (expected > 0).sum() < expected.size


_D = rect(6, 5, 1, 5, 1, 4)  # 12 pixels
_G = rect(6, 5, 2, 6, 0, 3)  # 12 pixels, 6 shared
_BAD_D = {"size": [6, 5], "counts": str_from_counts(runs_of(_D)[:-1], 6, 5)}  # sums to 27
_BAD_G = {"size": [6, 5], "counts": runs_of(_G)[:-1]}


def _one_video(det_frame, gt_frame, hw=(6, 5), same_group=True):
    """Kernel IoU, mean area, status and bad of one detection and one GT track of one frame."""
    ((iou, area, status, bad),) = _kernel_iou(
        [(hw, [(0, [det_frame])], [(0 if same_group else 1, [gt_frame])])]
    )
    return float(iou[0, 0]), float(area[0]), status, bad


def _edited(edit):
    d, g = compressed(_D), uncompressed(_G)
    if edit == "gt_other_size":
        g = uncompressed(rect(7, 5, 2, 6, 0, 3))
    elif edit == "det_other_size":
        d = compressed(rect(6, 6, 1, 5, 1, 4))
    elif edit == "gt_sum_short":
        g["counts"][-1] -= 1
    elif edit == "gt_sum_long":
        g["counts"].append(1)
    elif edit == "gt_string_sum_short":
        g = {"size": [6, 5], "counts": str_from_counts(runs_of(_G)[:-1], 6, 5)}
    elif edit == "det_sum_short":
        d = dict(_BAD_D)
    elif edit == "det_sum_long":
        d["counts"] = str_from_counts(runs_of(_D) + [2], 6, 5)
    elif edit == "det_char_p_to_del":
        d["counts"] = swap_first_digit_char(d["counts"])
    elif edit == "det_char_below_48":
        d["counts"] = d["counts"][:-1] + "/"
    elif edit == "det_value_of_7_chars":
        d["counts"] = overlong_first_value(d["counts"], 7)
    elif edit == "det_value_of_6_chars":
        d["counts"] = overlong_first_value(d["counts"], 6)
    elif edit == "det_trailing_continuation":
        d["counts"] += "P"
    elif edit == "det_negative_first_value":  # -16: uint32 wrap-around, far more than h * w
        d["counts"] = "@" + d["counts"][1:]
    elif edit == "det_empty_string":
        d["counts"] = ""
    elif edit == "gt_zero_runs":
        g["counts"][2:2] = [0, 0]
    elif edit == "det_zero_run":
        runs = runs_of(_D)
        d["counts"] = str_from_counts(runs[:3] + [0, 0] + runs[3:], 6, 5)
    elif edit == "gt_trailing_zero_run":
        g["counts"].append(0)
    elif edit == "counts_first":
        d, g = {"counts": d["counts"], "size": d["size"]}, {"counts": g["counts"], "size": [6, 5]}
    else:
        assert edit == "plain"
    return d, g


@pytest.mark.parametrize(
    "edit, status, bad",
    [
        ("plain", 0, (0, 0)),
        ("counts_first", 0, (0, 0)),
        ("det_value_of_6_chars", 0, (0, 0)),
        ("gt_zero_runs", 1, (0, 0)),
        ("det_zero_run", 1, (0, 0)),
        ("gt_trailing_zero_run", 1, (0, 0)),
        ("gt_other_size", 1, (0, 0)),
        ("det_other_size", 1, (0, 0)),
        ("det_char_p_to_del", 1, (0, 0)),
        ("det_char_below_48", 1, (0, 0)),
        ("det_value_of_7_chars", 1, (0, 0)),
        ("det_trailing_continuation", 1, (0, 0)),
        ("gt_sum_short", 2, (-1, 0)),
        ("gt_sum_long", 2, (-1, 0)),
        ("gt_string_sum_short", 2, (-1, 0)),
        ("det_sum_short", 2, (0, 0)),
        ("det_sum_long", 2, (0, 0)),
        ("det_negative_first_value", 2, (0, 0)),
        ("det_empty_string", 2, (0, 0)),
    ],
)
def test_kernel_status_of_unusual_and_corrupt_masks(edit, status, bad):
    d, g = _edited(edit)
    if status == 2:  # the run lengths as pycocotools reads them do not sum to h * w
        counts = (g if edit.startswith("gt_") else d)["counts"]
        total = sum(counts) if isinstance(counts, list) else _string_total(counts)
        assert total != 6 * 5
    assert _one_video(d, g)[2:] == (status, bad)
    if status == 0:
        assert _one_video(d, g)[:2] == (6 / 18, 12.0)
    else:
        assert _one_video(d, g)[:2] == (0.0, 0.0)  # left to path 1 / an error


def test_kernel_ignores_gt_of_another_group_and_checks_unpaired_detections():
    d, g = _edited("gt_sum_short")
    assert _one_video(d, g, same_group=False) == (0.0, 12.0, 0, (0, 0))  # GT never decoded
    d, g = _edited("gt_zero_runs")
    assert _one_video(d, g, same_group=False) == (0.0, 12.0, 0, (0, 0))
    d, g = _edited("det_sum_short")  # its mean area is needed: decoded, a corrupt mask
    assert _one_video(d, g, same_group=False) == (0.0, 0.0, 2, (0, 0))
    d, g = _edited("det_zero_run")
    assert _one_video(d, g, same_group=False) == (0.0, 0.0, 1, (0, 0))


def test_status_and_bad_of_a_batch_of_videos():
    D, G, D2 = compressed(_D), uncompressed(_G), compressed(rect(6, 5, 0, 6, 2, 3))
    D_first = {"counts": D["counts"], "size": [6, 5]}  # written counts first: the same mask
    other = compressed(rect(6, 6, 1, 5, 1, 4))
    videos = [
        # 0: plain, two groups, frames absent or written counts first
        ((6, 5), [(0, [D, D_first, None]), (1, [None, D2])], [(0, [G, None]), (1, [G, G, G])]),
        # 1: detection 2 (no GT in its group) corrupt at frame 1, detection 0 at frame 3: the
        # first detection is reported
        ((6, 5), [(0, [D, D, D, _BAD_D]), (0, [D] * 4), (1, [D, _BAD_D, D])], [(0, [G] * 4)]),
        # 2: GT 1 corrupt at frame 1, detection 0 at frame 2: GT first (the Python path's order)
        ((6, 5), [(0, [D, D, _BAD_D])], [(0, [G, G, G]), (0, [G, _BAD_G, G])]),
        # 3: detection and GT corrupt on the same frame: the GT is reported
        ((6, 5), [(0, [D, D]), (0, [D, _BAD_D])], [(0, [G, _BAD_G])]),
        # 4: a frame of another size first: the video is still read to the end, the corrupt
        # masks are reported (GT first)
        ((6, 5), [(0, [other, _BAD_D])], [(0, [G, _BAD_G])]),
        # 5: a corrupt GT of a group without detections is never decoded
        ((6, 5), [(0, [D, D])], [(1, [G, _BAD_G]), (0, [G, G])]),
        # 6: nothing
        ((6, 5), [], []),
    ]
    out = _kernel_iou(videos)
    assert [o[2] for o in out] == [0, 2, 2, 2, 2, 0, 0]
    assert [o[3] for o in out] == [(0, 0), (0, 3), (-2, 1), (-1, 1), (-1, 1), (0, 0), (0, 0)]
    for iou, area, status, _ in out[1:5]:
        assert not iou.any() and not area.any()
    iou, area, _, _ = out[0]
    d2 = rect(6, 5, 0, 6, 2, 3)
    expected = [
        [_brute_iou([_D, _D, None], [_G, None]), 0.0],
        [0.0, _brute_iou([None, d2], [_G, _G, _G])],
    ]
    assert np.array_equal(iou, np.array(expected)) and area.tolist() == [12.0, 6.0]
    iou, area, _, _ = out[5]
    assert iou.tolist() == [[0.0, 6 / 18]] and area.tolist() == [12.0]


@pytest.mark.parametrize("hw, status", [((2**15, 2**14 - 1), 0), ((2**15, 2**14), 1)])
def test_canvas_of_2_to_the_29_pixels_is_left_to_path_one(hw, status):
    h, w = hw
    runs = [h * w - 30, 20, 10]
    d = {"size": [h, w], "counts": str_from_counts(runs, h, w)}
    g = {"size": [h, w], "counts": runs}
    iou, area, st, bad = _one_video(d, g, hw=hw)
    assert (st, bad) == (status, (0, 0))
    assert (iou, area) == ((1.0, 20.0) if status == 0 else (0.0, 0.0))


def test_pycocotools_merge_stops_at_zero_runs_met_together():
    # (why zero runs after the first go to path 1) with zero-length runs at the same place in
    # both masks the official merge loop stops early: |d & g| is 2 here, not 13 (d and g are
    # the same mask)
    h, w = 4, 5
    counts = [3, 2, 0, 0, 4, 11]
    g = _mask.frUncompressedRLE([{"size": [h, w], "counts": counts}], h, w)[0]
    d = {"size": [h, w], "counts": str_from_counts(counts, h, w).encode()}
    assert int(mask_util.area(mask_util.merge([d, g], intersect=True))) == 2
    assert int(mask_util.area(d)) == int(mask_util.area(g)) == 13
    assert mask_util.iou([d], [g], [1])[0][0] == 2 / 13
    frame = {"size": [h, w], "counts": d["counts"].decode()}
    assert _one_video(frame, {"size": [h, w], "counts": counts}, hw=(h, w))[2:] == (1, (0, 0))


@pytest.mark.parametrize("det_zero_runs", [True, False])
def test_zero_runs_in_result_and_gt_equal_path_one(tmp_path, spy, monkeypatch, det_zero_runs):
    h, w = 4, 5
    counts = [3, 2, 0, 0, 4, 11]
    gt = {
        "videos": [{"id": 1, "height": h, "width": w, "length": 1}],
        "categories": [{"id": 1}],
        "annotations": [],
    }
    gt["annotations"].append(new_ann(gt, 1, [{"size": [h, w], "counts": counts}], cat=1))
    det_counts = counts if det_zero_runs else [3, 2, 4, 11]  # the same mask
    res = [new_result(1, [{"size": [h, w], "counts": str_from_counts(det_counts, h, w)}], cat=1)]
    packed, status = compare(tmp_path, spy, monkeypatch, gt, res)
    assert packed[0] == "ok" and status.tolist() == [1]  # left to path 1
    # path 1 (official): I = 2, U = 13 + 13 - 2 with the zero runs met together; else 13 / 13
    ((_, _, _, iou),) = spy.videos[0][3]  # one block (compare checked all paths agree)
    assert iou.tolist() == [[2 / 24 if det_zero_runs else 1.0]]
    assert (packed[1].stats[0] == 0.0) == det_zero_runs
