"""Padding-mask-aware wrapper around any detectron2 backbone (SeqFormer / DETR style)."""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.modeling import Backbone

__all__ = ["MaskedBackbone"]


class MaskedBackbone(nn.Module):
    """Run a detectron2 backbone and return its maps in sorted-name (= stride) order, each with a
    padding mask resized (nearest) to the map.

    Args:
        backbone: any detectron2 ``Backbone`` (ResNet, DINOv2PseudoFPN, ...). Its output names must
            sort in stride order (``res2 < res3 < ...``); this is checked.
    """

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.body = backbone
        shapes = backbone.output_shape()
        self.names = sorted(shapes)
        strides = [shapes[n].stride for n in self.names]
        if strides != sorted(strides):
            raise ValueError(f"backbone outputs {self.names} do not sort in stride order {strides}")
        self.strides = strides
        self.num_channels = [shapes[n].channels for n in self.names]

    @property
    def size_divisibility(self) -> int:
        return max(getattr(self.body, "size_divisibility", 0) or 0, 1)

    def forward(self, images: torch.Tensor, padding_mask: torch.Tensor
                ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """
        Args:
            images: ``[N, 3, H, W]`` normalised, padded images.
            padding_mask: ``[N, H, W]`` bool, True on padding.

        Returns:
            ``[(feature [N, C, h, w], mask [N, h, w])]`` in sorted-name order.
        """
        feats = self.body(images)
        out = []
        for name in self.names:
            x = feats[name]
            m = F.interpolate(padding_mask[None].float(), size=x.shape[-2:])[0].bool()
            out.append((x, m))
        return out
