"""WSVidEoMT training: losses, aux modes, batch equivalence, overfitting a synthetic clip."""

import pytest
import torch
from videomt_testutils import synthetic_clip, tiny_model


def test_forward_backward_and_loss_keys():
    model = tiny_model()
    losses = model([synthetic_clip(0, absent={(1, 0)}), synthetic_clip(1)])
    assert set(losses) == {
        "loss_ce",
        "loss_mask",
        "loss_dice",
        "loss_ce_0",
        "loss_mask_0",
        "loss_dice_0",
    }
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for name in (
        "backbone.q.weight",
        "backbone.query_updater.weight",
        "backbone.class_head.weight",
        "backbone.mask_head.4.weight",
        "backbone.upscale.0.conv1.weight",
        "backbone.encoder.backbone.blocks.0.attn.qkv.weight",
    ):
        assert dict(model.named_parameters())[name].grad.abs().sum() > 0, name


def test_clip_without_visible_tracks():
    model = tiny_model()
    empty = synthetic_clip(0, absent={(j, t) for j in range(2) for t in range(3)})
    losses = model([empty, synthetic_clip(1)])
    assert all(torch.isfinite(v) for v in losses.values())
    alone = model([empty])
    assert alone["loss_mask"].item() == 0 and alone["loss_ce"].item() > 0
    sum(alone.values()).backward()


def test_aux_loss_modes():
    parity = tiny_model(SEGMENTER_BLOCKS=[0, 1, 2])
    assert parity.num_aux == 2  # upstream weights only the first num_blocks - 1 aux predictions
    assert (
        set(parity([synthetic_clip()])) >= {"loss_dice_1"}
        and "loss_dice_2" not in parity.criterion.weight_dict
    )
    full = tiny_model(SEGMENTER_BLOCKS=[0, 1, 2], AUX_LOSS_MODE="all")
    assert full.num_aux == 3 and "loss_dice_2" in full([synthetic_clip()])
    none = tiny_model(DEEP_SUPERVISION=False)
    assert set(none([synthetic_clip()])) == {"loss_ce", "loss_mask", "loss_dice"}
    with pytest.raises(ValueError):
        tiny_model(AUX_LOSS_MODE="bogus")


def test_targets_keep_clip_tracks_on_every_frame():
    model = tiny_model()
    clip = synthetic_clip(0, num_tracks=3, absent={(0, 0), (2, 0), (2, 1), (2, 2)})
    images = model.preprocess_image(clip["image"])
    targets = model.prepare_targets([clip], images)
    assert len(targets) == 3
    assert [t["ids"].tolist() for t in targets] == [
        [-1, 2],
        [1, 2],
        [1, 2],
    ]  # track 3 never visible
    assert targets[0]["masks"].shape == (2, 64, 64)  # padded 48x64 -> 64x64
    assert targets[0]["masks"][0].sum() == 0 and targets[1]["masks"][0].sum() > 0


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_two_clips_per_batch_equal_two_batches_of_one():
    # dense matching/losses (no random points); both clips have 2 tracks on every frame so every
    # loss of the pair is the mean of the single-clip losses (same normalisers)
    kw = dict(TRAIN_NUM_POINTS=0)
    clips = [synthetic_clip(3), synthetic_clip(4)]
    model = tiny_model(**kw)
    both = model(clips)
    sum(both.values()).backward()
    g_both = _grads(model)
    singles, g_single = [], []
    for clip in clips:
        model.zero_grad()
        losses = model([clip])
        sum(losses.values()).backward()
        singles.append(losses)
        g_single.append(_grads(model))
    for k in both:
        assert both[k].item() == pytest.approx(
            (singles[0][k].item() + singles[1][k].item()) / 2, rel=1e-4, abs=1e-6
        )
    for n in g_both:
        torch.testing.assert_close(
            g_both[n], (g_single[0][n] + g_single[1][n]) / 2, atol=1e-5, rtol=1e-3
        )


def test_tiny_model_overfits_one_clip():
    torch.manual_seed(0)
    model = tiny_model(0, TRAIN_NUM_POINTS=256)
    clip = synthetic_clip(5)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    first = None
    for step in range(50):
        loss = sum(model([clip]).values())
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 8, (first, loss.item())  # ~13x on this seed
    model.eval()
    out = model([{**clip, "image": clip["image"], "instances": None}])[0]
    assert sorted(out["pred_labels"][:2]) == sorted(clip["instances"][0].gt_classes.tolist())
