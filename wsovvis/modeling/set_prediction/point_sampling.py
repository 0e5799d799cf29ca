"""Point sampling for mask losses and matching costs (PointRend-style, pure PyTorch).

Coordinates are normalised to ``[0, 1] x [0, 1]`` in ``(x, y)`` order, as in detectron2's
PointRend project, so predictions and targets of different resolutions can be sampled at the
same physical locations.
"""

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "point_sample",
    "calculate_uncertainty",
    "get_uncertain_point_coords_with_randomness",
    "sample_shared_points",
]


def point_sample(inputs: torch.Tensor, point_coords: torch.Tensor, **kwargs) -> torch.Tensor:
    """Bilinearly sample ``inputs`` at normalised point coordinates.

    Args:
        inputs: (N, C, H, W) feature maps (or masks).
        point_coords: (N, P, 2) or (N, Hp, Wp, 2) coordinates in ``[0, 1]``, ``(x, y)`` order.
        **kwargs: forwarded to :func:`torch.nn.functional.grid_sample`
            (e.g. ``align_corners=False``).

    Returns:
        (N, C, P) or (N, C, Hp, Wp) sampled values.
    """
    add_dim = point_coords.dim() == 3
    if add_dim:
        point_coords = point_coords.unsqueeze(2)
    output = F.grid_sample(inputs, 2.0 * point_coords - 1.0, **kwargs)
    if add_dim:
        output = output.squeeze(3)
    return output


def calculate_uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """Uncertainty of class-agnostic mask logits: ``-|logit|`` (highest at the decision boundary).

    Args:
        logits: (R, 1, ...) mask logits.

    Returns:
        Tensor of the same shape; larger means more uncertain.
    """
    if logits.shape[1] != 1:
        raise ValueError(f"expected one channel of mask logits, got shape {tuple(logits.shape)}")
    return -torch.abs(logits)


def get_uncertain_point_coords_with_randomness(
    coarse_logits: torch.Tensor,
    uncertainty_func: Callable[[torch.Tensor], torch.Tensor],
    num_points: int,
    oversample_ratio: float,
    importance_sample_ratio: float,
) -> torch.Tensor:
    """Importance-sample points on the most uncertain locations, plus uniform random points.

    ``num_points * oversample_ratio`` candidates are drawn uniformly; the
    ``num_points * importance_sample_ratio`` most uncertain of them are kept and the rest of the
    ``num_points`` budget is filled with fresh uniform points (PointRend, Kirillov et al. 2020).

    Args:
        coarse_logits: (N, 1, H, W) mask logits.
        uncertainty_func: maps (N, 1, P) sampled logits to (N, 1, P) uncertainty scores.
        num_points: points per mask.
        oversample_ratio: candidate oversampling factor (>= 1).
        importance_sample_ratio: fraction of points chosen by uncertainty, in ``[0, 1]``.

    Returns:
        (N, num_points, 2) coordinates in ``[0, 1]``.
    """
    if oversample_ratio < 1:
        raise ValueError("oversample_ratio must be >= 1")
    if not 0 <= importance_sample_ratio <= 1:
        raise ValueError("importance_sample_ratio must be in [0, 1]")
    num_boxes = coarse_logits.shape[0]
    num_sampled = int(num_points * oversample_ratio)
    point_coords = torch.rand(num_boxes, num_sampled, 2, device=coarse_logits.device)
    point_logits = point_sample(coarse_logits, point_coords, align_corners=False)
    point_uncertainties = uncertainty_func(point_logits)
    num_uncertain = int(importance_sample_ratio * num_points)
    num_random = num_points - num_uncertain
    idx = torch.topk(point_uncertainties[:, 0, :], k=num_uncertain, dim=1)[1]
    shift = num_sampled * torch.arange(num_boxes, dtype=torch.long, device=coarse_logits.device)
    idx = idx + shift[:, None]
    point_coords = point_coords.view(-1, 2)[idx.view(-1), :].view(num_boxes, num_uncertain, 2)
    if num_random > 0:
        rand = torch.rand(num_boxes, num_random, 2, device=coarse_logits.device)
        point_coords = torch.cat([point_coords, rand], dim=1)
    return point_coords


def sample_shared_points(masks: torch.Tensor, point_coords: torch.Tensor) -> torch.Tensor:
    """Sample every mask (and every frame of it) at one shared set of points.

    Used by matching costs, where all predictions and targets must be compared on the same points.

    Args:
        masks: (N, *F, H, W) masks or logits; leading frame dims ``F`` (possibly none) are sampled
            at the same points and flattened into the point axis.
        point_coords: (1, P, 2) or (P, 2) coordinates in ``[0, 1]``.

    Returns:
        (N, prod(F) * P) sampled values, in the dtype of ``masks``.
    """
    n, h, w = masks.shape[0], masks.shape[-2], masks.shape[-1]
    coords = point_coords.reshape(1, -1, 2).to(masks.dtype).expand(n, -1, -1)
    out = point_sample(masks.reshape(n, -1, h, w), coords, align_corners=False)
    return out.flatten(1)
