"""timm ViT trunk of VidEoMT and its patch/positional embedding step.

The module tree mirrors the official checkpoints: ``encoder.backbone`` is a timm ViT created
with ``pretrained=False`` (real weights come from a checkpoint file):

* DINOv2 (``vit_*_patch14_reg4_dinov2``, ``"custom"``): a ``VisionTransformer`` with class and
  register tokens and a ``no_embed_class`` learned absolute position embedding, resampled to the
  input grid;
* DINOv3 (``vit_*_patch16_dinov3_qkvb``, ``"custom_dinov3"``): a timm ``Eva`` with the DINOv3
  rotary position embedding (RoPE, period base 100, patch-centre coordinates normalised to
  [-1, 1] per axis) applied to the patch tokens only, no absolute position embedding, q/v biases
  (the k bias is a zero buffer, as DINOv3's). Official DINOv3 checkpoints (Hugging Face DINOv3
  layout) are renamed on load by :mod:`wsovvis.modeling.videomt.dinov3`.
"""

import logging
from typing import Tuple

from functools import partial
from typing import Optional, Union

import timm
import torch
from timm.layers import RotaryEmbeddingDinoV3, resample_abs_pos_embed
from timm.models.eva import Eva
from timm.models.vision_transformer import VisionTransformer
from torch import nn

__all__ = ["ViTEncoder", "build_vit", "is_dinov3"]

logger = logging.getLogger(__name__)

CUSTOM_VIT = "custom"
CUSTOM_DINOV3 = "custom_dinov3"
DINOV3_ROPE_BASE = 100.0


def is_dinov3(model_name: str) -> bool:
    """True for DINOv3 (RoPE) trunks: timm ``*dinov3*`` ids and ``"custom_dinov3"``."""
    return "dinov3" in model_name


def _dinov3_rope(vit: Eva, rescale_coords: float) -> None:
    """Give ``vit`` the DINOv3 RoPE, with the training-time coordinate rescaling of the
    official DINOv3 config (``pos_embed_rescale``; 0 = none; inactive in eval mode)."""
    head_dim = vit.embed_dim // vit.blocks[0].attn.num_heads
    vit.rope = RotaryEmbeddingDinoV3(
        dim=head_dim,
        temperature=DINOV3_ROPE_BASE,
        rotate_half=True,
        rescale_coords=rescale_coords or None,
    )


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
    rope_rescale: float = 0.0,
) -> Union[VisionTransformer, Eva]:
    """Create the ViT (random weights) with a dynamic input size.

    Args:
        model_name: a timm model id (``vit_large_patch14_reg4_dinov2``,
            ``vit_large_patch16_dinov3_qkvb``, ...), or ``"custom"`` / ``"custom_dinov3"`` to
            build a DINOv2-reg / DINOv3-style ViT from ``embed_dim``/``depth``/``num_heads``
            (tests, tiny models).
        img_size: reference image size; ``pos_embed`` covers ``(img_size / patch_size)^2``.
        patch_size: patch size (16 in VidEoMT, whatever the pretrained model used).
        embed_dim: custom ViT width.
        depth: custom ViT number of blocks.
        num_heads: custom ViT heads.
        num_reg_tokens: custom ViT register tokens.
        drop_path_rate: stochastic depth rate.
        rope_rescale: DINOv3 only: RoPE coordinate rescaling augmentation in training (official
            DINOv3 config: 2.0; 0 disables it).

    Returns:
        A timm ``VisionTransformer`` (DINOv2) or ``Eva`` (DINOv3) without classification head.
    """
    common = dict(img_size=img_size, patch_size=patch_size, num_classes=0, dynamic_img_size=True)
    if is_dinov3(model_name):
        if patch_size != 16:
            raise ValueError(f"DINOv3 ViTs have patch size 16, got PATCH_SIZE={patch_size}")
        if model_name == CUSTOM_DINOV3:
            if min(embed_dim, depth, num_heads) <= 0:
                raise ValueError("a custom DINOv3 ViT needs EMBED_DIM, DEPTH and NUM_HEADS > 0")
            vit = Eva(
                embed_dim=embed_dim,
                depth=depth,
                num_heads=num_heads,
                qkv_bias=True,
                init_values=1e-5,
                use_rot_pos_emb=True,
                use_abs_pos_emb=False,
                rope_type="dinov3",
                rope_temperature=DINOV3_ROPE_BASE,
                rope_rotate_half=True,
                num_reg_tokens=num_reg_tokens,
                use_fc_norm=False,
                norm_layer=partial(nn.LayerNorm, eps=1e-5),
                drop_path_rate=drop_path_rate,
                **common,
            )
        else:
            vit = timm.create_model(
                model_name, pretrained=False, drop_path_rate=drop_path_rate, **common
            )
        if not isinstance(vit, Eva) or vit.pos_embed is not None or vit.rope is None:
            raise TypeError(f"{model_name} is not a timm DINOv3 (RoPE Eva) ViT")
        if vit.blocks[0].attn.qkv is None or vit.blocks[0].attn.q_bias is None:
            raise ValueError(
                f"{model_name}: VidEoMT's DINOv3 has q/v biases; use the '_qkvb' timm variant "
                f"(e.g. vit_large_patch16_dinov3_qkvb)"
            )
        _dinov3_rope(vit, rope_rescale)
        return vit
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
        vit: the timm VisionTransformer or DINOv3 Eva from :func:`build_vit`.
    """

    def __init__(self, vit: Union[VisionTransformer, Eva]):
        super().__init__()
        self.backbone = vit

    @property
    def uses_rope(self) -> bool:
        """True for a RoPE (DINOv3) trunk: its blocks take ``rope=`` (see :meth:`rope`)."""
        return getattr(self.backbone, "rope", None) is not None

    def rope(self, h_g: int, w_g: int) -> Optional[torch.Tensor]:
        """The rotary embedding of an ``h_g x w_g`` patch grid (None without RoPE).

        In training mode the DINOv3 coordinate augmentation (if configured) draws a new scale
        per call, shared by all frames and blocks of the call.
        """
        if not self.uses_rope:
            return None
        return self.backbone.rope.get_embed(shape=(h_g, w_g))

    def add_query_prefix(self, blocks, num_queries: int) -> None:
        """Tell RoPE attention in ``blocks`` that ``num_queries`` query tokens precede the
        class/register tokens (RoPE rotates the patch tokens only; queries get none)."""
        if self.uses_rope:
            for blk in blocks:
                blk.attn.num_prefix_tokens = num_queries + self.num_prefix_tokens

    @property
    def num_prefix_tokens(self) -> int:
        """Class + register tokens in front of the patch tokens."""
        return self.backbone.num_prefix_tokens

    @property
    def embed_dim(self) -> int:
        return self.backbone.embed_dim

    def embed(self, images: torch.Tensor) -> Tuple[torch.Tensor, int, int]:
        """Patch-embed ``images`` and add the resampled absolute position embedding.

        DINOv2: the learned ``pos_embed`` (reference grid ``IMG_SIZE / patch``) is resampled
        bicubically (antialiased) to the actual grid; with ``no_embed_class`` it is added to the
        patch tokens only and ``[CLS, reg...]`` are prepended afterwards. DINOv3: no absolute
        embedding (RoPE is applied in attention, :meth:`rope`).

        Args:
            images: (N, 3, H, W) normalised RGB, H and W multiples of the patch size.

        Returns:
            ``(tokens (N, prefix + H_g * W_g, C), H_g, W_g)``.
        """
        vit = self.backbone
        x = vit.patch_embed(images)  # (N, H_g, W_g, C) with dynamic_img_size
        n, h_g, w_g, c = x.shape
        x = x.reshape(n, h_g * w_g, c)
        if vit.pos_embed is None:  # DINOv3: RoPE in the blocks, no absolute embedding
            prefix = [vit.cls_token.expand(n, -1, -1), vit.reg_token.expand(n, -1, -1)]
            x = torch.cat(prefix + [x], dim=1)
            return vit.norm_pre(vit.pos_drop(x)), h_g, w_g  # patch dropout is off (None)
        num_prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens
        pos = resample_abs_pos_embed(
            vit.pos_embed,
            (h_g, w_g),
            old_size=vit.patch_embed.grid_size,
            num_prefix_tokens=num_prefix,
        )
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
