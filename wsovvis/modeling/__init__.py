"""wsovvis models. Importing this package registers the backbones (``DINOv2PseudoFPN``) and the
meta-architectures (``WSVidEoMT``, ``WSSeqFormer``) in detectron2's registries."""

from . import backbone, meta_arch  # noqa: F401  (registration side effects)
from .meta_arch import WSSeqFormer, WSVidEoMT

__all__ = ["WSSeqFormer", "WSVidEoMT"]
