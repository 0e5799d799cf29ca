"""Swin Transformer backbone (VNext / Mask2Former ``D2SwinTransformer``) built from timm's Swin.

VNext's strongest SeqFormer (Swin-L, 59.3 AP on YTVIS-19) uses ``MODEL.BACKBONE.NAME:
"D2SwinTransformer"`` with the ``MODEL.SWIN.*`` keys. This module builds the same network from
timm's ``SwinTransformer`` parts (patch embedding, window-attention blocks, patch merging) and
re-parents them under the original Swin names, so VNext and Mask2Former checkpoints load by name:

=====================================================  ==========================================
original Swin / VNext / Mask2Former                    here (same key)
=====================================================  ==========================================
``patch_embed.{proj,norm}``                            timm ``patch_embed``
``layers.i.blocks.j.*``                                timm stage ``i`` block ``j``
``layers.i.downsample.{reduction,norm}`` (end of i)    timm stage ``i+1`` downsample (its start)
``norm0..norm3`` (LayerNorm of each output)            own ``LayerNorm``
=====================================================  ==========================================

Two behaviours of timm's blocks are changed to the original ones: windows always have the
configured size and every odd block is shifted (timm ``always_partition``), and maps not divisible
by the window are zero-padded *before* the cyclic shift with the shift mask computed on the padded
map (timm shifts first, then pads, which gives other windows on such maps). Each block's
``attn.relative_position_index`` is a persistent buffer, as in the original, so the key sets of
VNext / Mask2Former files and of this module are the same; a loaded index must equal the computed
one. ``attn_mask`` buffers (classification Swin files) are dropped by
:func:`convert_swin_checkpoint`. ``QK_SCALE`` (not in timm) must be null and ``APE``
(absolute position embedding) false, as in every VNext / Mask2Former Swin config.
"""
import logging
import re
import types
from typing import Dict, Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

__all__ = ["D2SwinTransformer", "convert_swin_checkpoint", "load_swin_weights"]

logger = logging.getLogger(__name__)
_NAMES = ("res2", "res3", "res4", "res5")
_PREFIXES = ("detr.detr.backbone.0.backbone.", "detr.backbone.0.backbone.", "backbone.0.backbone.",
             "backbone.body.", "backbone.")
_BUFFERS = re.compile(r"attn_mask$")


def _attn_pad_then_shift(self, x: torch.Tensor) -> torch.Tensor:
    """Window attention of a timm ``SwinTransformerBlock`` in the original Swin order: pad to a
    multiple of the window, cyclic shift, mask computed on the padded map (bound per block)."""
    _, h, w, c = x.shape
    ws = self.window_size
    x = F.pad(x, (0, 0, 0, (ws[1] - w % ws[1]) % ws[1], 0, (ws[0] - h % ws[0]) % ws[0]))
    hp, wp = x.shape[1:3]
    shift = any(self.shift_size)
    if shift:
        x = torch.roll(x, shifts=(-self.shift_size[0], -self.shift_size[1]), dims=(1, 2))
    mask = self.get_attn_mask(x) if shift else None
    from timm.models.swin_transformer import window_partition, window_reverse

    windows = window_partition(x, ws).view(-1, self.window_area, c)
    windows = self.attn(windows, mask=mask).view(-1, ws[0], ws[1], c)
    x = window_reverse(windows, ws, hp, wp)
    if shift:
        x = torch.roll(x, shifts=self.shift_size, dims=(1, 2))
    return x[:, :h, :w, :].contiguous()


def _check_relative_position_index(module, state_dict, prefix, *args):
    """Load hook: a checkpoint's ``relative_position_index`` must be the original Swin index."""
    own = module.state_dict()
    for key in [k for k in state_dict if k.startswith(prefix) and
                k.endswith("attn.relative_position_index")]:
        mine = own.get(key[len(prefix):])
        if mine is not None and not torch.equal(torch.as_tensor(state_dict[key]).long(), mine):
            raise ValueError(f"{key} in the checkpoint is not the Swin relative position index "
                             f"of this model ({tuple(mine.shape)}; another WINDOW_SIZE?)")


class _SwinLayer(nn.Module):
    """Original Swin ``BasicLayer`` naming: ``blocks`` then (optionally) ``downsample``."""

    def __init__(self, blocks: nn.Module, downsample: Optional[nn.Module]):
        super().__init__()
        self.blocks = blocks
        if downsample is not None:
            self.downsample = downsample


def convert_swin_checkpoint(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Swin tensors of a VNext, Mask2Former or original Swin file, keyed as in this module.

    Strips the backbone prefix of full-model files (``detr.detr.backbone.0.backbone.``,
    ``backbone.``, ...), keeps only Swin keys (``patch_embed.*``, ``layers.*``, ``norm0..3.*``)
    and drops the non-parameter buffers ``relative_position_index`` / ``attn_mask``.

    Args:
        state_dict: the checkpoint's tensors (``model`` / ``state_dict`` already unwrapped).

    Returns:
        ``{name: tensor}`` for :meth:`D2SwinTransformer.load_state_dict`.
    """
    out = {}
    for key, value in state_dict.items():
        for p in _PREFIXES:
            if key.startswith(p):
                key = key[len(p):]
                break
        if _BUFFERS.search(key):
            continue
        if key.startswith(("patch_embed.", "layers.")) or re.match(r"norm\d\.", key):
            out[key] = torch.as_tensor(value)
    return out


def load_swin_weights(model: nn.Module, path: str, trusted: Sequence[str] = ()) -> None:
    """Load a Swin checkpoint (``.pth`` / ``.pkl`` of VNext, Mask2Former or original Swin) strictly.

    Classification heads (``head.*``, final ``norm.*``) are ignored; output norms ``norm0..3``
    absent from ImageNet files keep their initialisation (logged).

    Args:
        model: the Swin backbone.
        path: the checkpoint file.
        trusted: files the user declared trustworthy (``MODEL.TRUSTED_CHECKPOINTS``); any other
            file is read without running code (see :mod:`wsovvis.utils.io`).

    Raises:
        FileNotFoundError / ValueError: missing file, no Swin keys, or shape / key mismatch naming
        ``MODEL.SWIN.WEIGHTS`` and the file.
        UntrustedCheckpointError: the file holds types outside the allow-list and is not trusted.
    """
    import os

    from wsovvis.utils.io import pickle_load_restricted, torch_load_trusted

    if not os.path.isfile(path):
        raise FileNotFoundError(f"MODEL.SWIN.WEIGHTS file not found: {path}")
    if path.endswith(".pkl"):  # detectron2 / Mask2Former converted file (numpy arrays)
        obj = pickle_load_restricted(path, trusted)
    else:
        obj = torch_load_trusted(path, trusted)
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    sd = convert_swin_checkpoint(obj)
    if not sd:
        raise ValueError(f"MODEL.SWIN.WEIGHTS={path!r} holds no Swin keys (patch_embed.*, "
                         "layers.*); not a Swin / VNext / Mask2Former checkpoint")
    own = model.state_dict()
    bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
           for k, v in sd.items() if k in own and own[k].shape != v.shape]
    unexpected = sorted(k for k in sd if k not in own)
    missing = sorted(k for k in own if k not in sd and not re.match(r"norm\d\.", k))
    if bad or unexpected or missing:
        raise ValueError(
            f"MODEL.SWIN.WEIGHTS={path!r} does not fit the MODEL.SWIN architecture: shape "
            f"mismatches {bad[:5]}, unexpected {unexpected[:5]}, missing {missing[:5]}")
    model.load_state_dict(sd, strict=False)
    skipped = sorted({k.split(".")[0] for k in own if k not in sd})
    if skipped:
        logger.info("Swin output norms %s not in %s; kept their initialisation", skipped, path)


@BACKBONE_REGISTRY.register()
class D2SwinTransformer(Backbone):
    """Swin Transformer with outputs ``res2..res5`` (strides 4/8/16/32), VNext names and keys.

    Built from ``cfg.MODEL.SWIN`` (VNext's keys); ``MODEL.SWIN.WEIGHTS`` optionally loads a Swin
    checkpoint at build time (full-model checkpoints in ``MODEL.WEIGHTS`` load by name too).
    """

    @configurable
    def __init__(self, *, pretrain_img_size: int = 224, patch_size: int = 4, embed_dim: int = 96,
                 depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (3, 6, 12, 24),
                 window_size: int = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.3, out_features: Sequence[str] = _NAMES,
                 use_checkpoint: bool = False, weights: str = "",
                 trusted_checkpoints: Sequence[str] = ()):
        """
        Args:
            pretrain_img_size .. drop_path_rate: ``MODEL.SWIN.*`` (VNext / Swin meaning).
            out_features: subset of ``res2..res5``.
            use_checkpoint: activation checkpointing of every block while training.
            weights: optional Swin checkpoint (see :func:`load_swin_weights`).
            trusted_checkpoints: ``MODEL.TRUSTED_CHECKPOINTS`` (files that may be fully unpickled).
        """
        super().__init__()
        from timm.models.swin_transformer import SwinTransformer

        unknown = [f for f in out_features if f not in _NAMES]
        if unknown or len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(f"MODEL.SWIN: OUT_FEATURES {list(out_features)} must be within "
                             f"{list(_NAMES)} and DEPTHS / NUM_HEADS have 4 stages, got "
                             f"{list(depths)} / {list(num_heads)}")
        trunk = SwinTransformer(
            img_size=pretrain_img_size, patch_size=patch_size, num_classes=0,
            embed_dim=embed_dim, depths=tuple(depths), num_heads=tuple(num_heads),
            window_size=window_size, always_partition=True, strict_img_size=False,
            mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
            proj_drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
            drop_path_rate=drop_path_rate)
        self.patch_embed = trunk.patch_embed
        stages = list(trunk.layers)
        self.layers = nn.ModuleList(
            _SwinLayer(stages[i].blocks, stages[i + 1].downsample if i + 1 < 4 else None)
            for i in range(4))
        for layer in self.layers:
            for blk in layer.blocks:
                blk._attn = types.MethodType(_attn_pad_then_shift, blk)
                index = blk.attn.relative_position_index
                del blk.attn.relative_position_index
                blk.attn.register_buffer("relative_position_index", index, persistent=True)
        self.register_load_state_dict_pre_hook(_check_relative_position_index)
        self.pos_drop = nn.Dropout(drop_rate)
        self.num_features = [int(embed_dim * 2 ** i) for i in range(4)]
        self._out_features = list(out_features)
        self._out_feature_strides = {n: patch_size * 2 ** i for i, n in enumerate(_NAMES)}
        self._out_feature_channels = dict(zip(_NAMES, self.num_features))
        for i, name in enumerate(_NAMES):
            if name in self._out_features:
                self.add_module(f"norm{i}", nn.LayerNorm(self.num_features[i]))
        self.use_checkpoint = use_checkpoint
        if weights:
            load_swin_weights(self, weights, trusted_checkpoints)

    @classmethod
    def from_config(cls, cfg, input_shape: Optional[ShapeSpec] = None):
        s = cfg.MODEL.SWIN
        if s.QK_SCALE is not None or s.APE or not s.PATCH_NORM:
            raise ValueError(
                "MODEL.SWIN: QK_SCALE must be null, APE false and PATCH_NORM true (the only "
                f"settings of VNext / Mask2Former Swin configs); got QK_SCALE={s.QK_SCALE}, "
                f"APE={s.APE}, PATCH_NORM={s.PATCH_NORM}")
        return {
            "pretrain_img_size": s.PRETRAIN_IMG_SIZE, "patch_size": s.PATCH_SIZE,
            "embed_dim": s.EMBED_DIM, "depths": list(s.DEPTHS), "num_heads": list(s.NUM_HEADS),
            "window_size": s.WINDOW_SIZE, "mlp_ratio": s.MLP_RATIO, "qkv_bias": s.QKV_BIAS,
            "drop_rate": s.DROP_RATE, "attn_drop_rate": s.ATTN_DROP_RATE,
            "drop_path_rate": s.DROP_PATH_RATE, "out_features": list(s.OUT_FEATURES),
            "use_checkpoint": s.USE_CHECKPOINT, "weights": s.WEIGHTS,
            "trusted_checkpoints": list(cfg.MODEL.TRUSTED_CHECKPOINTS),
        }

    @property
    def size_divisibility(self) -> int:
        return 32

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {n: ShapeSpec(channels=self._out_feature_channels[n],
                             stride=self._out_feature_strides[n]) for n in self._out_features}

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``[N, 3, H, W]`` (H, W multiples of the patch size) -> ``{res_i: [N, C_i, h_i, w_i]}``."""
        if x.shape[-2] % self.patch_embed.patch_size[0] or x.shape[-1] % self.patch_embed.patch_size[1]:
            raise ValueError(f"Swin input {tuple(x.shape[-2:])} is not a multiple of the patch "
                             f"size {self.patch_embed.patch_size}")
        x = self.pos_drop(self.patch_embed(x))  # N, H/4, W/4, C (NHWC)
        outs = {}
        for i, layer in enumerate(self.layers):
            for blk in layer.blocks:
                if self.use_checkpoint and self.training:
                    x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
                else:
                    x = blk(x)
            name = _NAMES[i]
            if name in self._out_features:
                outs[name] = getattr(self, f"norm{i}")(x).permute(0, 3, 1, 2).contiguous()
            if i + 1 < len(self.layers):
                x = layer.downsample(x)
        return outs
