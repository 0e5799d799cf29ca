"""Box utilities for box-supervised set prediction (SeqFormer): conversions, GIoU, losses, costs.

Boxes are normalised ``(cx, cy, w, h)`` unless a function name says ``xyxy``. Video boxes carry a
frame axis: predictions ``[..., T, 4]``; an instance absent from a frame has an all-zero box (the
SeqFormer convention), which is kept in matching and losses.

Format conversion is torchvision's ``box_convert`` (plain IoU: ``torchvision.ops.box_iou``). The
GIoU is wsovvis's own because torchvision has no pairwise GIoU that stays finite on the all-zero
boxes of absent frames (``torchvision.ops.generalized_box_iou`` divides by a zero hull) and none
that broadcasts over a frame axis.
"""
import torch
from torchvision.ops import box_convert

__all__ = [
    "box_cxcywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "generalized_box_iou",
    "elementwise_generalized_box_iou",
    "box_l1_loss",
    "giou_loss",
    "video_box_l2_cost",
    "video_giou_cost",
]


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """``(cx, cy, w, h)`` -> ``(x0, y0, x1, y1)`` on the last axis (torchvision ``box_convert``)."""
    return box_convert(boxes, "cxcywh", "xyxy")


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``(x0, y0, x1, y1)`` -> ``(cx, cy, w, h)`` on the last axis (torchvision ``box_convert``)."""
    return box_convert(boxes, "xyxy", "cxcywh")


def _area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of xyxy boxes ``[..., 4]`` (negative extents clamp to 0; torchvision's is 2-D only)."""
    w = (boxes[..., 2] - boxes[..., 0]).clamp(min=0)
    return w * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def _giou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float) -> torch.Tensor:
    """Generalised IoU of broadcastable xyxy boxes ``[..., 4]``; ``eps`` bounds both divisors."""
    lt = torch.max(boxes1[..., :2], boxes2[..., :2])
    rb = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = _area(boxes1) + _area(boxes2) - inter
    iou = inter / union.clamp(min=eps)
    lt = torch.min(boxes1[..., :2], boxes2[..., :2])
    rb = torch.max(boxes1[..., 2:], boxes2[..., 2:])
    hull = (rb - lt).clamp(min=0).prod(-1)
    return iou - (hull - union) / hull.clamp(min=eps)


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7):
    """Pairwise generalised IoU of xyxy boxes ``[N, 4]`` x ``[M, 4]`` -> ``[N, M]``.

    Degenerate (zero-size) boxes are allowed: the small ``eps`` keeps the result finite, which is
    needed because absent frames carry all-zero boxes.
    """
    return _giou(boxes1[:, None, :], boxes2[None, :, :], eps)


def elementwise_generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7):
    """Generalised IoU of matching pairs of xyxy boxes ``[..., 4]`` -> ``[...]``."""
    return _giou(boxes1, boxes2, eps)


def box_l1_loss(pred: torch.Tensor, target: torch.Tensor, num_instances: float) -> torch.Tensor:
    """L1 between matched video boxes ``[N, T, 4]`` (cxcywh), averaged over frames, summed over
    instances and divided by ``num_instances``."""
    num_frames = pred.shape[1]
    return (pred - target).abs().sum() / num_frames / num_instances


def giou_loss(pred: torch.Tensor, target: torch.Tensor, num_instances: float) -> torch.Tensor:
    """``1 - GIoU`` between matched video boxes ``[N, T, 4]`` (cxcywh), averaged over frames,
    summed over instances and divided by ``num_instances``."""
    num_frames = pred.shape[1]
    giou = elementwise_generalized_box_iou(box_cxcywh_to_xyxy(pred), box_cxcywh_to_xyxy(target))
    return (1 - giou).sum() / num_frames / num_instances


def video_box_l2_cost(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between concatenated per-frame boxes (SeqFormer's ``cdist``, p = 2).

    Args:
        pred: ``[Q, T, 4]`` predicted boxes.
        target: ``[G, T, 4]`` ground-truth boxes.

    Returns:
        ``[Q, G]`` cost.
    """
    return torch.cdist(pred.flatten(1).float(), target.flatten(1).float(), p=2)


def video_giou_cost(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative pairwise GIoU averaged over frames.

    Target boxes are clipped to ``[1e-7, 1]`` first as in the published matcher, so that the
    all-zero boxes of absent frames do not produce degenerate hulls.

    Args:
        pred: ``[Q, T, 4]`` predicted boxes (cxcywh).
        target: ``[G, T, 4]`` ground-truth boxes (cxcywh).

    Returns:
        ``[Q, G]`` cost.
    """
    num_frames = pred.shape[1]
    target = target.float().clamp(min=1e-7, max=1.0)
    pred = pred.float()
    cost = pred.new_zeros(pred.shape[0], target.shape[0])
    for t in range(num_frames):
        cost -= generalized_box_iou(box_cxcywh_to_xyxy(pred[:, t]),
                                    box_cxcywh_to_xyxy(target[:, t]))
    return cost / num_frames
