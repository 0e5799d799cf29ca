"""VNext SeqFormer checkpoints (wjf5203/VNext ``projects/SeqFormer``) <-> ``WSSeqFormer`` names.

VNext nests the model as ``detr`` (``CondInst_segm``) -> ``detr.detr`` (``DeformableDETR``) and
names layer parts differently; the tensors are the same (numerics match when names are mapped):

==========================================================  ======================================
VNext                                                       wsovvis
==========================================================  ======================================
``detr.detr.backbone.0.backbone.*`` (detectron2 backbone)   ``backbone.body.*``
``detr.detr.{input_proj,query_embed,class_embed}.*``        same without ``detr.detr.``
``detr.detr.transformer.{level_embed,reference_points}``    ``transformer.*``
encoder layer ``norm1`` / ``linear1,linear2,norm2``         ``norm`` / ``ffn.{linear1,linear2,norm}``
decoder layer ``cross_attn.output_proj_box``                ``output_proj_box``
decoder layer ``norm1[_box]`` / ``norm2[_box]``             ``norm_ca[_box]`` / ``norm_sa[_box]``
decoder layer ``linear1,linear2,norm3`` (``_box``)          ``ffn.*`` (``ffn_box.*``)
``detr.detr.transformer.decoder.bbox_embed.*``              ``transformer.decoder.bbox_embed.*``
``detr.controller.*``                                       ``mask_head.controller.*``
``detr.mask_head.{lay3,lay4,dcn,lay1,lay2}``                ``mask_features.{lay3,lay4,lay5,lay1,lay2}``
==========================================================  ======================================

Ignored VNext extras: every encoder layer's ``self_attn.output_proj_box`` (created by VNext's
shared ``MSDeformAttn`` class, never used by the encoder) and ``detr.detr.bbox_embed.*`` (the same
modules as ``transformer.decoder.bbox_embed``, saved twice; checked to be identical).
"""
import re
from typing import Dict, Mapping, Tuple

import torch

from .formats import ConversionReport, register_format_converter

__all__ = ["VNextSeqFormerFormat", "vnext_to_wsovvis", "wsovvis_to_vnext"]

_PREFIXES = (  # (VNext, wsovvis), longest first
    ("detr.detr.backbone.0.backbone.", "backbone.body."),
    ("detr.detr.transformer.", "transformer."),
    ("detr.detr.input_proj.", "input_proj."),
    ("detr.detr.query_embed.", "query_embed."),
    ("detr.detr.class_embed.", "class_embed."),
    ("detr.controller.", "mask_head.controller."),
    ("detr.mask_head.dcn.", "mask_features.lay5."),
    ("detr.mask_head.", "mask_features."),
)
_ENCODER = {"norm1": "norm", "linear1": "ffn.linear1", "linear2": "ffn.linear2",
            "norm2": "ffn.norm"}
_DECODER = {"cross_attn.output_proj_box": "output_proj_box", "norm1": "norm_ca",
            "norm1_box": "norm_ca_box", "norm2": "norm_sa", "norm2_box": "norm_sa_box",
            "linear1": "ffn.linear1", "linear2": "ffn.linear2", "norm3": "ffn.norm",
            "linear1_box": "ffn_box.linear1", "linear2_box": "ffn_box.linear2",
            "norm3_box": "ffn_box.norm"}
_LAYER = re.compile(r"^transformer\.(encoder|decoder)\.layers\.(\d+)\.(.+)\.([^.]+)$")
_ENC_EXTRA = "self_attn.output_proj_box"
_DUP_BBOX = "detr.detr.bbox_embed."
_DEC_BBOX = "detr.detr.transformer.decoder.bbox_embed."


def _rename_layer(key: str, maps: Dict[str, Dict[str, str]]) -> str:
    m = _LAYER.match(key)
    if m is None:
        return key
    kind, idx, module, param = m.groups()
    module = maps[kind].get(module, module)
    return f"transformer.{kind}.layers.{idx}.{module}.{param}"


def vnext_to_wsovvis(state_dict: Mapping[str, torch.Tensor]
                     ) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Rename a VNext SeqFormer state dict to ``WSSeqFormer`` names.

    Args:
        state_dict: VNext model tensors (``detr.*``; other keys, e.g. a criterion buffer, are
            passed on unchanged and judged by the fit check).

    Returns:
        ``(state_dict, report)``; ``report.ignored`` lists the VNext extras that were dropped.

    Raises:
        ValueError: the two copies of a ``bbox_embed`` tensor differ (not a VNext save).
    """
    report = ConversionReport("VNext SeqFormer")
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(_DUP_BBOX):
            twin = _DEC_BBOX + key[len(_DUP_BBOX):]
            if twin in state_dict:
                if not torch.equal(state_dict[twin], value):
                    raise ValueError(f"VNext checkpoint: {key} differs from {twin} (VNext saves "
                                     "the same module twice; the file is inconsistent)")
                report.ignored[key] = "duplicate of " + twin
                continue
            key = twin  # only the top-level copy was saved: use it
        new = key
        for old, ws in _PREFIXES:
            if key.startswith(old):
                new = ws + key[len(old):]
                break
        m = _LAYER.match(new)
        if m is not None and m.group(1) == "encoder" and m.group(3) == _ENC_EXTRA:
            report.ignored[key] = "VNext encoder MSDeformAttn.output_proj_box (unused by VNext)"
            continue
        out[_rename_layer(new, {"encoder": _ENCODER, "decoder": _DECODER})] = value
    report.converted = len(out)
    return out, report


def wsovvis_to_vnext(state_dict: Mapping[str, torch.Tensor], *, with_extras: bool = True,
                     generator: torch.Generator = None) -> Dict[str, torch.Tensor]:
    """Inverse of :func:`vnext_to_wsovvis` (tests, export to VNext).

    Args:
        state_dict: ``WSSeqFormer`` tensors (``criterion.*`` buffers are dropped: VNext's
            criterion has none).
        with_extras: also write VNext's unused encoder ``output_proj_box`` (random values) and
            the duplicated top-level ``bbox_embed``, as VNext saves them.
        generator: random generator for the extras.

    Returns:
        the state dict in VNext names.
    """
    enc = {v: k for k, v in _ENCODER.items()}
    dec = {v: k for k, v in _DECODER.items()}
    out: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("criterion."):
            continue
        renamed = _rename_layer(key, {"encoder": enc, "decoder": dec})
        for old, ws in sorted(_PREFIXES, key=lambda p: -len(p[1])):
            if renamed.startswith(ws):
                renamed = old + renamed[len(ws):]
                break
        out[renamed] = value
        if with_extras and renamed.startswith(_DEC_BBOX):
            out[_DUP_BBOX + renamed[len(_DEC_BBOX):]] = value
        m = _LAYER.match(key)
        if with_extras and m is not None and m.group(1) == "encoder" and key.endswith(
                ".self_attn.output_proj.weight"):
            d = value.shape[0]
            base = f"detr.detr.transformer.encoder.layers.{m.group(2)}.{_ENC_EXTRA}"
            out[base + ".weight"] = torch.randn(d, d, generator=generator)
            out[base + ".bias"] = torch.randn(d, generator=generator)
    return out


class VNextSeqFormerFormat:
    """Format converter (see :mod:`wsovvis.checkpoint.formats`) for VNext SeqFormer files."""

    name = "VNext SeqFormer"

    @staticmethod
    def detect(state_dict: Mapping[str, torch.Tensor]) -> bool:
        """VNext keys: ``detr.detr.transformer.*`` or ``detr.controller.*``."""
        return any(k.startswith(("detr.detr.transformer.", "detr.controller."))
                   for k in state_dict)

    @staticmethod
    def convert(state_dict):
        """See :func:`vnext_to_wsovvis`."""
        return vnext_to_wsovvis(state_dict)


register_format_converter(VNextSeqFormerFormat())
