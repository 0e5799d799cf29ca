"""Foreign checkpoint layouts, converted to wsovvis parameter names when a checkpoint is loaded.

Plug point for new formats: :data:`FORMAT_CONVERTERS` is an ordered list of converters; the
checkpointer (:class:`wsovvis.engine.checkpoint.VideoCheckpointer`) hands every loaded model
state dict to :func:`convert_to_wsovvis`, which applies the first converter whose ``detect``
returns True (none: the state dict is already in wsovvis names). A converter is any object with:

* ``name`` (str): shown in logs and errors, e.g. ``"VNext SeqFormer"``;
* ``detect(state_dict) -> bool``: True if the state dict (tensor names of the model, already
  unwrapped from ``{"model": ...}``) is in this format; must be cheap and must not claim
  wsovvis's own names;
* ``convert(state_dict) -> (state_dict, ConversionReport)``: the state dict in wsovvis names,
  plus what was ignored (keys of the foreign model that wsovvis does not have) and notes.

Register one with :func:`register_format_converter` (e.g. from the module that defines it).
Converters only rename / reshape tensors; whether the result fits the model is decided by the
fit check (:mod:`wsovvis.checkpoint.policy`), so a converter never needs the model.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

import torch

__all__ = [
    "ConversionReport", "FORMAT_CONVERTERS", "register_format_converter", "convert_to_wsovvis",
    "fuse_qkv",
]


@dataclass
class ConversionReport:
    """What a format converter did.

    Attributes:
        format: converter name.
        converted: number of tensors passed on (renamed or not).
        ignored: foreign key -> reason it was dropped (tensors wsovvis has no place for).
        notes: free-form remarks for the log.
    """

    format: str
    converted: int = 0
    ignored: Dict[str, str] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


#: Ordered converters tried by :func:`convert_to_wsovvis` (see the module docstring).
FORMAT_CONVERTERS: List[object] = []


def register_format_converter(converter, index: Optional[int] = None) -> None:
    """Add a converter to :data:`FORMAT_CONVERTERS` (once; ``index`` None appends).

    Args:
        converter: object with ``name``, ``detect(state_dict)`` and ``convert(state_dict)``.
        index: position in the list (earlier converters are tried first).
    """
    for attr in ("name", "detect", "convert"):
        if not hasattr(converter, attr):
            raise TypeError(f"format converter {converter!r} has no '{attr}'")
    if any(c.name == converter.name for c in FORMAT_CONVERTERS):
        return
    FORMAT_CONVERTERS.insert(len(FORMAT_CONVERTERS) if index is None else index, converter)


def convert_to_wsovvis(
    state_dict: Mapping[str, torch.Tensor],
) -> Tuple[Dict[str, torch.Tensor], Optional[ConversionReport]]:
    """Convert a foreign state dict to wsovvis names with the first matching converter.

    Args:
        state_dict: model tensors of a checkpoint.

    Returns:
        ``(state_dict, report)``; ``report`` is None when no converter claimed the state dict
        (it is returned unchanged, as a new dict).
    """
    for conv in FORMAT_CONVERTERS:
        if conv.detect(state_dict):
            return conv.convert(state_dict)
    return dict(state_dict), None


def fuse_qkv(parts: Mapping[int, Mapping[str, torch.Tensor]], kinds: Tuple[str, ...],
             key: str, what: str) -> Dict[str, torch.Tensor]:
    """Fuse per-block separate q / k / v projections into timm's single ``qkv`` tensors.

    Args:
        parts: block index -> ``{"q" + kind, "k" + kind, "v" + kind: tensor}`` (e.g. ``"qweight"``).
        kinds: which tensors to fuse, e.g. ``("weight",)`` or ``("weight", "bias")``.
        key: output name with ``{i}`` (block) and ``{kind}`` fields, e.g.
            ``"blocks.{i}.attn.qkv.{kind}"``.
        what: the block's name in errors, e.g. ``"DINOv3 block"``.

    Returns:
        ``{output name: torch.cat([q, k, v])}``.

    Raises:
        ValueError: a block lacks one of its q / k / v tensors.
    """
    out: Dict[str, torch.Tensor] = {}
    for i, block in sorted(parts.items()):
        for kind in kinds:
            names = [c + kind for c in "qkv"]
            if not all(n in block for n in names):
                raise ValueError(f"{what} {i}: q/k/v {kind} incomplete ({sorted(block)})")
            out[key.format(i=i, kind=kind)] = torch.cat([block[n] for n in names])
    return out
