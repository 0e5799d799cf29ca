"""Point sampling: exact bilinear values and uncertainty-driven point selection."""

import torch

from wsovvis.modeling.set_prediction import (
    calculate_uncertainty,
    get_uncertain_point_coords_with_randomness,
    point_sample,
    sample_shared_points,
)


def _ramp(h=8, w=8):
    # value = x pixel index, so bilinear sampling is exact: v(x) = x * w - 0.5 (align_corners=False)
    return torch.arange(w, dtype=torch.float).repeat(h, 1)[None, None]


def test_point_sample_is_bilinear_in_normalised_coords():
    img = _ramp()
    coords = torch.tensor([[[0.5, 0.5], [0.25, 0.9], [0.8125, 0.1]]])
    out = point_sample(img, coords, align_corners=False)
    assert out.shape == (1, 1, 3)
    torch.testing.assert_close(out[0, 0], coords[0, :, 0] * 8 - 0.5)


def test_point_sample_grid_shape():
    out = point_sample(torch.rand(2, 3, 5, 5), torch.rand(2, 4, 6, 2), align_corners=False)
    assert out.shape == (2, 3, 4, 6)


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
