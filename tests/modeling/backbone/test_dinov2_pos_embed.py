"""DINOv2 position-embedding resampling: the timm trunk reproduces the official DINOv2 features.

The reference below is written from the official module's documented behaviour
(``dinov2/models/vision_transformer.py``: ``prepare_tokens_with_masks``,
``interpolate_pos_encoding``, ``get_intermediate_layers``; ``dinov2/hub/backbones.py``: plain models
``interpolate_offset=0.1, interpolate_antialias=False``, ``_reg`` models ``0.0, True``) and works on
the official checkpoint tensors; only the transformer blocks are shared with the model under test.
"""
import pytest
import torch
import torch.nn.functional as F

from wsovvis.modeling.backbone import DINOv2PseudoFPN

DIM, DEPTH, HEADS = 32, 2, 2
TINY = dict(embed_dim=DIM, depth=DEPTH, num_heads=HEADS)
SIZES = [(224, 224), (448, 644), (392, 588)]  # 392x588: what the pyramid feeds for 448x644


def _official_sd(registers=0, seed=0):
    """Official-layout state dict with a position embedding of unit scale (so resampling
    differences are visible)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=0.02):
        return torch.randn(*shape, generator=g) * s

    sd = {"cls_token": r(1, 1, DIM, s=1), "pos_embed": r(1, 1 + 37 * 37, DIM, s=1),
          "mask_token": r(1, DIM), "patch_embed.proj.weight": r(DIM, 3, 14, 14),
          "patch_embed.proj.bias": r(DIM), "norm.weight": 1 + r(DIM), "norm.bias": r(DIM)}
    if registers:
        sd["register_tokens"] = r(1, registers, DIM, s=1)
    for i in range(DEPTH):
        p = f"blocks.{i}."
        sd.update({
            p + "norm1.weight": 1 + r(DIM), p + "norm1.bias": r(DIM),
            p + "attn.qkv.weight": r(3 * DIM, DIM, s=0.2), p + "attn.qkv.bias": r(3 * DIM),
            p + "attn.proj.weight": r(DIM, DIM, s=0.2), p + "attn.proj.bias": r(DIM),
            p + "ls1.gamma": 1 + r(DIM), p + "norm2.weight": 1 + r(DIM), p + "norm2.bias": r(DIM),
            p + "mlp.fc1.weight": r(4 * DIM, DIM, s=0.2), p + "mlp.fc1.bias": r(4 * DIM),
            p + "mlp.fc2.weight": r(DIM, 4 * DIM, s=0.2), p + "mlp.fc2.bias": r(DIM),
            p + "ls2.gamma": 1 + r(DIM),
        })
    return sd


def _official_reference(sd, blocks, x, registers):
    """Official DINOv2 last-layer patch map ``[N, D, H/14, W/14]`` (norm applied)."""
    offset, antialias = (0.0, True) if registers else (0.1, False)
    n = x.shape[0]
    tok = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=14)
    h0, w0 = tok.shape[-2:]
    tok = tok.flatten(2).transpose(1, 2)
    tok = torch.cat([sd["cls_token"].expand(n, -1, -1), tok], 1)
    pos = sd["pos_embed"]
    if not (tok.shape[1] == pos.shape[1] and x.shape[-2] == x.shape[-1]):
        m = 37
        patch = pos[:, 1:].reshape(1, m, m, DIM).permute(0, 3, 1, 2)
        kw = ({"scale_factor": ((h0 + offset) / m, (w0 + offset) / m)} if offset
              else {"size": (h0, w0)})
        patch = F.interpolate(patch, mode="bicubic", antialias=antialias, **kw)
        pos = torch.cat([pos[:, :1], patch.permute(0, 2, 3, 1).reshape(1, -1, DIM)], 1)
    tok = tok + pos
    if registers:
        tok = torch.cat([tok[:, :1], sd["register_tokens"].expand(n, -1, -1), tok[:, 1:]], 1)
    for blk in blocks:
        tok = blk(tok)
    tok = F.layer_norm(tok, (DIM,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)
    return tok[:, 1 + registers:].reshape(n, h0, w0, DIM).permute(0, 3, 1, 2)


def _backbone(tmp_path, name, registers, interp):
    sd = _official_sd(registers)
    path = tmp_path / f"{name}.pth"
    torch.save(sd, path)
    bb = DINOv2PseudoFPN(model_name=name, weights=str(path), out_channels=16,
                         vit_overrides=TINY, pos_embed_interp=interp)
    return bb, sd


@torch.no_grad()
def test_plain_dinov2_matches_official_at_three_sizes(tmp_path):
    bb, sd = _backbone(tmp_path, "dinov2_vits14", 0, "official")
    old, _ = _backbone(tmp_path, "dinov2_vits14", 0, "timm")
    g = torch.Generator().manual_seed(1)
    for size in SIZES + [(518, 518)]:
        x = torch.randn(1, 3, *size, generator=g)
        ref = _official_reference(sd, bb.vit.blocks, x, 0)
        got = bb._vit_map(x)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
        diff = (old._vit_map(x) - ref).abs().max().item()
        if size == (518, 518):
            assert diff < 1e-4  # no resampling at the pretraining size
        else:
            assert diff > 1e-2, size  # timm's antialiased resize-to-size differs


@torch.no_grad()
def test_pyramid_path_uses_the_official_resampling(tmp_path):
    """The pyramid's own route (448x644 -> padded 448x672 -> 392x588 tokens 28x42) feeds the
    official features: hooking the ViT map shows the same tensor as the reference."""
    bb, sd = _backbone(tmp_path, "dinov2_vits14", 0, "official")
    seen = {}
    orig = bb._vit_map
    bb._vit_map = lambda x: seen.setdefault("x", (x, orig(x)))[1]
    bb(torch.randn(1, 3, 448, 644))
    x, feat = seen["x"]
    assert x.shape[-2:] == (392, 588)
    torch.testing.assert_close(feat, _official_reference(sd, bb.vit.blocks, x, 0),
                               rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_reg_variant_unchanged_and_official(tmp_path):
    new, sd = _backbone(tmp_path, "dinov2_vits14_reg", 4, "official")
    old, _ = _backbone(tmp_path, "dinov2_vits14_reg", 4, "timm")
    g = torch.Generator().manual_seed(2)
    for size in SIZES:
        x = torch.randn(1, 3, *size, generator=g)
        a, b = new._vit_map(x), old._vit_map(x)
        assert torch.equal(a, b)
        torch.testing.assert_close(a, _official_reference(sd, new.vit.blocks, x, 4),
                                   rtol=1e-4, atol=1e-4)


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="POS_EMBED_INTERP"):
        DINOv2PseudoFPN(model_name="dinov2_vits14", vit_overrides=TINY, pos_embed_interp="x")


def test_deepcopy_keeps_official_resampling_bound_to_the_copy(tmp_path):
    import copy

    bb, _ = _backbone(tmp_path, "dinov2_vits14", 0, "official")
    cp = copy.deepcopy(bb)
    assert cp.vit._pos_embed.__self__ is cp.vit
