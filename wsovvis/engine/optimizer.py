"""Optimizer and LR schedules: AdamW/SGD, backbone multiplier, ViT layer-wise LR decay (LLRD).

Parameter groups follow the official VidEoMT recipe (tue-mps/videomt): a ViT block ``i`` of ``L`` gets
``BASE_LR * LLRD ** (L - 1 - i)``, the patch/position/class/register embeddings get
``LLRD ** (L - 1)`` and the ViT's final ``norm`` plus every non-ViT parameter get the plain base LR.
Unlike the official code, gradient clipping (``SOLVER.CLIP_GRADIENTS``) is honoured: detectron2's
:func:`maybe_add_gradient_clipping` for its per-parameter types (``value``, ``norm``) and
:func:`maybe_add_full_model_gradient_clipping` for ``full_model`` (Mask2Former / VNext configs).

Schedules: ``"WarmupPolyLR"`` is detectron2's own (``detectron2.projects.deeplab``);
:class:`TwoStageWarmupPolyLR` (VidEoMT's delayed ViT warmup) is the one detectron2 lacks.
"""
import itertools
import logging
import re
from typing import Any, Dict, List, Optional, Type

import torch
from detectron2.config import CfgNode
from detectron2.projects.deeplab.lr_scheduler import WarmupPolyLR
from detectron2.solver import build_lr_scheduler as d2_build_lr_scheduler
from detectron2.solver.build import maybe_add_gradient_clipping, reduce_param_groups

__all__ = [
    "get_param_groups",
    "build_optimizer",
    "build_lr_scheduler",
    "maybe_add_full_model_gradient_clipping",
    "TwoStageWarmupPolyLR",
]

logger = logging.getLogger(__name__)

_NORM_TYPES = (
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.GroupNorm,
    torch.nn.modules.instancenorm._InstanceNorm,
    torch.nn.LayerNorm,
    torch.nn.LocalResponseNorm,
)
_BLOCK_RE = re.compile(r"(?:^|\.)blocks\.(\d+)\.")


def _vit_layer_scale(rel_name: str, num_blocks: int, llrd: float) -> float:
    """LLRD factor of one ViT parameter given its name relative to the ViT prefix."""
    m = _BLOCK_RE.search("." + rel_name)
    if m is not None:
        return llrd ** (num_blocks - 1 - int(m.group(1)))
    if rel_name.startswith("norm.") or rel_name.startswith("fc_norm."):
        return 1.0  # final LayerNorm: trained at the base LR like the heads
    return llrd ** (num_blocks - 1)  # patch / pos embeddings, cls and register tokens


def get_param_groups(
    model: torch.nn.Module,
    *,
    base_lr: float,
    weight_decay: float,
    weight_decay_norm: Optional[float] = None,
    weight_decay_embed: Optional[float] = None,
    backbone_multiplier: float = 1.0,
    llrd: float = 1.0,
    vit_prefix: str = "",
) -> List[Dict[str, Any]]:
    """Build optimizer parameter groups.

    Frozen parameters (``requires_grad=False``) and duplicates (shared parameters) are skipped.
    Each group carries ``"vit": bool`` so that :class:`TwoStageWarmupPolyLR` can warm ViT
    parameters up separately; groups with identical hyper-parameters are merged.

    Args:
        model: the model (unwrapped or DDP-wrapped; names are taken without ``module.``).
        base_lr: base learning rate.
        weight_decay: default weight decay.
        weight_decay_norm: weight decay of normalisation-layer parameters (None = default).
        weight_decay_embed: weight decay of ``nn.Embedding`` weights (None = default).
        backbone_multiplier: LR multiplier of the pretrained backbone. If the model defines
            ``lr_multipliers(backbone_multiplier) -> {name: factor}`` (``docs/CONTRACTS.md``), its
            factors are used (e.g. SeqFormer's newly initialised pseudo-FPN neck at 1.0);
            otherwise every parameter whose name contains ``"backbone"`` gets this multiplier.
        llrd: layer-wise LR decay of the ViT under ``vit_prefix`` (1.0 = off).
        vit_prefix: name prefix of the ViT (e.g. ``"backbone.encoder.backbone."``); "" = no ViT.

    Returns:
        list of parameter-group dicts for a ``torch.optim.Optimizer``.
    """
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    vit_names = [n for n, _ in model.named_parameters()] if vit_prefix else []
    vit_names = [n[len(vit_prefix):] for n in vit_names if n.startswith(vit_prefix)]
    block_ids = [int(m.group(1)) for m in (_BLOCK_RE.search("." + n) for n in vit_names) if m]
    num_blocks = max(block_ids) + 1 if block_ids else 1
    if llrd != 1.0 and not block_ids:
        logger.warning(f"SOLVER.LLRD={llrd} but no '{vit_prefix}blocks.<i>.' parameters exist.")

    model_multipliers = (
        model.lr_multipliers(backbone_multiplier) if hasattr(model, "lr_multipliers") else None
    )
    params: List[Dict[str, Any]] = []
    memo = set()
    for module_name, module in model.named_modules():
        for pname, value in module.named_parameters(recurse=False):
            if not value.requires_grad or value in memo:
                continue
            memo.add(value)
            name = f"{module_name}.{pname}" if module_name else pname
            lr, wd = base_lr, weight_decay
            if isinstance(module, _NORM_TYPES) and weight_decay_norm is not None:
                wd = weight_decay_norm
            if isinstance(module, torch.nn.Embedding) and weight_decay_embed is not None:
                wd = weight_decay_embed
            if model_multipliers is not None:
                lr *= model_multipliers[name]
            elif "backbone" in name:
                lr *= backbone_multiplier
            is_vit = bool(vit_prefix) and name.startswith(vit_prefix)
            if is_vit:
                lr *= _vit_layer_scale(name[len(vit_prefix):], num_blocks, llrd)
            params.append({"params": [value], "lr": lr, "weight_decay": wd, "vit": is_vit})
    if not params:
        raise ValueError("The model has no trainable parameters (all are frozen).")
    return reduce_param_groups(params)


def maybe_add_full_model_gradient_clipping(
    cfg: CfgNode, optimizer_type: Type[torch.optim.Optimizer]
) -> Type[torch.optim.Optimizer]:
    """``optimizer_type``, or a subclass clipping the norm of all its gradients together.

    ``SOLVER.CLIP_GRADIENTS.CLIP_TYPE "full_model"`` as in Mask2Former / VNext: before every step,
    ``clip_grad_norm_`` over every parameter of every group at once, to ``CLIP_VALUE``. detectron2
    (v0.6 and later) only clips each parameter separately (``value`` / ``norm``).

    Args:
        cfg: config whose ``SOLVER.CLIP_GRADIENTS`` decides.
        optimizer_type: a ``torch.optim.Optimizer`` subclass.

    Returns:
        ``optimizer_type`` itself unless clipping is enabled with type ``full_model``.

    Raises:
        ValueError: ``full_model`` clipping is enabled with ``CLIP_VALUE <= 0``.
    """
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not (clip.ENABLED and clip.CLIP_TYPE == "full_model"):
        return optimizer_type
    max_norm, norm_type = float(clip.CLIP_VALUE), float(clip.NORM_TYPE)
    if max_norm <= 0:
        raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_VALUE must be > 0, got {max_norm}")

    class FullModelGradientClippingOptimizer(optimizer_type):
        def step(self, closure=None):
            params = itertools.chain.from_iterable(g["params"] for g in self.param_groups)
            torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
            return super().step(closure=closure)

    FullModelGradientClippingOptimizer.__name__ = (
        f"{optimizer_type.__name__}WithFullModelGradientClipping"
    )
    return FullModelGradientClippingOptimizer


def _with_clipping(cfg: CfgNode, optimizer_type: Type[torch.optim.Optimizer]):
    if cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE == "full_model":
        return maybe_add_full_model_gradient_clipping(cfg, optimizer_type)
    return maybe_add_gradient_clipping(cfg, optimizer_type)


def build_optimizer(cfg: CfgNode, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer described by ``cfg.SOLVER`` (AdamW or SGD, clipping honoured).

    Args:
        cfg: detectron2 config with the wsovvis keys.
        model: the model to optimise.

    Returns:
        torch optimizer (a clipping subclass when ``SOLVER.CLIP_GRADIENTS.ENABLED``; types
        ``value`` / ``norm`` per parameter (detectron2), ``full_model`` over all parameters).
    """
    s = cfg.SOLVER
    groups = get_param_groups(
        model,
        base_lr=s.BASE_LR,
        weight_decay=s.WEIGHT_DECAY,
        weight_decay_norm=s.WEIGHT_DECAY_NORM,
        weight_decay_embed=s.WEIGHT_DECAY_EMBED,
        backbone_multiplier=s.BACKBONE_MULTIPLIER,
        llrd=s.LLRD,
        vit_prefix=s.VIT_PREFIX,
    )
    name = s.OPTIMIZER.upper()
    if name == "ADAMW":
        opt = _with_clipping(cfg, torch.optim.AdamW)(groups, lr=s.BASE_LR)
    elif name == "SGD":
        opt = _with_clipping(cfg, torch.optim.SGD)(
            groups, lr=s.BASE_LR, momentum=s.MOMENTUM, nesterov=s.NESTEROV
        )
    else:
        raise ValueError(f"SOLVER.OPTIMIZER must be 'ADAMW' or 'SGD', got {s.OPTIMIZER!r}")
    n_params = sum(p.numel() for g in groups for p in g["params"])
    logger.info(f"{name} over {n_params} trainable parameters in {len(groups)} groups")
    return opt


class TwoStageWarmupPolyLR(torch.optim.lr_scheduler._LRScheduler):
    """Poly decay after a linear warmup in which the ViT starts late (VidEoMT / EoMT).

    The ``TwoStageWarmupPolySchedule`` of VidEoMT/EoMT, which detectron2 lacks: non-ViT groups
    warm up linearly from 0 over ``warmup_iters`` and then decay as ``(1 - t) ** power`` over the
    remaining iterations; ViT groups (``group["vit"]``, see :func:`get_param_groups`) keep LR 0 for
    ``warmup_iters`` iterations, warm up over the next ``vit_warmup`` and then decay likewise.

    Args:
        optimizer: optimizer whose groups carry ``"vit"``.
        max_iter: total iterations.
        warmup_iters: warmup of the non-ViT groups (and delay of the ViT groups).
        vit_warmup: warmup of the ViT groups (> 0).
        power: poly exponent.
        last_epoch: last iteration (-1 = start).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        max_iter: int,
        *,
        warmup_iters: int,
        vit_warmup: int,
        power: float = 0.9,
        last_epoch: int = -1,
    ):
        if vit_warmup <= 0 or warmup_iters < 0:
            raise ValueError(f"need warmup_iters >= 0 and vit_warmup > 0, got {warmup_iters}, "
                             f"{vit_warmup}")
        self.max_iter = max_iter
        self.warmup_iters = warmup_iters
        self.power = power
        self.vit_warmup = vit_warmup
        super().__init__(optimizer, last_epoch)

    def _factor(self, it: int, is_vit: bool) -> float:
        start = self.warmup_iters + (self.vit_warmup if is_vit else 0)
        if is_vit and it < self.warmup_iters:
            return 0.0
        if it < start:
            span = self.vit_warmup if is_vit else self.warmup_iters
            return (it - (start - span)) / span
        remaining = max(1, self.max_iter - start)
        return max(0.0, 1.0 - (it - start) / remaining) ** self.power

    def get_lr(self) -> List[float]:
        it = self.last_epoch
        return [
            base * self._factor(it, bool(g.get("vit", False)))
            for base, g in zip(self.base_lrs, self.optimizer.param_groups)
        ]

    def _get_closed_form_lr(self) -> List[float]:
        return self.get_lr()


def build_lr_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer):
    """Build the LR scheduler named by ``SOLVER.LR_SCHEDULER_NAME``.

    ``"WarmupPolyLR"`` is detectron2's DeepLab schedule (``WARMUP_*`` keys, ``POLY_POWER``);
    ``"TwoStageWarmupPolyLR"`` is :class:`TwoStageWarmupPolyLR` (``WARMUP_STEPS``, ``POLY_POWER``);
    any other name is passed to detectron2's ``build_lr_scheduler``.

    Args:
        cfg: detectron2 config.
        optimizer: optimizer built by :func:`build_optimizer`.

    Returns:
        a ``torch.optim.lr_scheduler._LRScheduler`` (checkpointed by detectron2's hook).
    """
    s = cfg.SOLVER
    name = s.LR_SCHEDULER_NAME
    if name == "WarmupPolyLR":
        return WarmupPolyLR(
            optimizer, s.MAX_ITER, warmup_factor=s.WARMUP_FACTOR, warmup_iters=s.WARMUP_ITERS,
            warmup_method=s.WARMUP_METHOD, power=s.POLY_POWER,
        )
    if name == "TwoStageWarmupPolyLR":
        steps = list(s.WARMUP_STEPS)
        if len(steps) != 2 or min(steps) < 0 or steps[1] == 0:
            raise ValueError(f"SOLVER.WARMUP_STEPS must be [non_vit, vit>0] steps, got {steps}")
        return TwoStageWarmupPolyLR(
            optimizer, s.MAX_ITER, warmup_iters=steps[0], vit_warmup=steps[1], power=s.POLY_POWER
        )
    return d2_build_lr_scheduler(cfg, optimizer)
