"""Losses against direct formulas, and pairwise costs against the per-pair losses."""

import math

import pytest
import torch

from wsovvis.modeling.set_prediction import (
    class_focal_cost,
    class_neg_prob_cost,
    dice_loss,
    pairwise_dice,
    pairwise_sigmoid_ce,
    pairwise_sigmoid_focal,
    reduce_num_instances,
    sigmoid_ce_loss,
    sigmoid_focal_loss,
)


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_sigmoid_ce_matches_formula():
    x = torch.tensor([[0.3, -1.2, 2.0], [0.0, 0.5, -0.5]])
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    expected = 0.0
    for i in range(2):
        row = [
            -(yv * math.log(_sig(xv)) + (1 - yv) * math.log(1 - _sig(xv)))
            for xv, yv in zip(x[i].tolist(), y[i].tolist())
        ]
        expected += sum(row) / 3
    assert sigmoid_ce_loss(x, y, 4.0).item() == pytest.approx(expected / 4, rel=1e-5)


def test_dice_matches_formula():
    x = torch.tensor([[0.3, -1.2, 2.0], [0.0, 0.5, -0.5]])
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    expected = 0.0
    for i in range(2):
        p = [_sig(v) for v in x[i].tolist()]
        t = y[i].tolist()
        inter = sum(a * b for a, b in zip(p, t))
        expected += 1 - (2 * inter + 1) / (sum(p) + sum(t) + 1)
    assert dice_loss(x, y, 2.0).item() == pytest.approx(expected / 2, rel=1e-5)


def test_focal_matches_formula():
    x = torch.tensor([[1.5, -0.7]])
    y = torch.tensor([[1.0, 0.0]])
    a, g = 0.25, 2.0
    p0, p1 = _sig(1.5), _sig(-0.7)
    l0 = a * (1 - p0) ** g * -math.log(p0)
    l1 = (1 - a) * p1**g * -math.log(1 - p1)
    assert sigmoid_focal_loss(x, y, 1.0, a, g).item() == pytest.approx((l0 + l1) / 2, rel=1e-5)


def test_pairwise_costs_equal_pair_losses():
    torch.manual_seed(0)
    x = torch.randn(4, 20)
    y = (torch.rand(3, 20) > 0.5).float()
    ce, dice, focal = pairwise_sigmoid_ce(x, y), pairwise_dice(x, y), pairwise_sigmoid_focal(x, y)
    assert ce.shape == dice.shape == focal.shape == (4, 3)
    for i in range(4):
        for j in range(3):
            xi, yj = x[i : i + 1], y[j : j + 1]
            assert ce[i, j].item() == pytest.approx(sigmoid_ce_loss(xi, yj, 1).item(), rel=1e-5)
            assert dice[i, j].item() == pytest.approx(dice_loss(xi, yj, 1).item(), rel=1e-5)
            assert focal[i, j].item() == pytest.approx(
                sigmoid_focal_loss(xi, yj, 1).item(), rel=1e-4
            )


def test_class_costs():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    labels = torch.tensor([1, 0, 1])
    c = class_neg_prob_cost(logits, labels)
    probs = logits.softmax(-1)
    torch.testing.assert_close(c, -probs[:, labels])
    f = class_focal_cost(logits[:, :2], labels)
    p = logits[:, :2].sigmoid()
    want = 0.25 * (1 - p) ** 2 * -(p + 1e-8).log() - 0.75 * p**2 * -(1 - p + 1e-8).log()
    torch.testing.assert_close(f, want[:, labels])


def test_reduce_num_instances_single_process_clamps():
    assert reduce_num_instances(0, torch.device("cpu")) == 1.0
    assert reduce_num_instances(7, torch.device("cpu")) == 7.0
