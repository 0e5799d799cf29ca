"""Video post-processing shared by the meta-architectures.

Scores -> flattened top-k over (query, class) pairs (Mask2Former / VidEoMT) or VNext's top-k
queries followed by every class above a threshold (SeqFormer); mask logits -> boolean masks at the
original video size through the padded-input / crop / original-size resizes (bilinear + ``> 0``, or
VNext's nearest + ``sigmoid > 0.5``); boolean tubes -> per-frame compressed RLE; and the per-video
output dict of ``docs/CONTRACTS.md``.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from wsovvis.utils.rle import encode_masks

__all__ = [
    "topk_query_class_pairs",
    "topk_queries_above_threshold",
    "resize_mask_logits",
    "mask_logits_to_masks",
    "MASK_RESIZE_MODES",
    "masks_to_rle_tracks",
    "make_video_output",
]


def topk_query_class_pairs(
    scores: torch.Tensor, k: int
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-k over all (query, class) pairs of a (Q, K) score matrix; a query may appear twice.

    Args:
        scores: (Q, K) per-query class scores (no no-object column).
        k: number of pairs to keep (clipped to Q * K).

    Returns:
        ``(scores, labels, query_idx)``, each (k,), sorted by decreasing score.
    """
    num_classes = scores.shape[1]
    k = min(k, scores.numel())
    top, idx = scores.flatten().topk(k, sorted=True)
    return top, idx % num_classes, torch.div(idx, num_classes, rounding_mode="floor")


def topk_queries_above_threshold(
    probs: torch.Tensor, k: int, multi_cls: bool, threshold: float
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VNext SeqFormer selection: the ``k`` queries with the highest best-class probability, then
    every (query, class) of those above ``threshold`` (``multi_cls``) or each query's best class.

    With ``multi_cls`` a video may yield more than ``k`` predictions (up to ``k * K``) and none of
    them need be above the threshold of another query; the order is that of VNext's
    ``torch.where``: kept queries by decreasing best probability, then classes ascending.

    Args:
        probs: (Q, K) class probabilities (sigmoid, no no-object column).
        k: queries kept (VNext hard-codes 10); clipped to Q.
        multi_cls: VNext's ``MULTI_CLS_ON``.
        threshold: VNext's ``APPLY_CLS_THRES`` (only with ``multi_cls``).

    Returns:
        ``(scores, labels, query_idx)``, each (n,).
    """
    k = min(k, probs.shape[0])
    _, queries = probs.max(1)[0].topk(k)
    kept = probs[queries]
    if not multi_cls:
        scores, labels = kept.max(1)
        return scores, labels, queries
    rows, labels = torch.where(kept > threshold)
    return kept[rows, labels], labels, queries[rows]


MASK_RESIZE_MODES = ("bilinear", "nearest")


def mask_logits_to_masks(
    mask_logits: torch.Tensor,
    padded_size: Sequence[int],
    image_size: Sequence[int],
    output_size: Sequence[int],
    mode: str = "bilinear",
) -> torch.Tensor:
    """Boolean masks at the original video size from low-resolution mask logits.

    ``"bilinear"`` (detectron2 / Mask2Former): :func:`resize_mask_logits`, then ``logits > 0``.
    ``"nearest"`` (VNext SeqFormer): bilinear to the padded input size, ``sigmoid``, crop, nearest
    (PyTorch's legacy ``"nearest"``) to the original size, ``> 0.5``.

    Args:
        mask_logits: (N, C, h, w) logits.
        padded_size / image_size / output_size: as in :func:`resize_mask_logits`.
        mode: one of :data:`MASK_RESIZE_MODES`.

    Returns:
        (N, C, H_out, W_out) bool.
    """
    if mode == "bilinear":
        return resize_mask_logits(mask_logits, padded_size, image_size, output_size) > 0
    if mode != "nearest":
        raise ValueError(f"mask resize mode {mode!r} not in {MASK_RESIZE_MODES}")
    x = F.interpolate(mask_logits, size=tuple(padded_size), mode="bilinear", align_corners=False)
    x = x[..., : image_size[0], : image_size[1]].sigmoid()
    return F.interpolate(x, size=tuple(output_size), mode="nearest") > 0.5


def resize_mask_logits(
    mask_logits: torch.Tensor,
    padded_size: Sequence[int],
    image_size: Sequence[int],
    output_size: Sequence[int],
) -> torch.Tensor:
    """Resize mask logits back to the original frame size (detectron2 / Mask2Former convention).

    Bilinear to the padded network input size, crop the valid (unpadded) region, bilinear to the
    original size. Threshold the result at 0 for binary masks.

    Args:
        mask_logits: (N, C, h, w) logits (C may be frames or 1).
        padded_size: (H_pad, W_pad) of the network input.
        image_size: (H_img, W_img) of the resized image before padding.
        output_size: (H_out, W_out) of the original video.

    Returns:
        (N, C, H_out, W_out) logits.
    """
    x = F.interpolate(mask_logits, size=tuple(padded_size), mode="bilinear", align_corners=False)
    x = x[..., : image_size[0], : image_size[1]]
    return F.interpolate(x, size=tuple(output_size), mode="bilinear", align_corners=False)


def masks_to_rle_tracks(masks) -> List[List[Dict[str, object]]]:
    """Encode boolean tubes (N, T, H, W) as N lists of T compressed RLEs (``counts`` str).

    Args:
        masks: bool / uint8 tensor or array of shape (N, T, H, W).

    Returns:
        N lists of T ``{"size": [H, W], "counts": str}`` dicts.
    """
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks, dtype=np.uint8)
    n, t = masks.shape[:2]
    flat = encode_masks(masks.reshape(n * t, *masks.shape[2:])) if n * t else []
    return [flat[i * t : (i + 1) * t] for i in range(n)]


def make_video_output(
    video_id: int,
    height: int,
    width: int,
    scores: Sequence[float],
    labels: Sequence[int],
    segmentations: Sequence[Sequence[Optional[Dict[str, object]]]],
) -> Dict[str, object]:
    """The per-video prediction dict consumed by ``YTVISEvaluator`` (see ``docs/CONTRACTS.md``).

    Args:
        video_id: dataset video id.
        height: original frame height.
        width: original frame width.
        scores: one score per predicted track.
        labels: one contiguous class id per track.
        segmentations: per track, per frame compressed RLE (or None) at (height, width).

    Returns:
        ``{"video_id", "height", "width", "pred_scores", "pred_labels", "pred_segmentations"}``
        with plain Python ints / floats / lists.
    """
    if not len(scores) == len(labels) == len(segmentations):
        raise ValueError("scores, labels and segmentations must have one entry per track")
    return {
        "video_id": int(video_id),
        "height": int(height),
        "width": int(width),
        "pred_scores": [float(s) for s in scores],
        "pred_labels": [int(l) for l in labels],
        "pred_segmentations": [list(s) for s in segmentations],
    }
