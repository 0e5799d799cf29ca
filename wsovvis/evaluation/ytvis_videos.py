"""Per-video phase of the scorer: validate result frames, IoU, matching blocks.

Streams over videos (only the masks of one video are converted at a time) and visits only
(video, category) pairs that hold a GT track or a detection. Optionally splits the videos over
forked worker processes (the loaded inputs are shared copy-on-write; only small per-block IoU
matrices come back).
"""

import logging
import multiprocessing as mp
from typing import List, Optional, Tuple

import numpy as np

from .ytvis_data import Detections, GroundTruth
from .ytvis_iou import check_result_frames, convert_gt_frames, video_iou

__all__ = ["run_videos"]

logger = logging.getLogger(__name__)

_STATE: Optional[tuple] = None  # inputs shared with forked workers


def _process_range(p0: int, p1: int):
    """Blocks and detection mean areas of videos ``p0 .. p1 - 1`` (positions)."""
    gt, dets, order, kept, det_k, all_bounds, kept_bounds, class_agnostic = _STATE
    blocks, areas = [], []
    for p in range(p0, p1):
        g_idx = gt.by_video[p]
        d0, d1 = int(kept_bounds[p]), int(kept_bounds[p + 1])
        if len(g_idx) == 0 and d0 == d1:
            continue
        vid, hw = int(gt.video_ids[p]), gt.video_hw[p]
        for i in order[all_bounds[p] : all_bounds[p + 1]].tolist():
            check_result_frames(dets.segs[i], hw, int(dets.result_index[i]), vid)
        dt_tracks = [dets.segs[i] for i in kept[d0:d1].tolist()]
        rk = det_k[d0:d1]
        gk = np.zeros(len(g_idx), np.int64) if class_agnostic else gt.cat_pos[g_idx]
        g_act = np.nonzero(np.isin(gk, rk))[0]  # only GT that can pair with a detection
        gt_tracks, gt_areas = convert_gt_frames(
            [gt.segs[g] for g in g_idx[g_act].tolist()], hw, vid, gt.ann_ids[g_idx[g_act]].tolist()
        )
        iou_act, a_d = video_iou(dt_tracks, gt_tracks, hw, rk, gk[g_act], gt_areas)
        iou = np.zeros((d1 - d0, len(g_idx)))
        iou[:, g_act] = iou_act
        npos = (a_d > 0).sum(axis=1)
        areas.append((d0, np.where(npos > 0, a_d.sum(axis=1) / np.maximum(npos, 1), 0.0)))
        # detections of a category are contiguous (sorted by category), GT too
        for k in np.union1d(rk, gk).tolist():
            r0, r1 = int(np.searchsorted(rk, k)), int(np.searchsorted(rk, k, side="right"))
            c0, c1 = int(np.searchsorted(gk, k)), int(np.searchsorted(gk, k, side="right"))
            blocks.append((d0 + r0, r1 - r0, g_idx[c0:c1], iou[r0:r1, c0:c1]))
    return blocks, areas


def _chunks(num_videos: int, parts: int) -> List[Tuple[int, int]]:
    bounds = np.linspace(0, num_videos, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


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
        num_workers: forked worker processes (0: in this process). Falls back to 0 where the
            ``fork`` start method is unavailable.

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
    if num_workers > 0 and "fork" not in mp.get_all_start_methods():
        logger.warning(
            "num_workers=%d ignored: the 'fork' start method is unavailable", num_workers
        )
        num_workers = 0
    _STATE = (gt, dets, order, kept, det_k, all_bounds, kept_bounds, class_agnostic)
    try:
        if num_workers > 0 and nv > 1:
            ranges = _chunks(nv, min(nv, 4 * num_workers))
            with mp.get_context("fork").Pool(num_workers) as pool:
                parts = pool.starmap(_process_range, ranges)
        else:
            parts = [_process_range(0, nv)]
    finally:
        _STATE = None
    det_avg = np.zeros(len(kept), dtype=np.float64)
    blocks = []
    for part_blocks, part_areas in parts:
        blocks.extend(part_blocks)
        for d0, avg in part_areas:
            det_avg[d0 : d0 + len(avg)] = avg
    return det_k, det_v, det_avg, blocks
