"""Mask <-> RLE helpers in the YouTube-VIS conventions (compressed RLE with ``counts`` as str).

Every part of wsovvis (synthetic data, pseudo-tube conversion, model outputs, evaluation) encodes
masks through these functions so the JSON they write is identical in form.

Every mask read from a file is checked here before pycocotools sees it (:func:`check_rle`,
:func:`check_compressed_counts`): pycocotools' decoder writes ``sum(counts)`` pixels into an
``h * w`` buffer, so run lengths that do not sum to ``h * w`` leave uninitialised memory in the
mask (a 3,072-pixel mask whose runs sum to 820 decoded to pixel sums of 209,249) or write past the
buffer, and its string parser reads past the end of a string whose last character asks for more.
Such masks raise :class:`CorruptRLEError`.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pycocotools.mask as mask_util

__all__ = [
    "CorruptRLEError",
    "MAX_RLE_PIXELS",
    "check_rle",
    "check_rles",
    "check_compressed_counts",
    "compressed_counts_totals",
    "encode_mask",
    "encode_masks",
    "encode_masks_areas_boxes",
    "to_compressed_rle",
    "decode_segmentation",
    "rle_area",
    "rle_bbox",
    "rle_bboxes",
    "rle_size",
    "areas_and_bboxes",
]

RLE = Dict[str, Union[List[int], str, bytes]]

_MAX_CHUNKS = 7  # values of 7 characters are refused: pycocotools mis-parses their sign
_MAX_POLY_COORD = (2**31 - 1) / 5  # rleFrPoly scales by 5 and casts to int
# Larger masks can hold run lengths of 6 or 7 characters: pycocotools' encoder (rleToString)
# then writes past its buffer (6 bytes per run, no room for the final NUL) and its parser
# sign-extends 7-character values wrongly.
MAX_RLE_PIXELS = 2**24


class CorruptRLEError(ValueError):
    """A segmentation that pycocotools cannot decode safely (the message says why).

    Raised by :func:`check_rle` and every decode helper of this module; callers add the file,
    video id, annotation id and frame.
    """


def compressed_counts_totals(
    strings: Sequence[Union[str, bytes]],
) -> Tuple[np.ndarray, np.ndarray]:
    """Sum of the run lengths of many compressed RLE strings, parsed exactly as pycocotools does.

    Mirrors ``rleFrString`` of pycocotools' ``maskApi.c``: characters 48..111 carry 5 bits each
    plus a continuation bit (0x20); the last character of a value sign-extends on bit 0x10; from
    the fourth value on, ``counts[m - 2]`` is added. Vectorised over all strings (numpy); nothing
    is decoded to a mask.

    Args:
        strings: ``counts`` strings (str or bytes).

    Returns:
        ``(totals, ok)``: int64 sum of the run lengths of each string, and whether the string is
        well formed: only characters 48..111, at most 6 characters per value, a last character
        without the continuation bit, and every run length in ``[0, 2**32)`` (pycocotools stores
        them as 32-bit unsigned ints). ``totals`` is only meaningful where ``ok``.
    """
    n = len(strings)
    totals = np.zeros(n, dtype=np.int64)
    ok = np.ones(n, dtype=bool)
    texts = []
    for i, s in enumerate(strings):
        if isinstance(s, bytes):
            s = s.decode("latin-1")
        if not isinstance(s, str) or not s.isascii():
            ok[i], s = False, ""
        texts.append(s)
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    c = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8) - np.uint8(48)
    if not c.size:
        return totals, ok
    ends = np.cumsum(lens)  # exclusive end of each string in ``c``
    bad = np.flatnonzero(c > 63)  # chars below '0' wrapped around too
    if bad.size:
        ok[np.searchsorted(ends, bad, side="right")] = False
        c = c.copy()
        c[bad] = 0
    is_last = c < 32  # no continuation bit
    last_char = ends[lens > 0] - 1
    ok[np.flatnonzero(lens > 0)[~is_last[last_char]]] = False  # pycocotools reads past the end
    is_last[last_char] = True  # here a value never spans two strings
    last = np.flatnonzero(is_last)
    first = np.concatenate(([0], last[:-1] + 1))
    nchunks = last - first + 1
    x = (c[first] & 31).astype(np.int64)
    multi, k = np.flatnonzero(nchunks > 1), 1
    while multi.size and k < _MAX_CHUNKS:
        x[multi] += (c[first[multi] + k] & 31).astype(np.int64) << (5 * k)
        k += 1
        multi = multi[nchunks[multi] > k]
    sign = (c[last] & 16).astype(bool)  # sign-extend: subtract 2**(5 * chunks)
    x -= sign.astype(np.int64) << (5 * np.minimum(nchunks, _MAX_CHUNKS))
    nvals = np.zeros(n, dtype=np.int64)  # values per string
    nvals[lens > 0] = np.add.reduceat(is_last, ends[lens > 0] - lens[lens > 0], dtype=np.int64)
    long_value = nchunks >= _MAX_CHUNKS
    if long_value.any():
        ok[np.repeat(np.arange(n), nvals)[long_value]] = False
    vstart = np.cumsum(nvals) - nvals  # first value of every string
    m = np.arange(len(x)) - np.repeat(vstart, nvals)  # index of the value in its string
    # counts[m] = x[m] + counts[m - 2] for m > 2: two running sums (odd m >= 1, even m >= 2),
    # restarted at every string by subtracting the sum reached before the string's first value
    odd = (m & 1).astype(bool)
    counts = x.copy()
    for chain in (odd, ~odd & (m >= 2)):
        cs = np.cumsum(np.where(chain, x, 0))
        before = np.concatenate(([0], cs))[vstart]
        counts = np.where(chain, cs - np.repeat(before, nvals), counts)
    out_of_range = (counts < 0) | (counts >= 2**32)
    if out_of_range.any():
        ok[np.repeat(np.arange(n), nvals)[out_of_range]] = False
    has = np.flatnonzero(nvals)
    totals[has] = np.add.reduceat(counts, vstart[has])
    return totals, ok


def _size_of(seg) -> Tuple[int, int]:
    size = seg.get("size")
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
        or min(size) < 0
    ):
        raise CorruptRLEError(
            f"RLE 'size' must be [height, width] (non-negative ints), got {size!r:.60}"
        )
    h, w = int(size[0]), int(size[1])
    if h * w >= MAX_RLE_PIXELS:
        raise CorruptRLEError(f"RLE size {h} x {w} is too large for pycocotools (>= 2**24 pixels)")
    return h, w


def check_compressed_counts(
    strings: Sequence[Union[str, bytes]], sizes
) -> Optional[Tuple[int, str]]:
    """Find the first corrupt compressed RLE string among many (one vectorised pass).

    Args:
        strings: ``counts`` strings (str or bytes).
        sizes: ``(height, width)`` of each string, or one pair for all.

    Returns:
        None if every string is a valid RLE of its size, else ``(index, reason)`` of the first bad.
    """
    totals, ok = compressed_counts_totals(strings)
    hw = np.asarray(sizes, dtype=np.int64).reshape(-1, 2)
    expected = hw[:, 0] * hw[:, 1]
    bad = ~ok | (totals != expected)
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    h, w = (int(v) for v in hw[i if len(hw) > 1 else 0])
    if not ok[i]:
        return i, (
            "malformed compressed RLE string (characters outside '0'..'o', a run length over 32 "
            "bits, or a truncated last run)"
        )
    return i, _sum_message(int(totals[i]), h, w)


def _sum_message(total: int, h: int, w: int) -> str:
    return (
        f"RLE run lengths sum to {total}, not height x width = {h} x {w} = {h * w} "
        "(a corrupt mask)"
    )


def check_rle(seg: dict) -> Tuple[int, int]:
    """Check that an RLE dict decodes to exactly its ``size`` (compressed or uncompressed).

    Compressed ``counts`` (str / bytes) are parsed as pycocotools does
    (:func:`compressed_counts_totals`); uncompressed ``counts`` must be a flat list of integers
    in ``[0, 2**32)``. Either way the run lengths must sum to ``height * width``.

    Args:
        seg: an RLE dict ``{"size": [h, w], "counts": ...}``.

    Returns:
        ``(height, width)`` of the mask.

    Raises:
        CorruptRLEError: the RLE would be decoded outside its buffer or is not an RLE.
    """
    if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
        raise CorruptRLEError("an RLE needs 'size' and 'counts'")
    h, w = _size_of(seg)
    counts = seg["counts"]
    if isinstance(counts, (str, bytes)):
        bad = check_compressed_counts([counts], (h, w))
        if bad is not None:
            raise CorruptRLEError(bad[1])
        return h, w
    if not isinstance(counts, (list, tuple, np.ndarray)):
        raise CorruptRLEError(f"unsupported RLE counts type {type(counts).__name__}")
    arr = np.asarray(counts) if len(counts) else np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise CorruptRLEError("uncompressed RLE counts must be a flat list of integers")
    if len(arr) and (int(arr.min()) < 0 or int(arr.max()) >= 2**32):
        raise CorruptRLEError("uncompressed RLE counts must be integers in [0, 2**32)")
    total = int(arr.sum(dtype=np.int64)) if len(arr) else 0
    if total != h * w:
        raise CorruptRLEError(_sum_message(total, h, w))
    return h, w


def _check_polygons(polys) -> None:
    for p in polys:
        if not isinstance(p, (list, tuple)) or len(p) % 2:
            raise CorruptRLEError("a polygon must be a flat list of x, y coordinates")
        arr = np.asarray(p, dtype=np.float64) if len(p) else np.zeros(0)
        if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > _MAX_POLY_COORD):
            raise CorruptRLEError("polygon coordinates must be finite numbers within the int range")


def encode_mask(mask: np.ndarray) -> Dict[str, object]:
    """Encode one binary mask (H, W) as compressed RLE with ``counts`` decoded to ``str``."""
    m = np.asfortranarray(np.asarray(mask, dtype=np.uint8))
    if m.ndim != 2 or m.size >= MAX_RLE_PIXELS:
        raise ValueError(f"encode_mask expects an (H, W) mask under 2**24 pixels, got {m.shape}")
    rle = mask_util.encode(m)
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _encode_bytes(masks: np.ndarray) -> List[Dict[str, object]]:
    """pycocotools RLEs (counts bytes) of (N, H, W) masks, in one C call."""
    masks = np.asarray(masks, dtype=np.uint8)
    if masks.ndim != 3:
        raise ValueError(f"encode_masks expects (N, H, W), got shape {masks.shape}")
    if masks.shape[1] * masks.shape[2] >= MAX_RLE_PIXELS:
        raise ValueError(f"masks of {masks.shape[1]} x {masks.shape[2]} are too large for "
                         "pycocotools' encoder (>= 2**24 pixels)")
    if masks.shape[0] == 0:
        return []
    return mask_util.encode(np.asfortranarray(masks.transpose(1, 2, 0)))


def encode_masks(masks: np.ndarray) -> List[Dict[str, object]]:
    """Encode a stack of binary masks (N, H, W) in one C call.

    Returns:
        N compressed RLEs with ``counts`` as str.
    """
    rles = _encode_bytes(masks)
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def encode_masks_areas_boxes(
    masks: np.ndarray,
) -> Tuple[List[Dict[str, object]], List[int], List[List[float]]]:
    """:func:`encode_masks` plus each mask's area and XYWH box, in three pycocotools calls.

    The RLEs come straight from the encoder, so (unlike :func:`rle_area` / :func:`rle_bbox` on
    RLEs read from files) they are not checked again.

    Returns:
        ``(rles, areas, boxes)``: compressed RLEs (str counts), int areas, float XYWH boxes.
    """
    rles = _encode_bytes(masks)
    if not rles:
        return [], [], []
    areas = [int(a) for a in mask_util.area(rles)]
    boxes = [[float(v) for v in box] for box in mask_util.toBbox(rles).tolist()]
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles, areas, boxes


def rle_size(seg) -> Optional[List[int]]:
    """Return ``[H, W]`` declared by an RLE dict, or None for polygons."""
    if isinstance(seg, dict) and "size" in seg:
        return [int(seg["size"][0]), int(seg["size"][1])]
    return None


def _dict_to_coco(seg: dict, h: int, w: int) -> Dict[str, object]:
    """A checked RLE dict in pycocotools' form (counts bytes)."""
    counts = seg["counts"]
    if isinstance(counts, str):
        return {"size": [h, w], "counts": counts.encode("ascii")}
    if isinstance(counts, bytes):
        return {"size": [h, w], "counts": counts}
    return mask_util.frPyObjects({"size": [h, w], "counts": [int(c) for c in counts]}, h, w)


def check_rles(rles: Sequence[dict]) -> List[Tuple[int, int]]:
    """:func:`check_rle` of many RLE dicts, compressed strings in one vectorised pass.

    Args:
        rles: RLE dicts (compressed or uncompressed).

    Returns:
        ``(height, width)`` of every RLE.

    Raises:
        CorruptRLEError: names the index of the first corrupt RLE (``rles[i]: reason``).
    """
    sizes: List[Tuple[int, int]] = []
    strings, positions = [], []
    for i, r in enumerate(rles):
        try:
            if isinstance(r, dict) and isinstance(r.get("counts"), (str, bytes)):
                sizes.append(_size_of(r))
                strings.append(r["counts"])
                positions.append(i)
            else:
                sizes.append(check_rle(r))
        except CorruptRLEError as e:
            raise CorruptRLEError(f"rles[{i}]: {e}") from e
    if strings:
        bad = check_compressed_counts(strings, [sizes[i] for i in positions])
        if bad is not None:
            raise CorruptRLEError(f"rles[{positions[bad[0]]}]: {bad[1]}")
    return sizes


def to_compressed_rle(seg, height: int, width: int) -> Dict[str, object]:
    """Convert any YTVIS per-frame segmentation to a compressed RLE accepted by pycocotools.

    Accepts compressed RLE (counts str or bytes), uncompressed RLE (counts list) and polygons
    (list of flat coordinate lists). Every input is checked first (:func:`check_rle`), so the
    result never makes pycocotools read or write outside its buffers.

    Args:
        seg: the segmentation entry of one frame (not None).
        height: frame height, used for polygons.
        width: frame width, used for polygons.

    Returns:
        A compressed RLE dict whose ``counts`` is ``bytes`` (pycocotools' native form).

    Raises:
        CorruptRLEError: the segmentation is corrupt (see :func:`check_rle`).
    """
    if isinstance(seg, dict):
        return _dict_to_coco(seg, *check_rle(seg))
    if isinstance(seg, list):
        height, width = _size_of({"size": [height, width]})
        _check_polygons(seg)
        polys = [p for p in seg if len(p) >= 6]
        if not polys:
            return mask_util.encode(np.zeros((height, width), dtype=np.uint8, order="F"))
        return mask_util.merge(mask_util.frPyObjects(polys, height, width))
    raise CorruptRLEError(f"unsupported segmentation type {type(seg).__name__}")


def decode_segmentation(seg, height: int, width: int) -> np.ndarray:
    """Decode any YTVIS per-frame segmentation (see :func:`to_compressed_rle`).

    Args:
        seg: compressed / uncompressed RLE or polygons of one frame.
        height: frame height (polygons are drawn at this size; an RLE must have this size).
        width: frame width.

    Returns:
        uint8 (H, W) mask.

    Raises:
        CorruptRLEError: corrupt segmentation, or an RLE whose size is not ``[height, width]``.
    """
    rle = to_compressed_rle(seg, height, width)
    if [int(v) for v in rle["size"]] != [int(height), int(width)]:
        raise CorruptRLEError(
            f"RLE size {list(rle['size'])} differs from the frame size [{height}, {width}]"
        )
    return mask_util.decode(rle)


def rle_area(rle) -> int:
    """Pixel area of an RLE dict (checked with :func:`check_rle`)."""
    return int(mask_util.area(_dict_to_coco(rle, *check_rle(rle))))


def rle_bbox(rle) -> List[float]:
    """XYWH box of an RLE dict (checked with :func:`check_rle`), as floats."""
    return [float(v) for v in mask_util.toBbox(_dict_to_coco(rle, *check_rle(rle)))]


def rle_bboxes(rles: Sequence[RLE]) -> List[List[float]]:
    """XYWH boxes of many RLE dicts (checked with :func:`check_rles`) in one pycocotools call."""
    if not rles:
        return []
    coco = [_dict_to_coco(r, h, w) for r, (h, w) in zip(rles, check_rles(rles))]
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
