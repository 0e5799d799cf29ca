"""Batched pairwise matching costs: every prediction against every target, (N, M) matrices.

Mask costs take flattened values sampled at shared points (see
:func:`~wsovvis.modeling.set_prediction.point_sampling.sample_shared_points`); class costs take
per-query logits and target labels. All are computed in float32.
"""

import torch
import torch.nn.functional as F

__all__ = [
    "pairwise_sigmoid_ce",
    "pairwise_dice",
    "pairwise_sigmoid_focal",
    "class_neg_prob_cost",
    "class_focal_cost",
]


def pairwise_sigmoid_ce(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy between every prediction and every target.

    Args:
        inputs: (N, P) logits.
        targets: (M, P) binary targets.

    Returns:
        (N, M) costs; entry (i, j) equals ``BCE(inputs[i], targets[j]).mean()``.
    """
    inputs, targets = inputs.float(), targets.float()
    pos = F.binary_cross_entropy_with_logits(inputs, torch.ones_like(inputs), reduction="none")
    neg = F.binary_cross_entropy_with_logits(inputs, torch.zeros_like(inputs), reduction="none")
    loss = pos @ targets.T + neg @ (1 - targets).T
    return loss / max(inputs.shape[1], 1)


def pairwise_dice(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Soft Dice cost between every prediction and every target.

    Args:
        inputs: (N, P) logits.
        targets: (M, P) binary targets.

    Returns:
        (N, M) costs ``1 - (2 p.t + 1) / (sum p + sum t + 1)``.
    """
    probs, targets = inputs.float().sigmoid(), targets.float()
    numerator = 2 * probs @ targets.T
    denominator = probs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def pairwise_sigmoid_focal(
    inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Mean sigmoid focal loss between every prediction and every target (mask cost).

    Args:
        inputs: (N, P) logits.
        targets: (M, P) binary targets.
        alpha: positive weight (negative disables).
        gamma: focusing exponent.

    Returns:
        (N, M) costs; entry (i, j) equals the focal loss of ``inputs[i]`` vs ``targets[j]``
        averaged over points.
    """
    inputs, targets = inputs.float(), targets.float()
    prob = inputs.sigmoid()
    focal_pos = ((1 - prob) ** gamma) * F.binary_cross_entropy_with_logits(
        inputs, torch.ones_like(inputs), reduction="none"
    )
    focal_neg = (prob**gamma) * F.binary_cross_entropy_with_logits(
        inputs, torch.zeros_like(inputs), reduction="none"
    )
    if alpha >= 0:
        focal_pos = focal_pos * alpha
        focal_neg = focal_neg * (1 - alpha)
    loss = focal_pos @ targets.T + focal_neg @ (1 - targets).T
    return loss / max(inputs.shape[1], 1)


def class_neg_prob_cost(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``-softmax(logits)[:, label]`` (DETR / Mask2Former classification cost).

    Args:
        logits: (N, K + 1) logits including the no-object class.
        labels: (M,) target class indices in ``[0, K)``.

    Returns:
        (N, M) costs.
    """
    return -logits.float().softmax(-1)[:, labels]


def class_focal_cost(
    logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Focal classification cost of Deformable DETR / SeqFormer on sigmoid logits.

    ``cost = alpha (1-p)^gamma (-log p) - (1-alpha) p^gamma (-log(1-p))`` at the target class.

    Args:
        logits: (N, K) sigmoid logits (no no-object column).
        labels: (M,) target class indices.
        alpha: positive weight.
        gamma: focusing exponent.

    Returns:
        (N, M) costs.
    """
    prob = logits.float().sigmoid()
    neg = (1 - alpha) * (prob**gamma) * (-(1 - prob + 1e-8).log())
    pos = alpha * ((1 - prob) ** gamma) * (-(prob + 1e-8).log())
    return pos[:, labels] - neg[:, labels]
