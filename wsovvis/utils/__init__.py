"""Helpers shared by every part: atomic file writes / JSON reading (:mod:`.io`) and mask <-> RLE
conversion in the YouTube-VIS conventions (:mod:`.rle`)."""
from .io import atomic_write, atomic_write_json, read_json
from .rle import (
    areas_and_bboxes,
    decode_segmentation,
    encode_mask,
    encode_masks,
    rle_area,
    rle_bbox,
    rle_bboxes,
    rle_size,
    to_compressed_rle,
)

__all__ = [
    "areas_and_bboxes",
    "atomic_write",
    "atomic_write_json",
    "decode_segmentation",
    "encode_mask",
    "encode_masks",
    "read_json",
    "rle_area",
    "rle_bbox",
    "rle_bboxes",
    "rle_size",
    "to_compressed_rle",
]
