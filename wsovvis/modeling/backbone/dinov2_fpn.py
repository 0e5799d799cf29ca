"""Frozen DINOv2 ViT with a ViTDet-style simple feature pyramid, named like a ResNet (res2..res5).

Patch 14 vs. strides 4/8/16/32 (route A of the SeqFormer/DINOv2 reference): the input, padded to
a multiple of 32 (``H_pad``), is resized by 14/16 to ``(H_pad/16*14, W_pad/16*14)``. Its patch-14
token grid is then exactly ``H_pad/16 x W_pad/16``, so the ViT map is a true stride-16 map of the
padded input and the pyramid levels are exactly ``H_pad/4, /8, /16, /32``. The pretrained patch
embedding is used unchanged (route B, resampling it to 16x16, alters the pretrained features).
Inputs of any size are accepted: they are zero-padded to a multiple of 32 internally and the outputs
cropped to ``ceil(H / stride)``.

Position embeddings (``MODEL.DINOV2.POS_EMBED_INTERP``): the 37x37 pretrained grid is resampled
to the token grid of each input. ``"official"`` (default) does it as the official DINOv2 module
does (``interpolate_pos_encoding``): plain models bicubic by the scale factor ``(n + 0.1) / 37``
without antialiasing, ``_reg`` models bicubic to the target size with antialiasing. ``"timm"``
uses timm's ``resample_abs_pos_embed`` (bicubic to the size, antialiased) for every model, which
for plain models gives features that differ from the official ones at any size but 518x518.

Frozen mode (``MODEL.DINOV2.FREEZE``): the ViT has ``requires_grad=False``, runs under
``torch.no_grad()``, and stays in ``eval()`` whatever ``train()`` is called with; only the pyramid
(``neck.*``) is trained. :meth:`DINOv2PseudoFPN.pretrained_parameter_names` tells the optimizer
which parameters are pretrained (backbone multiplier) as opposed to new.
"""
import math
import types
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from .dinov2_weights import load_dinov2_weights, load_official_hub_model, resolve_variant

__all__ = ["DINOv2PseudoFPN", "SimpleFeaturePyramid", "LayerNorm2d",
           "official_patch_pos_embed", "POS_EMBED_INTERP_MODES"]

_STRIDES = {"res2": 4, "res3": 8, "res4": 16, "res5": 32}
POS_EMBED_INTERP_MODES = ("official", "timm")


def official_patch_pos_embed(patch_pos: torch.Tensor, grid: Sequence[int], offset: float,
                             antialias: bool) -> torch.Tensor:
    """Resample a square grid of patch position embeddings as official DINOv2 does.

    Args:
        patch_pos: ``[1, M*M, D]`` patch position embeddings (no prefix tokens).
        grid: target ``(rows, cols)`` token grid.
        offset: DINOv2's ``interpolate_offset`` (0.1 plain, 0.0 ``_reg``): with an offset the
            resampling is bicubic by ``scale_factor=(n + offset) / M``, else bicubic to ``grid``.
        antialias: DINOv2's ``interpolate_antialias`` (False plain, True ``_reg``).

    Returns:
        ``[1, rows*cols, D]`` in the input dtype (computed in float32).
    """
    num, dim = patch_pos.shape[1:]
    m = int(math.sqrt(num))
    if m * m != num:
        raise ValueError(f"position embedding of {num} patches is not a square grid")
    if tuple(grid) == (m, m):
        return patch_pos
    x = patch_pos.float().reshape(1, m, m, dim).permute(0, 3, 1, 2)
    if offset:
        kwargs = {"scale_factor": ((grid[0] + offset) / m, (grid[1] + offset) / m)}
    else:
        kwargs = {"size": tuple(grid)}
    x = F.interpolate(x, mode="bicubic", antialias=antialias, **kwargs)
    if tuple(x.shape[-2:]) != tuple(grid):
        raise ValueError(f"position embedding resampled to {tuple(x.shape[-2:])}, not {grid}")
    return x.permute(0, 2, 3, 1).reshape(1, -1, dim).to(patch_pos.dtype)


def _official_pos_embed(self, x: torch.Tensor) -> torch.Tensor:
    """timm ``VisionTransformer._pos_embed`` (``dynamic_img_size``) with the official DINOv2
    resampling; bound to a timm ViT by :func:`_use_official_pos_embed`."""
    b, h, w, c = x.shape
    prefix = 0 if self.no_embed_class else self.num_prefix_tokens
    pos = self.pos_embed
    patch = official_patch_pos_embed(pos[:, prefix:], (h, w), self.dinov2_interpolate_offset,
                                     self.dinov2_interpolate_antialias)
    pos = torch.cat([pos[:, :prefix], patch], 1) if prefix else patch
    x = x.view(b, -1, c)
    to_cat = [t.expand(b, -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
    if self.no_embed_class:
        x = torch.cat(to_cat + [x + pos], 1)
    else:
        x = torch.cat(to_cat + [x], 1) + pos
    return self.pos_drop(x)


def _use_official_pos_embed(vit: nn.Module, num_register_tokens: int) -> None:
    """Make a timm DINOv2 ViT resample its position embedding like the official module (offset
    0.1 and no antialias for plain models, size + antialias for ``_reg`` ones, as in
    ``dinov2/hub/backbones.py``). A bound method, so ``copy.deepcopy`` rebinds it."""
    vit.dinov2_interpolate_offset = 0.0 if num_register_tokens else 0.1
    vit.dinov2_interpolate_antialias = bool(num_register_tokens)
    vit._pos_embed = types.MethodType(_official_pos_embed, vit)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an ``[N, C, H, W]`` map (ViTDet / ConvNeXt style)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


def _conv_ln(cin, cout, k):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), LayerNorm2d(cout))


class SimpleFeaturePyramid(nn.Module):
    """ViTDet's simple feature pyramid from one stride-16 map: x4 / x2 transposed convs, identity,
    2x2 max-pool, each followed by a 1x1 and a 3x3 conv with channel LayerNorm.

    Args:
        in_channels: ViT embedding dim.
        out_channels: channels of every output level.
        out_features: subset of ``res2..res5`` to build.
    """

    def __init__(self, in_channels: int, out_channels: int, out_features: Sequence[str]):
        super().__init__()
        d = in_channels
        self.out_features = list(out_features)
        self.stages = nn.ModuleDict()
        for name in self.out_features:
            stride = _STRIDES[name]
            if stride == 4:
                layers, dim = [nn.ConvTranspose2d(d, d // 2, 2, 2), LayerNorm2d(d // 2), nn.GELU(),
                               nn.ConvTranspose2d(d // 2, d // 4, 2, 2)], d // 4
            elif stride == 8:
                layers, dim = [nn.ConvTranspose2d(d, d // 2, 2, 2)], d // 2
            elif stride == 16:
                layers, dim = [], d
            else:
                layers, dim = [nn.MaxPool2d(2, 2)], d
            layers += [_conv_ln(dim, out_channels, 1), _conv_ln(out_channels, out_channels, 3)]
            self.stages[name] = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {name: self.stages[name](x) for name in self.out_features}


@BACKBONE_REGISTRY.register()
class DINOv2PseudoFPN(Backbone):
    """DINOv2 ViT trunk (timm, or the official module via ``REPO_PATH``) + simple feature pyramid.

    Outputs ``res2..res5`` at strides 4/8/16/32 with ``out_channels`` channels each. Expects
    inputs normalised with the ImageNet mean/std in RGB order (DINOv2's own normalisation).
    Built from ``cfg.MODEL.DINOV2`` with ``MODEL.BACKBONE.NAME: DINOv2PseudoFPN``.
    """

    @configurable
    def __init__(
        self,
        *,
        model_name: str = "dinov2_vitb14",
        weights: str = "",
        out_channels: int = 256,
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        freeze: bool = True,
        repo_path: str = "",
        vit_overrides: Optional[Dict] = None,
        pos_embed_interp: str = "official",
    ):
        """
        Args:
            model_name: DINOv2 hub name (``dinov2_vit{s,b,l,g}14[_reg]``) or timm name.
            weights: official DINOv2 or timm checkpoint path ("" = random init).
            out_channels: channels of every pyramid level.
            out_features: subset of ``("res2", "res3", "res4", "res5")``.
            freeze: freeze the ViT (no grads, always eval).
            repo_path: local clone of facebookresearch/dinov2 to build the official module instead
                of timm ("" = timm).
            vit_overrides: extra timm kwargs (``embed_dim``, ``depth``, ``num_heads``) for small
                debug/test models; ignored with ``repo_path``.
            pos_embed_interp: ``"official"`` or ``"timm"`` position-embedding resampling of the
                timm trunk (see the module docstring); the official module always uses its own.
        """
        super().__init__()
        unknown = [f for f in out_features if f not in _STRIDES]
        if unknown:
            raise ValueError(f"MODEL.DINOV2.OUT_FEATURES {unknown} not in {list(_STRIDES)}")
        variant = resolve_variant(model_name)
        if pos_embed_interp not in POS_EMBED_INTERP_MODES:
            raise ValueError(f"MODEL.DINOV2.POS_EMBED_INTERP {pos_embed_interp!r} not in "
                             f"{POS_EMBED_INTERP_MODES}")
        self.model_name = model_name
        self.official = bool(repo_path)
        if self.official:
            self.vit = load_official_hub_model(repo_path, model_name, weights)
            embed_dim = self.vit.embed_dim
        else:
            import timm

            self.vit = timm.create_model(
                variant.timm_name, pretrained=False, num_classes=0, dynamic_img_size=True,
                **(vit_overrides or {}),
            )
            if weights:
                load_dinov2_weights(self.vit, weights, model_name)
            if pos_embed_interp == "official":
                _use_official_pos_embed(self.vit, variant.num_register_tokens)
            embed_dim = self.vit.embed_dim
        self.patch_size = 14
        self.embed_dim = embed_dim
        self.frozen = freeze
        if freeze:
            self.vit.requires_grad_(False)
            self.vit.eval()
        self.neck = SimpleFeaturePyramid(embed_dim, out_channels, out_features)
        self._out_features = list(out_features)
        self._out_feature_strides = {f: _STRIDES[f] for f in out_features}
        self._out_feature_channels = {f: out_channels for f in out_features}

    @classmethod
    def from_config(cls, cfg, input_shape: Optional[ShapeSpec] = None):
        c = cfg.MODEL.DINOV2
        overrides = {k: v for k, v in (("embed_dim", c.EMBED_DIM), ("depth", c.DEPTH),
                                       ("num_heads", c.NUM_HEADS)) if v > 0}
        return {
            "model_name": c.MODEL_NAME,
            "weights": c.WEIGHTS,
            "out_channels": c.OUT_CHANNELS,
            "out_features": tuple(c.OUT_FEATURES),
            "freeze": c.FREEZE,
            "repo_path": c.REPO_PATH,
            "vit_overrides": overrides or None,
            "pos_embed_interp": c.POS_EMBED_INTERP,
        }

    @property
    def size_divisibility(self) -> int:
        return 32

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            f: ShapeSpec(channels=self._out_feature_channels[f],
                         stride=self._out_feature_strides[f])
            for f in self._out_features
        }

    def train(self, mode: bool = True):
        """Set train/eval mode; a frozen ViT always stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.vit.eval()
        return self

    def pretrained_parameter_names(self) -> List[str]:
        """Names (relative to this module) of trainable pretrained parameters (the ViT when not
        frozen); the optimizer applies ``SOLVER.BACKBONE_MULTIPLIER`` to these only. The pyramid
        (``neck.*``) is newly initialised."""
        return [f"vit.{n}" for n, p in self.vit.named_parameters() if p.requires_grad]

    def _vit_map(self, x: torch.Tensor) -> torch.Tensor:
        """ViT last-layer patch tokens (final norm applied) as a ``[N, D, H/14, W/14]`` map."""
        if self.official:
            return self.vit.get_intermediate_layers(x, n=1, reshape=True, norm=True)[0]
        last = len(self.vit.blocks) - 1
        return self.vit.forward_intermediates(
            x, indices=[last], output_fmt="NCHW", norm=True, intermediates_only=True
        )[0]

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Compute the pyramid.

        Args:
            x: ``[N, 3, H, W]`` normalised images (any H, W).

        Returns:
            dict name -> ``[N, C, ceil(H/s), ceil(W/s)]`` for stride s of each output.
        """
        h, w = x.shape[-2:]
        hp, wp = math.ceil(h / 32) * 32, math.ceil(w / 32) * 32
        if (hp, wp) != (h, w):
            x = F.pad(x, (0, wp - w, 0, hp - h))
        # route A: token grid == (hp/16, wp/16) exactly
        size = (hp // 16 * self.patch_size, wp // 16 * self.patch_size)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        if self.frozen:
            with torch.no_grad():
                feat = self._vit_map(x)
            feat = feat.detach()
        else:
            feat = self._vit_map(x)
        outs = self.neck(feat)
        return {
            k: v[..., : math.ceil(h / _STRIDES[k]), : math.ceil(w / _STRIDES[k])]
            for k, v in outs.items()
        }
