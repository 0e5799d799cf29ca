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


# --- corrupt masks: refused before pycocotools decodes them outside its buffer ---------------

import pytest  # noqa: E402
from pycocotools import _mask  # noqa: E402

from wsovvis.utils.rle import (  # noqa: E402
    MAX_RLE_PIXELS,
    CorruptRLEError,
    check_compressed_counts,
    check_rle,
    check_rles,
    compressed_counts_totals,
    rle_area,
    to_compressed_rle,
)


def _reference_total(s):
    """Python transcription of pycocotools' rleFrString; None where it would misbehave."""
    counts, p = [], 0
    while p < len(s):
        x = k = 0
        more = True
        while more:
            if p >= len(s):
                return None  # the C code reads past the end of the string
            c = ord(s[p]) - 48
            if not 0 <= c <= 63:
                return None
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x -= 1 << (5 * k)
        if k >= 7:
            return None
        if len(counts) > 2:
            x += counts[-2]
        if not 0 <= x < 2**32:
            return None
        counts.append(x)
    return sum(counts)


def test_compressed_totals_match_pycocotools_parser_on_random_strings():
    rng = np.random.default_rng(0)
    strings = []
    for i in range(4000):
        n = int(rng.integers(0, 14))
        lo, hi = (46, 113) if i % 2 else (48, 80)
        strings.append("".join(map(chr, rng.integers(lo, hi, n))))
    totals, ok = compressed_counts_totals(strings)
    assert 0.05 < ok.mean() < 0.95  # both outcomes exercised
    for s, t, o in zip(strings, totals, ok):
        ref = _reference_total(s)
        assert (ref is not None) == bool(o), s
        if o:
            assert ref == t, s
    # bytes and one-by-one give the same answers
    t2, o2 = compressed_counts_totals([s.encode() for s in strings[:300]])
    assert np.array_equal(o2, ok[:300]) and np.array_equal(t2[o2], totals[:300][o2])


def test_compressed_totals_of_real_encodings_equal_size():
    rng = np.random.default_rng(1)
    strings, sizes = [], []
    for i in range(200):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        m = (rng.random((h, w)) < [0.0, 1.0, 0.5, 0.05][i % 4]).astype(np.uint8)
        strings.append(encode_mask(m)["counts"])
        sizes.append((h, w))
    big = np.zeros((4000, 4000), np.uint8)
    big[1000:, 3000:] = 1  # long runs: multi-character values and negative deltas
    strings.append(encode_mask(big)["counts"])
    sizes.append((4000, 4000))
    assert check_compressed_counts(strings, sizes) is None
    totals, ok = compressed_counts_totals(strings)
    assert ok.all() and list(totals) == [h * w for h, w in sizes]


@pytest.mark.parametrize(
    "seg, reason",
    [
        ({"size": [48, 64], "counts": [400, 20, 400]}, "sum to 820, not height x width"),
        ({"size": [2, 2], "counts": [5]}, "sum to 5"),
        ({"size": [2, 2], "counts": [5, -1]}, r"\[0, 2\*\*32\)"),
        ({"size": [2, 2], "counts": [2.0, 2.0]}, "integers"),
        ({"size": [2, 2], "counts": [[2, 2]]}, "flat list"),
        ({"size": [2, 2], "counts": "0P"}, "malformed"),
        ({"size": [2, 2], "counts": "4\x00"}, "malformed"),
        ({"size": [2, 2], "counts": b"5"}, "sum to 5"),
        ({"size": [2, 2], "counts": "4é"}, "malformed"),
        ({"size": [2, -2], "counts": "0"}, "non-negative"),
        ({"size": ["2", "2"], "counts": "4"}, "non-negative ints"),
        ({"size": [4096, 4097], "counts": [4096 * 4097]}, "too large"),
        ({"counts": "4"}, "needs 'size'"),
    ],
)
def test_check_rle_refuses_corrupt(seg, reason):
    with pytest.raises(CorruptRLEError, match=reason):
        check_rle(seg)
    with pytest.raises(CorruptRLEError, match=reason):  # every decode path runs the check
        decode_segmentation(seg, 2, 2)


def test_uncompressed_sum_820_decodes_nowhere():
    """The reported case: 3,072-pixel frame, runs summing to 820."""
    seg = {"size": [48, 64], "counts": [400, 20, 400]}
    compressed = _mask.frUncompressedRLE([seg], 48, 64)[0]  # what the loader used to keep
    for s in (seg, {"size": [48, 64], "counts": compressed["counts"].decode()}):
        for fn in (lambda: decode_segmentation(s, 48, 64), lambda: to_compressed_rle(s, 48, 64),
                   lambda: rle_area(s), lambda: rle_bbox(s), lambda: rle_bboxes([s])):
            with pytest.raises(CorruptRLEError, match="820"):
                fn()


def test_batch_check_names_index_and_size_mismatch():
    good = encode_mask(np.ones((3, 4), np.uint8))
    with pytest.raises(CorruptRLEError, match=r"rles\[2\]: .*sum to 5"):
        check_rles([good, good, {"size": [3, 4], "counts": [5]}])
    with pytest.raises(CorruptRLEError, match=r"rles\[1\]: .*sum to 12, not .* 3 x 5"):
        check_rles([good, {"size": [3, 5], "counts": good["counts"]}])
    with pytest.raises(CorruptRLEError, match="differs from the frame size"):
        decode_segmentation(good, 3, 5)
    with pytest.raises(CorruptRLEError, match="polygon"):
        decode_segmentation([[0, 0, 1, float("nan"), 2, 2]], 3, 4)
    assert MAX_RLE_PIXELS == 2**24


def test_encode_masks_areas_boxes_equals_checked_helpers():
    from wsovvis.utils.rle import encode_masks_areas_boxes

    rles, areas, boxes = encode_masks_areas_boxes(_masks())
    assert rles == encode_masks(_masks())
    assert areas == [rle_area(r) for r in rles] == [12, 2, 0]
    assert boxes == rle_bboxes(rles)
    assert encode_masks_areas_boxes(np.zeros((0, 3, 4), np.uint8)) == ([], [], [])
