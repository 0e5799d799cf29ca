"""Greedy detection-to-GT matching (``YTVOSeval.evaluateVid``), vectorised over blocks.

A block is one (video, category) pair (one video in class-agnostic mode) with detections in score
order and GT tracks in file order. Official rule per IoU threshold ``t`` and detection, in score
order: among GT not yet matched at ``t`` (crowd GT always eligible) with ``IoU >= min(t, 1-1e-10)``
take the non-ignored GT of highest IoU if any, else the ignored GT of highest IoU; equal IoU goes
to the later GT (in the stable ignore-last order, i.e. the later one in file order within its
ignore class). This equals the official scan with its ``break`` at the first ignored GT.

All blocks with the same number of GT are stacked; step ``r`` processes the ``r``-th detection of
every block that has one, for all area ranges and thresholds at once.
"""

from typing import List, Tuple

import numpy as np

__all__ = ["IOU_THRESHOLDS", "REC_THRESHOLDS", "MAX_DETS", "AREA_RANGES", "AREA_LABELS",
           "area_outside", "match_blocks"]

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05) + 1), endpoint=True)
REC_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01) + 1), endpoint=True)
MAX_DETS = [1, 10, 100]
AREA_RANGES = [[0**2, 1e5**2], [0**2, 128**2], [128**2, 256**2], [256**2, 1e5**2]]
AREA_LABELS = ["all", "small", "medium", "large"]


def area_outside(avg_area: np.ndarray) -> np.ndarray:
    """Whether each mean track area lies outside each (closed) area range.

    Args:
        avg_area: [N] mean track areas.

    Returns:
        bool [A, N], A = number of area ranges (all, small, medium, large).
    """
    lo = np.array([r[0] for r in AREA_RANGES], dtype=np.float64)[:, None]
    hi = np.array([r[1] for r in AREA_RANGES], dtype=np.float64)[:, None]
    return (avg_area[None, :] < lo) | (avg_area[None, :] > hi)


def _last_argmax(values: np.ndarray) -> np.ndarray:
    """Index of the last maximum along the last axis."""
    n = values.shape[-1]
    return n - 1 - np.argmax(values[..., ::-1], axis=-1)


def _match_group(ious, gt_ids, det_start, gt_ignore, gt_crowd, det_out, matched, ignored):
    """Match blocks that all have the same number of GT (> 0); writes ``matched``/``ignored``."""
    num_g = ious[0].shape[1]
    num_d = np.array([x.shape[0] for x in ious])
    order = np.argsort(-num_d, kind="stable")
    num_d_sorted = num_d[order]
    nb, dmax = len(ious), int(num_d_sorted[0])
    iou = np.full((nb, dmax, num_g), -1.0)
    det_idx = np.zeros((nb, dmax), dtype=np.int64)
    for b, j in enumerate(order.tolist()):
        d = ious[j].shape[0]
        iou[b, :d] = ious[j]
        det_idx[b, :d] = det_start[j] + np.arange(d)
    g_idx = np.stack([gt_ids[j] for j in order.tolist()])  # [B, G]
    ig = np.transpose(gt_ignore[:, g_idx], (1, 0, 2))  # [B, A, G]
    crowd = gt_crowd[g_idx][:, None, None, :]  # [B, 1, 1, G]
    num_a, num_t = gt_ignore.shape[0], len(IOU_THRESHOLDS)
    thr = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[None, None, :, None]
    taken = np.zeros((nb, num_a, num_t, num_g), dtype=bool)
    # number of blocks that still have a detection at step r (blocks sorted by D descending)
    active = nb - np.searchsorted(num_d_sorted[::-1], np.arange(dmax), side="right")
    for r in range(dmax):
        n = int(active[r])
        v = iou[:n, r, None, None, :]  # [n, 1, 1, G]
        elig = (v >= thr) & (~taken[:n] | crowd[:n])  # [n, A, T, G]
        ign = ig[:n, :, None, :]
        cand_n = elig & ~ign
        cand_i = elig & ign
        best_n = _last_argmax(np.where(cand_n, v, -1.0))
        best_i = _last_argmax(np.where(cand_i, v, -1.0))
        has_n = cand_n.any(-1)
        m = np.where(has_n, best_n, np.where(cand_i.any(-1), best_i, -1))  # [n, A, T]
        hit = m >= 0
        bi, ai, ti = np.nonzero(hit)
        mi = m[bi, ai, ti]
        taken[bi, ai, ti, mi] = True
        dets = det_idx[:n, r]
        # matched dets take the ignore flag of their GT, unmatched ones keep the area rule
        m_ig = np.take_along_axis(ig[:n], np.maximum(m, 0), axis=2)  # [n, A, T]
        matched[:, :, dets] = hit.transpose(1, 2, 0)
        ignored[:, :, dets] = np.where(hit, m_ig, det_out[:, dets].T[:, :, None]).transpose(1, 2, 0)


def match_blocks(blocks: List[Tuple[int, int, np.ndarray, np.ndarray]], num_dets: int,
                 gt_ignore: np.ndarray, gt_crowd: np.ndarray, det_out: np.ndarray):
    """Match every block; detections are rows of one flat table.

    Args:
        blocks: per block ``(det_start, num_det, gt_index[G], iou[num_det, G])``; the block's
            detections are rows ``det_start .. det_start + num_det - 1`` in score order.
        num_dets: number of rows in the detection table.
        gt_ignore: bool [A, NG], GT ignored per area range (crowd or mean area outside).
        gt_crowd: bool [NG].
        det_out: bool [A, num_dets], detection mean area outside the area range.

    Returns:
        ``(matched, ignored)``: bool [A, T, num_dets] each.
    """
    num_a, num_t = det_out.shape[0], len(IOU_THRESHOLDS)
    matched = np.zeros((num_a, num_t, num_dets), dtype=bool)
    ignored = np.repeat(det_out[:, None, :], num_t, axis=1)
    groups = {}
    for start, nd, g_idx, iou in blocks:
        if nd == 0 or len(g_idx) == 0:
            continue
        groups.setdefault(len(g_idx), []).append((start, g_idx, iou))
    for items in groups.values():
        starts, g_idx, ious = zip(*items)
        _match_group(ious, g_idx, starts, gt_ignore, gt_crowd, det_out, matched, ignored)
    return matched, ignored
