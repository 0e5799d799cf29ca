"""GIoU of the shared toolkit against torchvision and hand-computed values."""
import pytest
import torch
from torchvision.ops import generalized_box_iou as tv_giou

from wsovvis.modeling.set_prediction.box_ops import (
    box_cxcywh_to_xyxy,
    box_xyxy_to_cxcywh,
    elementwise_generalized_box_iou,
    generalized_box_iou,
)


def _boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g)
    wh = torch.rand(n, 2, generator=g) * 0.5 + 0.01
    return torch.cat([xy, xy + wh], 1)


def test_pairwise_matches_torchvision():
    a, b = _boxes(5, 0), _boxes(7, 1)
    assert torch.allclose(generalized_box_iou(a, b), tv_giou(a, b), atol=1e-6)


def test_elementwise_is_the_diagonal_of_pairwise():
    a, b = _boxes(6, 2), _boxes(6, 3)
    diag = torch.diagonal(generalized_box_iou(a, b))
    assert torch.allclose(elementwise_generalized_box_iou(a, b), diag, atol=1e-7)
    # broadcasting over a frame axis
    ab = elementwise_generalized_box_iou(a.view(2, 3, 4), b.view(2, 3, 4))
    assert torch.allclose(ab.flatten(), diag, atol=1e-7)


def test_hand_computed_giou_and_zero_boxes_stay_finite():
    # [0,0,1,1] vs [2,0,3,1]: IoU 0, hull 3, union 2 -> GIoU = -1/3
    g = elementwise_generalized_box_iou(torch.tensor([0.0, 0, 1, 1]), torch.tensor([2.0, 0, 3, 1]))
    assert g.item() == pytest.approx(-1 / 3)
    zero = torch.zeros(1, 4)
    assert torch.isfinite(generalized_box_iou(zero, zero)).all()
    assert torch.isnan(tv_giou(zero, zero)).all()  # why wsovvis keeps its own GIoU


def test_conversions_keep_leading_frame_axes():
    cxcywh = torch.tensor([[[0.5, 0.5, 0.2, 0.4], [0.0, 0.0, 0.0, 0.0]]])  # [N=1, T=2, 4]
    xyxy = box_cxcywh_to_xyxy(cxcywh)
    assert torch.equal(xyxy[0, 0], torch.tensor([0.4, 0.3, 0.6, 0.7]))
    assert torch.equal(xyxy[0, 1], torch.zeros(4))  # absent frame stays all-zero
    torch.testing.assert_close(box_xyxy_to_cxcywh(xyxy), cxcywh)
