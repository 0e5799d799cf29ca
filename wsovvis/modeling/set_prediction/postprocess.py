"""Video post-processing shared by the meta-architectures.

Scores -> flattened top-k over (query, class) pairs; mask logits -> boolean masks at the original
video size through the padded-input / crop / original-size resizes; boolean tubes -> per-frame
compressed RLE; and the per-video output dict of ``docs/CONTRACTS.md``.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from wsovvis.utils.rle import encode_masks

__all__ = [
    "topk_query_class_pairs",
    "resize_mask_logits",
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
