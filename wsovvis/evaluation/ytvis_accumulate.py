"""Accumulate (precision/recall arrays) and summarize (12 stats) of the YTVIS evaluation.

``accumulate`` reproduces ``YTVOSeval.accumulate`` for all categories at once: per category the
first ``maxDet`` detections of every video are concatenated in ascending video order and stably
sorted by descending score, i.e. ordered by (score desc, video, rank in video). Cumulative TP/FP
counts are integers (exact); precision keeps the official ``+ np.spacing(1)``; the right-to-left
running maximum and the recall-threshold lookup are done per category segment with exact integer
keys (rank transform of the precision values; minimal TP count reaching each recall threshold).
"""

import mmap
from typing import Dict, List, Optional

import numpy as np

from .ytvis_match import AREA_LABELS, IOU_THRESHOLDS, MAX_DETS, REC_THRESHOLDS

__all__ = ["accumulate", "summarize", "STAT_NAMES", "SUMMARY_SPECS", "format_stat_line"]

STAT_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
STAT_NAMES += ["AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
# (is_ap, iou_thr, area_label, max_dets) for the 12 official lines
_SIZES = ["small", "medium", "large"]
SUMMARY_SPECS = [(1, thr, "all", 100) for thr in (None, 0.5, 0.75)]
SUMMARY_SPECS += [(1, None, area, 100) for area in _SIZES]
SUMMARY_SPECS += [(0, None, "all", m) for m in MAX_DETS] + [(0, None, a, 100) for a in _SIZES]


def _min_tp_for_recall(num_gt: np.ndarray) -> np.ndarray:
    """int64 [..., R]: smallest integer j with float64(j) / num_gt >= REC_THRESHOLDS[r].

    Computed once per distinct GT count (a few dozen values) and looked up.
    """
    values, inverse = np.unique(np.maximum(num_gt, 1), return_inverse=True)
    n = values.astype(np.float64)[:, None]
    base = np.floor(REC_THRESHOLDS * n) - 1
    cands = np.minimum(np.maximum(base[..., None] + np.arange(4), 0), n[..., None])  # [U, R, 4]
    ok = cands / n[..., None] >= REC_THRESHOLDS[:, None]
    cands = np.where(ok, cands, np.inf).min(axis=-1)
    table = np.where(np.isinf(cands), n, cands).astype(np.int64)
    return table[inverse.reshape(num_gt.shape)]


def _filled(shape, value: float) -> np.ndarray:
    """``np.full(shape, value)`` (float64) on plain memory pages.

    numpy advises huge pages for large arrays (``madvise(MADV_HUGEPAGE)``); with the kernel's
    ``defrag=madvise`` setting the page faults of the 116 MB LV-VIS precision array can then
    stall in memory compaction (measured 0.07 s -> 0.3 s). numpy's only public switch is the
    ``NUMPY_MADVISE_HUGEPAGE`` environment variable, read at import; an anonymous ``mmap``
    buffer gets ordinary pages without touching process-wide state.
    """
    size = int(np.prod(shape)) * 8
    if size < 1 << 22:
        return np.full(shape, value)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    out = np.frombuffer(mmap.mmap(-1, size, flags=flags), dtype=np.float64).reshape(shape)
    out.fill(value)
    return out


def accumulate(det_k, det_vpos, det_rank, det_score, matched, ignored, num_gt, with_scores=False):
    """Precision / recall / score arrays, as ``YTVOSeval.accumulate``.

    Args:
        det_k: int [N] category position of each detection (0 in class-agnostic mode).
        det_vpos: int [N] video position (ascending video id order).
        det_rank: int [N] rank of the detection in its block (score order).
        det_score: float64 [N].
        matched: bool [A, T, N]; ignored: bool [A, T, N] (from matching, maxDet = 100).
        num_gt: int [K, A] number of non-ignored GT per category and area range.
        with_scores: also build the official ``scores`` array (otherwise None; it is as large
            as ``precision``).

    Returns:
        ``(precision [T, R, K, A, M], recall [T, K, A, M], scores [T, R, K, A, M] or None)``,
        -1 where a category has no non-ignored GT.
    """
    num_k, num_a = num_gt.shape
    num_t, num_r, num_m = len(IOU_THRESHOLDS), len(REC_THRESHOLDS), len(MAX_DETS)
    # filled in [M, A, K, T, R] memory order (one contiguous run per category), returned as
    # [T, R, K, A, M] views
    precision = _filled((num_m, num_a, num_k, num_t, num_r), -1.0)
    recall = _filled((num_m, num_a, num_k, num_t), -1.0)
    scores = _filled((num_m, num_a, num_k, num_t, num_r), -1.0) if with_scores else None
    has_gt = num_gt > 0  # [K, A]
    kk, aa = np.nonzero(has_gt)
    precision[:, aa, kk] = 0.0
    recall[:, aa, kk] = 0.0
    if with_scores:
        scores[:, aa, kk] = 0.0
    order = np.lexsort((det_rank, det_vpos, -det_score, det_k))
    tp_min_all = _min_tp_for_recall(num_gt)  # [K, A, R]
    for mi, max_det in enumerate(MAX_DETS):
        sel = order[det_rank[order] < max_det]
        sel = sel[has_gt[det_k[sel]].any(axis=1)] if len(sel) else sel
        if len(sel) == 0:
            continue
        _accumulate_one(det_k[sel], det_score[sel], matched[:, :, sel], ignored[:, :, sel], num_gt,
                        tp_min_all, mi, precision, recall, scores)
    return _as_official_layout(precision, recall, scores)


def _as_official_layout(precision, recall, scores):
    """[M, A, K, T, R] / [M, A, K, T] buffers as [T, R, K, A, M] / [T, K, A, M] views."""
    if scores is not None:
        scores = scores.transpose(3, 4, 2, 1, 0)
    return precision.transpose(3, 4, 2, 1, 0), recall.transpose(3, 2, 1, 0), scores


def _segment_suffix_max(values: np.ndarray, seg_id: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Running maximum from the right inside each segment (the official precision envelope).

    Pointer doubling: after step ``s`` every entry holds the max over the next ``2 * s`` entries
    of its segment; only comparisons, so the values are exactly those of the official loop.
    """
    n = values.shape[1]
    idx = np.arange(n)
    seg_end = ends[seg_id]
    out = values
    step = 1
    longest = int((ends - np.concatenate([[0], ends[:-1]])).max(initial=0))
    while step < longest:
        nxt = idx + step
        ok = np.nonzero(nxt < seg_end)[0]
        upd = out.copy()
        upd[:, ok] = np.maximum(out[:, ok], out[:, nxt[ok]])
        out = upd
        step *= 2
    return out


def _accumulate_one(det_cat, det_score, matched, ignored, num_gt, tp_min_all, m, precision, recall,
                    scores) -> None:
    """Fill the arrays for one maxDet from detections already in accumulate order."""
    num_a, num_t, n = matched.shape
    seg_k, starts, counts = np.unique(det_cat, return_index=True, return_counts=True)
    num_s = len(seg_k)
    seg_id = np.repeat(np.arange(num_s), counts)
    ends = starts + counts
    tp_i = (matched & ~ignored).reshape(num_a * num_t, n)
    fp_i = (~matched & ~ignored).reshape(num_a * num_t, n)
    tp_raw = np.cumsum(tp_i, axis=1, dtype=np.int64)
    fpc = np.cumsum(fp_i, axis=1, dtype=np.int64)
    zero = np.zeros((num_a * num_t, 1), dtype=np.int64)
    tp_before = np.concatenate([zero, tp_raw], axis=1)[:, starts]  # [A*T, S]
    tpc = tp_raw - tp_before[:, seg_id]
    fpc -= np.concatenate([zero, fpc], axis=1)[:, starts][:, seg_id]
    num_gt_rows = np.repeat(num_gt[seg_k].T, num_t, axis=0)  # [A*T, S]
    tp = tpc.astype(np.float64)
    fp = fpc.astype(np.float64)
    rc = tp / np.maximum(num_gt_rows, 1)[:, seg_id]
    pr = tp / (fp + tp + np.spacing(1))
    pr = _segment_suffix_max(pr, seg_id, ends)
    # recall threshold r is first reached where the segment's TP count reaches tp_min[r], i.e.
    # at its tp_min-th true positive (at its first detection when tp_min == 0; 0 when the row
    # has fewer true positives): tables [T, V, j] of those values, read at j = tp_min[v, r]
    tp_min = tp_min_all[seg_k]  # [S, A, R]
    tp_row, tp_col = np.nonzero(tp_i)
    tp_rank, tp_seg = tpc[tp_row, tp_col], seg_id[tp_col]
    valid = num_gt[seg_k] > 0  # [S, A]
    for a in range(num_a):
        v = np.nonzero(valid[:, a])[0]
        if len(v) == 0:
            continue
        rows = slice(a * num_t, (a + 1) * num_t)
        j = tp_min[v, a, :]  # [V, R]
        v_of_seg = np.full(num_s, -1)
        v_of_seg[v] = np.arange(len(v))
        sel = (tp_row // num_t == a) & (tp_rank <= j.max())
        at = (tp_row[sel] - a * num_t, v_of_seg[tp_seg[sel]], tp_rank[sel])
        columns = np.arange(len(v))[:, None]
        for values, out in ((pr, precision), (np.broadcast_to(det_score, pr.shape), scores)):
            if out is None:
                continue
            table = np.zeros((num_t, len(v), int(j.max()) + 1))
            table[:, :, 0] = values[rows][:, starts[v]]
            table[at] = values[tp_row[sel], tp_col[sel]]
            out[m, a, seg_k[v]] = table[:, columns, j].transpose(1, 0, 2)  # [V, T, R]
        recall[m, a, seg_k[v]] = rc[rows][:, ends[v] - 1].T


def _summarize_one(precision, recall, is_ap, iou_thr, area, max_dets, valid, k_sel=None) -> float:
    """One summary number, bit-identical to ``YTVOSeval.summarize``.

    The official code averages ``s[s > -1]`` over a [T, R, K] slice; -1 marks exactly the
    categories without non-ignored GT (``valid`` False), so gathering the valid categories gives
    the same elements in the same order, without scanning the whole array.
    """
    a = AREA_LABELS.index(area)
    m = MAX_DETS.index(max_dets)
    ks = np.nonzero(valid[:, a])[0]
    if k_sel is not None:
        ks = np.intersect1d(ks, k_sel)
    t = slice(None) if iou_thr is None else np.where(iou_thr == IOU_THRESHOLDS)[0]
    s = precision[t, :, :, a, m][:, :, ks] if is_ap else recall[t, :, a, m][:, ks]
    s = np.ascontiguousarray(s).ravel()
    if len(s) == 0:
        return -1.0
    return float(np.mean(s))


def summarize(precision: np.ndarray, recall: np.ndarray, num_gt: np.ndarray,
              k_sel: Optional[np.ndarray] = None) -> np.ndarray:
    """The 12 official stats (AP, AP50, AP75, APs/m/l, AR1, AR10, AR100, ARs/m/l).

    Args:
        precision: [T, R, K, A, M]; recall: [T, K, A, M].
        num_gt: int [K, A] non-ignored GT counts (categories with 0 hold -1 in the arrays).
        k_sel: optional category positions to restrict the means to (LV-VIS base / novel).

    Returns:
        float64 [12].
    """
    valid = num_gt > 0
    return np.array(
        [_summarize_one(precision, recall, *spec, valid, k_sel=k_sel) for spec in SUMMARY_SPECS]
    )


def format_stat_line(spec, value: float, suffix: str = "") -> str:
    """One line in the COCO/YTVIS ``summarize`` format.

    Args:
        spec: ``(is_ap, iou_thr, area_label, max_dets)``, an entry of ``SUMMARY_SPECS``.
        value: the stat (-1 where undefined, printed as is, as the official code does).
        suffix: text placed inside the brackets after ``maxDets`` (e.g. ``" | base "``).

    Returns:
        The formatted line.
    """
    is_ap, iou_thr, area, max_dets = spec
    title = "Average Precision" if is_ap else "Average Recall"
    kind = "(AP)" if is_ap else "(AR)"
    lo, hi = (IOU_THRESHOLDS[0], IOU_THRESHOLDS[-1]) if iou_thr is None else (iou_thr, None)
    iou = f"{lo:0.2f}" + (f":{hi:0.2f}" if hi is not None else "")
    return (f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={max_dets:>3d}"
            f"{suffix} ] = {value:0.3f}")


def per_category_ap(precision: np.ndarray, cat_ids: np.ndarray) -> Dict[int, float]:
    """AP (area all, maxDets 100) per category.

    Args:
        precision: [T, R, K, A, M] precision array (-1 where undefined).
        cat_ids: [K] category ids of the K axis.

    Returns:
        category id -> AP (fraction); NaN for categories without GT.
    """
    out = {}
    for k, cid in enumerate(cat_ids.tolist()):
        s = precision[:, :, k, 0, -1]
        s = s[s > -1]
        out[int(cid)] = float(np.mean(s)) if len(s) else float("nan")
    return out


def split_positions(partitions: np.ndarray) -> List[np.ndarray]:
    """LV-VIS ``[base ({0, 1}), novel ({2, 3})]`` positions in ``partitions`` (per category)."""
    return [np.nonzero(np.isin(partitions, [0, 1]))[0], np.nonzero(np.isin(partitions, [2, 3]))[0]]
