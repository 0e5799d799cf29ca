"""Meta-architectures (registered in detectron2's ``META_ARCH_REGISTRY`` on import)."""

from .seqformer import WSSeqFormer
from .videomt import WSVidEoMT

__all__ = ["WSSeqFormer", "WSVidEoMT"]
