"""Set-prediction losses on matched pairs, normalised by the (all-reduced) number of instances.

All functions take flattened per-instance values ``inputs``/``targets`` of shape (M, P) (P points
or pixels) and return a scalar ``sum over instances / num_masks``, the DETR / Mask2Former
convention. ``num_masks`` should come from :func:`reduce_num_instances` so every rank normalises
by the same global count.
"""

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ["reduce_num_instances", "sigmoid_ce_loss", "dice_loss", "sigmoid_focal_loss"]


def reduce_num_instances(num: float, device: torch.device) -> float:
    """Average an instance count over all ranks and clamp it to at least 1.

    Args:
        num: local number of target instances (e.g. ``sum(len(t["labels"]) for t in targets)``).
        device: device for the all-reduce tensor (the model's device).

    Returns:
        ``max(1, sum_over_ranks(num) / world_size)`` as a Python float.
    """
    t = torch.as_tensor([float(num)], dtype=torch.float, device=device)
    world = 1
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
        world = dist.get_world_size()
    return torch.clamp(t / world, min=1).item()


def sigmoid_ce_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Binary cross-entropy on logits, averaged over points, summed over instances.

    Args:
        inputs: (M, P) logits.
        targets: (M, P) binary targets (float).
        num_masks: normaliser.

    Returns:
        Scalar loss.
    """
    loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    return loss.mean(1).sum() / num_masks


def dice_loss(inputs: torch.Tensor, targets: torch.Tensor, num_masks: float) -> torch.Tensor:
    """Soft Dice loss ``1 - (2|X∩Y| + 1) / (|X| + |Y| + 1)`` on sigmoid probabilities.

    Args:
        inputs: (M, ...) logits (flattened from dim 1).
        targets: (M, P) binary targets (float), same number of elements per row as ``inputs``.
        num_masks: normaliser.

    Returns:
        Scalar loss.
    """
    probs = inputs.sigmoid().flatten(1)
    targets = targets.flatten(1)
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    loss = 1 - (numerator + 1) / (denominator + 1)
    return loss.sum() / num_masks


def sigmoid_focal_loss(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    num_masks: float,
    alpha: float = 0.25,
    gamma: float = 2.0,
) -> torch.Tensor:
    """Sigmoid focal loss (RetinaNet), averaged over dim 1, summed over instances.

    This is Deformable-DETR's ``sigmoid_focal_loss``: for a class loss on (B, Q, K) logits pass
    ``inputs.flatten(0, 1)``-style rows and multiply the result by Q as Deformable DETR does.

    Args:
        inputs: (M, P) logits.
        targets: (M, P) binary targets (float).
        num_masks: normaliser.
        alpha: weight of positives in ``[0, 1]``; negative disables the weighting.
        gamma: focusing exponent.

    Returns:
        Scalar loss.
    """
    prob = inputs.sigmoid()
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss.mean(1).sum() / num_masks
