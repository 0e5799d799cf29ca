"""DINOv2PseudoFPN: shapes at odd sizes, frozen trunk, official/timm checkpoint loading."""
import pytest
import torch

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

from wsovvis.config import add_wsovvis_config
from wsovvis.modeling.backbone import DINOv2PseudoFPN

DIM, DEPTH, HEADS = 32, 2, 2
TINY = dict(embed_dim=DIM, depth=DEPTH, num_heads=HEADS)


def _official_state_dict(dim=DIM, depth=DEPTH, registers=0, seed=0):
    """A state dict laid out like dinov2_vit*14[_reg4]_pretrain.pth (tiny dims)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    sd = {"cls_token": r(1, 1, dim), "pos_embed": r(1, 1 + 37 * 37, dim), "mask_token": r(1, dim),
          "patch_embed.proj.weight": r(dim, 3, 14, 14), "patch_embed.proj.bias": r(dim),
          "norm.weight": 1 + r(dim), "norm.bias": r(dim)}
    if registers:
        sd["register_tokens"] = r(1, registers, dim)
    for i in range(depth):
        p = f"blocks.{i}."
        sd.update({
            p + "norm1.weight": 1 + r(dim), p + "norm1.bias": r(dim),
            p + "attn.qkv.weight": r(3 * dim, dim), p + "attn.qkv.bias": r(3 * dim),
            p + "attn.proj.weight": r(dim, dim), p + "attn.proj.bias": r(dim),
            p + "ls1.gamma": r(dim), p + "norm2.weight": 1 + r(dim), p + "norm2.bias": r(dim),
            p + "mlp.fc1.weight": r(4 * dim, dim), p + "mlp.fc1.bias": r(4 * dim),
            p + "mlp.fc2.weight": r(dim, 4 * dim), p + "mlp.fc2.bias": r(dim),
            p + "ls2.gamma": r(dim),
        })
    return sd


@pytest.mark.parametrize("size", [(37, 53), (64, 64), (29, 71)])
def test_output_shapes_any_size(size):
    model = DINOv2PseudoFPN(model_name="dinov2_vits14", out_channels=16, vit_overrides=TINY)
    x = torch.randn(1, 3, *size)
    out = model(x)
    h, w = size
    for name, stride in (("res2", 4), ("res3", 8), ("res4", 16), ("res5", 32)):
        assert out[name].shape == (1, 16, -(-h // stride), -(-w // stride)), name
        assert model.output_shape()[name].stride == stride
        assert model.output_shape()[name].channels == 16
    assert model.size_divisibility == 32
    # padded to 32 beforehand, the stride-8 map is exactly H_pad / 8
    out = model(torch.randn(1, 3, 64, 96))
    assert out["res3"].shape[-2:] == (8, 12) and out["res2"].shape[-2:] == (16, 24)


def test_frozen_trunk_no_grad_and_eval():
    model = DINOv2PseudoFPN(model_name="dinov2_vits14_reg", out_channels=16, vit_overrides=TINY)
    model.train()
    assert not model.vit.training and model.neck.training
    out = model(torch.randn(2, 3, 37, 53))
    sum(v.square().mean() for v in out.values()).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.vit.parameters())
    assert all(p.grad is not None for p in model.neck.parameters())
    assert model.pretrained_parameter_names() == []
    unfrozen = DINOv2PseudoFPN(model_name="dinov2_vits14", freeze=False, out_channels=16,
                               vit_overrides=TINY).train()
    assert unfrozen.vit.training
    assert len(unfrozen.pretrained_parameter_names()) == len(list(unfrozen.vit.parameters()))


@pytest.mark.parametrize("registers", [0, 4])
def test_loads_official_checkpoint(tmp_path, registers):
    sd = _official_state_dict(registers=registers)
    path = tmp_path / "dinov2_tiny_pretrain.pth"
    torch.save(sd, path)
    name = "dinov2_vits14_reg" if registers else "dinov2_vits14"
    model = DINOv2PseudoFPN(model_name=name, weights=str(path), out_channels=16,
                            vit_overrides=TINY)
    vit = model.vit.state_dict()
    torch.testing.assert_close(vit["blocks.1.attn.qkv.weight"], sd["blocks.1.attn.qkv.weight"])
    torch.testing.assert_close(vit["blocks.0.ls2.gamma"], sd["blocks.0.ls2.gamma"])
    torch.testing.assert_close(vit["patch_embed.proj.weight"], sd["patch_embed.proj.weight"])
    if registers:
        torch.testing.assert_close(vit["reg_token"], sd["register_tokens"])
        torch.testing.assert_close(vit["cls_token"], sd["cls_token"] + sd["pos_embed"][:, :1])
        torch.testing.assert_close(vit["pos_embed"], sd["pos_embed"][:, 1:])
    else:
        torch.testing.assert_close(vit["pos_embed"], sd["pos_embed"])
        torch.testing.assert_close(vit["cls_token"], sd["cls_token"])
    assert model(torch.randn(1, 3, 40, 40))["res3"].shape == (1, 16, 5, 5)


def test_loads_timm_checkpoint(tmp_path):
    src = DINOv2PseudoFPN(model_name="dinov2_vits14", out_channels=16, vit_overrides=TINY)
    path = tmp_path / "timm.pth"
    torch.save(src.vit.state_dict(), path)
    dst = DINOv2PseudoFPN(model_name="vit_small_patch14_dinov2", weights=str(path),
                          out_channels=16, vit_overrides=TINY)
    for k, v in src.vit.state_dict().items():
        torch.testing.assert_close(dst.vit.state_dict()[k], v)


def test_wrong_variant_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "wider.pth"
    torch.save(_official_state_dict(dim=48), path)
    with pytest.raises(ValueError) as err:
        DINOv2PseudoFPN(model_name="dinov2_vits14", weights=str(path), vit_overrides=TINY)
    msg = str(err.value)
    assert "dinov2_vits14" in msg and "embed dim 32" in msg and "embed dim 48" in msg
    path_reg = tmp_path / "reg.pth"
    torch.save(_official_state_dict(registers=4), path_reg)
    with pytest.raises(ValueError, match="register tokens"):
        DINOv2PseudoFPN(model_name="dinov2_vits14", weights=str(path_reg), vit_overrides=TINY)
    with pytest.raises(ValueError, match="Unknown MODEL.DINOV2.MODEL_NAME"):
        DINOv2PseudoFPN(model_name="dinov2_vitx14")


def test_built_from_config_through_registry():
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.MODEL.BACKBONE.NAME = "DINOv2PseudoFPN"
    cfg.MODEL.DINOV2.MODEL_NAME = "dinov2_vitb14_reg"
    cfg.MODEL.DINOV2.OUT_CHANNELS = 16
    cfg.MODEL.DINOV2.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.DINOV2.EMBED_DIM, cfg.MODEL.DINOV2.DEPTH, cfg.MODEL.DINOV2.NUM_HEADS = 32, 1, 2
    model = build_backbone(cfg, ShapeSpec(channels=3))
    assert isinstance(model, DINOv2PseudoFPN) and model.vit.num_reg_tokens == 4
    assert sorted(model.output_shape()) == ["res3", "res4", "res5"]
    assert model.frozen and len(model.vit.blocks) == 1


def test_architecture_mismatch_names_both_sides(tmp_path):
    path = tmp_path / "deeper_with_registers.pth"
    torch.save(_official_state_dict(depth=DEPTH + 1, registers=4), str(path))
    with pytest.raises(ValueError) as e:
        DINOv2PseudoFPN(model_name="dinov2_vits14", weights=str(path), out_channels=16,
                        vit_overrides=TINY)
    msg = str(e.value)
    assert f"depth {DEPTH}, 0 register tokens" in msg  # the model
    assert f"depth {DEPTH + 1}, 4 register tokens" in msg and str(path) in msg  # the file
    not_vit = tmp_path / "not_vit.pth"
    torch.save({"weight": torch.zeros(1)}, str(not_vit))
    with pytest.raises(ValueError, match="not a DINOv2/timm ViT checkpoint"):
        DINOv2PseudoFPN(model_name="dinov2_vits14", weights=str(not_vit), vit_overrides=TINY)
