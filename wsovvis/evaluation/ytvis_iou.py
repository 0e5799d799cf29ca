"""Video mask IoU for one video, batched over all (detection, GT) pairs.

Official semantics (youtubevos/cocoapi ``YTVOSeval.computeIoU``) for a pair ``(d, g)``:
``I`` and ``U`` are integer pixel counts summed over ``zip(d, g)`` frames (shorter sequence wins);
a frame where both are present adds ``|d ∩ g|`` and ``|d ∪ g|`` (nothing when their RLE sizes
differ), a frame where one is present adds its area to ``U``; ``IoU = I / U`` or 0 when ``U == 0``.

Here the areas of all RLEs of the video come from one C call, and ``pycocotools.mask.iou`` in
crowd mode returns ``|d ∩ g| / |d|`` for the pairs present on the same frame and in the same
group (category; one group in class-agnostic mode): one call per (frame, group), or, when groups
are small, one call per video with the groups moved apart on a wide canvas (see
:mod:`.ytvis_rle_shift`) so no merge is spent on pairs that are never read. The integer
intersection is recovered with ``rint(o * |d|)`` (exact: ``|d| < 2**32``). Unions come from
prefix sums of per-frame areas, so only integers are summed and a single float64 division is made
per pair, bit-identical to the official loop.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_util
from pycocotools import _mask

from .ytvis_rle_codec import MARK, encode_marked, marked_to_list
from .ytvis_rle_shift import MAX_CANVAS_PIXELS, shift_rles

__all__ = ["convert_gt_frames", "check_result_frames", "corrupt_mask_message", "video_iou"]


def convert_gt_frames(
    tracks: Sequence[Sequence], hw: Optional[Tuple[int, int]], video_id: int, ann_ids: Sequence[int]
) -> Tuple[List[List[Optional[dict]]], Dict[int, int]]:
    """Convert GT per-frame segmentations of one video to compressed RLE (``annToRLE``).

    Falsy entries (None, [], {}) are absent frames. Uncompressed RLE uses its own ``size``;
    polygons use the video size and are merged, exactly as ``YTVOS.annToRLE``. Compressed RLE is
    passed through. Lists rewritten to ``"#..."`` strings by the GT file loader are encoded with
    :func:`.ytvis_rle_codec.encode_marked` (byte-identical to ``frUncompressedRLE``). The input
    lists are not modified.

    Args:
        tracks: per GT track, its ``segmentations`` list.
        hw: the video's ``(height, width)`` (needed for polygons only).
        video_id: for error messages.
        ann_ids: per track, the annotation id (for error messages).

    Returns:
        ``(rles, known_areas)``: per track, a list of compressed RLE dicts (``counts`` str or
        bytes) or None; ``id(rle dict) -> area`` for the RLEs whose area is already known.
    """
    out: List[List[Optional[dict]]] = []
    pending, slots = [], []
    marked, marked_slots = [], []
    known_areas: Dict[int, int] = {}
    for ti, seq in enumerate(tracks):
        row: List[Optional[dict]] = []
        for t, s in enumerate(seq):
            if not s:
                row.append(None)
                continue
            if isinstance(s, dict):
                counts = s.get("counts")
                if type(counts) is str and counts[:1] == MARK:  # list rewritten at load time
                    size = s.get("size")
                    if (
                        type(size) is list
                        and len(size) == 2
                        and all(type(v) is int and v >= 0 for v in size)
                    ):
                        marked.append(counts)
                        marked_slots.append((ti, t, size))
                    else:  # unusual size: the regular list path (and its errors)
                        pending.append({"size": s["size"], "counts": marked_to_list(counts)})
                        slots.append((ti, t))
                    row.append(None)
                elif isinstance(counts, (str, bytes)):
                    row.append(s)
                elif isinstance(counts, list):
                    pending.append({"size": s["size"], "counts": counts})
                    slots.append((ti, t))
                    row.append(None)
                else:
                    raise ValueError(
                        f"GT annotation id={ann_ids[ti]} (video {video_id}) frame {t}: "
                        f"unsupported RLE {s!r:.80}"
                    )
            elif isinstance(s, list):
                if hw is None:
                    raise ValueError(f"GT video {video_id} has polygons but no height/width")
                row.append(mask_util.merge(mask_util.frPyObjects(s, hw[0], hw[1])))
            else:
                raise ValueError(
                    f"GT annotation id={ann_ids[ti]} (video {video_id}) frame {t}: "
                    f"unsupported segmentation type {type(s).__name__}"
                )
        out.append(row)
    if marked:
        encoded = encode_marked(marked, with_totals=True)
        if encoded is None:  # not plain uint32 lists: the JSON lists and pycocotools decide
            pending.extend(
                {"size": sz, "counts": marked_to_list(c)}
                for c, (_, _, sz) in zip(marked, marked_slots)
            )
            slots.extend((ti, t) for ti, t, _ in marked_slots)
        else:
            for c, a, total, (ti, t, sz) in zip(*encoded, marked_slots):
                _check_total(total, sz, ann_ids[ti], video_id, t)
                rle = {"size": list(sz), "counts": c}
                out[ti][t] = rle
                known_areas[id(rle)] = a
    for rle, (ti, t) in zip(pending, slots):
        size = rle["size"]
        if all(type(c) is int for c in rle["counts"]) and len(size) == 2:
            _check_total(sum(rle["counts"]), size, ann_ids[ti], video_id, t)
    if pending:
        h, w = hw if hw is not None else (0, 0)
        try:
            rles = _mask.frUncompressedRLE(pending, h, w)
        except (OverflowError, TypeError, ValueError) as e:  # e.g. negative run lengths
            ids = sorted({int(ann_ids[ti]) for ti, _ in slots})
            raise ValueError(
                f"GT video {video_id} (annotation ids {ids[:10]}): uncompressed RLE refused by "
                f"pycocotools: {e}"
            ) from e
        for (ti, t), rle in zip(slots, rles):
            out[ti][t] = rle
    return out, known_areas


def corrupt_mask_message(what: str, video_id: int, t: int, h: int, w: int) -> str:
    """The error for a mask whose run lengths do not sum to ``h * w`` (both scoring paths).

    Args:
        what: the entry, e.g. ``"results[3]"`` or ``"GT annotation id=7"``.
        video_id, t: its video and frame.
        h, w: the mask's size.
    """
    return (
        f"{what} (video_id={video_id}) frame {t}: the RLE run lengths do not sum to "
        f"height x width = {h} x {w} (a corrupt mask)"
    )


def _check_total(total: int, size, ann_id: int, video_id: int, t: int) -> None:
    """A mask whose run lengths do not sum to h * w is corrupt (pycocotools can hang on it)."""
    h, w = int(size[0]), int(size[1])
    if total != h * w:
        raise ValueError(corrupt_mask_message(f"GT annotation id={ann_id}", video_id, t, h, w))


def check_result_frames(
    seq: Sequence, hw: Optional[Tuple[int, int]], result_index: int, video_id: int
) -> None:
    """Check that every frame of a result is null or a compressed RLE of the video's size.

    Args:
        seq: the result's ``segmentations``.
        hw: the video's ``(height, width)``; None skips the size check.
        result_index: index in the results list (for errors).
        video_id: for errors.
    """
    expected = [hw[0], hw[1]] if hw is not None else None
    for t, s in enumerate(seq):
        if s is None:
            continue
        if type(s) is dict and type(s.get("counts")) is str and s.get("size") == expected:
            continue  # fast path: the usual well-formed frame
        if (
            not isinstance(s, dict)
            or not isinstance(s.get("counts"), (str, bytes))
            or "size" not in s
        ):
            raise ValueError(
                f"results[{result_index}] (video_id={video_id}) frame {t}: expected a "
                f"compressed RLE dict {{'size', 'counts': str}} or null, got {s!r:.80}"
            )
        size = s["size"]
        if hw is not None and (len(size) != 2 or int(size[0]) != hw[0] or int(size[1]) != hw[1]):
            raise ValueError(
                f"results[{result_index}] (video_id={video_id}) frame {t}: RLE size "
                f"{list(size)} differs from the video size {list(hw)}"
            )


def _frame_entries(tracks: Sequence[Sequence[Optional[dict]]]):
    """Present (truthy) frames of every track: RLE list, track row and frame column."""
    rles, rows, cols = [], [], []
    for i, seq in enumerate(tracks):
        for t, s in enumerate(seq):
            if s:
                rles.append(s)
                rows.append(i)
                cols.append(t)
    return rles, np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


def _fill_areas(rles: List[dict], areas: np.ndarray) -> np.ndarray:
    """Complete ``areas`` (-1 = unknown) with one ``pycocotools.mask.area`` call."""
    todo = np.nonzero(areas < 0)[0]
    if len(todo):
        objs = [rles[i] for i in todo.tolist()]
        # pycocotools 2.0.11 fails on area() of more than 255 objects: call in chunks
        areas[todo] = np.concatenate(
            [mask_util.area(objs[i : i + 255]) for i in range(0, len(objs), 255)]
        )
    return areas


def _by_key(rles, rows, keys):
    """Sort frame entries by pairing key (stable)."""
    idx = np.argsort(keys, kind="stable")
    return [rles[i] for i in idx.tolist()], rows[idx], keys[idx], idx


def _key_pairs(d_keys, g_keys, common):
    """All (detection entry, GT entry) pairs sharing a key, row-major per key block."""
    d_lo = np.searchsorted(d_keys, common, "left")
    d_n = np.searchsorted(d_keys, common, "right") - d_lo
    g_lo = np.searchsorted(g_keys, common, "left")
    g_n = np.searchsorted(g_keys, common, "right") - g_lo
    sizes = d_n * g_n
    block = np.repeat(np.arange(len(common)), sizes)
    local = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    pd = d_lo[block] + local // g_n[block]
    pg = g_lo[block] + local % g_n[block]
    return d_lo, d_n, g_lo, g_n, pd, pg


_TRANSLATE_MAX_PAIRS_PER_KEY = 8  # sparse keys: batch them (see ytvis_rle_shift); dense: per key


def _overlaps_per_key(d_rles, g_rles, d_lo, d_n, g_lo, g_n):
    """Crowd-mode overlaps ``|d & g| / |d|`` of all same-key pairs, one pycocotools call per key.

    Returns:
        float64 overlaps per pair (0 for a size mismatch, where pycocotools gives -1).
    """
    crowd = [1] * int(g_n.max())
    parts = []
    for dl, dn, gl, gn in zip(d_lo.tolist(), d_n.tolist(), g_lo.tolist(), g_n.tolist()):
        o = mask_util.iou(d_rles[dl : dl + dn], g_rles[gl : gl + gn], crowd[:gn])
        parts.append(np.asarray(o, dtype=np.float64).ravel())
    return np.maximum(np.concatenate(parts), 0.0)


def _overlaps_translated(d_rles, d_keys, g_rles, g_keys, g_bad, common, hw, pd, pg):
    """Same result as :func:`_overlaps_per_key` with one pycocotools call per chunk of keys.

    Entries of the ``j``-th key are shifted ``j`` frame widths right on a wide canvas; boxes of
    different keys are disjoint, so pycocotools merges only same-key pairs. GT frames of another
    size than the video are left out (their intersection is 0 by definition).
    """
    h, w = hw
    per_call = max(1, MAX_CANVAS_PIXELS // max(1, h * w) - 1)
    d_grp = np.searchsorted(common, d_keys)
    g_grp = np.searchsorted(common, g_keys)
    d_in = (d_grp < len(common)) & (common[np.minimum(d_grp, len(common) - 1)] == d_keys)
    g_in = (g_grp < len(common)) & (common[np.minimum(g_grp, len(common) - 1)] == g_keys) & ~g_bad
    out = np.zeros(len(pd), dtype=np.float64)
    pair_grp = d_grp[pd]
    pos_d = np.full(len(d_rles), -1)
    pos_g = np.full(len(g_rles), -1)
    for c0 in range(0, len(common), per_call):
        c1 = min(c0 + per_call, len(common))
        sd = np.nonzero(d_in & (d_grp >= c0) & (d_grp < c1))[0]
        sg = np.nonzero(g_in & (g_grp >= c0) & (g_grp < c1))[0]
        if len(sd) == 0 or len(sg) == 0:
            continue
        width = w * (c1 - c0)
        dts = shift_rles([d_rles[i] for i in sd.tolist()], (d_grp[sd] - c0) * (h * w), h, width)
        gts = shift_rles([g_rles[i] for i in sg.tolist()], (g_grp[sg] - c0) * (h * w), h, width)
        o = np.asarray(mask_util.iou(dts, gts, [1] * len(gts)), dtype=np.float64)
        o = o.reshape(len(sd), len(sg))
        pos_d[:] = -1
        pos_d[sd] = np.arange(len(sd))
        pos_g[:] = -1
        pos_g[sg] = np.arange(len(sg))
        sel = (pair_grp >= c0) & (pair_grp < c1) & (pos_g[pg] >= 0)
        out[sel] = o[pos_d[pd[sel]], pos_g[pg[sel]]]
    return np.maximum(out, 0.0)


def video_iou(
    dt: Sequence[Sequence[Optional[dict]]],
    gt: Sequence[Sequence[Optional[dict]]],
    hw: Optional[Tuple[int, int]],
    dt_group: np.ndarray,
    gt_group: np.ndarray,
    gt_areas: Optional[Dict[int, int]] = None,
):
    """IoU matrix of the detections against the GT tracks of one video.

    Only pairs in the same group (the category; one group in class-agnostic mode) are computed:
    pycocotools is called once per (frame, group) holding both a detection and a GT mask, so no
    RLE merge is spent on pairs that are never read.

    Args:
        dt: per detection, per frame compressed RLE (size = video size) or None.
        gt: per GT track, per frame compressed RLE or None (see :func:`convert_gt_frames`).
        hw: the video size (None: the first detection's); GT frames of another size give
            nothing to a pair's I and U.
        dt_group: int [D] group of each detection, ``gt_group``: int [G] (values >= 0).
        gt_areas: ``id(GT RLE dict) -> area`` where known (see :func:`convert_gt_frames`).

    Returns:
        ``(iou, dt_areas)``: float64 [D, G] IoU (0 across groups), int64 [D, T] per-frame
        detection areas.
    """
    num_d, num_g = len(dt), len(gt)
    len_d = np.array([len(s) for s in dt], dtype=np.int64)
    len_g = np.array([len(s) for s in gt], dtype=np.int64)
    num_t = int(max(len_d.max(initial=0), len_g.max(initial=0)))
    d_rles, d_rows, d_cols = _frame_entries(dt)
    a_d = np.zeros((num_d, num_t), dtype=np.int64)
    if num_d == 0 or num_g == 0:
        a_d[d_rows, d_cols] = _fill_areas(d_rles, np.full(len(d_rles), -1, dtype=np.int64))
        return np.zeros((num_d, num_g)), a_d
    g_rles, g_rows, g_cols = _frame_entries(gt)
    ngroups = int(max(dt_group.max(), gt_group.max())) + 1
    d_rles, d_rows, d_keys, d_idx = _by_key(d_rles, d_rows, d_cols * ngroups + dt_group[d_rows])
    g_rles, g_rows, g_keys, g_idx = _by_key(g_rles, g_rows, g_cols * ngroups + gt_group[g_rows])
    d_cols, g_cols = d_cols[d_idx], g_cols[g_idx]
    d_area = np.full(len(d_rles), -1, dtype=np.int64)
    known = gt_areas or {}
    g_area = np.array([known.get(id(r), -1) for r in g_rles], dtype=np.int64)
    inter = np.zeros(num_d * num_g, dtype=np.float64)
    lost = np.zeros(num_d * num_g, dtype=np.float64)  # areas of size-mismatched frame pairs
    common = np.intersect1d(d_keys, g_keys)
    pair = None
    if hw is None and d_rles:  # GT video without height/width: use the detections' size
        hw = (int(d_rles[0]["size"][0]), int(d_rles[0]["size"][1]))
    if len(common):
        d_lo, d_n, g_lo, g_n, pd, pg = _key_pairs(d_keys, g_keys, common)
        g_bad = np.array(
            [int(r["size"][0]) != hw[0] or int(r["size"][1]) != hw[1] for r in g_rles],
            dtype=bool,
        )
        if len(common) > 1 and len(pd) < _TRANSLATE_MAX_PAIRS_PER_KEY * len(common):
            o = _overlaps_translated(d_rles, d_keys, g_rles, g_keys, g_bad, common, hw, pd, pg)
        else:
            o = _overlaps_per_key(d_rles, g_rles, d_lo, d_n, g_lo, g_n)
        pair = d_rows[pd] * num_g + g_rows[pg]
    a_d[d_rows, d_cols] = _fill_areas(d_rles, d_area)
    a_g = np.zeros((num_g, num_t), dtype=np.int64)
    a_g[g_rows, g_cols] = _fill_areas(g_rles, g_area)
    if pair is not None:
        ad = a_d[d_rows[pd], d_cols[pd]]
        inter += np.bincount(pair, weights=np.rint(o * ad), minlength=num_d * num_g)
        if g_bad.any():
            bad = g_bad[pg]
            ag = a_g[g_rows[pg], g_cols[pg]]
            lost += np.bincount(pair[bad], weights=(ad + ag)[bad], minlength=num_d * num_g)
    inter = inter.astype(np.int64).reshape(num_d, num_g)
    lost = lost.astype(np.int64).reshape(num_d, num_g)
    cum_d = np.concatenate([np.zeros((num_d, 1), np.int64), np.cumsum(a_d, axis=1)], axis=1)
    cum_g = np.concatenate([np.zeros((num_g, 1), np.int64), np.cumsum(a_g, axis=1)], axis=1)
    common_len = np.minimum(len_d[:, None], len_g[None, :])
    union = (
        (
            np.take_along_axis(cum_d, common_len, axis=1)
            + np.take_along_axis(cum_g.T, common_len, axis=0)
        )
        - inter
        - lost
    )
    iou = np.zeros((num_d, num_g), dtype=np.float64)
    np.divide(inter, union, out=iou, where=union > 0)
    iou[dt_group[:, None] != gt_group[None, :]] = 0.0
    return iou, a_d
