"""Backbones: frozen DINOv2 pseudo-FPN (registered as ``DINOv2PseudoFPN``) and the padding-mask
wrapper used by SeqFormer around any detectron2 backbone."""
from .dinov2_fpn import DINOv2PseudoFPN, LayerNorm2d, SimpleFeaturePyramid
from .dinov2_weights import DINOV2_VARIANTS, load_dinov2_weights, resolve_variant
from .masked_backbone import MaskedBackbone

__all__ = [
    "DINOv2PseudoFPN",
    "LayerNorm2d",
    "SimpleFeaturePyramid",
    "DINOV2_VARIANTS",
    "load_dinov2_weights",
    "resolve_variant",
    "MaskedBackbone",
]
