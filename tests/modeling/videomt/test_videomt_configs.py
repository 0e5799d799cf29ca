"""The shipped VidEoMT configs load and the ViT-S one builds the upstream architecture."""

import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from videomt_testutils import REPO

import wsovvis.modeling  # noqa: F401
from wsovvis.config import add_wsovvis_config

EXPECTED = {
    "S": ("vit_small_patch14_reg4_dinov2", [9, 10, 11]),
    "B": ("vit_base_patch14_reg4_dinov2", [9, 10, 11]),
    "L": ("vit_large_patch14_reg4_dinov2", [20, 21, 22, 23]),
}


def _cfg(size):
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(
        os.path.join(REPO, "configs", "videomt", f"VidEoMT-ViT-{size}-LVVIS-pseudo.yaml")
    )
    return cfg


@pytest.mark.parametrize("size", "SBL")
def test_configs_load(size):
    cfg = _cfg(size)
    c = cfg.MODEL.VIDEOMT
    assert cfg.MODEL.META_ARCHITECTURE == "WSVidEoMT"
    assert (c.MODEL_NAME, list(c.SEGMENTER_BLOCKS)) == EXPECTED[size]
    assert (c.NUM_QUERIES, c.NUM_CLASSES, c.TRAIN_NUM_POINTS, c.TEST_TOPK) == (200, 1, 12544, 10)
    assert cfg.TEST.CLASS_AGNOSTIC and cfg.INPUT.FORMAT == "RGB" and cfg.INPUT.MIN_SIZE_TEST == 448
    assert cfg.SOLVER.LLRD == 0.6 and cfg.SOLVER.BACKBONE_MULTIPLIER == 1.0


def test_vit_s_builds_upstream_shapes():
    cfg = _cfg("S")
    cfg.MODEL.VIDEOMT.VIT_WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    torch.manual_seed(0)
    sd = build_model(cfg).state_dict()
    assert sd["backbone.encoder.backbone.pos_embed"].shape == (1, 1600, 384)
    assert sd["backbone.encoder.backbone.patch_embed.proj.weight"].shape == (384, 3, 16, 16)
    assert sd["backbone.encoder.backbone.reg_token"].shape == (1, 4, 384)
    assert sd["backbone.q.weight"].shape == (200, 384)
    assert sd["backbone.class_head.weight"].shape == (2, 384)
    assert sd["backbone.attn_mask_probs"].shape == (3,)
    assert "backbone.upscale.1.conv2.weight" in sd and "backbone.upscale.2.conv1.weight" not in sd


def test_missing_dinov2_init_names_the_videomt_key(tmp_path):
    cfg = _cfg("S")
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.VIDEOMT.VIT_WEIGHTS = str(tmp_path / "absent.pth")
    with pytest.raises(FileNotFoundError, match=r"MODEL\.VIDEOMT\.VIT_WEIGHTS file not found"):
        build_model(cfg)
