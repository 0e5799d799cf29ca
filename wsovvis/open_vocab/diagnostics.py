"""Diagnostics of open-vocabulary naming: class-agnostic, open-vocabulary and oracle-label AP.

* class-agnostic AP of the tubes: the segmentation ceiling;
* open-vocabulary AP / APb / APn of the named tubes;
* oracle-label AP: every tube takes the category of its best video-IoU GT tube of the same video
  (the naming ceiling for these tubes).
"""
import math
from typing import Dict, List, Optional

import numpy as np
from pycocotools import mask as mask_util

from wsovvis.evaluation import evaluate_ytvis
from wsovvis.utils.io import read_json
from wsovvis.utils.rle import CorruptRLEError, to_compressed_rle

__all__ = ["oracle_labels", "diagnostics", "format_diagnostics"]

ROWS = ("class-agnostic", "open-vocab", "oracle-label")
COLUMNS = ("AP", "AP50", "AP75", "APb", "APn", "AR10")


def _rle(seg, where: str):
    """pycocotools' RLE of a checked mask (:func:`to_compressed_rle`); errors name ``where``."""
    try:
        if not isinstance(seg, dict) or "size" not in seg:
            raise CorruptRLEError("expected an RLE dict with 'size' and 'counts'")
        return to_compressed_rle(seg, *seg["size"])
    except (CorruptRLEError, TypeError) as e:
        raise CorruptRLEError(f"{where}: {e}") from None


def _video_ious(dets: List[list], gts: List[list], video=None) -> np.ndarray:
    """(D, G) video IoU: summed per-frame intersections over summed unions (checked masks)."""
    inter = np.zeros((len(dets), len(gts)))
    union = np.zeros((len(dets), len(gts)))
    length = max([len(d) for d in dets] + [len(g) for g in gts])
    for t in range(length):
        di = [i for i, d in enumerate(dets) if t < len(d) and d[t] is not None]
        gi = [j for j, g in enumerate(gts) if t < len(g) and g[t] is not None]
        drle = [_rle(dets[i][t], f"video {video}, result tube {i}, frame {t}") for i in di]
        grle = [_rle(gts[j][t], f"video {video}, GT tube {j}, frame {t}") for j in gi]
        da = np.array([mask_util.area(r) for r in drle], dtype=np.float64)
        ga = np.array([mask_util.area(r) for r in grle], dtype=np.float64)
        if di:
            union[di, :] += da[:, None]
        if gi:
            union[:, gi] += ga[None, :]
        if di and gi:
            iou = np.asarray(mask_util.iou(drle, grle, [0] * len(gi)))
            it = iou * (da[:, None] + ga[None, :]) / (1.0 + iou)
            inter[np.ix_(di, gi)] += it
            union[np.ix_(di, gi)] -= it
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def oracle_labels(results: List[dict], gt) -> List[dict]:
    """Relabel each result with the category of its best video-IoU GT tube (same video).

    Results of videos without GT tubes keep their category. Scores are unchanged.

    Args:
        results: YTVIS results (not modified).
        gt: GT JSON path or dict with ``annotations``.

    Returns:
        New result dicts.
    """
    gt = read_json(gt, "ground-truth file") if isinstance(gt, str) else gt
    by_video: Dict[int, list] = {}
    for a in gt.get("annotations", []):
        by_video.setdefault(int(a["video_id"]), []).append(a)
    if not isinstance(results, list):
        raise ValueError("results must be a list of {video_id, score, category_id, segmentations}")
    res_by_video: Dict[int, list] = {}
    for i, r in enumerate(results):
        if not isinstance(r, dict) or "video_id" not in r or not isinstance(r.get("segmentations"), list):
            raise ValueError(f"results[{i}] needs 'video_id' and a 'segmentations' list")
        res_by_video.setdefault(int(r["video_id"]), []).append(i)
    out = [dict(r) for r in results]
    for vid, idx in res_by_video.items():
        anns = by_video.get(vid)
        if not anns:
            continue
        ious = _video_ious([results[i]["segmentations"] for i in idx], [a["segmentations"] for a in anns],
                           video=vid)
        best = ious.argmax(axis=1)
        for i, b in zip(idx, best):
            out[i]["category_id"] = int(anns[b]["category_id"])
    return out


def _stats(res) -> Dict[str, float]:
    d = res.as_dict()
    return {k: (d[k] * 100 if d.get(k, -1) >= 0 else math.nan) for k in COLUMNS if k in d}


def diagnostics(gt, agnostic_results, named_results, *, oracle: bool = True) -> Dict[str, Dict[str, float]]:
    """The three rows of the diagnostics table (percent; NaN where undefined).

    Args:
        gt: GT JSON path (or dict) with categories, partitions and annotations.
        agnostic_results: class-agnostic results (path or list), before naming.
        named_results: open-vocabulary results (path or list).
        oracle: also score the oracle-label results.
    """
    gt_doc = read_json(gt, "ground-truth file") if isinstance(gt, str) else gt
    cats = [int(c["id"]) for c in gt_doc.get("categories") or []]
    if not cats:
        raise ValueError("ground truth has no categories: open-vocabulary AP is undefined")
    agn = read_json(agnostic_results, "results file") if isinstance(agnostic_results, str) else agnostic_results
    # class-agnostic pooling still drops results whose category is not a GT one (official): give
    # every tube a GT category so none is lost
    pooled = [dict(r, category_id=cats[0]) for r in agn]
    rows = {"class-agnostic": _stats(evaluate_ytvis(gt, pooled, class_agnostic=True)),
            "open-vocab": _stats(evaluate_ytvis(gt, named_results))}
    if oracle:
        rows["oracle-label"] = _stats(evaluate_ytvis(gt, oracle_labels(agn, gt_doc)))
    return rows


def format_diagnostics(rows: Dict[str, Dict[str, float]], title: Optional[str] = None) -> str:
    """Plain-text table, one row per evaluation, AP/AP50/AP75/APb/APn/AR10 columns."""
    head = f"{'tubes scored as':<26}" + "".join(f"{c:>8}" for c in COLUMNS)
    lines = ([title] if title else []) + [head, "-" * len(head)]
    for name, stats in rows.items():
        lines.append(f"{name:<26}" + "".join(
            f"{stats.get(c, math.nan):>8.1f}" if stats.get(c) == stats.get(c) and c in stats
            else f"{'-':>8}" for c in COLUMNS))
    return "\n".join(lines)
