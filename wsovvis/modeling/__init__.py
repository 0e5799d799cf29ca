"""wsovvis models. Importing this package registers the backbones (``DINOv2PseudoFPN``,
``D2SwinTransformer``) and the meta-architectures (``WSVidEoMT``, ``WSSeqFormer``) in detectron2's
registries.

Each meta-architecture lives beside its parts: :mod:`wsovvis.modeling.videomt.meta_arch` and
:mod:`wsovvis.modeling.seqformer.meta_arch`. ``WSSeqFormer`` is also registered as ``"SeqFormer"``
so VNext YAMLs (``META_ARCHITECTURE: "SeqFormer"``) build it. That alias goes through fvcore's
private ``Registry._do_register`` because no public way exists: ``Registry.register()`` always
takes the name from ``obj.__name__`` (fvcore is pinned below 0.1.6, its last release, so the
private method cannot change under us), and registering a renamed subclass instead would make
``META_ARCH_REGISTRY.get("SeqFormer")`` a different class. The alias is claimed only if the name
is free: if VNext's own ``SeqFormer`` was imported first it keeps the name, and a warning below
says so (use ``"WSSeqFormer"`` to be explicit).
"""
import logging

from detectron2.modeling import META_ARCH_REGISTRY

from . import backbone  # noqa: F401  (registration side effects)
from .seqformer.meta_arch import WSSeqFormer
from .videomt.meta_arch import WSVidEoMT

__all__ = ["WSSeqFormer", "WSVidEoMT"]

if META_ARCH_REGISTRY.get("SeqFormer") is not WSSeqFormer:
    _other = META_ARCH_REGISTRY.get("SeqFormer")
    logging.getLogger(__name__).warning(
        f"META_ARCHITECTURE 'SeqFormer' is {_other.__module__}.{_other.__qualname__} (registered "
        "before wsovvis); set META_ARCHITECTURE 'WSSeqFormer' for wsovvis's SeqFormer."
    )
