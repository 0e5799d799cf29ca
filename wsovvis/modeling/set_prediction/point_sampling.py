"""Point sampling for mask losses and matching costs (PointRend-style).

``point_sample`` and ``get_uncertain_point_coords_with_randomness`` are detectron2's own
(``detectron2.projects.point_rend.point_features``, shipped with detectron2 since v0.3 and used the
same way by Mask2Former); this module adds the class-agnostic uncertainty and the shared-point
sampling of the matching costs. Coordinates are normalised to ``[0, 1] x [0, 1]`` in ``(x, y)``
order, so predictions and targets of different resolutions are sampled at the same physical
locations.
"""

import torch
from detectron2.projects.point_rend.point_features import (
    get_uncertain_point_coords_with_randomness,
    point_sample,
)

__all__ = [
    "point_sample",
    "calculate_uncertainty",
    "get_uncertain_point_coords_with_randomness",
    "sample_shared_points",
]


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
