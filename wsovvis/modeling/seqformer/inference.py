"""SeqFormer video-level post-processing on top of the shared toolkit."""
from typing import Tuple

import torch

from ..set_prediction import topk_query_class_pairs

__all__ = ["select_predictions"]


def select_predictions(logits: torch.Tensor, max_dets: int, multi_cls_on: bool,
                       cls_thresh: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose the video-level predictions of one video.

    ``multi_cls_on``: the top ``max_dets`` (query, class) pairs whose probability exceeds
    ``cls_thresh`` (a query may appear with several classes, VNext's ``MULTI_CLS_ON``); otherwise
    the top ``max_dets`` queries by their best class, labelled with that class.

    Args:
        logits: ``[Q, K]`` sigmoid class logits of the last decoder layer.
        max_dets: predictions kept per video (``TEST.MAX_DETS_PER_VIDEO``).
        multi_cls_on: see above.
        cls_thresh: minimum probability with ``multi_cls_on``.

    Returns:
        ``(scores [n], labels [n], query_idx [n])`` sorted by decreasing score, ``n <= max_dets``.
    """
    probs = logits.float().sigmoid()
    if multi_cls_on:
        scores, labels, queries = topk_query_class_pairs(probs, max_dets)
        keep = scores > cls_thresh
        return scores[keep], labels[keep], queries[keep]
    best, labels = probs.max(1)
    k = min(max_dets, best.numel())
    scores, queries = best.topk(k, sorted=True)
    return scores, labels[queries], queries
