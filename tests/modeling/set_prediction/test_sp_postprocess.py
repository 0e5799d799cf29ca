"""Video post-processing helpers: flattened top-k, resizing, RLE tracks, output dict."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wsovvis.modeling.set_prediction import (
    make_video_output,
    masks_to_rle_tracks,
    resize_mask_logits,
    topk_query_class_pairs,
)
from wsovvis.modeling.set_prediction.postprocess import (
    mask_logits_to_masks,
    topk_queries_above_threshold,
)
from wsovvis.utils.rle import decode_segmentation


def test_topk_over_query_class_pairs():
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.05, 0.7]])
    s, labels, queries = topk_query_class_pairs(scores, 3)
    assert s.tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert labels.tolist() == [1, 0, 2] and queries.tolist() == [0, 1, 1]
    assert len(topk_query_class_pairs(scores, 100)[0]) == 6


def test_resize_mask_logits_crops_padding():
    logits = -torch.ones(1, 1, 4, 4)
    logits[..., :2, :3] = 1.0  # valid region of a 8x12 image inside a 16x16 padded input
    out = resize_mask_logits(logits, (16, 16), (8, 12), (4, 6))
    assert out.shape == (1, 1, 4, 6)
    assert (out > 0).all()


def test_masks_to_rle_tracks_round_trip():
    rng = np.random.default_rng(0)
    masks = rng.random((2, 3, 5, 7)) > 0.5
    tracks = masks_to_rle_tracks(torch.from_numpy(masks))
    assert len(tracks) == 2 and all(len(t) == 3 for t in tracks)
    for i in range(2):
        for t in range(3):
            rle = tracks[i][t]
            assert isinstance(rle["counts"], str) and list(rle["size"]) == [5, 7]
            np.testing.assert_array_equal(decode_segmentation(rle, 5, 7), masks[i, t])
    assert masks_to_rle_tracks(np.zeros((0, 3, 5, 7), bool)) == []


def test_make_video_output_contract():
    """Tensor / numpy inputs come out as plain JSON-ready Python values, in the given order."""
    rle = {"size": [5, 7], "counts": "x"}
    out = make_video_output(
        np.int64(3), torch.tensor(5), 7.0,
        torch.tensor([0.5, 0.25]), np.array([2, 0]), ((None, rle), [rle, rle]),
    )
    expected = (
        '{"video_id": 3, "height": 5, "width": 7, "pred_scores": [0.5, 0.25], '
        '"pred_labels": [2, 0], "pred_segmentations": [[null, {"size": [5, 7], "counts": "x"}], '
        '[{"size": [5, 7], "counts": "x"}, {"size": [5, 7], "counts": "x"}]]}'
    )
    assert json.dumps(out) == expected
    assert type(out["pred_scores"][0]) is float and type(out["pred_labels"][0]) is int
    assert type(out["pred_segmentations"][0]) is list
    with pytest.raises(ValueError, match="one entry per track"):
        make_video_output(3, 5, 7, [0.5, 0.2], [2], [[]])


def _vnext_final_masks(logits, padded, image, out):
    """VNext ``whole_video_inference``: bilinear to the padded size, sigmoid, crop, nearest to the
    original size, > 0.5 (written independently of wsovvis)."""
    x = F.interpolate(logits, size=padded, mode="bilinear", align_corners=False).sigmoid()
    x = x[:, :, : image[0], : image[1]]
    return F.interpolate(x, size=out, mode="nearest") > 0.5


def test_mask_logits_to_masks_nearest_matches_vnext_and_differs_from_bilinear():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 2, 12, 16, generator=g) * 3
    padded, image, out = (48, 64), (45, 60), (68, 90)  # 1.5x upscale of the unpadded image
    nearest = mask_logits_to_masks(logits, padded, image, out, "nearest")
    assert nearest.dtype == torch.bool and nearest.shape == (3, 2, 68, 90)
    assert torch.equal(nearest, _vnext_final_masks(logits, padded, image, out))
    bilinear = mask_logits_to_masks(logits, padded, image, out, "bilinear")
    assert torch.equal(bilinear, resize_mask_logits(logits, padded, image, out) > 0)
    assert (nearest != bilinear).any()
    with pytest.raises(ValueError, match="mask resize mode"):
        mask_logits_to_masks(logits, padded, image, out, "area")


def test_topk_queries_above_threshold_is_vnext_selection():
    probs = torch.tensor([[0.9, 0.6, 0.01], [0.2, 0.3, 0.04], [0.7, 0.8, 0.5]])
    # top-2 queries by best class: 0 (0.9), 2 (0.8); every class above 0.05 of those
    s, labels, queries = topk_queries_above_threshold(probs, 2, True, 0.05)
    assert queries.tolist() == [0, 0, 2, 2, 2] and labels.tolist() == [0, 1, 0, 1, 2]
    assert s.tolist() == pytest.approx([0.9, 0.6, 0.7, 0.8, 0.5])
    s, labels, queries = topk_queries_above_threshold(probs, 2, False, 0.05)
    assert queries.tolist() == [0, 2] and labels.tolist() == [0, 1]
    assert s.tolist() == pytest.approx([0.9, 0.8])
