"""Video post-processing helpers: flattened top-k, resizing, RLE tracks, output dict."""

import numpy as np
import pytest
import torch

from wsovvis.modeling.set_prediction import (
    make_video_output,
    masks_to_rle_tracks,
    resize_mask_logits,
    topk_query_class_pairs,
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
    out = make_video_output(3, 5, 7, [0.5], [2], [[None, {"size": [5, 7], "counts": "x"}]])
    assert out == {
        "video_id": 3,
        "height": 5,
        "width": 7,
        "pred_scores": [0.5],
        "pred_labels": [2],
        "pred_segmentations": [[None, {"size": [5, 7], "counts": "x"}]],
    }
    with pytest.raises(ValueError):
        make_video_output(3, 5, 7, [0.5, 0.2], [2], [[]])
