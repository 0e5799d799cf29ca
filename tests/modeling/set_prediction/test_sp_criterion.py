"""SetCriterion: loss values vs direct computation, aux re-matching, extension hooks."""

import pytest
import torch
import torch.nn.functional as F

from wsovvis.modeling.set_prediction import (
    SetCriterion,
    aux_weight_dict,
    build_mask_matcher,
    dice_loss,
    sigmoid_ce_loss,
)


def _case(seed=0, n=2, q=4, k=3, h=8):
    torch.manual_seed(seed)
    outputs = {"pred_logits": torch.randn(n, q, k + 1), "pred_masks": torch.randn(n, q, h, h)}
    targets = [
        {"labels": torch.tensor([0, 2]), "masks": (torch.rand(2, h, h) > 0.5).float()},
        {"labels": torch.tensor([1]), "masks": (torch.rand(1, h, h) > 0.5).float()},
    ][:n]
    return outputs, targets


class _FixedMatcher:
    def __init__(self, indices):
        self.indices = indices
        self.calls = 0

    def __call__(self, outputs, targets):
        self.calls += 1
        return self.indices


def test_dense_losses_equal_direct_formulas():
    outputs, targets = _case()
    indices = [(torch.tensor([1, 3]), torch.tensor([1, 0])), (torch.tensor([2]), torch.tensor([0]))]
    crit = SetCriterion(3, _FixedMatcher(indices), {"loss_ce": 1}, eos_coef=0.1, num_points=0)
    losses = crit(outputs, targets)
    target_classes = torch.full((2, 4), 3)
    target_classes[0, 1], target_classes[0, 3], target_classes[1, 2] = 2, 0, 1
    w = torch.tensor([1.0, 1.0, 1.0, 0.1])
    ce = F.cross_entropy(outputs["pred_logits"].transpose(1, 2), target_classes, w)
    assert losses["loss_ce"].item() == pytest.approx(ce.item(), rel=1e-6)
    src = torch.stack(
        [outputs["pred_masks"][0, 1], outputs["pred_masks"][0, 3], outputs["pred_masks"][1, 2]]
    ).flatten(1)
    tgt = torch.stack(
        [targets[0]["masks"][1], targets[0]["masks"][0], targets[1]["masks"][0]]
    ).flatten(1)
    assert losses["loss_mask"].item() == pytest.approx(
        sigmoid_ce_loss(src, tgt, 3).item(), rel=1e-6
    )
    assert losses["loss_dice"].item() == pytest.approx(dice_loss(src, tgt, 3).item(), rel=1e-6)


def test_point_sampled_losses_approximate_dense_losses():
    outputs, targets = _case(h=4)
    # piecewise-constant 32x32 masks so bilinear point sampling ~ the pixel values
    up = lambda x: x.repeat_interleave(8, -1).repeat_interleave(8, -2)  # noqa: E731
    outputs["pred_masks"] = up(outputs["pred_masks"])
    for t in targets:
        t["masks"] = up(t["masks"])
    matcher = build_mask_matcher(2, 5, 5, num_points=0)
    dense = SetCriterion(3, matcher, {}, 0.1, num_points=0)(outputs, targets)
    sampled = SetCriterion(3, matcher, {}, 0.1, num_points=50000, importance_sample_ratio=0.0)(
        outputs, targets
    )
    assert sampled["loss_mask"].item() == pytest.approx(dense["loss_mask"].item(), rel=0.1)
    assert sampled["loss_dice"].item() == pytest.approx(dense["loss_dice"].item(), rel=0.1)


def test_aux_outputs_are_rematched_and_suffixed():
    outputs, targets = _case()
    outputs["aux_outputs"] = [{k: v.clone() for k, v in outputs.items()} for _ in range(2)]
    indices = [(torch.tensor([0, 1]), torch.tensor([0, 1])), (torch.tensor([0]), torch.tensor([0]))]
    matcher = _FixedMatcher(indices)
    weights = aux_weight_dict({"loss_ce": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}, 1)
    crit = SetCriterion(3, matcher, weights, 0.1, num_points=0)
    losses = crit(outputs, targets)
    assert matcher.calls == 3
    assert set(losses) == {f"loss_{n}{s}" for n in ("ce", "mask", "dice") for s in ("", "_0", "_1")}
    assert losses["loss_ce_1"].item() == pytest.approx(losses["loss_ce"].item())
    weighted = crit.weight(losses)
    assert "loss_ce_1" not in weighted and weighted["loss_dice_0"] == 5.0 * losses["loss_dice_0"]
    crit.rematch_aux = False
    matcher.calls = 0
    crit(outputs, targets)
    assert matcher.calls == 1


def test_registered_loss_and_video_masks():
    torch.manual_seed(0)
    outputs = {
        "pred_logits": torch.randn(1, 3, 3),
        "pred_masks": torch.randn(1, 3, 2, 8, 8, requires_grad=True),
    }
    targets = [{"labels": torch.tensor([1]), "masks": (torch.rand(1, 2, 8, 8) > 0.5).float()}]
    crit = SetCriterion(
        2,
        build_mask_matcher(1, 1, 1, 0),
        {},
        0.1,
        losses=["labels", "masks", "count"],
        num_points=16,
    )
    crit.register_loss(
        "count", lambda o, t, idx, n: {"loss_count": torch.tensor(float(len(idx[0][0])))}
    )
    losses = crit(outputs, targets)
    assert losses["loss_count"].item() == 1.0
    (losses["loss_mask"] + losses["loss_dice"]).backward()
    assert outputs["pred_masks"].grad.abs().sum() > 0
    with pytest.raises(KeyError):
        crit.get_loss("nope", outputs, targets, [], 1)


def test_bad_labels_raise():
    outputs, targets = _case(n=1)
    targets[0]["labels"] = torch.tensor([0, 5])
    matcher = _FixedMatcher([(torch.tensor([0, 1]), torch.tensor([0, 1]))])
    crit = SetCriterion(3, matcher, {}, 0.1, num_points=0)
    with pytest.raises(ValueError, match=r"\[0, 5\].*NUM_CLASSES \(3\)"):
        crit(outputs, targets)
    assert matcher.calls == 0, "labels must be checked before matching"


def test_layers_carrying_indices_are_not_rematched():
    outputs, targets = _case()
    own = [(torch.tensor([0, 1]), torch.tensor([0, 1])), (torch.tensor([3]), torch.tensor([0]))]
    other = [(torch.tensor([2, 3]), torch.tensor([1, 0])), (torch.tensor([0]), torch.tensor([0]))]
    matcher = _FixedMatcher(other)
    crit = SetCriterion(3, matcher, {}, eos_coef=0.1, num_points=0)
    aux = dict(outputs, indices=own)
    losses = crit(dict(outputs, indices=own, aux_outputs=[aux, dict(outputs)]), targets)
    assert matcher.calls == 1  # only the aux layer without indices is matched
    ref_own = crit.get_loss("labels", outputs, targets, own, 3)["loss_ce"]
    ref_other = crit.get_loss("labels", outputs, targets, other, 3)["loss_ce"]
    assert losses["loss_ce"].item() == pytest.approx(ref_own.item())
    assert losses["loss_ce_0"].item() == pytest.approx(ref_own.item())
    assert losses["loss_ce_1"].item() == pytest.approx(ref_other.item())
    assert ref_own.item() != pytest.approx(ref_other.item())


def test_aux_layers_reuse_final_matching_without_rematch():
    outputs, targets = _case()
    indices = [(torch.tensor([1]), torch.tensor([0])), (torch.tensor([2]), torch.tensor([0]))]
    matcher = _FixedMatcher(indices)
    crit = SetCriterion(3, matcher, {}, eos_coef=0.1, num_points=0, rematch_aux=False)
    losses = crit(dict(outputs, aux_outputs=[dict(outputs), dict(outputs)]), targets)
    assert matcher.calls == 1
    assert sorted(losses) == sorted(
        f"{k}{s}" for k in ("loss_ce", "loss_mask", "loss_dice") for s in ("", "_0", "_1"))
