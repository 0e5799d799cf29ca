"""Reusable layers: multi-scale deformable attention and position encodings."""
from .ms_deform_attn import MSDeformAttn, compute_sampling_locations, ms_deform_attn_core
from .position_encoding import PositionEmbeddingSine

__all__ = [
    "MSDeformAttn", "compute_sampling_locations", "ms_deform_attn_core", "PositionEmbeddingSine",
]
