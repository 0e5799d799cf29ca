"""Multi-scale deformable attention (Deformable DETR) in pure PyTorch.

The sampling core uses ``F.grid_sample`` and therefore runs on CPU and GPU without a compiled
extension. Inside the module everything is computed in fp32, also under autocast (the published CUDA
kernel has no half-precision path and fp16 sampling locations lose too much precision).
"""
import math
import warnings
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ms_deform_attn_core", "compute_sampling_locations", "MSDeformAttn"]

SpatialShapes = Union[torch.Tensor, Sequence[Tuple[int, int]]]


def _full(t: torch.Tensor) -> torch.Tensor:
    """Promote half / bfloat16 to fp32; leave fp32 / fp64 untouched."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _as_shape_list(spatial_shapes: SpatialShapes):
    if isinstance(spatial_shapes, torch.Tensor):
        return [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    return [(int(h), int(w)) for h, w in spatial_shapes]


def ms_deform_attn_core(
    value: torch.Tensor,
    spatial_shapes: SpatialShapes,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Bilinearly sample every level at the given locations and take the weighted sum.

    Args:
        value: ``[N, S, M, D]`` per-head values, levels flattened and concatenated
            (S = sum H_l W_l).
        spatial_shapes: ``[L, 2]`` (H_l, W_l) of each level, as a tensor or a list of pairs.
        sampling_locations: ``[N, Lq, M, L, P, 2]`` normalised (x, y) in [0, 1] of the level maps
            (pixel centres at (i + 0.5) / size, i.e. ``align_corners=False``); outside = zeros.
        attention_weights: ``[N, Lq, M, L, P]`` weights (already normalised).

    Returns:
        ``[N, Lq, M * D]``.
    """
    n, _, m, d = value.shape
    _, lq, _, num_levels, num_points, _ = sampling_locations.shape
    shapes = _as_shape_list(spatial_shapes)
    if len(shapes) != num_levels:
        raise ValueError(f"{len(shapes)} spatial shapes for {num_levels} sampling levels")
    values = value.split([h * w for h, w in shapes], dim=1)
    grids = 2.0 * sampling_locations - 1.0
    sampled = []
    for lvl, (h, w) in enumerate(shapes):
        # [N, HW, M, D] -> [N*M, D, H, W]
        v = values[lvl].permute(0, 2, 3, 1).reshape(n * m, d, h, w)
        # [N, Lq, M, P, 2] -> [N*M, Lq, P, 2]
        g = grids[:, :, :, lvl].transpose(1, 2).reshape(n * m, lq, num_points, 2)
        sampled.append(
            F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)
        )  # [N*M, D, Lq, P]
    sampled = torch.stack(sampled, dim=-2).flatten(-2)  # [N*M, D, Lq, L*P]
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, num_levels * num_points)
    out = (sampled * weights).sum(-1).view(n, m * d, lq)
    return out.transpose(1, 2).contiguous()


def compute_sampling_locations(
    reference_points: torch.Tensor, offsets: torch.Tensor, spatial_shapes: torch.Tensor
) -> torch.Tensor:
    """Turn reference points/boxes and predicted offsets into normalised sampling locations.

    Args:
        reference_points: ``[N, Lq, L, 2]`` (x, y) or ``[N, Lq, L, 4]`` (cx, cy, w, h), in [0, 1].
        offsets: ``[N, Lq, M, L, P, 2]`` raw offsets. For points they are in pixels of each level;
            for boxes they are in units of half the box size divided by P (Deformable DETR).
        spatial_shapes: ``[L, 2]`` long tensor of (H_l, W_l).

    Returns:
        ``[N, Lq, M, L, P, 2]`` locations.
    """
    num_points = offsets.shape[-2]
    if reference_points.shape[-1] == 2:
        normalizer = torch.stack([spatial_shapes[:, 1], spatial_shapes[:, 0]], -1).to(offsets)
        normalizer = normalizer[None, None, None, :, None]
        return reference_points[:, :, None, :, None, :] + offsets / normalizer
    if reference_points.shape[-1] == 4:
        centre = reference_points[:, :, None, :, None, :2]
        size = reference_points[:, :, None, :, None, 2:]
        return centre + offsets / num_points * size * 0.5
    raise ValueError(
        f"reference points must end in 2 or 4 values, got {reference_points.shape[-1]}")


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention module.

    Args:
        d_model: channels of queries and values.
        n_levels: number of feature levels.
        n_heads: attention heads (``d_model / n_heads`` should be a power of 2).
        n_points: sampling points per head and level.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4):
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        head_dim = d_model // n_heads
        if head_dim & (head_dim - 1) != 0:
            warnings.warn(f"MSDeformAttn head dim {head_dim} is not a power of 2", stacklevel=2)
        self.d_model, self.n_levels = d_model, n_levels
        self.n_heads, self.n_points = n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self):
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        for lin in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.constant_(lin.bias, 0.0)

    def attend(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        input_flatten: torch.Tensor,
        spatial_shapes: torch.Tensor,
        input_padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Deformable sampling without the output projection (fp32).

        Args:
            query: ``[N, Lq, C]``; predicts offsets and weights.
            reference_points: ``[N, Lq, L, 2|4]`` normalised to each level's padded map.
            input_flatten: ``[N, S, C]`` values (levels concatenated).
            spatial_shapes: ``[L, 2]`` long tensor of (H_l, W_l).
            input_padding_mask: ``[N, S]`` bool, True at padded positions (values zeroed).

        Returns:
            ``[N, Lq, C]`` in fp32 (fp64 for fp64 inputs).
        """
        n, lq, _ = query.shape
        _, s, _ = input_flatten.shape
        if int((spatial_shapes[:, 0] * spatial_shapes[:, 1]).sum()) != s:
            raise ValueError(
                f"spatial shapes {spatial_shapes.tolist()} do not sum to {s} positions")
        with torch.autocast(device_type=query.device.type, enabled=False):
            query = _full(query)
            value = self.value_proj(_full(input_flatten))
            if input_padding_mask is not None:
                value = value.masked_fill(input_padding_mask[..., None], 0.0)
            value = value.view(n, s, self.n_heads, self.d_model // self.n_heads)
            offsets = self.sampling_offsets(query).view(
                n, lq, self.n_heads, self.n_levels, self.n_points, 2
            )
            weights = self.attention_weights(query).view(
                n, lq, self.n_heads, self.n_levels * self.n_points
            )
            weights = weights.softmax(-1).view(n, lq, self.n_heads, self.n_levels, self.n_points)
            locations = compute_sampling_locations(_full(reference_points), offsets, spatial_shapes)
            return ms_deform_attn_core(value, spatial_shapes, locations, weights)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        input_flatten: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: Optional[torch.Tensor] = None,
        input_padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Deformable attention; same arguments as :meth:`attend` (``level_start_index`` is
        accepted for signature compatibility with the CUDA op and ignored). Returns ``[N, Lq, C]``
        in fp32 (never half precision)."""
        del level_start_index
        out = self.attend(query, reference_points, input_flatten, spatial_shapes,
                          input_padding_mask)
        with torch.autocast(device_type=out.device.type, enabled=False):
            return self.output_proj(out)
