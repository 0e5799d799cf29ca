"""timm ViT trunk of VidEoMT and its patch/positional embedding step.

The module tree mirrors the official checkpoints: ``encoder.backbone`` is a plain timm
``VisionTransformer`` (DINOv2-reg layout: class token, register tokens, ``no_embed_class``
absolute position embedding, layer scale), created with ``pretrained=False`` — real weights come
from a checkpoint file.
"""

import logging
from typing import Tuple

import timm
import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer
from torch import nn

__all__ = ["ViTEncoder", "build_vit"]

logger = logging.getLogger(__name__)

CUSTOM_VIT = "custom"


def build_vit(
    model_name: str,
    img_size: int,
    patch_size: int = 16,
    *,
    embed_dim: int = 0,
    depth: int = 0,
    num_heads: int = 0,
    num_reg_tokens: int = 4,
    drop_path_rate: float = 0.0,
) -> VisionTransformer:
    """Create the ViT (random weights) with a dynamic input size.

    Args:
        model_name: a timm model id (e.g. ``vit_large_patch14_reg4_dinov2``), or ``"custom"`` to
            build a DINOv2-reg-style ViT from ``embed_dim``/``depth``/``num_heads`` (tests, tiny
            models).
        img_size: reference image size; ``pos_embed`` covers ``(img_size / patch_size)^2``.
        patch_size: patch size (16 in VidEoMT, whatever the pretrained model used).
        embed_dim: custom ViT width.
        depth: custom ViT number of blocks.
        num_heads: custom ViT heads.
        num_reg_tokens: custom ViT register tokens.
        drop_path_rate: stochastic depth rate.

    Returns:
        A timm ``VisionTransformer`` without classification head.
    """
    common = dict(img_size=img_size, patch_size=patch_size, num_classes=0, dynamic_img_size=True)
    if model_name == CUSTOM_VIT:
        if min(embed_dim, depth, num_heads) <= 0:
            raise ValueError("a custom ViT needs EMBED_DIM, DEPTH and NUM_HEADS > 0")
        vit = VisionTransformer(
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            init_values=1e-5,
            reg_tokens=num_reg_tokens,
            no_embed_class=True,
            drop_path_rate=drop_path_rate,
            **common,
        )
    else:
        vit = timm.create_model(
            model_name, pretrained=False, drop_path_rate=drop_path_rate, **common
        )
    if not isinstance(vit, VisionTransformer):
        raise TypeError(f"{model_name} is not a timm VisionTransformer ({type(vit).__name__})")
    # arbitrary (padded) input sizes; the grid is whatever the input gives
    vit.patch_embed.strict_img_size = False
    vit.patch_embed.dynamic_img_pad = False
    return vit


class ViTEncoder(nn.Module):
    """Holds the ViT as ``self.backbone`` (checkpoint keys ``encoder.backbone.*``).

    Args:
        vit: the timm VisionTransformer from :func:`build_vit`.
    """

    def __init__(self, vit: VisionTransformer):
        super().__init__()
        self.backbone = vit

    @property
    def num_prefix_tokens(self) -> int:
        """Class + register tokens in front of the patch tokens."""
        return self.backbone.num_prefix_tokens

    @property
    def embed_dim(self) -> int:
        return self.backbone.embed_dim

    def embed(self, images: torch.Tensor) -> Tuple[torch.Tensor, int, int]:
        """Patch-embed ``images`` and add the resampled absolute position embedding.

        The learned ``pos_embed`` (reference grid ``IMG_SIZE / patch``) is resampled bicubically
        (antialiased) to the actual grid; with ``no_embed_class`` it is added to the patch tokens
        only and ``[CLS, reg...]`` are prepended afterwards.

        Args:
            images: (N, 3, H, W) normalised RGB, H and W multiples of the patch size.

        Returns:
            ``(tokens (N, prefix + H_g * W_g, C), H_g, W_g)``.
        """
        vit = self.backbone
        x = vit.patch_embed(images)  # (N, H_g, W_g, C) with dynamic_img_size
        n, h_g, w_g, c = x.shape
        num_prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens
        pos = resample_abs_pos_embed(
            vit.pos_embed,
            (h_g, w_g),
            old_size=vit.patch_embed.grid_size,
            num_prefix_tokens=num_prefix,
        )
        x = x.reshape(n, h_g * w_g, c)
        prefix = []
        if vit.cls_token is not None:
            prefix.append(vit.cls_token.expand(n, -1, -1))
        if vit.reg_token is not None:
            prefix.append(vit.reg_token.expand(n, -1, -1))
        if vit.no_embed_class:
            x = torch.cat(prefix + [x + pos], dim=1)
        else:
            x = torch.cat(prefix + [x], dim=1) + pos
        x = vit.pos_drop(x)
        x = vit.patch_drop(x)
        x = vit.norm_pre(x)
        return x, h_g, w_g

    def set_reference_grid(self, num_pos_tokens: int) -> int:
        """Replace ``pos_embed`` by a zero tensor for a square grid of ``num_pos_tokens``.

        Used before loading a checkpoint trained with another ``IMG_SIZE`` (which fills it).

        Args:
            num_pos_tokens: number of ``pos_embed`` tokens of the checkpoint.

        Returns:
            The new reference image size (grid side * patch size).
        """
        vit = self.backbone
        extra = 0 if vit.no_embed_class else vit.num_prefix_tokens
        side = int(round((num_pos_tokens - extra) ** 0.5))
        if side * side + extra != num_pos_tokens:
            raise ValueError(f"pos_embed with {num_pos_tokens} tokens is not a square grid")
        old = vit.pos_embed
        vit.pos_embed = nn.Parameter(old.new_zeros(1, num_pos_tokens, old.shape[-1]))
        vit.patch_embed.grid_size = (side, side)
        vit.patch_embed.num_patches = side * side
        patch = vit.patch_embed.patch_size[0]
        vit.patch_embed.img_size = (side * patch, side * patch)
        return side * patch
