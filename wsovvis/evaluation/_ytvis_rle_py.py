"""Pure-Python stand-in for the ``_ytvis_rle`` C module (same functions, same results).

Used when the extension was not built (no C compiler at install time): correct, much slower.
"""

import numpy as np
import orjson


def _runs(fragment: bytes, allow_arrays: bool):
    """``(run lengths, status)`` of one JSON ``counts`` fragment (see ``_ytvis_rle.c``)."""
    try:
        value = orjson.loads(fragment)
    except orjson.JSONDecodeError:
        return [], 1
    if isinstance(value, list):
        if not allow_arrays:
            return [], 3
        ok = value and all(type(x) is int and 0 <= x < 2**32 for x in value)
        return (value, 0) if ok else ([], 1)
    if not isinstance(value, str):
        return [], 1
    runs, s, p = [], value.encode("latin-1", "replace"), 0
    while p < len(s):  # pycocotools rleFrString
        x = k = 0
        more = True
        while more:
            if p >= len(s) or k > 6 or not 48 <= s[p] <= 111:
                return [], 1
            c = s[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more, p, k = bool(c & 0x20), p + 1, k + 1
            if not more and c & 0x10:
                x -= 1 << (5 * k)
        runs.append((x + (runs[-2] if len(runs) > 2 else 0)) % 2**32)
    return runs, 0


def decode(fragments, heights, allow_arrays: bool):
    """See ``decode`` in ``_ytvis_rle.c``."""
    decoded = [_runs(bytes(f), allow_arrays) for f in fragments]
    heights = np.frombuffer(heights, np.int64)
    stats = np.zeros((len(decoded), 7), np.int64)
    for i, ((r, _), h) in enumerate(zip(decoded, heights.tolist())):
        ends, h = np.cumsum(r, dtype=np.int64), max(h, 1)
        fg = [k for k in range(1, len(r), 2) if r[k]]
        first, last = ends[fg] - np.array(r, np.int64)[fg], ends[fg] - 1
        if fg:
            multi = bool((first // h != last // h).any())
            box = (first.min() // h, last.max() // h + 1)
            box += (0, h) if multi else ((first % h).min(), (last % h).max() + 1)
        else:
            box = (0, 0, 0, 0)
        stats[i] = (sum(r), sum(r[1::2])) + tuple(box) + (0 in r[1:],)
    lengths = [len(r) for r, _ in decoded]
    runs = np.array([x for r, _ in decoded for x in r], np.uint32)
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    status = np.array([s for _, s in decoded], np.int8)
    return runs.tobytes(), starts.tobytes(), status.tobytes(), stats.tobytes()


def merge_areas(runs_a, starts_a, runs_b, starts_b, a, b, lo, hi, pair, bound, limit):
    """See ``merge_areas`` in ``_ytvis_rle.c`` (here every frame is merged, the union given)."""
    del lo, hi, pair, bound, limit
    ra, sa = np.frombuffer(runs_a, np.uint32), np.frombuffer(starts_a, np.int64)
    rb, sb = np.frombuffer(runs_b, np.uint32), np.frombuffer(starts_b, np.int64)
    out = []
    for x, y in zip(np.frombuffer(a, np.int64).tolist(), np.frombuffer(b, np.int64).tolist()):
        out.append(_merge(ra[sa[x] : sa[x + 1]].tolist(), rb[sb[y] : sb[y + 1]].tolist()))
    out = np.array(out, np.int64).reshape(-1, 2)
    return out[:, 0].tobytes(), out[:, 1].tobytes()


def _merge(a, b):
    """pycocotools rleMerge's loop: (intersection area, union area)."""
    a, b = a or [0], b or [0]
    ca, cb, ia, ib, va, vb, ct, inter, union = a[0], b[0], 1, 1, False, False, 1, 0, 0
    while ct > 0:
        c = min(ca, cb)
        inter += c if va and vb else 0
        union += c if va or vb else 0
        ca, cb = ca - c, cb - c
        if not ca and ia < len(a):
            ca, ia, va = a[ia], ia + 1, not va
        if not cb and ib < len(b):
            cb, ib, vb = b[ib], ib + 1, not vb
        ct = (ca + cb) % 2**32
        if c == 0 and ((ca == 0 and ia >= len(a)) or (cb == 0 and ib >= len(b))):
            break  # a list ran out first: pycocotools would loop forever
    return inter % 2**32, union % 2**32
