"""SeqFormer building blocks: box ops / matcher, dynamic mask head, targets, transformer."""
import pytest
import torch
import torch.nn.functional as F

from detectron2.structures import BitMasks, Instances

from wsovvis.modeling.seqformer import (
    DynamicMaskHead,
    SeqFormerCriterion,
    SeqFormerTransformer,
    aligned_bilinear,
    build_seqformer_matcher,
    pad_frames,
    prepare_video_targets,
    select_predictions,
)
from wsovvis.modeling.set_prediction.box_ops import (
    box_cxcywh_to_xyxy,
    box_xyxy_to_cxcywh,
    generalized_box_iou,
    video_giou_cost,
)


def test_box_conversions_and_giou():
    xyxy = torch.tensor([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]])
    torch.testing.assert_close(box_cxcywh_to_xyxy(box_xyxy_to_cxcywh(xyxy)), xyxy)
    g = generalized_box_iou(xyxy, xyxy)
    torch.testing.assert_close(g.diag(), torch.ones(2))
    disjoint = generalized_box_iou(torch.tensor([[0.0, 0.0, 0.1, 0.1]]),
                                   torch.tensor([[0.9, 0.9, 1.0, 1.0]]))
    torch.testing.assert_close(disjoint, torch.tensor([[-(1 - 0.02)]]))
    # an absent frame (zero box) keeps the video cost finite
    pred = torch.rand(3, 2, 4) * 0.5 + 0.1
    tgt = torch.zeros(2, 2, 4)
    tgt[:, 0] = torch.tensor([0.5, 0.5, 0.2, 0.2])
    assert torch.isfinite(video_giou_cost(pred, tgt)).all()


def test_matcher_recovers_permutation_and_criterion_handles_absent_frames():
    torch.manual_seed(0)
    gt = torch.tensor([[[0.3, 0.3, 0.2, 0.2], [0.32, 0.3, 0.2, 0.2]],
                       [[0.7, 0.6, 0.3, 0.2], [0.0, 0.0, 0.0, 0.0]]])  # track 2 absent on frame 2
    pred_boxes = torch.rand(1, 5, 2, 4) * 0.3 + 0.05
    pred_boxes[0, 3] = gt[0]
    pred_boxes[0, 1] = gt[1]
    logits = torch.zeros(1, 5, 1)
    targets = [{"labels": torch.tensor([0, 0]), "boxes": gt,
                "masks": torch.zeros(2, 2, 4, 4)}]
    matcher = build_seqformer_matcher(2, 5, 2)
    (rows, cols), = matcher({"pred_logits": logits, "pred_boxes": pred_boxes}, targets)
    assert dict(zip(rows.tolist(), cols.tolist())) == {1: 1, 3: 0}
    crit = SeqFormerCriterion(1, matcher, {"loss_ce": 2, "loss_bbox": 5, "loss_giou": 2,
                                           "loss_mask": 2, "loss_dice": 5})
    masks = torch.randn(2, 2, 2, 2, requires_grad=True)  # resized to the 4x4 targets
    losses = crit({"pred_logits": logits.requires_grad_(), "pred_boxes": pred_boxes,
                   "pred_masks": masks, "indices": [(rows, cols)]}, targets)
    assert losses["loss_bbox"].item() < 1e-6 and torch.isfinite(losses["loss_giou"])
    sum(crit.weight(losses).values()).backward()
    assert masks.grad is not None


def test_dynamic_mask_head_matches_grouped_conv_reference():
    torch.manual_seed(0)
    head = DynamicMaskHead(hidden_dim=16, in_channels=3)
    q = torch.randn(2, 16)
    feats = torch.randn(3, 3, 5, 6)  # T=3 frames
    centres = torch.rand(2, 3, 2)
    size = torch.tensor([48.0, 40.0])
    out = head(q, feats, centres, size)
    assert out.shape == (2, 3, 10, 12)
    params = head.controller(q)
    ws = torch.split(params, head.weight_nums + head.bias_nums, 1)
    ys, xs = torch.meshgrid(torch.arange(5) * 8.0 + 4, torch.arange(6) * 8.0 + 4, indexing="ij")
    for n in range(2):
        for t in range(3):
            rel = torch.stack([centres[n, t, 0] * 48 - xs, centres[n, t, 1] * 40 - ys])
            x = torch.cat([rel, feats[t]])[None]
            for i, (o, c) in enumerate(head.weight_shapes):
                x = F.conv2d(x, ws[i][n].view(o, c, 1, 1), ws[3 + i][n])
                x = F.relu(x) if i < 2 else x
            torch.testing.assert_close(out[n, t], aligned_bilinear(x, 2)[0, 0], rtol=1e-4,
                                       atol=1e-4)


def test_targets_and_padding_agree_at_odd_sizes():
    h, w = 37, 53
    frames = [torch.randint(0, 255, (3, h, w), dtype=torch.uint8) for _ in range(2)]
    images, mask, sizes = pad_frames(frames, torch.zeros(3, 1, 1), torch.ones(3, 1, 1), 32)
    assert images.shape[-2:] == (64, 64) and sizes == [(h, w), (h, w)]
    assert mask[:, :h, :w].sum() == 0 and mask[:, h:].all()
    insts = []
    for t in range(2):
        inst = Instances((h, w))
        m = torch.zeros(2, h, w, dtype=torch.bool)
        m[0, 3:10, 5:20] = True
        inst.gt_ids = torch.tensor([4, -1 if t else 7])
        if not t:
            m[1, 20:30, 30:40] = True
        inst.gt_masks = BitMasks(m)
        inst.gt_boxes = BitMasks(m).get_bounding_boxes()
        inst.gt_classes = torch.tensor([0, 0])
        insts.append(inst)
    tgt = prepare_video_targets(insts, images.shape[-2:], 4, "cpu")
    assert tgt["masks"].shape == (2, 2, 16, 16)  # == padded / 4 == mask head output size
    assert tgt["masks"][1, 1].sum() == 0 and (tgt["boxes"][1, 1] == 0).all()
    torch.testing.assert_close(tgt["boxes"][0, 0], torch.tensor(
        [12.5 / w, 6.5 / h, 15.0 / w, 7.0 / h]))


def test_transformer_shapes_and_frame_independent_encoder():
    torch.manual_seed(0)
    tr = SeqFormerTransformer(d_model=32, nhead=2, num_encoder_layers=1, num_decoder_layers=2,
                              dim_feedforward=64, dropout=0.0, num_feature_levels=2,
                              dec_n_points=2, enc_n_points=2).eval()
    srcs = [torch.randn(4, 32, 6, 8), torch.randn(4, 32, 3, 4)]
    masks = [torch.zeros(4, 6, 8, dtype=torch.bool), torch.zeros(4, 3, 4, dtype=torch.bool)]
    masks[0][:, :, 7:] = True
    pos = [torch.randn_like(s) for s in srcs]
    mem, shapes, ratios, flat = tr.encode(srcs, masks, pos)
    mem1 = tr.encode([s[1:2] for s in srcs], [m[1:2] for m in masks], [p[1:2] for p in pos])[0]
    torch.testing.assert_close(mem[1:2], mem1, rtol=1e-5, atol=1e-5)
    out = tr.decode(mem, shapes, ratios, flat, torch.randn(5, 64), batch_size=2)
    assert out["hs"][-1].shape == (2, 5, 32) and out["hs_box"][-1].shape == (2, 2, 5, 32)
    assert out["boxes"][0].shape == (2, 2, 5, 4) and out["references"][1].shape == (2, 2, 5, 4)
    assert out["references"][0].shape == (2, 2, 5, 2)
    assert ((out["boxes"][-1] > 0) & (out["boxes"][-1] < 1)).all()


def test_select_predictions_modes():
    probs = torch.tensor([[3.0, -5.0], [-5.0, -4.0], [1.0, 2.0]]).sigmoid()
    # topk_pairs: top-3 (query, class) pairs above 0.05
    s, l, q = select_predictions(probs, 3, True, 0.05, "topk_pairs")
    assert q.tolist() == [0, 2, 2] and l.tolist() == [0, 1, 0]
    s, l, q = select_predictions(probs, 2, False, 0.05, "topk_pairs")
    assert q.tolist() == [0, 2] and l.tolist() == [0, 1]
    # vnext: top-1 query (0) then all its classes above the threshold -> (0, 0) only
    s, l, q = select_predictions(probs, 1, True, 0.05)
    assert q.tolist() == [0] and l.tolist() == [0]
    with pytest.raises(ValueError, match="TEST_SELECTION"):
        select_predictions(probs, 1, True, 0.05, "bogus")


def test_vnext_selection_keeps_every_class_of_the_top_queries():
    """VNext whole_video_inference on 300 x 40 logits: top-10 queries, then every class > 0.05 of
    those queries (326 predictions here), in torch.where order; topk_pairs keeps 10."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 40, generator=g) - 1.0
    probs = logits.sigmoid()
    # independent expectation, written as VNext writes it
    top = torch.topk(probs.max(1)[0], k=10)[1].tolist()
    valid = probs[top]
    rows, cols = torch.where(valid > 0.05)
    s, l, q = select_predictions(probs, 10, True, 0.05)
    assert len(s) == len(rows) > 10
    assert q.tolist() == [top[r] for r in rows.tolist()] and l.tolist() == cols.tolist()
    torch.testing.assert_close(s, valid[rows, cols])
    assert len(select_predictions(probs, 10, True, 0.05, "topk_pairs")[0]) == 10
    s, l, q = select_predictions(probs, 10, False, 0.05)
    assert q.tolist() == top and l.tolist() == valid.argmax(1).tolist()
