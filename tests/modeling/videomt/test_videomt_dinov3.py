"""DINOv3 (RoPE) VidEoMT: trunk parity with Hugging Face DINOv3, official checkpoint names through
the checkpoint policy, streaming equals batch."""

import os

import numpy as np
import pytest
import torch
from videomt_testutils import REPO, eval_video, tiny_cfg, tiny_model

from wsovvis.engine.checkpoint import VideoCheckpointer
from wsovvis.modeling.videomt.dinov3 import (
    dinov3_official_to_wsovvis,
    dinov3_wsovvis_to_official,
    hf_dinov3_to_timm,
    load_dinov3_weights,
)
from wsovvis.modeling.videomt.vit import build_vit

DINOV3_TINY = os.path.join(REPO, "configs", "videomt", "VidEoMT-DINOv3-tiny-test.yaml")


def _model(**kw):
    return tiny_model(0, MODEL_NAME="custom_dinov3", **kw).eval()


def _hf_dinov3(dim=32, depth=3, heads=2):
    import transformers  # a requirement (requirements.txt): never skipped
    config = transformers.DINOv3ViTConfig(
        hidden_size=dim,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * dim,
        num_register_tokens=4,
        patch_size=16,
        layerscale_value=1.0,
    )
    torch.manual_seed(0)
    model = transformers.DINOv3ViTModel(config).eval()
    with torch.no_grad():  # biases/norms away from their init, attention peaky enough for RoPE
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
            if "_proj.weight" in name and ("q_" in name or "k_" in name):
                p.mul_(6.0)
    return model


def test_trunk_matches_hugging_face_dinov3_with_rope():
    """Same tokens as transformers' DINOv3ViTModel on a non-square grid (RoPE on patches only)."""
    hf = _hf_dinov3()
    sd, ignored = hf_dinov3_to_timm(hf.state_dict())
    assert set(ignored) == {"embeddings.mask_token"}
    vit = build_vit("custom_dinov3", 64, 16, embed_dim=32, depth=3, num_heads=2).eval()
    missing, unexpected = vit.load_state_dict(sd, strict=False)
    assert unexpected == [] and all(k.endswith("k_bias") for k in missing)
    from wsovvis.modeling.videomt.vit import ViTEncoder

    enc = ViTEncoder(vit)
    x = torch.randn(2, 3, 48, 80)
    with torch.no_grad():
        ref = hf(pixel_values=x).last_hidden_state
        tokens, h_g, w_g = enc.embed(x)
        rope = enc.rope(h_g, w_g)
        for blk in vit.blocks:
            tokens = blk(tokens, rope=rope)
        ours = vit.norm(tokens)
        tokens, _, _ = enc.embed(x)
        for blk in vit.blocks:
            tokens = blk(tokens)
        no_rope = vit.norm(tokens)
    assert (h_g, w_g) == (3, 5)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)
    assert (no_rope - ref).abs().max() > 1e-2  # RoPE matters for these weights


def test_official_names_load_through_the_checkpoint_policy(tmp_path):
    model = _model()
    official = dinov3_wsovvis_to_official(model.state_dict())
    vit = "backbone.encoder.backbone."
    assert vit + "blocks.0.attention.q_proj.weight" in official
    assert vit + "patch_embed.register_tokens" in official
    assert not any(k.startswith(vit + "blocks.0.attn.") for k in official)
    back, report = dinov3_official_to_wsovvis(official)
    assert report.ignored == {}
    own = model.state_dict()
    assert set(back) == set(own) - {k for k in own if k.endswith("k_bias")}
    for k, v in back.items():
        assert torch.equal(v, own[k]), k
    path = tmp_path / "official_dinov3.pth"
    torch.save({"model": official}, path)
    fresh = tiny_model(1, MODEL_NAME="custom_dinov3").eval()
    cfg = tiny_cfg(MODEL_NAME="custom_dinov3")
    VideoCheckpointer(fresh, cfg=cfg, mode="eval").load(str(path))
    video = eval_video(0, num_frames=3)
    a, b = model([video])[0], fresh([video])[0]
    assert a == b


def test_streaming_equals_batch_and_config_file():
    video = eval_video(1, num_frames=4)
    outs = [_model(WINDOW_SIZE=w)([video])[0] for w in (1, 4)]
    assert outs[0]["pred_labels"] == outs[1]["pred_labels"]
    np.testing.assert_allclose(outs[0]["pred_scores"], outs[1]["pred_scores"], rtol=1e-5)
    import wsovvis.modeling  # noqa: F401
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    from wsovvis.config import add_wsovvis_config

    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(DINOV3_TINY)
    model = build_model(cfg).eval()
    assert type(model.backbone.encoder.backbone).__name__ == "Eva"
    assert model([video])[0]["video_id"] == video["video_id"]


def test_rope_rescale_augments_training_only():
    vit = build_vit("custom_dinov3", 64, 16, embed_dim=32, depth=1, num_heads=2, rope_rescale=2.0)
    torch.manual_seed(0)
    train = [vit.rope.get_embed(shape=(3, 4)) for _ in range(2)]
    assert not torch.equal(train[0], train[1])
    vit.eval()
    assert torch.equal(vit.rope.get_embed(shape=(3, 4)), vit.rope.get_embed(shape=(3, 4)))


def test_non_qkvb_dinov3_and_wrong_patch_are_refused(tmp_path):
    with pytest.raises(ValueError, match="_qkvb"):
        build_vit("vit_small_patch16_dinov3", 64, 16)
    with pytest.raises(ValueError, match="patch size 16"):
        build_vit("custom_dinov3", 64, 14, embed_dim=32, depth=1, num_heads=2)
    vit = build_vit("custom_dinov3", 64, 16, embed_dim=32, depth=1, num_heads=2)
    bad = tmp_path / "bad.pth"
    torch.save({"blocks.0.foo": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="does not fit the DINOv3 ViT"):
        load_dinov3_weights(vit, str(bad))


def test_hugging_face_dinov3_file_as_vit_weights(tmp_path):
    from safetensors.torch import save_file

    hf = _hf_dinov3(dim=32, depth=3, heads=2)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in hf.state_dict().items()}, str(path))
    model = tiny_model(0, layer_scale=None, MODEL_NAME="custom_dinov3", VIT_WEIGHTS=str(path))
    vit = model.backbone.encoder.backbone
    expected = hf.state_dict()["model.layer.1.layer_scale1.lambda1"]
    torch.testing.assert_close(vit.blocks[1].gamma_1, expected)


def test_dinov3_vit_l_config_matches_upstream_architecture():
    from detectron2.config import get_cfg

    from wsovvis.config import add_wsovvis_config

    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(
        os.path.join(REPO, "configs/videomt/VidEoMT-DINOv3-ViT-L-LVVIS-pseudo.yaml")
    )
    c = cfg.MODEL.VIDEOMT
    with torch.device("meta"):
        vit = build_vit(c.MODEL_NAME, c.IMG_SIZE, c.PATCH_SIZE, rope_rescale=c.ROPE_RESCALE)
    assert (len(vit.blocks), vit.embed_dim, vit.blocks[0].attn.num_heads) == (24, 1024, 16)
    assert vit.reg_token.shape[1] == 4 and vit.patch_embed.patch_size == (16, 16)
    assert list(c.SEGMENTER_BLOCKS) == [20, 21, 22, 23] and cfg.INPUT.MIN_SIZE_TEST == 480
