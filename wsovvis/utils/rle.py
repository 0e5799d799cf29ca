"""Mask <-> RLE helpers in the YouTube-VIS conventions (compressed RLE with ``counts`` as str).

Every part of wsovvis (synthetic data, pseudo-tube conversion, model outputs, evaluation) encodes
masks through these functions so the JSON they write is identical in form.
"""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import pycocotools.mask as mask_util

__all__ = [
    "encode_mask",
    "encode_masks",
    "to_compressed_rle",
    "decode_segmentation",
    "rle_area",
    "rle_bbox",
    "rle_bboxes",
    "rle_size",
    "areas_and_bboxes",
]

RLE = Dict[str, Union[List[int], str, bytes]]


def encode_mask(mask: np.ndarray) -> Dict[str, object]:
    """Encode one binary mask (H, W) as compressed RLE with ``counts`` decoded to ``str``."""
    m = np.asfortranarray(np.asarray(mask, dtype=np.uint8))
    rle = mask_util.encode(m)
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def encode_masks(masks: np.ndarray) -> List[Dict[str, object]]:
    """Encode a stack of binary masks (N, H, W) in one C call; returns N compressed RLEs (str counts)."""
    masks = np.asarray(masks, dtype=np.uint8)
    if masks.ndim != 3:
        raise ValueError(f"encode_masks expects (N, H, W), got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    rles = mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0)))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def rle_size(seg) -> Optional[List[int]]:
    """Return ``[H, W]`` declared by an RLE dict, or None for polygons."""
    if isinstance(seg, dict) and "size" in seg:
        return [int(seg["size"][0]), int(seg["size"][1])]
    return None


def to_compressed_rle(seg, height: int, width: int) -> Dict[str, object]:
    """Convert any YTVIS per-frame segmentation to a compressed RLE accepted by pycocotools.

    Accepts compressed RLE (counts str or bytes), uncompressed RLE (counts list) and polygons
    (list of flat coordinate lists).

    Args:
        seg: the segmentation entry of one frame (not None).
        height: frame height, used for polygons.
        width: frame width, used for polygons.

    Returns:
        A compressed RLE dict whose ``counts`` is ``bytes`` (pycocotools' native form).
    """
    if isinstance(seg, dict):
        counts = seg.get("counts")
        if isinstance(counts, list):
            h, w = seg["size"]
            return mask_util.frPyObjects(seg, int(h), int(w))
        if isinstance(counts, str):
            return {"size": list(seg["size"]), "counts": counts.encode("ascii")}
        if isinstance(counts, bytes):
            return {"size": list(seg["size"]), "counts": counts}
        raise ValueError(f"unsupported RLE counts type {type(counts).__name__}")
    if isinstance(seg, list):
        polys = [p for p in seg if len(p) >= 6]
        if not polys:
            return mask_util.encode(np.zeros((height, width), dtype=np.uint8, order="F"))
        return mask_util.merge(mask_util.frPyObjects(polys, height, width))
    raise ValueError(f"unsupported segmentation type {type(seg).__name__}")


def decode_segmentation(seg, height: int, width: int) -> np.ndarray:
    """Decode any YTVIS per-frame segmentation (see :func:`to_compressed_rle`).

    Args:
        seg: compressed / uncompressed RLE or polygons of one frame.
        height: frame height (used for polygons).
        width: frame width (used for polygons).

    Returns:
        uint8 (H, W) mask.
    """
    return mask_util.decode(to_compressed_rle(seg, height, width))


def rle_area(rle) -> int:
    """Pixel area of a compressed RLE (counts str or bytes)."""
    return int(mask_util.area(to_compressed_rle(rle, *rle["size"])))


def rle_bbox(rle) -> List[float]:
    """XYWH box of a compressed RLE (counts str or bytes), as floats."""
    return [float(v) for v in mask_util.toBbox(to_compressed_rle(rle, *rle["size"]))]


def rle_bboxes(rles: Sequence[RLE]) -> List[List[float]]:
    """XYWH boxes of many compressed RLEs (counts str or bytes) in one pycocotools call."""
    if not rles:
        return []
    coco = [to_compressed_rle(r, *r["size"]) for r in rles]
    return [[float(v) for v in box] for box in mask_util.toBbox(coco).tolist()]


def areas_and_bboxes(rles: Sequence[Optional[RLE]]):
    """Per-frame ``areas`` and ``bboxes`` lists for a track; ``None`` entries stay ``None``."""
    areas, boxes = [], []
    for r in rles:
        if r is None:
            areas.append(None)
            boxes.append(None)
        else:
            areas.append(rle_area(r))
            boxes.append(rle_bbox(r))
    return areas, boxes
