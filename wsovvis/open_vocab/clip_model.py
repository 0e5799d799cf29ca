"""Frozen open_clip models as dense feature extractors for mask pooling.

Weights load through open_clip's own ``create_model(name, pretrained=...)`` (a pretrained tag or a
local checkpoint file), so the path users take is the path the tests and the demo take.

* ConvNeXt (open_clip ``TimmModel``): dense map = ``visual.trunk.forward_features`` (stride 32,
  before the head); a pooled vector goes through ``visual.trunk.forward_head`` (its global pool is
  the identity on a 1x1 map, then the head's norm) and ``visual.head`` (linear / MLP projection).
* ViT (open_clip ``VisionTransformer``): dense map = the patch tokens after the last block (and
  ``ln_post`` unless the model normalises after pooling), position embedding resampled to the
  frame's grid; a pooled vector goes through ``ln_post`` (if after pooling) and ``proj``.

Frames keep their aspect ratio: the short side is resized to ``input_size`` (0: the model's
native ``image_size``) and both sides rounded to a multiple of the stride.
"""
import os
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MODEL_CONFIG_DIR", "register_model_configs", "load_clip", "DenseClip"]

MODEL_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_configs")
_REGISTERED = False


def register_model_configs() -> None:
    """Add wsovvis's own open_clip architectures (e.g. the demo's tiny CLIP) to open_clip's registry."""
    global _REGISTERED
    if not _REGISTERED:
        import open_clip

        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _REGISTERED = True


def load_clip(model_name: str, weights: str = "", device="cpu", cache_dir: Optional[str] = None):
    """Build a frozen open_clip model in eval mode.

    Args:
        model_name: an open_clip architecture, e.g. ``"convnext_large_d_320"``.
        weights: an open_clip pretrained tag (e.g. ``"laion2b_s29b_b131k_ft_soup"``), a local
            checkpoint file, or "" for random initialisation.
        device: torch device.
        cache_dir: open_clip's download cache (None: its default).

    Returns:
        ``(model, tokenizer)``.

    Raises:
        ValueError: unknown architecture, unknown tag, missing file, or weights of another
            architecture (the message names the model and the weights).
    """
    import open_clip

    register_model_configs()
    if model_name not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if model_name.lower()[:6] in m.lower()][:8]
        raise ValueError(f"CLIP model '{model_name}' is not an open_clip architecture"
                         + (f" (similar: {', '.join(close)})" if close else ""))
    if weights and not os.path.isfile(weights):
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        if weights not in tags:
            raise ValueError(f"CLIP weights '{weights}' for '{model_name}' are neither a file nor a "
                             f"pretrained tag of it (tags: {', '.join(tags) or 'none'})")
    try:
        model = open_clip.create_model(model_name, pretrained=weights or None, device=device,
                                       cache_dir=cache_dir)
    except (RuntimeError, AssertionError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if weights and os.path.isfile(weights):
            raise ValueError(f"CLIP weights '{weights}' do not fit the architecture '{model_name}' "
                             f"({first})") from None
        raise ValueError(f"CLIP '{model_name}' with weights '{weights}': {first}") from None
    model.eval().requires_grad_(False)
    return model, open_clip.get_tokenizer(model_name)


class DenseClip(nn.Module):
    """Dense image features and the image head of a frozen open_clip model.

    Args:
        model: an open_clip ``CLIP`` / ``CustomTextCLIP`` (ConvNeXt/timm or ViT image tower).
        input_size: short side of the frames fed to CLIP (0: the model's ``image_size``).
        amp: autocast on CUDA.
    """

    def __init__(self, model: nn.Module, input_size: int = 0, amp: bool = True):
        super().__init__()
        from open_clip.timm_model import TimmModel
        from open_clip.transformer import VisionTransformer

        self.model = model
        visual = model.visual
        if isinstance(visual, TimmModel):
            if visual.head and any(n == "pool" for n, _ in visual.head.named_children()):
                raise ValueError("open_clip timm towers with attention pooling are not supported")
            self.kind, self.stride = "timm", 32
        elif isinstance(visual, VisionTransformer):
            if visual.attn_pool is not None:
                raise ValueError("open_clip ViTs with attention pooling are not supported")
            self.kind, self.stride = "vit", int(visual.patch_size[0])
        else:
            raise ValueError(f"unsupported open_clip image tower {type(visual).__name__} "
                             "(ConvNeXt/timm and ViT towers are)")
        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

        self.register_buffer("mean", torch.tensor(cfg.get("mean", OPENAI_DATASET_MEAN)).view(1, 3, 1, 1) * 255, False)
        self.register_buffer("std", torch.tensor(cfg.get("std", OPENAI_DATASET_STD)).view(1, 3, 1, 1) * 255, False)
        native = visual.image_size if hasattr(visual, "image_size") else 224
        native = native[0] if isinstance(native, (tuple, list)) else native
        self.input_size = int(input_size) or int(native)
        self.amp = amp
        self.eval()

    @property
    def device(self):
        return self.mean.device

    def input_shape(self, height: int, width: int) -> Tuple[int, int]:
        """CLIP input size of a ``height x width`` frame (short side ``input_size``, stride multiple)."""
        scale = self.input_size / min(height, width)
        s = self.stride
        return (max(s, int(round(height * scale / s)) * s), max(s, int(round(width * scale / s)) * s))

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.float16, enabled=self.amp and self.device.type == "cuda")

    @torch.no_grad()
    def dense(self, frames: torch.Tensor) -> torch.Tensor:
        """Dense features of same-size frames.

        Args:
            frames: (B, 3, H, W) RGB, uint8 or float in 0..255.

        Returns:
            (B, C, h, w) float32 features (stride 32 for ConvNeXt, the patch size for ViT).
        """
        x = frames.to(self.device, torch.float32)
        x = F.interpolate(x, size=self.input_shape(*x.shape[-2:]), mode="bilinear", align_corners=False,
                          antialias=True)
        x = (x - self.mean) / self.std
        with self._autocast():
            if self.kind == "timm":
                feats = self.model.visual.trunk.forward_features(x)
            else:
                feats = self._vit_tokens(x)
        return feats.float()

    def _vit_tokens(self, x):
        v = self.model.visual
        x = v.conv1(x)
        gh, gw = x.shape[-2:]
        x = x.flatten(2).transpose(1, 2)
        pos = v.positional_embedding.to(x.dtype)
        cls_pos, grid_pos = pos[:1], pos[1:]
        n = int(round(grid_pos.shape[0] ** 0.5))
        if (gh, gw) != (n, n):
            grid_pos = F.interpolate(grid_pos.reshape(1, n, n, -1).permute(0, 3, 1, 2), size=(gh, gw),
                                     mode="bicubic", align_corners=False)
            grid_pos = grid_pos.permute(0, 2, 3, 1).reshape(gh * gw, -1)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + torch.cat([cls_pos, grid_pos], dim=0)
        x = v.transformer(v.ln_pre(x))
        if not v.final_ln_after_pool:
            x = v.ln_post(x)
        return x[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, gh, gw)

    @torch.no_grad()
    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """CLIP image head on mask-pooled dense vectors: (N, C) -> (N, D), not normalised."""
        v = self.model.visual
        pooled = pooled.to(self.device)
        with self._autocast():
            if self.kind == "timm":
                out = v.head(v.trunk.forward_head(pooled[:, :, None, None]))
            else:
                out = v.ln_post(pooled) if v.final_ln_after_pool else pooled
                out = out @ v.proj if v.proj is not None else out
        return out.float()

    @torch.no_grad()
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLIP text embeddings (not normalised) of tokenised prompts."""
        with self._autocast():
            return self.model.encode_text(tokens.to(self.device)).float()

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature, ``exp(logit_scale)`` clamped at 100."""
        return float(self.model.logit_scale.detach().exp().clamp(max=100.0))
