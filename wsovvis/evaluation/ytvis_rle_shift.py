"""Translate compressed RLEs along the column-major pixel order, vectorised over many masks.

Used to batch many small IoU problems into one ``pycocotools.mask.iou`` call: masks of group
``j`` are moved ``j * h * w`` pixels (``j`` frame widths to the right) on a wider canvas, so boxes
of different groups never overlap and pycocotools' box pre-filter skips every cross-group pair
without an RLE merge. Only the first run length changes; in the compressed string it is never the
base of a delta (pycocotools deltas start at index 3), so the rest of the string is reused as is.
"""

from typing import List, Sequence

import numpy as np

__all__ = ["shift_rles", "MAX_CANVAS_PIXELS"]

MAX_CANVAS_PIXELS = 2**31 - 1  # run lengths are 32-bit in pycocotools; stay well inside
_CHUNKS = 7  # 5-bit chunks of a 32-bit value


def shift_rles(
    rles: Sequence[dict], offsets: np.ndarray, height: int, canvas_width: int
) -> List[dict]:
    """Copies of ``rles`` with ``offsets[i]`` pixels added to the first (background) run.

    Args:
        rles: compressed RLE dicts (``counts`` str or bytes) of one frame size.
        offsets: int64 [N] pixel shifts (multiples of ``height`` keep columns aligned).
        height: frame height (unchanged).
        canvas_width: width declared in the returned ``size`` (must cover every shifted mask).

    Returns:
        New RLE dicts with ``counts`` as str; the inputs are not modified.
    """
    n = len(rles)
    if n == 0:
        return []
    counts = [r["counts"] for r in rles]
    counts = [c.decode("ascii") if isinstance(c, bytes) else c for c in counts]
    head = "".join([c[:_CHUNKS].ljust(_CHUNKS, "0") for c in counts]).encode("ascii")
    arr = np.frombuffer(head, dtype=np.uint8).reshape(n, _CHUNKS).astype(np.int64) - 48
    more = (arr & 0x20) != 0
    used = np.argmin(more, axis=1) + 1  # chars of the first value
    shifts = 5 * np.arange(_CHUNKS)
    live = np.arange(_CHUNKS)[None, :] < used[:, None]
    value = np.where(live, (arr & 0x1F) << shifts, 0).sum(axis=1) + np.asarray(offsets, np.int64)
    out = np.zeros((n, _CHUNKS), dtype=np.uint8)
    length = np.zeros(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    v = value
    for i in range(_CHUNKS):  # the pycocotools encoder, on all values at once
        c = v & 0x1F
        v = v >> 5
        cont = np.where((c & 0x10) != 0, v != -1, v != 0)
        out[:, i] = np.where(cont, c | 0x20, c) + 48
        length = np.where(done, length, i + 1)
        done |= ~cont
    prefix = out.tobytes().decode("ascii")
    size = [int(height), int(canvas_width)]
    return [
        {"size": size, "counts": prefix[_CHUNKS * i : _CHUNKS * i + ln] + c[u:]}
        for i, (c, ln, u) in enumerate(zip(counts, length.tolist(), used.tolist()))
    ]
