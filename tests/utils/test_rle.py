"""RLE helpers (wsovvis.utils.rle) against masks built with numpy."""
import numpy as np

from wsovvis.utils.rle import (
    areas_and_bboxes,
    decode_segmentation,
    encode_mask,
    encode_masks,
    rle_bbox,
    rle_bboxes,
)


def _masks():
    m = np.zeros((3, 7, 9), dtype=np.uint8)
    m[0, 1:4, 2:6] = 1
    m[1, 5:7, 0:1] = 1  # m[2] stays empty
    return m


def test_encode_decode_roundtrip_and_str_counts():
    masks = _masks()
    rles = encode_masks(masks)
    assert all(isinstance(r["counts"], str) for r in rles)
    assert rles[0] == encode_mask(masks[0])
    for r, m in zip(rles, masks):
        assert np.array_equal(decode_segmentation(r, 7, 9), m)


def test_batched_boxes_equal_single_and_numpy():
    rles = encode_masks(_masks())
    boxes = rle_bboxes(rles)
    assert boxes == [rle_bbox(r) for r in rles]
    assert boxes[0] == [2.0, 1.0, 4.0, 3.0] and boxes[1] == [0.0, 5.0, 1.0, 2.0]
    assert boxes[2] == [0.0, 0.0, 0.0, 0.0]
    # bytes counts are accepted too
    assert rle_bboxes([{"size": r["size"], "counts": r["counts"].encode()} for r in rles]) == boxes
    assert rle_bboxes([]) == []


def test_areas_and_bboxes_keep_none():
    rles = encode_masks(_masks())
    areas, boxes = areas_and_bboxes([rles[0], None, rles[1]])
    assert areas == [12, None, 2]
    assert boxes[1] is None and boxes[2] == [0.0, 5.0, 1.0, 2.0]
