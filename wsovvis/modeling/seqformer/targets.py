"""Input batching and target preparation for SeqFormer."""
import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..set_prediction.box_ops import box_xyxy_to_cxcywh

__all__ = ["pad_frames", "prepare_video_targets"]


def pad_frames(frames: Sequence[torch.Tensor], pixel_mean: torch.Tensor, pixel_std: torch.Tensor,
               size_divisibility: int, pad_to: Tuple[int, int] = None):
    """Normalise frames and zero-pad them (after normalisation) to a common size.

    Args:
        frames: ``[3, h_i, w_i]`` images (any dtype) on the target device.
        pixel_mean / pixel_std: ``[3, 1, 1]``.
        size_divisibility: the padded size is a multiple of this.
        pad_to: optional minimum padded ``(H, W)`` (e.g. the size of other chunks of a video).

    Returns:
        ``(images [N, 3, H, W], padding_mask [N, H, W] bool, image_sizes [(h_i, w_i)])``
    """
    sizes = [tuple(f.shape[-2:]) for f in frames]
    h = max(s[0] for s in sizes)
    w = max(s[1] for s in sizes)
    if pad_to is not None:
        h, w = max(h, pad_to[0]), max(w, pad_to[1])
    d = max(size_divisibility, 1)
    h, w = math.ceil(h / d) * d, math.ceil(w / d) * d
    images = frames[0].new_zeros((len(frames), 3, h, w), dtype=torch.float32)
    mask = torch.ones((len(frames), h, w), dtype=torch.bool, device=frames[0].device)
    for i, f in enumerate(frames):
        fh, fw = f.shape[-2:]
        images[i, :, :fh, :fw] = (f.float() - pixel_mean) / pixel_std
        mask[i, :fh, :fw] = False
    return images, mask, sizes


def prepare_video_targets(instances: List, padded_size: Tuple[int, int], mask_stride: int,
                          device) -> Dict[str, torch.Tensor]:
    """Per-video targets from the mapper's per-frame ``Instances`` (slot j = same track).

    Tracks absent from every frame of the clip are dropped. Absent frames keep a zero box and an
    empty mask (SeqFormer). Boxes are normalised cxcywh w.r.t. the unpadded image; masks are padded
    to ``padded_size`` and subsampled at the mask stride (``[s/2::s, s/2::s]``).

    Args:
        instances: the clip's per-frame ``Instances`` (``gt_ids``, ``gt_classes``, ``gt_boxes``,
            ``gt_masks``), all at the same image size.
        padded_size: ``(H, W)`` of the padded batch.
        mask_stride: stride of the target masks (``MODEL.SeqFormer.MASK_STRIDE``).
        device: device of the returned tensors.

    Returns:
        ``{"labels" [G], "boxes" [G, T, 4], "masks" [G, T, H/s, W/s], "ids" [G, T],
        "image_size" (w, h) float}``
    """
    h, w = instances[0].image_size
    scale = torch.tensor([w, h, w, h], dtype=torch.float32, device=device)
    ids = torch.stack([inst.gt_ids for inst in instances], 1).to(device)  # [G, T]
    valid = ids >= 0
    keep = valid.any(1)
    boxes = torch.stack([inst.gt_boxes.tensor for inst in instances], 1).to(device).float()
    boxes = box_xyxy_to_cxcywh(boxes / scale) * valid[..., None]
    masks = torch.stack([inst.gt_masks.tensor for inst in instances], 1).to(device)
    hp, wp = padded_size
    masks = F.pad(masks.float(), (0, wp - masks.shape[-1], 0, hp - masks.shape[-2]))
    start = mask_stride // 2
    masks = masks[..., start::mask_stride, start::mask_stride] * valid[..., None, None]
    first = valid.float().argmax(1)
    classes = torch.stack([inst.gt_classes for inst in instances], 1).to(device)
    labels = classes.gather(1, first[:, None])[:, 0]
    return {
        "labels": labels[keep].long(),
        "boxes": boxes[keep],
        "masks": masks[keep],
        "ids": ids[keep],
        "image_size": torch.tensor([w, h], dtype=torch.float32, device=device),
    }
