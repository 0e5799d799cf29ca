"""Sine position embedding of a padding mask (DETR / Deformable DETR style)."""
import math

import torch
from torch import nn

__all__ = ["PositionEmbeddingSine"]


class PositionEmbeddingSine(nn.Module):
    """2-D sine/cosine embedding computed from the cumulative count of valid pixels.

    Args:
        num_pos_feats: channels per axis (output has ``2 * num_pos_feats``).
        temperature: frequency base.
        normalize: scale coordinates to ``[0, scale]`` using the valid extent of each image.
        scale: normalisation range (default 2*pi).
    """

    def __init__(self, num_pos_feats: int = 128, temperature: int = 10000, normalize: bool = True,
                 scale: float = None):
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError("normalize must be True if scale is passed")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        """Embed a padding mask.

        Args:
            mask: ``[N, H, W]`` bool, True on padding.

        Returns:
            ``[N, 2 * num_pos_feats, H, W]`` float32.
        """
        not_mask = (~mask).float()
        y_embed = not_mask.cumsum(1)
        x_embed = not_mask.cumsum(2)
        if self.normalize:
            eps = 1e-6
            # Deformable DETR offset: centre of each pixel, normalised by the valid extent.
            y_embed = (y_embed - 0.5) / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = (x_embed - 0.5) / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
