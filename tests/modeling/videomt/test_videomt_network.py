"""VidEoMT network behaviour: embedding, propagation, streaming, batch layout, aux outputs."""

import torch
from videomt_testutils import tiny_model

from wsovvis.modeling.videomt import VidEoMTNetwork, ViTEncoder, build_vit


def _net(seed=0, **kw):
    return tiny_model(seed, **kw).backbone.eval()


def test_embedding_matches_timm_forward_features_on_non_square_input():
    net = _net()
    vit = net.encoder.backbone
    x = torch.randn(2, 3, 48, 96)  # grid 3x6, reference grid 4x4 -> bicubic resampling
    tokens, h_g, w_g = net.encoder.embed(x)
    assert (h_g, w_g) == (3, 6) and tokens.shape == (2, 5 + 18, 32)
    for blk in vit.blocks:
        tokens = blk(tokens)
    torch.testing.assert_close(vit.norm(tokens), vit.forward_features(x))


def test_output_shapes_and_aux_count():
    net = _net().train()
    out = net(torch.randn(2 * 3, 3, 32, 64), num_frames=3, num_aux=2)
    assert out["pred_logits"].shape == (2, 3, 6, 4)
    assert out["pred_masks"].shape == (2, 3, 6, 8, 16)  # 1/4 of the input
    assert out["memory"].shape == (2, 6, 32)
    assert len(out["aux_outputs"]) == 2
    assert out["aux_outputs"][1]["pred_masks"].shape == (2, 3, 6, 8, 16)


def test_first_aux_prediction_uses_initial_queries_without_norm():
    net = _net()
    x = torch.randn(1, 3, 32, 32)
    out = net(x, num_frames=1, num_aux=1)
    tokens, h_g, w_g = net.encoder.embed(x)
    tokens = net.encoder.backbone.blocks[0](tokens)
    z = torch.cat([net.q.weight[None], tokens], dim=1)
    masks, logits = net.predict(z, (h_g, w_g))
    torch.testing.assert_close(out["aux_outputs"][0]["pred_logits"][:, 0], logits)
    torch.testing.assert_close(out["aux_outputs"][0]["pred_masks"][:, 0], masks)


def test_frame_t_depends_on_frame_t_minus_1_only_causally():
    net = _net()
    x = torch.randn(3, 3, 32, 32)
    ref = net(x, num_frames=3)
    y = x.clone()
    y[0] = torch.randn(3, 32, 32)  # change frame 0 only
    out = net(y, num_frames=3)
    assert not torch.allclose(out["pred_logits"][:, 1], ref["pred_logits"][:, 1], atol=1e-6)
    z = x.clone()
    z[2] = torch.randn(3, 32, 32)  # change the last frame only: earlier frames unaffected
    out = net(z, num_frames=3)
    torch.testing.assert_close(out["pred_logits"][:, :2], ref["pred_logits"][:, :2])
    torch.testing.assert_close(out["pred_masks"][:, :2], ref["pred_masks"][:, :2])


def test_propagation_formula():
    net = _net()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        net.query_updater.weight.zero_()
        net.query_updater.bias.zero_()
    # with a zero updater every frame starts from q.weight: frames are independent
    full = net(x, num_frames=2)
    single = net(x[1:], num_frames=1)
    torch.testing.assert_close(full["pred_logits"][:, 1], single["pred_logits"][:, 0])


def test_streaming_equals_one_call():
    net = _net()
    x = torch.randn(4, 3, 32, 48)
    full = net(x, num_frames=4)
    memory, logits, masks = None, [], []
    for t in range(4):
        out = net(x[t : t + 1], num_frames=1, memory=memory)
        memory = out["memory"]
        logits.append(out["pred_logits"])
        masks.append(out["pred_masks"])
    torch.testing.assert_close(torch.cat(logits, 1), full["pred_logits"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(masks, 1), full["pred_masks"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(memory, full["memory"], atol=1e-5, rtol=1e-5)


def test_two_clips_in_a_batch_equal_two_batches_of_one():
    net = _net().train()
    a, b = torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)
    both = net(torch.cat([a, b]), num_frames=3, num_aux=2)
    for i, clip in enumerate((a, b)):
        one = net(clip, num_frames=3, num_aux=2)
        for key in ("pred_logits", "pred_masks"):
            torch.testing.assert_close(both[key][i], one[key][0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(
                both["aux_outputs"][1][key][i], one["aux_outputs"][1][key][0]
            )


def test_gradients_flow_through_propagation():
    net = _net().train()
    out = net(torch.randn(2, 3, 32, 32), num_frames=2)
    out["pred_logits"][:, 1].sum().backward()  # only frame 1 in the loss
    assert net.query_updater.weight.grad.abs().sum() > 0


def test_segmenter_blocks_must_be_the_last_contiguous_blocks():
    vit = build_vit("custom", 32, embed_dim=16, depth=3, num_heads=2)
    for bad in ([0, 1], [0, 2], []):
        try:
            VidEoMTNetwork(ViTEncoder(vit), bad, 4, 2)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")
