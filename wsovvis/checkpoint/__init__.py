"""Checkpoint policy shared by training, resume and evaluation.

* :mod:`.formats`: foreign layouts converted on load (plug point :data:`FORMAT_CONVERTERS`);
  :mod:`.vnext_seqformer`: VNext SeqFormer files.
* :mod:`.policy`: the fit check (what must be loaded, what may be re-initialised) and its one
  error message with config hints.

The detectron2 side is :class:`wsovvis.engine.checkpoint.VideoCheckpointer`.
"""
from .formats import (
    FORMAT_CONVERTERS,
    ConversionReport,
    convert_to_wsovvis,
    register_format_converter,
)
from .policy import FitReport, assess_fit, config_hints, external_weight_prefixes, group_keys
from .policy import random_backbone_error
from .vnext_seqformer import VNextSeqFormerFormat, vnext_to_wsovvis, wsovvis_to_vnext

__all__ = [
    "FORMAT_CONVERTERS", "ConversionReport", "FitReport", "VNextSeqFormerFormat", "assess_fit",
    "config_hints", "convert_to_wsovvis", "external_weight_prefixes", "group_keys",
    "random_backbone_error", "register_format_converter", "vnext_to_wsovvis", "wsovvis_to_vnext",
]
