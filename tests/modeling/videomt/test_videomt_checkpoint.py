"""Loading official VidEoMT checkpoints: key mapping, IMG_SIZE inference, class-head re-init,
strict errors, and the conversion CLI. The official-format state dict is written from the
documented upstream layout (not from our model)."""

import argparse
import datetime
import logging
import os
import sys

import pytest
import torch
from videomt_testutils import REPO, TINY_CONFIG, tiny_model

from wsovvis.modeling.videomt import infer_img_size, load_videomt_checkpoint, read_checkpoint

C, DEPTH, Q, NUM_BLOCKS = 32, 3, 6, 2


def official_state_dict(num_classes=3, img_size=64, seed=0):
    """Random tensors under the upstream key names/shapes (tue-mps/videomt, DINOv2 backbone)."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "cls_token": (1, 1, C),
        "reg_token": (1, 4, C),
        "pos_embed": (1, (img_size // 16) ** 2, C),
        "patch_embed.proj.weight": (C, 3, 16, 16),
        "patch_embed.proj.bias": (C,),
        "norm.weight": (C,),
        "norm.bias": (C,),
    }
    for i in range(DEPTH):
        b = f"blocks.{i}."
        shapes.update(
            {
                b + "norm1.weight": (C,),
                b + "norm1.bias": (C,),
                b + "attn.qkv.weight": (3 * C, C),
                b + "attn.qkv.bias": (3 * C,),
                b + "attn.proj.weight": (C, C),
                b + "attn.proj.bias": (C,),
                b + "ls1.gamma": (C,),
                b + "norm2.weight": (C,),
                b + "norm2.bias": (C,),
                b + "mlp.fc1.weight": (4 * C, C),
                b + "mlp.fc1.bias": (4 * C,),
                b + "mlp.fc2.weight": (C, 4 * C),
                b + "mlp.fc2.bias": (C,),
                b + "ls2.gamma": (C,),
            }
        )
    sd = {"backbone.encoder.backbone." + k: v for k, v in shapes.items()}
    sd.update(
        {
            "backbone.q.weight": (Q, C),
            "backbone.query_updater.weight": (C, C),
            "backbone.query_updater.bias": (C,),
            "backbone.class_head.weight": (num_classes + 1, C),
            "backbone.class_head.bias": (num_classes + 1,),
            "backbone.attn_mask_probs": (NUM_BLOCKS,),
            "criterion.empty_weight": (num_classes + 1,),
        }
    )
    for i in (0, 2, 4):
        sd.update({f"backbone.mask_head.{i}.weight": (C, C), f"backbone.mask_head.{i}.bias": (C,)})
    for i in range(2):
        u = f"backbone.upscale.{i}."
        sd.update(
            {
                u + "conv1.weight": (C, C, 2, 2),
                u + "conv1.bias": (C,),
                u + "conv2.weight": (C, 1, 3, 3),
                u + "norm.weight": (C,),
                u + "norm.bias": (C,),
            }
        )
    return {k: torch.randn(*s, generator=g) * 0.1 for k, s in sd.items()}


def test_key_mapping_is_identity_with_the_official_layout():
    own = tiny_model().state_dict()
    off = official_state_dict()
    assert set(own) == set(off)
    assert all(own[k].shape == off[k].shape for k in own)


def test_load_official_checkpoint_file(tmp_path):
    sd = official_state_dict(seed=1)
    path = str(tmp_path / "official.pth")
    torch.save({"model": sd, "iteration": 100}, path)
    model = tiny_model(seed=5)
    info = load_videomt_checkpoint(model, path)
    assert info["reinitialized"] == []
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in sd.items())
    # raw state dict (no "model" wrapper) and a second model give identical outputs
    other = tiny_model(seed=6)
    load_videomt_checkpoint(other, sd)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(
        model.eval().backbone(x, 2)["pred_masks"], other.eval().backbone(x, 2)["pred_masks"]
    )


def test_img_size_is_inferred_from_pos_embed():
    sd = official_state_dict(img_size=96)
    assert infer_img_size(sd) == 96
    model = tiny_model()
    load_videomt_checkpoint(model, sd)
    vit = model.backbone.encoder.backbone
    assert vit.patch_embed.grid_size == (6, 6)
    assert torch.equal(vit.pos_embed, sd["backbone.encoder.backbone.pos_embed"])
    model.eval().backbone(torch.randn(1, 3, 48, 64), 1)  # still runs at any size


def test_class_head_size_mismatch_is_reinitialised_with_a_log(caplog):
    sd = official_state_dict(num_classes=40)
    model = tiny_model()
    fresh = model.backbone.class_head.weight.detach().clone()
    with caplog.at_level(logging.WARNING):
        info = load_videomt_checkpoint(model, sd)
    assert set(info["reinitialized"]) == {
        "backbone.class_head.weight",
        "backbone.class_head.bias",
        "criterion.empty_weight",
    }
    assert "class head re-initialised (checkpoint has 40 classes, model has 3)" in caplog.text
    assert torch.equal(model.backbone.class_head.weight, fresh)
    assert torch.equal(model.backbone.q.weight, sd["backbone.q.weight"])


def test_bad_keys_raise_with_the_key_names():
    model = tiny_model()
    sd = official_state_dict()
    sd["backbone.extra_head.weight"] = torch.zeros(1)
    del sd["backbone.query_updater.bias"]
    with pytest.raises(KeyError) as err:
        load_videomt_checkpoint(model, sd)
    assert "backbone.extra_head.weight" in str(err.value) and "backbone.query_updater.bias" in str(
        err.value
    )
    sd = official_state_dict()
    sd["backbone.q.weight"] = torch.zeros(Q + 1, C)
    with pytest.raises(ValueError, match="backbone.q.weight"):
        load_videomt_checkpoint(model, sd)
    # buffers without learned content may be absent
    sd = official_state_dict()
    del sd["criterion.empty_weight"], sd["backbone.attn_mask_probs"]
    assert len(load_videomt_checkpoint(model, sd)["absent_optional"]) == 2


def test_convert_cli(tmp_path):
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import convert_videomt_checkpoint as cli

    src, dst = str(tmp_path / "in.pth"), str(tmp_path / "out.pth")
    torch.save({"model": official_state_dict(num_classes=40, img_size=96)}, src)
    # the size configs name DINOv2 VIT_WEIGHTS; the checkpoint replaces them, so no file needed
    absent = str(tmp_path / "absent_dinov2.pth")
    args = ["--config-file", TINY_CONFIG, "--input", src, "--output", dst]
    info = cli.main(args + ["MODEL.VIDEOMT.VIT_WEIGHTS", absent])
    assert info["img_size"] == 96 and "backbone.class_head.weight" in info["reinitialized"]
    saved = torch.load(dst, weights_only=True)["model"]
    assert saved["backbone.class_head.weight"].shape == (4, C)
    assert saved["backbone.encoder.backbone.pos_embed"].shape == (1, 36, C)


def test_checkpoint_read_errors_name_the_file(tmp_path, caplog):
    missing = str(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        read_checkpoint(missing)
    not_sd = str(tmp_path / "list.pth")
    torch.save([torch.zeros(1)], not_sd)
    with pytest.raises(ValueError, match="list.pth"):
        read_checkpoint(not_sd)
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="broken.pth"):
        read_checkpoint(str(broken))
    caplog.clear()
    # a trainer pickle with allow-listed objects (argparse options) loads without a full pickle
    full = str(tmp_path / "full.pth")
    torch.save({"model": {"w": torch.ones(2)}, "args": argparse.Namespace(lr=1)}, full)
    with caplog.at_level(logging.WARNING):
        assert torch.equal(read_checkpoint(full)["w"], torch.ones(2))
    assert "full pickle" not in caplog.text
    # anything else is refused (naming the file and the type) unless the file is trusted
    odd = str(tmp_path / "odd.pth")
    torch.save({"model": {"w": torch.ones(2)}, "x": datetime.timedelta(1)}, odd)
    with pytest.raises(ValueError, match=r"odd\.pth.*datetime\.timedelta.*trust"):
        read_checkpoint(odd)
    assert torch.equal(read_checkpoint(odd, trusted=[odd])["w"], torch.ones(2))
    model = tiny_model()
    sd = official_state_dict()
    del sd["backbone.q.weight"]
    path = str(tmp_path / "partial.pth")
    torch.save({"model": sd}, path)
    with pytest.raises(KeyError, match="partial.pth"):
        load_videomt_checkpoint(model, path)


class _RunsCode:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_convert_cli_refuses_code_unless_trusted(tmp_path, capsys):
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import convert_videomt_checkpoint as cli

    marker = tmp_path / "code_ran"
    src, dst = str(tmp_path / "evil.pth"), str(tmp_path / "out.pth")
    torch.save({"model": official_state_dict(), "x": _RunsCode(marker)}, src)
    args = ["--config-file", TINY_CONFIG, "--input", src, "--output", dst]
    with pytest.raises(SystemExit) as exit_:
        cli.main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: ") and "evil.pth" in err
    assert "posix.system" in err or "os.system" in err
    assert not marker.exists() and not os.path.exists(dst)
    cli.main(args[:4] + ["--trust-checkpoint", src] + args[4:])  # explicit opt-in naming it
    assert marker.exists() and os.path.exists(dst)
