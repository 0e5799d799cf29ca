"""Fast YouTube-VIS / LV-VIS mask AP, equal to the official ``youtubevos/cocoapi`` numbers.

Public entry: :func:`evaluate_ytvis` returns a :class:`YTVISEvalResult` (12 stats, per-category
AP, precision/recall arrays, LV-VIS base/novel stats); :func:`format_summary` prints the official
12-line table. Phases: load/validate (:mod:`.ytvis_data`: ``msgspec`` keeps the RLE text
undecoded, :mod:`.ytvis_masks` turns it into run lengths once), video IoU of every same-block
(detection, GT) pair of all videos at once (:mod:`.ytvis_masks`), vectorised matching
(:mod:`.ytvis_match`), accumulate/summarize (:mod:`.ytvis_accumulate`). Only non-empty
(video, category) pairs are visited. Inputs are never modified; every step is exact (the arrays
equal the official ones bit for bit).
"""

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np

from .ytvis_accumulate import STAT_NAMES, SUMMARY_SPECS, accumulate, format_stat_line
from .ytvis_accumulate import per_category_ap, split_positions, summarize
from .ytvis_data import Detections, GroundTruth, load_detections, load_ground_truth
from .ytvis_masks import pair_ious
from .ytvis_match import MAX_DETS, area_outside, match_blocks

__all__ = ["YTVISEvalResult", "evaluate_ytvis", "format_summary", "STAT_NAMES"]


@dataclass
class YTVISEvalResult:
    """Everything the evaluation produced.

    Attributes:
        stats: float64 [12], official order (see ``STAT_NAMES``); -1 where undefined.
        precision: [T=10, R=101, K, A=4, M=3]; recall: [T, K, A, M]; scores like precision
            (None unless requested).
        category_ids: [K] category ids of the K axis (``[-1]`` in class-agnostic mode).
        per_category_ap: category id -> AP (area all, maxDets 100), NaN without GT.
        class_agnostic: whether categories were pooled (official ``useCats = 0``).
        base_stats / novel_stats: the 12 stats over LV-VIS base / novel categories, or None.
        counts: numbers of videos, GT tracks, detections kept / dropped.
        timings: seconds per phase.
    """

    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    scores: Optional[np.ndarray]
    category_ids: np.ndarray
    per_category_ap: Dict[int, float]
    class_agnostic: bool
    base_stats: Optional[np.ndarray] = None
    novel_stats: Optional[np.ndarray] = None
    counts: Dict[str, int] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, float]:
        """Stats by name (fractions, not percent), plus ``APb``/``APn`` when partitions exist."""
        out = {name: float(v) for name, v in zip(STAT_NAMES, self.stats)}
        if self.base_stats is not None:
            out["APb"] = float(self.base_stats[0])
            out["APn"] = float(self.novel_stats[0])
        return out


def _select_detections(dets: Detections, num_k: int, class_agnostic: bool):
    """Block order and per-block rank of every detection; keeps the first 100 of each block.

    Per category: blocks are (video, category), detections stably sorted by score desc.
    Class-agnostic: blocks are videos; the pooled (category, file) order is stably sorted by
    score desc, as the official concatenation over sorted category ids.

    Returns:
        ``(kept, rank)``: the kept detections (indices into ``dets``) in (video, block order),
        and their ranks.
    """
    fidx = np.arange(len(dets.score))
    if class_agnostic:
        order = np.lexsort((fidx, dets.cat_pos, -dets.score, dets.video_pos))
        key = dets.video_pos[order]
    else:
        order = np.lexsort((fidx, -dets.score, dets.cat_pos, dets.video_pos))
        key = dets.video_pos[order] * num_k + dets.cat_pos[order]
    if len(order) == 0:
        return order, order
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    rank = np.arange(len(order)) - first[inverse.reshape(-1)]
    keep = rank < MAX_DETS[-1]
    return order[keep], rank[keep]


def evaluate_ytvis(
    gt: Union[str, Dict[str, Any], GroundTruth],
    results: Union[str, List[Dict[str, Any]]],
    class_agnostic: bool = False,
    with_scores: bool = False,
    num_workers: int = 0,
) -> YTVISEvalResult:
    """Score YTVIS / LV-VIS results exactly like the official evaluator, much faster.

    Args:
        gt: ground-truth JSON path or dict (``videos``, ``categories``, ``annotations`` with
            ``segmentations`` and, optionally, ``areas``), or a :class:`GroundTruth` already
            loaded by :func:`load_ground_truth`. Not modified.
        results: results JSON path or list of ``{"video_id", "score", "category_id",
            "segmentations": [compressed RLE or null per frame]}``. Not modified.
        class_agnostic: pool categories as the official ``params.useCats = 0``.
        with_scores: also return the official ``scores`` array (same size as ``precision``).
        num_workers: ignored (kept for callers of earlier versions; the scorer runs in one
            process).

    Returns:
        A :class:`YTVISEvalResult`.

    Raises:
        ValueError: malformed input (the message names the entry), result videos not in the GT,
            result masks of the wrong size or number of frames, a GT without annotations.
    """
    del num_workers
    timings = {}
    t0 = time.perf_counter()
    gtd = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt)
    if len(gtd.ann_ids) == 0:
        raise ValueError("the ground truth has no annotations (of a listed video and category): "
                         "nothing to score (a test/submission split is scored by its server)")
    timings["load_gt"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dets = load_detections(results, gtd)
    num_k = 1 if class_agnostic else len(gtd.cat_ids)
    kept, rank = _select_detections(dets, len(gtd.cat_ids), class_agnostic)
    timings["load_results"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    det_k = np.zeros(len(kept), np.int64) if class_agnostic else dets.cat_pos[kept]
    blocks = _iou_blocks(gtd, dets, kept, det_k, num_k, class_agnostic)
    det_out = area_outside(dets.masks.mean_areas(kept))
    counts = {"videos": len(gtd.video_ids), "gt_tracks": len(gtd.ann_ids),
              "detections": len(dets.score), "detections_scored": len(kept),
              "dropped_unknown_category": dets.num_dropped_unknown_category}
    det_video, det_score = dets.video_pos[kept], dets.score[kept]
    del dets  # the masks are not needed any more: lower peak memory
    timings["iou"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gt_k = np.zeros(len(gtd.cat_pos), np.int64) if class_agnostic else gtd.cat_pos
    score = functools.partial(_match_and_accumulate, blocks, det_k, det_video, rank, det_score,
                              det_out, gtd, gt_k, num_k, with_scores)
    precision, recall, scores, num_gt = score(np.zeros(len(gt_k), dtype=bool))
    timings["match"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cat_ids = np.array([-1]) if class_agnostic else gtd.cat_ids
    stats = summarize(precision, recall, num_gt)
    base, novel = _split_stats(gtd, class_agnostic, precision, recall, num_gt, score)
    timings["accumulate"] = time.perf_counter() - t0
    return YTVISEvalResult(stats, precision, recall, scores, cat_ids,
                           per_category_ap(precision, cat_ids), class_agnostic, base, novel,
                           counts, timings)


def _iou_blocks(gt: GroundTruth, dets: Detections, kept, det_k, num_k: int, class_agnostic: bool):
    """Matching blocks ``(det_start, num_det, gt_index[G], iou[num_det, G])`` of every
    (video, category) pair (video in class-agnostic mode) holding detections and GT tracks.

    Kept detections are already in block order; GT tracks of a block are taken in (category,
    file) order, the official concatenation order.
    """
    d_key = dets.video_pos[kept] * num_k + det_k
    g_order = np.lexsort((np.arange(len(gt.cat_pos)), gt.cat_pos, gt.video_pos))
    g_k = 0 if class_agnostic else gt.cat_pos[g_order]
    g_key = gt.video_pos[g_order] * num_k + g_k
    common = np.intersect1d(d_key, g_key)
    d_lo, g_lo = np.searchsorted(d_key, common), np.searchsorted(g_key, common)
    d_n = np.searchsorted(d_key, common, side="right") - d_lo
    g_n = np.searchsorted(g_key, common, side="right") - g_lo
    sizes = d_n * g_n  # each block's pairs, detection-major
    block = np.repeat(np.arange(len(common)), sizes)
    local = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    pair_d = d_lo[block] + local // g_n[block]
    pair_g = g_lo[block] + local % g_n[block]
    iou = pair_ious(dets.masks, gt.masks, kept[pair_d], g_order[pair_g])
    starts = np.cumsum(sizes) - sizes
    spans = zip(d_lo.tolist(), d_n.tolist(), g_lo.tolist(), g_n.tolist(), starts.tolist())
    return [(d0, nd, g_order[g0 : g0 + ng], iou[s : s + nd * ng].reshape(nd, ng))
            for d0, nd, g0, ng, s in spans]


def _match_and_accumulate(blocks, det_k, det_video, rank, score, det_out, gt: GroundTruth, gt_k,
                          num_k, with_scores, extra_ignore):
    """Matching + accumulate with the GT tracks ``extra_ignore`` also ignored.

    Returns:
        ``(precision, recall, scores, num_gt)``; ``num_gt``: int [K, A] non-ignored GT.
    """
    gt_ignore = gt.crowd[None, :] | area_outside(gt.avg_area) | extra_ignore[None]
    matched, ignored = match_blocks(blocks, len(det_k), gt_ignore, gt.crowd, det_out)
    num_gt = np.zeros((num_k, gt_ignore.shape[0]), dtype=np.int64)
    np.add.at(num_gt, gt_k, (~gt_ignore).T.astype(np.int64))
    precision, recall, scores = accumulate(det_k, det_video, rank, score, matched, ignored, num_gt,
                                           with_scores=with_scores)
    return precision, recall, scores, num_gt


def _split_stats(gt: GroundTruth, class_agnostic, precision, recall, num_gt, score):
    """LV-VIS base / novel stats, or ``(None, None)`` without partitions.

    Per category: the means over base ({0, 1}) / novel ({2, 3}) categories (LV-VIS). Class-
    agnostic (or a class-agnostic copy of the GT, whose tracks keep their original category's
    partition): the class-agnostic evaluation with the GT tracks of the other partition ignored,
    as GT outside an area range is (detections matched to them are neither TP nor FP).
    """
    if not class_agnostic and gt.partitions is not None and gt.track_partition is None:
        base, novel = split_positions(gt.partitions)
        return (summarize(precision, recall, num_gt, k_sel=s) for s in (base, novel))
    part = gt.track_partition
    if part is None and gt.partitions is not None:
        part = gt.partitions[gt.cat_pos]
    if part is None:
        return None, None
    out = []
    for split in ([0, 1], [2, 3]):
        p, r, _, n = score(~np.isin(part, split))
        out.append(summarize(p, r, n))
    return out


def format_summary(result: YTVISEvalResult) -> str:
    """The official 12-line summary table, plus AP lines for LV-VIS base / novel categories.

    Args:
        result: the output of :func:`evaluate_ytvis`.

    Returns:
        The table as one string (lines joined with newlines).
    """
    lines = [format_stat_line(spec, v) for spec, v in zip(SUMMARY_SPECS, result.stats)]
    if result.base_stats is not None:
        lines.append(format_stat_line(SUMMARY_SPECS[0], result.base_stats[0], " | base "))
        lines.append(format_stat_line(SUMMARY_SPECS[0], result.novel_stats[0], " | novel"))
    return "\n".join(lines)
