"""Per-video phase of the scorer: validate result frames, IoU, matching blocks.

Streams over videos and visits only (video, category) pairs that hold a GT track or a detection.
Videos whose masks were packed from the JSON files (:mod:`.ytvis_packed`) are scored by one call
of the compiled kernel; the others (in-memory inputs, polygons, unusual RLEs, no compiler) take
the numpy/pycocotools path, one video at a time, optionally split over forked worker processes
(the loaded inputs are shared copy-on-write; only small per-block IoU matrices come back).
Both paths give the same IoU, bit for bit.
"""

import logging
import multiprocessing as mp
from typing import Dict, List, Optional, Tuple

import numpy as np

from .ytvis_data import Detections, GroundTruth
from .ytvis_iou import check_result_frames, convert_gt_frames, corrupt_mask_message, video_iou
from .ytvis_packed import packed_video_iou

__all__ = ["run_videos"]

logger = logging.getLogger(__name__)

_STATE: Optional[tuple] = None  # inputs shared with forked workers


def _segs(tracks, index: int, packed):
    """The ``segmentations`` list of entry ``index`` (materialised when packed)."""
    s = tracks[index]
    return packed.segmentations(s) if type(s) is int else s


def _video_blocks(d0: int, rk: np.ndarray, gk: np.ndarray, g_idx: np.ndarray, iou: np.ndarray):
    """Matching blocks of one video: one per category (detections/GT of a category are
    contiguous, both sorted by category)."""
    if len(rk) and (len(gk) == 0 or (rk[0] == rk[-1] and gk[0] == gk[-1] == rk[0])):
        return [(d0, len(rk), g_idx, iou)]  # a single category (always in class-agnostic mode)
    blocks = []
    for k in np.union1d(rk, gk).tolist():
        r0, r1 = int(np.searchsorted(rk, k)), int(np.searchsorted(rk, k, side="right"))
        c0, c1 = int(np.searchsorted(gk, k)), int(np.searchsorted(gk, k, side="right"))
        blocks.append((d0 + r0, r1 - r0, g_idx[c0:c1], iou[r0:r1, c0:c1]))
    return blocks


def _python_videos(positions: List[int]):
    """Blocks and detection mean areas of the videos at ``positions`` (numpy/pycocotools)."""
    gt, dets, order, kept, det_k, all_bounds, kept_bounds, class_agnostic = _STATE
    out = {}
    for p in positions:
        g_idx = gt.by_video[p]
        d0, d1 = int(kept_bounds[p]), int(kept_bounds[p + 1])
        if len(g_idx) == 0 and d0 == d1:
            continue
        vid, hw = int(gt.video_ids[p]), gt.video_hw[p]
        segs = {
            i: _segs(dets.segs, i, dets.packed)
            for i in order[all_bounds[p] : all_bounds[p + 1]].tolist()
        }
        for i, seq in segs.items():
            check_result_frames(seq, hw, int(dets.result_index[i]), vid)
        dt_tracks = [segs[i] for i in kept[d0:d1].tolist()]  # kept: a subset of the video's
        rk = det_k[d0:d1]
        gk = np.zeros(len(g_idx), np.int64) if class_agnostic else gt.cat_pos[g_idx]
        g_act = np.nonzero(np.isin(gk, rk))[0]  # only GT that can pair with a detection
        gt_tracks, gt_areas = convert_gt_frames(
            [_segs(gt.segs, g, gt.packed) for g in g_idx[g_act].tolist()],
            hw,
            vid,
            gt.ann_ids[g_idx[g_act]].tolist(),
        )
        iou_act, a_d = video_iou(dt_tracks, gt_tracks, hw, rk, gk[g_act], gt_areas)
        iou = np.zeros((d1 - d0, len(g_idx)))
        iou[:, g_act] = iou_act
        npos = (a_d > 0).sum(axis=1)
        area = np.where(npos > 0, a_d.sum(axis=1) / np.maximum(npos, 1), 0.0)
        out[p] = (_video_blocks(d0, rk, gk, g_idx, iou), area)
    return out


_INT32_MAX = 2**31 - 1


def _video_sizes(gt: GroundTruth) -> Tuple[np.ndarray, np.ndarray]:
    """Per video position: whether the JSON gives a size, and that size for the kernel.

    Returns:
        ``(known, hw)``: bool ``(V,)``; int64 ``(V, 2)``, ``(-1, -1)`` where the size is unknown
        or outside ``[0, 2**31 - 1]`` (the kernel's range; no packed frame has such a size).
    """
    known = np.array([x is not None for x in gt.video_hw], dtype=bool)
    hw = np.array(
        [
            x if x is not None and 0 <= min(x) and max(x) <= _INT32_MAX else (-1, -1)
            for x in gt.video_hw
        ],
        dtype=np.int64,
    ).reshape(-1, 2)
    return known, hw


def _first_bad_packed_frame(
    dets: Detections, order: np.ndarray, known: np.ndarray, video_hw: np.ndarray
):
    """Vectorised :func:`check_result_frames` of every packed detection.

    Args:
        dets, order: the detections, in evaluation order.
        known, video_hw: see :func:`_video_sizes`.

    Returns:
        The index of the first detection (in ``order``) with a frame that is not a compressed
        RLE of the video's size, or None.
    """
    packed = dets.packed
    sel = order[dets.tracks[order] >= 0]
    tracks = dets.tracks[sel]
    start = packed.track_start[tracks]
    count = packed.num_frames(tracks)
    det_of_frame = np.repeat(np.arange(len(sel)), count)
    first_frame = np.repeat(np.cumsum(count) - count, count)
    frame = np.arange(int(count.sum())) - first_frame + start[det_of_frame]
    vpos = dets.video_pos[sel][det_of_frame]
    vhw = video_hw[vpos]
    kind = packed.kind[frame] & 3
    bad = kind == 2  # uncompressed counts are not a valid result frame
    size_differs = (packed.h[frame] != vhw[:, 0]) | (packed.w[frame] != vhw[:, 1])
    bad |= (kind == 1) & known[vpos] & size_differs
    return int(sel[det_of_frame[np.argmax(bad)]]) if bad.any() else None


def _raise_result_frame_error(gt: GroundTruth, dets: Detections, order: np.ndarray, i: int):
    """Raise the :func:`check_result_frames` error of detection ``i`` (after those of the
    unpacked detections placed before it, which the reference order meets first)."""
    first = int(np.nonzero(order == i)[0][0])
    for j in order[:first].tolist() + [i]:
        p = int(dets.video_pos[j])
        check_result_frames(
            _segs(dets.segs, j, dets.packed),
            gt.video_hw[p],
            int(dets.result_index[j]),
            int(gt.video_ids[p]),
        )
    raise AssertionError("packed frame check disagrees with check_result_frames")


def _packed_videos(gt, dets, kept, det_k, kept_bounds, class_agnostic, candidates, video_hw):
    """Blocks and detection mean areas of the packed videos scored by the kernel.

    ``candidates``: bool per video position, the videos to try; ``video_hw``: their sizes
    (:func:`_video_sizes`).

    Returns:
        ``(scored, flagged, corrupt)``: video position -> (blocks, mean areas); positions the
        kernel left to the numpy/pycocotools path; None or ``(position, message)`` of the first
        video with a corrupt mask.
    """
    pos = np.nonzero(candidates)[0]
    d_cnt = (kept_bounds[1:] - kept_bounds[:-1])[pos]
    g_lists = [gt.by_video[p] for p in pos.tolist()]
    g_all = np.concatenate(g_lists) if g_lists else np.zeros(0, np.int64)
    g_cnt = np.array([len(g) for g in g_lists], dtype=np.int64)
    d_all = np.nonzero(candidates[dets.video_pos[kept]])[0]  # kept detections of those videos
    hw = video_hw[pos]
    g_group = np.zeros(len(g_all), np.int64) if class_agnostic else gt.cat_pos[g_all]
    iou, area, status, bad = packed_video_iou(
        dets.packed,
        gt.packed,
        hw,
        np.concatenate([[0], np.cumsum(d_cnt)]),
        dets.tracks[kept[d_all]],
        det_k[d_all],
        np.concatenate([[0], np.cumsum(g_cnt)]),
        gt.tracks[g_all],
        g_group,
    )
    corrupt = None
    for j in np.nonzero(status == 2)[0][:1].tolist():
        p, (item, t) = int(pos[j]), bad[j].tolist()
        if item >= 0:
            i = int(kept[d_all[int(d_cnt[:j].sum()) + item]])
            what, f = f"results[{int(dets.result_index[i])}]", dets.packed.frame_row(
                int(dets.tracks[i]), t
            )
            packed = dets.packed
        else:
            g = g_lists[j][-item - 1]
            what, packed = f"GT annotation id={int(gt.ann_ids[g])}", gt.packed
            f = packed.frame_row(int(gt.tracks[g]), t)
        h, w = int(packed.h[f]), int(packed.w[f])
        corrupt = (p, corrupt_mask_message(what, int(gt.video_ids[p]), t, h, w))
    scored: Dict[int, tuple] = {}
    i_off = d_off = g_off = 0
    for j, p in enumerate(pos.tolist()):
        nd, ng = int(d_cnt[j]), int(g_cnt[j])
        if not status[j] and (nd or ng):
            d0 = int(kept_bounds[p])
            gk = g_group[g_off : g_off + ng]
            mat = iou[i_off : i_off + nd * ng].reshape(nd, ng)
            blocks = _video_blocks(d0, det_k[d0 : d0 + nd], gk, g_lists[j], mat)
            scored[p] = (blocks, area[d_off : d_off + nd])
        i_off += nd * ng
        d_off += nd
        g_off += ng
    return scored, pos[status == 1].tolist(), corrupt


def _kernel_phase(gt, dets, order, kept, det_k, kept_bounds, class_agnostic):
    """The compiled kernel's share of :func:`run_videos` (inputs read from packed files).

    Returns:
        ``(scored, slow)``: video position -> (blocks, mean areas) for the videos the kernel
        scored; the positions left to the numpy/pycocotools path. Raises the error of bad input
        the reference path (video by video) would meet first.
    """
    known, video_hw = _video_sizes(gt)
    bad_det = _first_bad_packed_frame(dets, order, known, video_hw)
    # a video is scored by the kernel when its size is known and in the kernel's range, and all
    # its tracks are packed
    ok = video_hw[:, 0] >= 0
    np.logical_and.at(ok, dets.video_pos[order], dets.tracks[order] >= 0)
    np.logical_and.at(ok, gt.video_pos, gt.tracks >= 0)
    scored, flagged, corrupt = _packed_videos(
        gt, dets, kept, det_k, kept_bounds, class_agnostic, ok, video_hw
    )
    slow = sorted(set(np.nonzero(~ok)[0].tolist()) | set(flagged))
    errors = []
    if bad_det is not None:
        errors.append((int(dets.video_pos[bad_det]), 0, bad_det))
    if corrupt is not None:
        errors.append((corrupt[0], 1, corrupt[1]))
    if errors:
        p_err, kind, info = min(errors, key=lambda e: e[:2])
        _python_videos([q for q in slow if q < p_err])  # errors of earlier videos come first
        if kind == 0:
            _raise_result_frame_error(gt, dets, order, info)
        raise ValueError(info)
    return scored, slow


def _chunks(items: List[int], parts: int) -> List[List[int]]:
    bounds = np.linspace(0, len(items), parts + 1).round().astype(int)
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def run_videos(
    gt: GroundTruth,
    dets: Detections,
    order: np.ndarray,
    kept: np.ndarray,
    class_agnostic: bool,
    num_workers: int = 0,
):
    """IoU + matching blocks for every non-empty (video, category) pair.

    Args:
        gt, dets: loaded inputs.
        order: all detections sorted by (video, block order); ``kept``: the scored subset.
        class_agnostic: one block per video instead of per (video, category).
        num_workers: forked worker processes for the numpy/pycocotools path (0: in this
            process). Falls back to 0 where the ``fork`` start method is unavailable.

    Returns:
        ``(det_k, det_v, det_avg, blocks)``: per kept detection its category position (0 in
        class-agnostic mode), video position and mean area; the list of matching blocks
        ``(det_start, num_det, gt_index, iou)`` in video order.
    """
    global _STATE
    det_k = np.zeros(len(kept), np.int64) if class_agnostic else dets.cat_pos[kept]
    det_v = dets.video_pos[kept]
    nv = len(gt.video_ids)
    all_bounds = np.searchsorted(dets.video_pos[order], np.arange(nv + 1))
    kept_bounds = np.searchsorted(det_v, np.arange(nv + 1))
    results: Dict[int, tuple] = {}
    slow = list(range(nv))
    if num_workers > 0 and "fork" not in mp.get_all_start_methods():
        logger.warning(
            "num_workers=%d ignored: the 'fork' start method is unavailable", num_workers
        )
        num_workers = 0
    _STATE = (gt, dets, order, kept, det_k, all_bounds, kept_bounds, class_agnostic)
    try:
        if gt.packed is not None and dets.packed is not None and nv:
            results, slow = _kernel_phase(gt, dets, order, kept, det_k, kept_bounds, class_agnostic)
        if num_workers > 0 and len(slow) > 1:
            chunks = _chunks(slow, min(len(slow), 4 * num_workers))
            with mp.get_context("fork").Pool(num_workers) as pool:
                parts = pool.map(_python_videos, chunks)
        else:
            parts = [_python_videos(slow)] if slow else []
    finally:
        _STATE = None
    for part in parts:
        results.update(part)
    det_avg = np.zeros(len(kept), dtype=np.float64)
    blocks = []
    for p in sorted(results):
        part_blocks, avg = results[p]
        blocks.extend(part_blocks)
        d0 = int(kept_bounds[p])
        det_avg[d0 : d0 + len(avg)] = avg
    return det_k, det_v, det_avg, blocks
