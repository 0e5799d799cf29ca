"""Backbones: frozen DINOv2 pseudo-FPN (registered as ``DINOv2PseudoFPN``), Swin
(``D2SwinTransformer``, VNext names) and the padding-mask wrapper used by SeqFormer around any
detectron2 backbone."""
from .dinov2_fpn import DINOv2PseudoFPN, LayerNorm2d, SimpleFeaturePyramid
from .dinov2_weights import DINOV2_VARIANTS, load_dinov2_weights, resolve_variant
from .masked_backbone import MaskedBackbone
from .swin import D2SwinTransformer, convert_swin_checkpoint, load_swin_weights

__all__ = [
    "DINOv2PseudoFPN",
    "LayerNorm2d",
    "SimpleFeaturePyramid",
    "DINOV2_VARIANTS",
    "load_dinov2_weights",
    "resolve_variant",
    "MaskedBackbone",
    "D2SwinTransformer",
    "convert_swin_checkpoint",
    "load_swin_weights",
]
