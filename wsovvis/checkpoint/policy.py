"""The checkpoint policy: what a loaded state dict must provide, and what may be re-initialised.

Every load (training initialisation, resume, evaluation) goes through :func:`assess_fit`, called
by :class:`wsovvis.engine.checkpoint.VideoCheckpointer` after format conversion
(:mod:`wsovvis.checkpoint.formats`) and before any tensor is copied into the model:

* ``mode="eval"`` and ``mode="resume"``: every parameter and persistent buffer of the model must
  come from the checkpoint with its shape (buffers that a default would fill in, e.g. FrozenBN
  running statistics, do not count as loaded), except tensors loaded by a backbone's own
  weights path (:func:`external_weight_prefixes`, e.g. ``MODEL.DINOV2.WEIGHTS``) and buffers
  derived from the config (:data:`DERIVED_KEYS`); the checkpoint may hold nothing else.
* ``mode="init"`` (training from ``MODEL.WEIGHTS``): partial checkpoints are fine (ImageNet
  backbone, another class count); what is not loaded keeps its initialisation and is listed once
  in the log. At least one tensor must fit, and a VidEoMT ``pos_embed`` grid must match
  ``MODEL.VIDEOMT.IMG_SIZE``.

A failure is one :class:`FitReport` message: keys grouped by prefix, and the config keys that
probably differ (:func:`config_hints`).
"""
import logging
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = [
    "DERIVED_KEYS", "FitReport", "assess_fit", "config_hints", "external_weight_prefixes",
    "group_keys", "random_backbone_error",
]

logger = logging.getLogger(__name__)

#: Buffers computed from the config, not learned: tolerated when a checkpoint lacks them.
DERIVED_KEYS = ("criterion.empty_weight", "backbone.attn_mask_probs")
VIDEOMT_VIT = "backbone.encoder.backbone."
VIDEOMT_POS_EMBED = VIDEOMT_VIT + "pos_embed"


def _matters(key: str) -> bool:
    return not key.endswith("num_batches_tracked") and key not in DERIVED_KEYS


def group_keys(keys: Iterable[str], limit: int = 8, depth: int = 3) -> str:
    """Summarise keys by prefix: ``"transformer.encoder.layers.* (96, e.g. ...)"``.

    Args:
        keys: tensor names.
        limit: groups shown (the rest are counted).
        depth: name components kept in a group prefix (layer indices become ``*``).
    """
    groups: "OrderedDict[str, List[str]]" = OrderedDict()
    for k in sorted(keys):
        parts = [("*" if p.isdigit() else p) for p in k.split(".")[:-1]]
        prefix = ".".join(parts[:depth + (1 if "*" in parts[:depth] else 0)]) or k
        groups.setdefault(prefix, []).append(k)
    lines = [f"{p}.* ({len(v)}, e.g. {v[0]})" if len(v) > 1 else v[0]
             for p, v in list(groups.items())[:limit]]
    if len(groups) > limit:
        lines.append(f"... and {len(groups) - limit} more groups")
    return "; ".join(lines)


def external_weight_prefixes(model: nn.Module, cfg=None) -> Dict[str, str]:
    """Key prefixes filled by a backbone's own weights path at build time, with the config key.

    ``MODEL.DINOV2.WEIGHTS`` loads the frozen ViT of every ``DINOv2PseudoFPN`` (``<name>.vit.``);
    ``MODEL.SWIN.WEIGHTS`` every ``D2SwinTransformer``; ``MODEL.VIDEOMT.VIT_WEIGHTS`` loads the VidEoMT ViT (``backbone.encoder.backbone.``).

    Args:
        model: the model (module names are read from it).
        cfg: its config; None -> no external weights.

    Returns:
        ``{prefix: config key}`` for the paths that were actually configured.
    """
    out: Dict[str, str] = {}
    if cfg is None:
        return out
    model_cfg = cfg.MODEL
    if "DINOV2" in model_cfg and model_cfg.DINOV2.WEIGHTS:
        for name, module in model.named_modules():
            if type(module).__name__ == "DINOv2PseudoFPN" and hasattr(module, "vit"):
                out[f"{name}.vit."] = "MODEL.DINOV2.WEIGHTS"
    if "SWIN" in model_cfg and model_cfg.SWIN.WEIGHTS:
        for name, module in model.named_modules():
            if type(module).__name__ == "D2SwinTransformer":
                out[f"{name}."] = "MODEL.SWIN.WEIGHTS"
    if ("VIDEOMT" in model_cfg and model_cfg.VIDEOMT.VIT_WEIGHTS
            and model_cfg.META_ARCHITECTURE == "WSVidEoMT"):
        out[VIDEOMT_VIT] = "MODEL.VIDEOMT.VIT_WEIGHTS"
    return out


@dataclass
class FitReport:
    """How a checkpoint's state dict fits a model (all lists hold model-side names).

    Attributes:
        source: the file (or description) for messages. mode: ``init``/``resume``/``eval``.
        format: ``"wsovvis"`` or the converter's name.
        loaded: keys taken from the checkpoint. missing: model keys it lacks.
        unexpected: checkpoint keys the model lacks. mismatched: ``(key, ckpt, model)`` shapes.
        external: model keys loaded by a backbone weights path (:func:`external_weight_prefixes`).
        ignored: foreign keys a converter dropped (with the reason).
        hints: config keys that probably differ.
        grid: VidEoMT ``pos_embed`` grid adopted from the checkpoint (tokens), if any.
    """

    source: str
    mode: str
    format: str = "wsovvis"
    loaded: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    external: List[str] = field(default_factory=list)
    ignored: Dict[str, str] = field(default_factory=dict)
    hints: List[str] = field(default_factory=list)
    grid: Optional[int] = None

    @property
    def reinitialized(self) -> List[str]:
        """Model keys that keep their initialisation (missing or mis-shaped)."""
        return sorted(set(self.missing) | {k for k, *_ in self.mismatched})

    def _details(self) -> List[str]:
        lines = []
        if self.missing:
            lines.append(f"  missing from the checkpoint ({len(self.missing)}): "
                         f"{group_keys(self.missing)}")
        if self.mismatched:
            shown = ", ".join(f"{k} {tuple(a)} in checkpoint vs {tuple(b)} in model"
                              for k, a, b in self.mismatched[:6])
            more = f" (+{len(self.mismatched) - 6} more)" if len(self.mismatched) > 6 else ""
            lines.append(f"  wrong shape ({len(self.mismatched)}): {shown}{more}")
        if self.unexpected:
            lines.append(f"  not in the model ({len(self.unexpected)}): "
                         f"{group_keys(self.unexpected)}")
        if self.hints:
            lines.append("  probably differs: " + "; ".join(self.hints))
        return lines

    def error_message(self) -> str:
        """One message for a checkpoint that cannot be used in :attr:`mode`."""
        what = {"eval": "evaluation needs every model tensor from it",
                "resume": "resuming needs every model tensor from it",
                "init": "not one model tensor was found in it with a matching name and shape"}
        fmt = f" ({self.format} format)" if self.format != "wsovvis" else ""
        head = (f"Checkpoint {self.source}{fmt} does not fit this model: {what[self.mode]} "
                f"({len(self.loaded)} of {len(self.loaded) + len(self.reinitialized)} "
                "tensors fit)")
        if self.mode == "init" and self.loaded:  # only the VidEoMT pos_embed grid differs
            head = (f"Checkpoint {self.source}: {VIDEOMT_POS_EMBED} has another grid than the "
                    "model: set MODEL.VIDEOMT.IMG_SIZE to the checkpoint's "
                    "(tools/convert_videomt_checkpoint.py prints it)")
        return "\n".join([head] + self._details())

    def summary(self) -> str:
        """One log paragraph: what was loaded, ignored and re-initialised."""
        fmt = f", converted from {self.format}" if self.format != "wsovvis" else ""
        parts = [f"Loaded {len(self.loaded)} tensors from {self.source}{fmt}"]
        if self.external:
            parts.append(f"{len(self.external)} from the backbone weights path")
        if self.ignored:
            parts.append(f"ignored {len(self.ignored)} checkpoint tensors the model does not "
                         f"use ({group_keys(self.ignored)})")
        if self.grid is not None:
            parts.append(f"pos_embed reference grid taken from the checkpoint ({self.grid} "
                         "tokens)")
        text = "; ".join(parts) + "."
        if self.reinitialized or self.unexpected:
            text += "\nRe-initialised (training starts them from scratch):\n" + "\n".join(
                self._details())
        return text


def _layer_count(keys: Iterable[str], pattern: str) -> int:
    rx = re.compile(pattern)
    idx = {int(m.group(1)) for k in keys for m in [rx.match(k)] if m}
    return max(idx) + 1 if idx else 0


def _backbone_family(keys: Iterable[str]) -> Optional[str]:
    keys = list(keys)
    if any(k.startswith(VIDEOMT_VIT) for k in keys):
        return "VidEoMT ViT (MODEL.META_ARCHITECTURE WSVidEoMT)"
    bb = [k for k in keys if k.startswith("backbone.")]
    if any(".vit." in k for k in bb):
        return "DINOv2 (MODEL.BACKBONE.NAME DINOv2PseudoFPN)"
    if any(re.search(r"\.(res[2-5]|stem)\.", k) for k in bb):
        return "ResNet (MODEL.BACKBONE.NAME build_resnet_backbone)"
    if any(".layers." in k and ".blocks." in k for k in bb):
        return "Swin (MODEL.BACKBONE.NAME D2SwinTransformer)"
    return None


def config_hints(model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor],
                 patch_size: int = 16) -> List[str]:
    """Config keys whose value probably differs between a checkpoint and the model.

    Args:
        model_sd / ckpt_sd: the two state dicts (wsovvis names).
        patch_size: VidEoMT patch size (for ``IMG_SIZE`` from ``pos_embed``).

    Returns:
        e.g. ``["MODEL.VIDEOMT.NUM_CLASSES 40 (checkpoint) vs 1 (model)"]``.
    """
    hints = []

    def shape(sd, k, dim):
        return sd[k].shape[dim] if k in sd and sd[k].dim() > dim else None

    def differ(key, ck, mo):
        if ck is not None and mo is not None and ck != mo:
            hints.append(f"{key} {ck} (checkpoint) vs {mo} (model)")

    for k, cfg_key, off in (("class_embed.0.weight", "MODEL.SeqFormer.NUM_CLASSES", 0),
                            ("backbone.class_head.weight", "MODEL.VIDEOMT.NUM_CLASSES", 1)):
        a, b = shape(ckpt_sd, k, 0), shape(model_sd, k, 0)
        differ(cfg_key, a - off if a else None, b - off if b else None)
    differ("MODEL.SeqFormer.NUM_OBJECT_QUERIES", shape(ckpt_sd, "query_embed.weight", 0),
           shape(model_sd, "query_embed.weight", 0))
    differ("MODEL.SeqFormer.HIDDEN_DIM", shape(ckpt_sd, "transformer.level_embed", 1),
           shape(model_sd, "transformer.level_embed", 1))
    differ("MODEL.SeqFormer.NUM_FEATURE_LEVELS", shape(ckpt_sd, "transformer.level_embed", 0),
           shape(model_sd, "transformer.level_embed", 0))
    for part, cfg_key in (("encoder", "ENC_LAYERS"), ("decoder", "DEC_LAYERS")):
        rx = rf"^transformer\.{part}\.layers\.(\d+)\."
        a, b = _layer_count(ckpt_sd, rx), _layer_count(model_sd, rx)
        differ(f"MODEL.SeqFormer.{cfg_key}", a or None, b or None)
    differ("MODEL.VIDEOMT.NUM_QUERIES", shape(ckpt_sd, "backbone.q.weight", 0),
           shape(model_sd, "backbone.q.weight", 0))
    rx = rf"^{re.escape(VIDEOMT_VIT)}blocks\.(\d+)\."
    a, b = _layer_count(ckpt_sd, rx), _layer_count(model_sd, rx)
    differ("MODEL.VIDEOMT.DEPTH (or MODEL_NAME)", a or None, b or None)
    differ("MODEL.VIDEOMT embed dim (MODEL_NAME / EMBED_DIM)",
           shape(ckpt_sd, VIDEOMT_VIT + "cls_token", 2), shape(model_sd, VIDEOMT_VIT + "cls_token", 2))
    a, b = shape(ckpt_sd, VIDEOMT_POS_EMBED, 1), shape(model_sd, VIDEOMT_POS_EMBED, 1)
    if a and b and a != b:
        differ("MODEL.VIDEOMT.IMG_SIZE", math.isqrt(a) * patch_size, math.isqrt(b) * patch_size)
    fam_c, fam_m = _backbone_family(ckpt_sd), _backbone_family(model_sd)
    if fam_c and fam_m and fam_c != fam_m:
        hints.append(f"backbone: the checkpoint's looks like {fam_c}, the model's is {fam_m}")
    elif fam_c and fam_c == fam_m and fam_c.startswith("ResNet"):
        rx = r"^backbone\.(?:body|backbone)\.res4\.(\d+)\."
        a, b = _layer_count(ckpt_sd, rx), _layer_count(model_sd, rx)
        depth = {6: 50, 23: 101, 36: 152}
        differ("MODEL.RESNETS.DEPTH", depth.get(a, a) or None, depth.get(b, b) or None)
    elif fam_c and fam_c == fam_m and fam_c.startswith("DINOv2"):
        ka = next((k for k in ckpt_sd if k.endswith(".vit.cls_token")), None)
        kb = next((k for k in model_sd if k.endswith(".vit.cls_token")), None)
        if ka and kb:
            differ("MODEL.DINOV2.MODEL_NAME (embed dim)", ckpt_sd[ka].shape[-1],
                   model_sd[kb].shape[-1])
    top_c = {k.split(".")[0] for k in ckpt_sd}
    top_m = {k.split(".")[0] for k in model_sd}
    if ckpt_sd and not top_c & top_m - {"backbone", "criterion"}:
        hints.append("MODEL.META_ARCHITECTURE (the checkpoint's top-level modules "
                     f"{sorted(top_c)[:6]} vs the model's {sorted(top_m)[:6]})")
    return hints


def assess_fit(model_sd: Mapping[str, torch.Tensor], ckpt_sd: Mapping[str, torch.Tensor], *,
               mode: str, source: str, external: Mapping[str, str] = (),
               fmt: str = "wsovvis", ignored: Optional[Mapping[str, str]] = None,
               patch_size: int = 16) -> Tuple[FitReport, bool]:
    """Compare a checkpoint's state dict with the model's under the policy of ``mode``.

    Args:
        model_sd: ``model.state_dict()``.
        ckpt_sd: the checkpoint's tensors in wsovvis names (after format conversion).
        mode: ``"init"``, ``"resume"`` or ``"eval"`` (see the module docstring).
        source: the file, for messages.
        external: ``{prefix: config key}`` of backbone weights paths
            (:func:`external_weight_prefixes`); model keys under them count as loaded.
        fmt / ignored: converter name and dropped keys (for the report).
        patch_size: VidEoMT patch size (hints).

    Returns:
        ``(report, ok)``; ``ok`` False means the load must be refused with
        ``report.error_message()``.
    """
    if mode not in ("init", "resume", "eval"):
        raise ValueError(f"unknown checkpoint load mode {mode!r}")
    rep = FitReport(source=source, mode=mode, format=fmt, ignored=dict(ignored or {}))
    prefixes = tuple(external)
    for k, v in model_sd.items():
        if k in ckpt_sd:
            c = ckpt_sd[k]
            if tuple(c.shape) == tuple(v.shape):
                rep.loaded.append(k)
            else:
                rep.mismatched.append((k, tuple(c.shape), tuple(v.shape)))
        elif prefixes and k.startswith(prefixes):
            rep.external.append(k)
        elif _matters(k):
            rep.missing.append(k)
    rep.unexpected = sorted(k for k in ckpt_sd if k not in model_sd)
    if mode == "init":
        bad_grid = any(k == VIDEOMT_POS_EMBED for k, *_ in rep.mismatched)
        ok = bool(rep.loaded) and not bad_grid
    else:
        ok = not (rep.missing or rep.mismatched or rep.unexpected)
    if not ok or rep.reinitialized or rep.unexpected:
        rep.hints = config_hints(model_sd, ckpt_sd, patch_size)
    return rep, ok


# Pretrained-by-design backbones: module class name -> (key prefix below the module, config node,
# the node's own weights key or None when only MODEL.WEIGHTS can fill it, description).
_PRETRAINED_BACKBONES = {
    "DINOv2PseudoFPN": ("vit.", "MODEL.DINOV2", "WEIGHTS", "the DINOv2 ViT"),
    "D2SwinTransformer": ("", "MODEL.SWIN", "WEIGHTS", "the Swin backbone"),
    "ResNet": ("", "MODEL.RESNETS", None, "the ResNet backbone"),
}


def _pretrained_backbones(model: nn.Module, cfg) -> List[Tuple[str, str, Optional[str], str]]:
    """``(key prefix, config node, weights key, description)`` of every pretrained-by-design
    backbone in ``model`` whose own weights key is empty."""
    found = []
    for name, module in model.named_modules():
        spec = _PRETRAINED_BACKBONES.get(type(module).__name__)
        if spec is None:
            continue
        sub, node, weights, what = spec
        node_cfg = cfg.MODEL.get(node.split(".")[1])
        if node_cfg is None or (weights and node_cfg.get(weights)):
            continue
        prefix = f"{name}.{sub}" if name else sub
        if any(prefix.startswith(p) for p, *_ in found):
            continue  # nested inside a backbone already listed
        found.append((prefix, node, weights, what))
    if ("VIDEOMT" in cfg.MODEL and cfg.MODEL.META_ARCHITECTURE == "WSVidEoMT"
            and not cfg.MODEL.VIDEOMT.VIT_WEIGHTS):
        found.append((VIDEOMT_VIT, "MODEL.VIDEOMT", "VIT_WEIGHTS", "the VidEoMT ViT"))
    return found


def random_backbone_error(model: nn.Module, cfg, loaded: Sequence[str]) -> Optional[str]:
    """Refuse to train on a randomly initialised pretrained-by-design backbone unless allowed.

    A DINOv2 ViT (``MODEL.DINOV2.WEIGHTS`` empty, frozen or not), a Swin backbone
    (``MODEL.SWIN.WEIGHTS`` empty), a ResNet (only ``MODEL.WEIGHTS`` can fill it) or the VidEoMT
    ViT (``MODEL.VIDEOMT.VIT_WEIGHTS`` empty) that ``MODEL.WEIGHTS`` did not fill either would
    train on random features without a word. ``<node>.ALLOW_RANDOM_INIT`` (``MODEL.DINOV2``,
    ``MODEL.SWIN``, ``MODEL.RESNETS``, ``MODEL.VIDEOMT``) says it is intended (tiny test models,
    the demo); the log then says so.

    Args:
        model: the model after loading ``MODEL.WEIGHTS`` (if any).
        cfg: its config.
        loaded: model keys that came from ``MODEL.WEIGHTS``.

    Returns:
        the error message, or None when the backbone is initialised (or random on purpose).
    """
    loaded = set(loaded)
    state_keys = list(model.state_dict())
    for prefix, node, weights, what in _pretrained_backbones(model, cfg):
        keys = [k for k in state_keys if k.startswith(prefix)]
        if not keys or all(k in loaded for k in keys):
            continue
        if cfg.MODEL.get(node.split(".")[1]).get("ALLOW_RANDOM_INIT", False):
            logger.warning("%s starts from random initialisation (%s.ALLOW_RANDOM_INIT True)",
                           what, node)
            continue
        n = sum(k not in loaded for k in keys)
        source = (f"{node}.{weights} is empty and MODEL.WEIGHTS" if weights else "MODEL.WEIGHTS")
        fix = (f"Set {node}.{weights} (or MODEL.WEIGHTS) to the pretrained file" if weights
               else "Set MODEL.WEIGHTS to the pretrained file (e.g. an ImageNet .pkl)")
        return (f"{what} would train from random initialisation: {source} does not provide "
                f"{n} of its {len(keys)} tensors. {fix}, or {node}.ALLOW_RANDOM_INIT True if "
                "a random backbone is intended")
    return None
