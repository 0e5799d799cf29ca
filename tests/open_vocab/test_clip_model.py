"""open_clip loading (tag / file / errors) and the dense-feature + head decomposition."""
import json

import pytest
import torch

from wsovvis.open_vocab import DenseClip, load_clip


def test_file_weights_load_through_open_clip(tiny_clip_file):
    import open_clip

    a, _ = load_clip("wsovvis_tiny_convnext", tiny_clip_file)
    ref = torch.load(tiny_clip_file, weights_only=True)
    assert not a.training and not any(p.requires_grad for p in a.parameters())
    for k, v in a.state_dict().items():
        assert torch.equal(v, ref[k]), k
    assert "wsovvis_tiny_convnext" in open_clip.list_models()


def test_convnext_dense_then_head_equals_encode_image(tiny_dense_clip):
    clip, _ = tiny_dense_clip
    frames = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    feats = clip.dense(frames)
    assert feats.shape[-2:] == (2, 2)  # stride 32
    pooled = clip.head(feats.mean(dim=(2, 3)))
    x = (frames.float() - clip.mean) / clip.std
    ref = clip.model.encode_image(x)
    torch.testing.assert_close(pooled, ref, rtol=1e-4, atol=1e-5)


def test_input_shape_keeps_aspect_ratio(tiny_dense_clip):
    clip, _ = tiny_dense_clip
    assert clip.input_shape(128, 192) == (64, 96)
    assert clip.input_shape(100, 100) == (64, 64)


def test_vit_dense_tokens_then_head_equal_encode_image(tmp_path):
    import open_clip

    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16,
                                           "patch_size": 8, "pool_type": "avg"},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "wsovvis_test_tiny_vit.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(str(tmp_path / "wsovvis_test_tiny_vit.json"))
    model, _ = load_clip("wsovvis_test_tiny_vit")
    clip = DenseClip(model)
    frames = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    feats = clip.dense(frames)
    assert feats.shape == (1, 32, 4, 4)
    ref = model.encode_image((frames.float() - clip.mean) / clip.std)
    torch.testing.assert_close(clip.head(feats.mean(dim=(2, 3))), ref, rtol=1e-4, atol=1e-5)
    # another aspect ratio: the position embedding is resampled, not refused
    assert clip.dense(torch.zeros(1, 3, 32, 64)).shape == (1, 32, 4, 8)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="'convnext_huge_nope' is not an open_clip architecture"):
        load_clip("convnext_huge_nope")


def test_weights_of_another_architecture(tiny_clip_file):
    with pytest.raises(ValueError, match="do not fit the architecture 'convnext_base_w_320'"):
        load_clip("convnext_base_w_320", tiny_clip_file)


def test_unknown_tag_or_missing_file(tmp_path):
    with pytest.raises(ValueError, match="neither a file nor a pretrained tag.*laion2b_s29b_b131k_ft_soup"):
        load_clip("convnext_large_d_320", str(tmp_path / "missing.pt"))
