"""D2SwinTransformer: VNext-format checkpoints, original window order, VNext YAMLs."""
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from detectron2.config import get_cfg
from detectron2.modeling import BACKBONE_REGISTRY, build_model

from wsovvis.config import add_wsovvis_config
from wsovvis.modeling.backbone import D2SwinTransformer, convert_swin_checkpoint

DATA = "tests/modeling/seqformer/data"
TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=4,
            pretrain_img_size=64, drop_path_rate=0.0)


def _original_relative_position_index(ws):
    """The original Swin ``WindowAttention.relative_position_index`` formula."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
    flat = coords.flatten(1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


def _original_swin_state_dict(c=16, depths=(2, 2, 2, 2), heads=(1, 2, 2, 4), ws=4, seed=0):
    """A state dict laid out like the original / Mask2Former / VNext ``D2SwinTransformer``
    (written from the key list of those files, not from this module)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    sd = {"patch_embed.proj.weight": r(c, 3, 4, 4) * 0.1, "patch_embed.proj.bias": r(c),
          "patch_embed.norm.weight": 1 + r(c) * 0.1, "patch_embed.norm.bias": r(c) * 0.1}
    for i, (d, h) in enumerate(zip(depths, heads)):
        dim = c * 2 ** i
        for j in range(d):
            p = f"layers.{i}.blocks.{j}."
            sd.update({
                p + "norm1.weight": 1 + r(dim) * 0.1, p + "norm1.bias": r(dim) * 0.1,
                p + "attn.relative_position_bias_table": r((2 * ws - 1) ** 2, h),
                p + "attn.relative_position_index": _original_relative_position_index(ws),
                p + "attn.qkv.weight": r(3 * dim, dim) * 0.2, p + "attn.qkv.bias": r(3 * dim),
                p + "attn.proj.weight": r(dim, dim) * 0.2, p + "attn.proj.bias": r(dim),
                p + "norm2.weight": 1 + r(dim) * 0.1, p + "norm2.bias": r(dim) * 0.1,
                p + "mlp.fc1.weight": r(4 * dim, dim) * 0.2, p + "mlp.fc1.bias": r(4 * dim),
                p + "mlp.fc2.weight": r(dim, 4 * dim) * 0.2, p + "mlp.fc2.bias": r(dim),
            })
        if i < 3:  # PatchMerging at the END of stage i
            sd.update({f"layers.{i}.downsample.reduction.weight": r(2 * dim, 4 * dim) * 0.2,
                       f"layers.{i}.downsample.norm.weight": 1 + r(4 * dim) * 0.1,
                       f"layers.{i}.downsample.norm.bias": r(4 * dim) * 0.1})
        sd[f"norm{i}.weight"] = 1 + r(dim) * 0.1
        sd[f"norm{i}.bias"] = r(dim) * 0.1
    return sd


def _swin(**kw):
    args = dict(TINY)
    args.update(kw)
    return D2SwinTransformer(**args).eval()


def test_loads_vnext_full_model_and_mask2former_pkl(tmp_path):
    sd = _original_swin_state_dict()
    vnext = {"detr.detr.backbone.0.backbone." + k: v for k, v in sd.items()}
    vnext["detr.detr.query_embed.weight"] = torch.zeros(3, 4)  # not a backbone key
    torch.save({"model": vnext}, tmp_path / "vnext.pth")
    with open(tmp_path / "m2f.pkl", "wb") as f:  # Mask2Former's converted .pkl: numpy, no prefix
        pickle.dump({"model": {k: v.numpy() for k, v in sd.items()}, "__author__": "third_party"},
                    f)
    a = _swin(weights=str(tmp_path / "vnext.pth"))
    b = _swin(weights=str(tmp_path / "m2f.pkl"))
    for model in (a, b):
        own = model.state_dict()
        assert sorted(own) == sorted(sd)  # same key set as the original layout
        for k, v in sd.items():
            assert torch.equal(own[k], v), k
    # the merging that ends stage 0 in the file runs between res2 and res3 here
    assert a.layers[0].downsample.reduction.weight.shape == (32, 64)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(a(x)["res5"], b(x)["res5"])


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    torch.save({"model": {"foo.weight": torch.zeros(1)}}, tmp_path / "x.pth")
    with pytest.raises(ValueError, match="MODEL.SWIN.WEIGHTS.*no Swin keys"):
        _swin(weights=str(tmp_path / "x.pth"))
    sd = _original_swin_state_dict(c=24, heads=(1, 2, 2, 4))
    torch.save(sd, tmp_path / "y.pth")
    with pytest.raises(ValueError, match="does not fit the MODEL.SWIN architecture"):
        _swin(weights=str(tmp_path / "y.pth"))
    sd = _original_swin_state_dict()
    sd["layers.1.blocks.0.attn.relative_position_index"] = torch.zeros(16, 16).long()
    torch.save(sd, tmp_path / "z.pth")
    with pytest.raises(ValueError, match="not the Swin relative position index"):
        _swin(weights=str(tmp_path / "z.pth"))
    with pytest.raises(FileNotFoundError, match="MODEL.SWIN.WEIGHTS"):
        _swin(weights=str(tmp_path / "missing.pth"))


def _reference_window_attention(blk, x):
    """Original Swin ``SwinTransformerBlock`` attention: pad to the window, then shift; the shift
    mask built on the padded map (Swin-Transformer-Object-Detection / Mask2Former / VNext)."""
    b, h, w, c = x.shape
    ws, s = blk.window_size[0], blk.shift_size[0]
    x = F.pad(x, (0, 0, 0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws))
    hp, wp = x.shape[1:3]
    mask = None
    if s:
        x = torch.roll(x, (-s, -s), (1, 2))
        img = torch.zeros(1, hp, wp)
        cnt = 0
        for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                img[:, hs, wsl] = cnt
                cnt += 1
        mw = img.view(1, hp // ws, ws, wp // ws, ws).permute(0, 1, 3, 2, 4).reshape(-1, ws * ws)
        mask = (mw[:, None] - mw[:, :, None]).ne(0).float() * -100.0
    win = x.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
    win = blk.attn(win, mask=mask)
    x = win.view(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
    if s:
        x = torch.roll(x, (s, s), (1, 2))
    return x[:, :h, :w]


@torch.no_grad()
def test_windows_padded_before_the_shift_like_the_original():
    model = _swin()
    blk = model.layers[0].blocks[1]  # shifted block
    assert blk.shift_size == (2, 2) and blk.window_size == (4, 4)
    x = torch.randn(2, 10, 13, 16)  # not a multiple of the window
    torch.testing.assert_close(blk._attn(x), _reference_window_attention(blk, x))
    # the stock timm order (shift, then pad) gives other windows on such maps
    stock = type(blk)._attn
    blk.dynamic_mask = True
    assert (stock(blk, x) - _reference_window_attention(blk, x)).abs().max() > 1e-3
    # a stage map smaller than the window keeps the window and the shift (original behaviour)
    last = model.layers[3].blocks[1]
    assert last.window_size == (4, 4) and last.shift_size == (2, 2)


def test_output_shapes_and_registry():
    model = _swin()
    out = model(torch.randn(1, 3, 96, 160))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "res2": (1, 16, 24, 40), "res3": (1, 32, 12, 20), "res4": (1, 32 * 2, 6, 10),
        "res5": (1, 128, 3, 5)}
    assert BACKBONE_REGISTRY.get("D2SwinTransformer") is D2SwinTransformer
    assert {k: v.stride for k, v in model.output_shape().items()} == {
        "res2": 4, "res3": 8, "res4": 16, "res5": 32}


def test_convert_swin_checkpoint_drops_attn_masks_and_other_modules():
    sd = {"backbone.layers.0.blocks.1.attn_mask": torch.zeros(1),
          "backbone.norm0.weight": np.ones(2, np.float32),
          "backbone.patch_embed.proj.bias": torch.ones(2), "sem_seg_head.x": torch.ones(1)}
    out = convert_swin_checkpoint(sd)
    assert sorted(out) == ["norm0.weight", "patch_embed.proj.bias"]
    assert isinstance(out["norm0.weight"], torch.Tensor)


def _cfg(path):
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(path)
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def test_vnext_yamls_merge():
    base = _cfg(f"{DATA}/vnext_base_ytvis.yaml")
    assert base.SOLVER.CLIP_GRADIENTS.CLIP_TYPE == "full_model"
    assert base.MODEL.SeqFormer.NUM_CLASSES == 40
    swin = _cfg(f"{DATA}/vnext_swin_ytvis.yaml")
    assert swin.MODEL.BACKBONE.NAME == "D2SwinTransformer"
    assert list(swin.MODEL.SWIN.DEPTHS) == [2, 2, 18, 2] and swin.MODEL.SWIN.WINDOW_SIZE == 12
    assert swin.MODEL.SWIN.QK_SCALE is None and swin.MODEL.SWIN.USE_CHECKPOINT is False
    ours = _cfg("configs/seqformer/seqformer_swinL_ytvis19.yaml")
    for key in ("EMBED_DIM", "DEPTHS", "NUM_HEADS", "WINDOW_SIZE", "PRETRAIN_IMG_SIZE"):
        assert ours.MODEL.SWIN[key] == swin.MODEL.SWIN[key], key


def test_seqformer_builds_and_runs_from_the_swin_yaml():
    cfg = _cfg("configs/seqformer/seqformer_swinL_ytvis19.yaml")
    s, sf = cfg.MODEL.SWIN, cfg.MODEL.SeqFormer
    s.EMBED_DIM, s.DEPTHS, s.NUM_HEADS, s.WINDOW_SIZE = 32, [1, 1, 1, 1], [1, 2, 2, 4], 4
    sf.HIDDEN_DIM, sf.NHEADS, sf.DIM_FEEDFORWARD = 32, 2, 64
    sf.ENC_LAYERS, sf.DEC_LAYERS, sf.NUM_OBJECT_QUERIES = 1, 1, 4
    sf.APPLY_CLS_THRES = 0.0  # untrained: every class of the kept queries
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert isinstance(model.backbone.body, D2SwinTransformer)
    assert model.backbone.strides == [4, 8, 16, 32]
    video = {"image": [torch.randint(0, 255, (3, 70, 100), dtype=torch.uint8)] * 2,
             "height": 70, "width": 100, "video_id": 1}
    out = model([video])[0]
    assert len(out["pred_segmentations"]) == len(out["pred_scores"]) > 0


class _RunsCode:
    """Unpickling this object would run a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_swin_weights_never_run_code_from_untrusted_files(tmp_path, suffix):
    from wsovvis.utils.io import UntrustedCheckpointError

    marker = tmp_path / "ran"
    sd = {k: v.numpy() for k, v in _original_swin_state_dict().items()}
    path = tmp_path / f"evil{suffix}"
    obj = {"model": sd, "payload": _RunsCode(marker)}
    if suffix == ".pkl":
        with open(path, "wb") as f:
            pickle.dump(obj, f)
    else:
        torch.save(obj, path)
    with pytest.raises(UntrustedCheckpointError, match="evil"):
        _swin(weights=str(path))
    assert not marker.exists()
