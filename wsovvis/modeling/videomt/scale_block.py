"""2x upsampling block of the EoMT / VidEoMT mask branch."""

import torch
from timm.layers import LayerNorm2d
from torch import nn

__all__ = ["ScaleBlock"]


class ScaleBlock(nn.Module):
    """ConvTranspose 2x2/s2 -> GELU -> depthwise 3x3 conv -> LayerNorm2d (keys conv1/conv2/norm).

    Args:
        dim: channels (the ViT width).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim, bias=False)
        self.norm = LayerNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, 2H, 2W)."""
        return self.norm(self.conv2(self.act(self.conv1(x))))
