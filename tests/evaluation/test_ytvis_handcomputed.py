"""Hand-computed YTVIS AP cases: each targets one official rule and asserts stats and arrays."""

import numpy as np
import pytest

from wsovvis.evaluation import evaluate_ytvis, format_summary
from wsovvis.utils.rle import encode_mask

ONE = 1 / (1 + np.spacing(1))  # official precision of a perfect ranking: tp / (tp + fp + eps)


def all_close(x, value):
    """Equal up to the official ``np.spacing(1)`` in the precision denominator."""
    return np.allclose(x, value, rtol=0, atol=1e-12)


def rle(h, w, pixels, size=None):
    """Compressed RLE of a (h, w) mask with the given flat row-major pixel indices set."""
    m = np.zeros(size or (h, w), dtype=np.uint8)
    for p in pixels:
        m[p // w, p % w] = 1
    return encode_mask(m)


def make_gt(tracks, h=4, w=4, length=1, cats=(1,), partitions=None):
    """tracks: list of (video_id, category_id, segmentations, iscrowd[, areas])."""
    vids = sorted({t[1 - 1] for t in tracks} | {1})
    gt = {
        "videos": [{"id": v, "height": h, "width": w, "length": length} for v in vids],
        "categories": [{"id": c} for c in cats],
        "annotations": [],
    }
    if partitions:
        for c, p in zip(gt["categories"], partitions):
            c["partition"] = p
    for i, t in enumerate(tracks):
        vid, cat, segs, crowd = t[:4]
        areas = t[4] if len(t) > 4 else [None if s is None else int(_area(s)) for s in segs]
        gt["annotations"].append(
            {
                "id": i + 1,
                "video_id": vid,
                "category_id": cat,
                "segmentations": segs,
                "iscrowd": crowd,
                "areas": areas,
            }
        )
    return gt


def _area(s):
    import pycocotools.mask as mu

    return mu.area({"size": s["size"], "counts": s["counts"].encode()})


def det(vid, cat, score, segs):
    return {"video_id": vid, "category_id": cat, "score": score, "segmentations": segs}


def test_perfect_match_all_ones():
    a = rle(4, 4, [0, 1, 4, 5])
    gt = make_gt([(1, 1, [a, a], 0)], length=2)
    r = evaluate_ytvis(gt, [det(1, 1, 0.9, [a, a])])
    np.testing.assert_allclose(r.stats, [1] * 4 + [-1, -1] + [1] * 4 + [-1, -1], rtol=0, atol=1e-12)
    assert all_close(r.precision[:, :, 0, 0, :], 1)
    assert np.all(r.precision[:, :, 0, 2:, :] == -1.0)
    assert r.per_category_ap[1] == pytest.approx(1, abs=1e-12)


def test_iou_exactly_half_matches_at_050_only():
    gt = make_gt([(1, 1, [rle(4, 4, [0, 1])], 0)])
    r = evaluate_ytvis(gt, [det(1, 1, 0.9, [rle(4, 4, [0, 1, 2, 3])])])
    assert all_close(r.precision[0, :, 0, 0, 2], 1)
    assert np.all(r.precision[1:, :, 0, 0, 2] == 0.0)
    assert (
        r.stats[0] == pytest.approx(0.1, abs=1e-15)
        and r.stats[1] == pytest.approx(1, abs=1e-12)
        and r.stats[2] == 0.0
    )
    assert r.stats[8] == pytest.approx(0.1, abs=1e-15)


@pytest.mark.parametrize("fp_first, expected", [(True, 1 / (2 + np.spacing(1))), (False, ONE)])
def test_score_ties_keep_file_order(fp_first, expected):
    a = rle(4, 4, [0, 1])
    gt = make_gt([(1, 1, [a], 0)])
    fp, tp = det(1, 1, 0.5, [rle(4, 4, [15])]), det(1, 1, 0.5, [a])
    r = evaluate_ytvis(gt, [fp, tp] if fp_first else [tp, fp])
    assert all_close(r.precision[:, :, 0, 0, 2], expected)
    assert r.stats[0] == pytest.approx(expected, abs=1e-12)


def test_crowd_gt_ignored_and_rematchable():
    a, b = rle(4, 4, [0, 1]), rle(4, 4, [10, 11])
    gt = make_gt([(1, 1, [a], 0), (1, 1, [b], 1)])
    dets = [det(1, 1, 0.9, [b]), det(1, 1, 0.8, [b]), det(1, 1, 0.7, [a])]
    r = evaluate_ytvis(gt, dets)
    assert all_close(r.precision[:, :, 0, 0, 2], 1)  # both crowd matches are ignored, not FP
    assert r.stats[0] == pytest.approx(1, abs=1e-12) and r.stats[8] == 1.0


def test_null_and_empty_frames():
    a = rle(4, 4, [0, 1, 4, 5])
    gt = make_gt([(1, 1, [a, a], 0)], length=2)
    for second in (None, rle(4, 4, [])):  # absent and present-but-empty are the same
        r = evaluate_ytvis(gt, [det(1, 1, 0.9, [a, second])])  # IoU = 4 / 8
        assert all_close(r.precision[0, :, 0, 0, 2], 1)
        assert np.all(r.precision[1:, :, 0, 0, 2] == 0.0)


def test_mixed_frame_sizes_contribute_nothing():
    a = rle(4, 4, [0, 1, 4, 5])
    other = rle(5, 4, [0, 1, 4, 5], size=(5, 4))  # GT frame of another size
    gt = make_gt([(1, 1, [a, other], 0)], length=2)
    r = evaluate_ytvis(gt, [det(1, 1, 0.9, [a, rle(4, 4, [12, 13, 14, 15])])])
    assert r.stats[0] == pytest.approx(1, abs=1e-12)  # IoU from frame 0 only: 4 / 4


def test_category_without_gt_and_unknown_category_are_excluded():
    a = rle(4, 4, [0, 1])
    gt = make_gt([(1, 1, [a], 0)], cats=(1, 2))
    base = evaluate_ytvis(gt, [det(1, 1, 0.5, [a])])
    extra = [det(1, 2, 0.99, [a]), det(1, 99, 0.98, [a]), det(1, 1, 0.5, [a])]
    r = evaluate_ytvis(gt, extra)
    assert np.array_equal(r.stats, base.stats) and r.stats[0] == pytest.approx(1, abs=1e-12)
    assert np.all(r.precision[:, :, 1] == -1.0)
    assert np.isnan(r.per_category_ap[2])
    assert r.counts["dropped_unknown_category"] == 1


def test_all_empty_gt_track_zero_union():
    empty = rle(4, 4, [])
    gt = make_gt([(1, 1, [empty, empty], 0, [0, 0])], length=2)
    r = evaluate_ytvis(gt, [det(1, 1, 0.9, [empty, None])])
    assert np.all(r.precision[:, :, 0, :2, :] == 0.0)  # GT counted (area 0: all, small)
    assert np.all(r.precision[:, :, 0, 2:, :] == -1.0)
    assert r.stats[0] == 0.0 and r.stats[8] == 0.0


def test_equal_iou_goes_to_later_gt():
    w = 8
    g1, g2 = rle(1, w, [0, 1]), rle(1, w, [2, 3])
    gt = make_gt([(1, 1, [g1], 0), (1, 1, [g2], 0)], h=1, w=w)
    dets = [det(1, 1, 0.9, [rle(1, w, [0, 1, 2, 3])]), det(1, 1, 0.8, [g1])]
    r = evaluate_ytvis(gt, dets)
    assert all_close(r.precision[0, :, 0, 0, 2], 1)  # d1 -> g2 (later), d2 -> g1
    assert r.stats[1] == pytest.approx(1, abs=1e-12)


def test_gt_area_ranges_come_from_json_areas():
    a = rle(4, 4, [0, 1])
    gt = make_gt([(1, 1, [a], 0, [128**2])])  # boundary: both small and medium
    r = evaluate_ytvis(gt, [det(1, 1, 0.9, [a])])
    # the mask has 2 px, so only the JSON value puts the GT in "medium"; the matched detection
    # takes the GT's ignore flag even though its own area (2 px) is outside the range
    assert r.stats[3] == pytest.approx(1, abs=1e-12)
    assert r.stats[4] == pytest.approx(1, abs=1e-12)
    assert r.stats[5] == -1.0


def test_class_agnostic_pools_categories():
    a = rle(4, 4, [0, 1])
    gt = make_gt([(1, 1, [a], 0)], cats=(1, 2))
    dets = [det(1, 2, 0.9, [a])]
    assert evaluate_ytvis(gt, dets).stats[0] == 0.0
    r = evaluate_ytvis(gt, dets, class_agnostic=True)
    assert (
        r.stats[0] == pytest.approx(1, abs=1e-12)
        and r.precision.shape[2] == 1
        and r.category_ids.tolist() == [-1]
    )


def test_max_dets_truncation():
    a = rle(4, 4, [0, 1])
    gt = make_gt([(1, 1, [a], 0)])
    dets = [det(1, 1, 0.9, [rle(4, 4, [15])])] + [det(1, 1, 0.8, [a])]
    r = evaluate_ytvis(gt, dets)
    assert r.stats[6] == 0.0 and r.stats[7] == 1.0  # AR1 sees only the FP


def test_base_novel_split_and_summary_format():
    a, b = rle(4, 4, [0, 1]), rle(4, 4, [8, 9])
    gt = make_gt([(1, 1, [a], 0), (1, 2, [b], 0)], cats=(1, 2), partitions=(0, 3))
    r = evaluate_ytvis(gt, [det(1, 1, 0.9, [a])])
    assert (
        r.base_stats[0] == pytest.approx(1, abs=1e-12)
        and r.novel_stats[0] == 0.0
        and r.stats[0] == pytest.approx(0.5, abs=1e-12)
    )
    text = format_summary(r).splitlines()
    assert len(text) == 14
    assert (
        text[0] == " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.500"
    )
    assert (
        text[6] == " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.500"
    )
    assert "base" in text[12] and "novel" in text[13]
    assert r.as_dict()["APb"] == pytest.approx(1, abs=1e-12)
