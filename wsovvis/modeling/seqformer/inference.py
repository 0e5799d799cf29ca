"""SeqFormer video-level post-processing on top of the shared toolkit."""
from typing import Tuple

import torch

from ..set_prediction.postprocess import topk_queries_above_threshold, topk_query_class_pairs

__all__ = ["select_predictions", "SELECTION_MODES"]

SELECTION_MODES = ("vnext", "topk_pairs")


def select_predictions(probs: torch.Tensor, max_dets: int, multi_cls_on: bool,
                       cls_thresh: float, mode: str = "vnext"
                       ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose the video-level predictions of one video (``MODEL.SeqFormer.TEST_SELECTION``).

    ``"vnext"`` (default, VNext parity): the ``max_dets`` queries with the highest best-class
    probability; with ``multi_cls_on`` every class of those queries above ``cls_thresh`` is a
    prediction (more than ``max_dets`` possible), else each query's best class.
    ``"topk_pairs"``: with ``multi_cls_on`` the top ``max_dets`` (query, class) pairs above
    ``cls_thresh`` (at most ``max_dets`` predictions), else the top ``max_dets`` queries by their
    best class.

    Args:
        probs: ``[Q, K]`` class probabilities (sigmoid of the last decoder layer's logits, or
            track probabilities averaged over clips).
        max_dets: queries (or pairs) kept per video (``TEST.MAX_DETS_PER_VIDEO``; VNext: 10).
        multi_cls_on: ``MODEL.SeqFormer.MULTI_CLS_ON``.
        cls_thresh: ``MODEL.SeqFormer.APPLY_CLS_THRES``.
        mode: one of :data:`SELECTION_MODES`.

    Returns:
        ``(scores [n], labels [n], query_idx [n])``.
    """
    probs = probs.float()
    if mode == "vnext":
        return topk_queries_above_threshold(probs, max_dets, multi_cls_on, cls_thresh)
    if mode != "topk_pairs":
        raise ValueError(f"MODEL.SeqFormer.TEST_SELECTION {mode!r} not in {SELECTION_MODES}")
    if multi_cls_on:
        scores, labels, queries = topk_query_class_pairs(probs, max_dets)
        keep = scores > cls_thresh
        return scores[keep], labels[keep], queries[keep]
    best, labels = probs.max(1)
    k = min(max_dets, best.numel())
    scores, queries = best.topk(k, sorted=True)
    return scores, labels[queries], queries
