"""Fast YouTube-VIS / LV-VIS mask AP, equal to the official ``youtubevos/cocoapi`` numbers.

Public entry: :func:`evaluate_ytvis` returns a :class:`YTVISEvalResult` (12 stats, per-category
AP, precision/recall arrays, LV-VIS base/novel stats); :func:`format_summary` prints the official
12-line table. Phases: load/validate (:mod:`.ytvis_data`), per-video IoU streamed over videos
(:mod:`.ytvis_iou`, masks of one video at a time), vectorised matching (:mod:`.ytvis_match`),
accumulate/summarize (:mod:`.ytvis_accumulate`). Only non-empty (video, category) pairs are
visited. Inputs are never modified.

What makes it fast (every step is exact; the arrays equal the official ones bit for bit):

- Compiled kernels (``_ytvis_kernels.c``, an optional C extension built by ``pip install -e .``;
  :mod:`.ytvis_packed`): one pass over each memory-mapped JSON file packs every mask into flat
  tables (``orjson`` then parses only the small rest); one call computes the integer
  intersections/unions of all same-category pairs of all videos, decoding each mask once, frame
  by frame; accumulate is the official loop, compiled.
- Without them (no compiler, in-memory inputs, masks pycocotools would read in an unusual way):
  GT ``counts`` lists become strings before parsing and are encoded with numpy
  (:mod:`.ytvis_rle_codec`); one ``pycocotools.mask.iou`` call (crowd mode) per (frame, category)
  or per video on a wide canvas (:mod:`.ytvis_rle_shift`); vectorised accumulate.
- Matching and summarize are vectorised over all blocks / categories; only non-empty
  (video, category) pairs are visited.
- The cyclic garbage collector is paused during a call (the parsed JSONs hold millions of
  containers it would otherwise traverse repeatedly).
"""

import gc
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np

from .ytvis_accumulate import (
    STAT_NAMES,
    SUMMARY_SPECS,
    accumulate,
    format_stat_line,
    per_category_ap,
    split_positions,
    summarize,
)
from .ytvis_data import Detections, GroundTruth, load_detections, load_ground_truth
from .ytvis_match import MAX_DETS, area_outside, match_blocks
from .ytvis_videos import run_videos

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
        ``(order, kept, rank)``: all detections sorted by (video, block order); the kept subset
        (indices into ``dets``) and its ranks.
    """
    fidx = np.arange(len(dets.score))
    if class_agnostic:
        order = np.lexsort((fidx, dets.cat_pos, -dets.score, dets.video_pos))
        key = dets.video_pos[order]
    else:
        order = np.lexsort((fidx, -dets.score, dets.cat_pos, dets.video_pos))
        key = dets.video_pos[order] * num_k + dets.cat_pos[order]
    if len(order) == 0:
        return order, order, order
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    rank = np.arange(len(order)) - first[inverse.reshape(-1)]
    keep = rank < MAX_DETS[-1]
    return order, order[keep], rank[keep]


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
            ``segmentations`` and ``areas``), or a :class:`GroundTruth` already loaded by
            :func:`load_ground_truth`. Not modified. Paths are fastest: the masks are packed
            straight from the file for the compiled kernels.
        results: results JSON path or list of ``{"video_id", "score", "category_id",
            "segmentations": [compressed RLE or null per frame]}``. Not modified. The compiled
            IoU kernel runs when both inputs come from files.
        class_agnostic: pool categories as the official ``params.useCats = 0``.
        with_scores: also return the official ``scores`` array (same size as ``precision``).
        num_workers: forked processes for the videos scored by the numpy/pycocotools path
            (0: none; the compiled kernel scores its videos in one call). Results do not
            depend on it.

    Returns:
        A :class:`YTVISEvalResult`.

    Raises:
        ValueError: malformed input (the message names the entry), result videos not in the GT,
            result masks of the wrong size or number of frames.
    """
    # the parsed JSONs are millions of container objects that Python's cyclic garbage collector
    # would traverse again and again while they are built; none of them forms a cycle
    gc_was_enabled = gc.isenabled()
    gc.disable()
    # the precision array alone is ~120 MB for LV-VIS; numpy's madvise(MADV_HUGEPAGE) on it can
    # stall for a kernel memory compaction (seen: 0.05-0.3 s for the same call), plain 4 KiB
    # pages cost a steady ~0.06 s
    hugepages = _set_madvise_hugepage(False)
    try:
        return _evaluate(gt, results, class_agnostic, with_scores, num_workers)
    finally:
        _set_madvise_hugepage(hugepages)
        if gc_was_enabled:
            gc.enable()


def _set_madvise_hugepage(enabled: bool) -> bool:
    """numpy's huge-page advice for large arrays (returns the previous setting)."""
    setter = getattr(
        np._core.multiarray if hasattr(np, "_core") else np.core.multiarray,
        "_set_madvise_hugepage",
        None,
    )
    return bool(setter(enabled)) if setter is not None else enabled


def _evaluate(gt, results, class_agnostic, with_scores, num_workers) -> YTVISEvalResult:
    """:func:`evaluate_ytvis` with the garbage collector already paused."""
    timings = {}
    t0 = time.perf_counter()
    gtd = gt if isinstance(gt, GroundTruth) else load_ground_truth(gt)
    timings["load_gt"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    dets = load_detections(results, gtd)
    num_k = 1 if class_agnostic else len(gtd.cat_ids)
    order, kept, rank = _select_detections(dets, len(gtd.cat_ids), class_agnostic)
    timings["load_results"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    det_k, det_v, det_avg, blocks = run_videos(
        gtd, dets, order, kept, class_agnostic, num_workers=num_workers
    )
    timings["iou"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gt_ignore = gtd.crowd[None, :] | area_outside(gtd.avg_area)  # [A, NG]
    det_out = area_outside(det_avg)
    matched, ignored = match_blocks(blocks, len(kept), gt_ignore, gtd.crowd, det_out)
    gk = np.zeros(len(gtd.cat_pos), np.int64) if class_agnostic else gtd.cat_pos
    npig = np.zeros((num_k, gt_ignore.shape[0]), dtype=np.int64)
    np.add.at(npig, gk, (~gt_ignore).T.astype(np.int64))
    timings["match"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    precision, recall, scores = accumulate(
        det_k, det_v, rank, dets.score[kept], matched, ignored, npig, with_scores=with_scores
    )
    cat_ids = np.array([-1]) if class_agnostic else gtd.cat_ids
    stats = summarize(precision, recall, npig)
    base = novel = None
    splits = None if class_agnostic else split_positions(gtd.partitions)
    if splits is not None:
        base, novel = (summarize(precision, recall, npig, k_sel=s) for s in splits)
    timings["accumulate"] = time.perf_counter() - t0
    return YTVISEvalResult(
        stats=stats,
        precision=precision,
        recall=recall,
        scores=scores,
        category_ids=cat_ids,
        per_category_ap=per_category_ap(precision, cat_ids),
        class_agnostic=class_agnostic,
        base_stats=base,
        novel_stats=novel,
        timings=timings,
        counts={
            "videos": len(gtd.video_ids),
            "gt_tracks": len(gtd.ann_ids),
            "detections": len(dets.score),
            "detections_scored": len(kept),
            "dropped_unknown_category": dets.num_dropped_unknown_category,
        },
    )


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
