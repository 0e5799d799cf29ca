"""SeqFormer's CondInst-style mask head.

Mask features: top-down fusion of the stride-8/16/32 encoder memory of each frame to stride 8,
reduced to ``C/32`` channels. One dynamic kernel per instance (three 1x1 convs whose parameters come
from the instance query through ``controller``) is applied to every frame, with the frame's box
centre entering through two relative-coordinate channels; logits are upsampled x2 (aligned
bilinear) to stride 4.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .transformer import MLP

__all__ = ["MaskFeatureFPN", "DynamicMaskHead", "aligned_bilinear", "compute_locations"]


def aligned_bilinear(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Upsample ``[N, C, H, W]`` by an integer factor keeping pixel centres aligned (CondInst)."""
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    x = F.pad(x, (0, 1, 0, 1), mode="replicate")
    x = F.interpolate(x, size=(factor * h + 1, factor * w + 1), mode="bilinear", align_corners=True)
    x = F.pad(x, (factor // 2, 0, factor // 2, 0), mode="replicate")
    return x[:, :, : factor * h, : factor * w]


def compute_locations(h: int, w: int, stride: int, device) -> torch.Tensor:
    """Image-pixel (x, y) centres of a stride-``stride`` grid -> ``[H*W, 2]``."""
    ys = torch.arange(0, h * stride, stride, dtype=torch.float32, device=device)
    xs = torch.arange(0, w * stride, stride, dtype=torch.float32, device=device)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), 1) + stride // 2


class MaskFeatureFPN(nn.Module):
    """Fuse encoder levels (strides 8/16/32) top-down into a ``dim/32``-channel stride-8 map."""

    def __init__(self, dim: int):
        super().__init__()
        self.lay3 = nn.Conv2d(dim, dim, 3, padding=1)
        self.lay4 = nn.Conv2d(dim, dim, 3, padding=1)
        self.lay5 = nn.Conv2d(dim, dim, 3, padding=1)
        self.lay1 = nn.Conv2d(dim, dim // 4, 3, padding=1)
        self.lay2 = nn.Conv2d(dim // 4, max(dim // 32, 1), 3, padding=1)
        self.out_channels = max(dim // 32, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Fuse three encoder levels.

        Args:
            feats: ``[N, C, H_l, W_l]`` maps at strides 8, 16, 32.

        Returns:
            ``[N, C/32, H_8, W_8]``.
        """
        x = F.relu(self.lay3(feats[2]))
        x = feats[1] + F.interpolate(x, size=feats[1].shape[-2:], mode="nearest")
        x = F.relu(self.lay4(x))
        x = feats[0] + F.interpolate(x, size=feats[0].shape[-2:], mode="nearest")
        x = F.relu(self.lay5(x))
        x = F.relu(self.lay1(x))
        return F.relu(self.lay2(x))


class DynamicMaskHead(nn.Module):
    """Controller + dynamic 1x1 convs ``(C/32 + 2) -> 8 -> 8 -> 1`` with relative coordinates.

    The flat parameter vector is laid out as in SeqFormer/CondInst: all weights (layer by layer,
    ``[out, in]`` row-major, input channels = 2 coordinate channels then mask features) followed by
    all biases.

    Args:
        hidden_dim: instance query width.
        in_channels: mask feature channels.
        mask_channels: width of the dynamic convs.
        feat_stride: stride of the mask features (8).
        out_stride: stride of the output logits (4).
    """

    def __init__(self, hidden_dim: int, in_channels: int, mask_channels: int = 8,
                 feat_stride: int = 8, out_stride: int = 4):
        super().__init__()
        if feat_stride % out_stride:
            raise ValueError(f"mask feature stride {feat_stride} not a multiple of {out_stride}")
        self.feat_stride, self.out_stride = feat_stride, out_stride
        dims = [in_channels + 2, mask_channels, mask_channels, 1]
        self.weight_shapes = [(o, i) for i, o in zip(dims[:-1], dims[1:])]
        self.weight_nums = [o * i for o, i in self.weight_shapes]
        self.bias_nums = [o for o, _ in self.weight_shapes]
        self.controller = MLP(hidden_dim, hidden_dim, sum(self.weight_nums + self.bias_nums), 3)
        for layer in self.controller.layers:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, queries: torch.Tensor, mask_feats: torch.Tensor, centres: torch.Tensor,
                image_size: torch.Tensor) -> torch.Tensor:
        """Predict per-frame mask logits of selected instances of one video.

        Args:
            queries: ``[n, C]`` instance queries.
            mask_feats: ``[T, Cm, H8, W8]`` mask features of the video's frames.
            centres: ``[n, T, 2]`` normalised (x, y) reference centres (valid-area relative).
            image_size: ``(w, h)`` of the unpadded input image (float tensor). Relative
                coordinates are in input pixels, not normalised, as in the published SeqFormer
                (CondInst divides by a size of interest); the untrained head therefore starts
                with large mask logits and a large initial mask focal loss.

        Returns:
            ``[n, T, H8 * feat_stride / out_stride, W8 * ...]`` logits.
        """
        n = queries.shape[0]
        t, cm, h, w = mask_feats.shape
        params = self.controller(queries)
        splits = torch.split(params, self.weight_nums + self.bias_nums, dim=1)
        k = len(self.weight_nums)
        weights = [s.view(n, o, i) for s, (o, i) in zip(splits[:k], self.weight_shapes)]
        biases = splits[k:]
        locations = compute_locations(h, w, self.feat_stride, mask_feats.device)  # [HW, 2]
        rel = centres[:, :, :, None] * image_size.view(1, 1, 2, 1) - locations.t()[None, None]
        feats = mask_feats.flatten(2)[None].expand(n, -1, -1, -1)
        x = torch.cat([rel.to(feats.dtype), feats], dim=2)  # [n, T, 2 + Cm, HW]
        for layer, (wt, bs) in enumerate(zip(weights, biases)):
            x = torch.einsum("noi,ntip->ntop", wt, x) + bs[:, None, :, None]
            if layer < k - 1:
                x = F.relu(x)
        logits = x.view(n * t, 1, h, w)
        logits = aligned_bilinear(logits, self.feat_stride // self.out_stride)
        return logits.view(n, t, *logits.shape[-2:])
