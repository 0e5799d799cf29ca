"""Point sampling: wsovvis uncertainty with detectron2's PointRend sampling, shared points."""

import torch

from wsovvis.modeling.set_prediction import (
    calculate_uncertainty,
    get_uncertain_point_coords_with_randomness,
    point_sample,
    sample_shared_points,
)


def test_point_sampling_is_detectron2s():
    """The PointRend sampling is detectron2's (no copy to keep in sync)."""
    from detectron2.projects.point_rend import point_features

    assert point_sample is point_features.point_sample
    assert (get_uncertain_point_coords_with_randomness
            is point_features.get_uncertain_point_coords_with_randomness)


def test_uncertain_points_concentrate_on_the_boundary():
    torch.manual_seed(0)
    # logits are 0 on the middle column band x in [0.4, 0.6], large elsewhere
    logits = torch.full((2, 1, 64, 64), 10.0)
    logits[..., 26:38] = 0.0
    coords = get_uncertain_point_coords_with_randomness(
        logits, calculate_uncertainty, 100, 10.0, 0.75
    )
    assert coords.shape == (2, 100, 2)
    assert coords.min() >= 0 and coords.max() <= 1
    important = coords[:, :75, 0]
    assert ((important > 0.38) & (important < 0.62)).float().mean() > 0.95
    # random remainder is spread over the image
    rest = coords[:, 75:, 0]
    assert ((rest < 0.38) | (rest > 0.62)).float().mean() > 0.4


def test_zero_importance_ratio_is_uniform_sampling():
    torch.manual_seed(0)
    logits = torch.zeros(1, 1, 16, 16)
    coords = get_uncertain_point_coords_with_randomness(
        logits, calculate_uncertainty, 1000, 2.0, 0.0
    )
    assert coords.shape == (1, 1000, 2)
    assert abs(coords.mean().item() - 0.5) < 0.03


def test_shared_points_flatten_frames():
    masks = torch.zeros(3, 2, 8, 8)
    masks[:, 1] = 1.0
    out = sample_shared_points(masks, 0.1 + 0.8 * torch.rand(1, 5, 2))
    assert out.shape == (3, 10)
    assert (out[:, :5] == 0).all() and (out[:, 5:] == 1).all()
