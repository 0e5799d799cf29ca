"""DINOv2 variants and checkpoint loading for the timm (or official) ViT trunk.

``MODEL.DINOV2.MODEL_NAME`` uses the official hub names (``dinov2_vit{s,b,l,g}14`` and their
``_reg`` / ``_reg4`` variants). ``MODEL.DINOV2.WEIGHTS`` may be an official DINOv2 ``.pth``
(``dinov2_vitb14_pretrain.pth``: keys ``cls_token``, ``pos_embed``, ``mask_token``, ``blocks.*``,
optionally ``register_tokens``), which is converted on load with timm's ``checkpoint_filter_fn``,
or a timm checkpoint (``.pth``/``.bin``/``.safetensors``) of the same architecture.
"""
import logging
import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import nn

__all__ = [
    "DINOv2Variant",
    "DINOV2_VARIANTS",
    "resolve_variant",
    "load_dinov2_weights",
    "load_official_hub_model",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DINOv2Variant:
    """Architecture facts of one official DINOv2 model."""

    hub_name: str
    timm_name: str
    embed_dim: int
    depth: int
    num_heads: int
    num_register_tokens: int


def _variants():
    table = {}
    for short, timm_size, dim, depth, heads in (
        ("s", "small", 384, 12, 6),
        ("b", "base", 768, 12, 12),
        ("l", "large", 1024, 24, 16),
        ("g", "giant", 1536, 40, 24),
    ):
        hub = f"dinov2_vit{short}14"
        table[hub] = DINOv2Variant(hub, f"vit_{timm_size}_patch14_dinov2", dim, depth, heads, 0)
        reg = DINOv2Variant(hub + "_reg", f"vit_{timm_size}_patch14_reg4_dinov2", dim, depth,
                            heads, 4)
        table[hub + "_reg"] = reg
        table[hub + "_reg4"] = reg
    return table


DINOV2_VARIANTS: Dict[str, DINOv2Variant] = _variants()


def resolve_variant(model_name: str) -> DINOv2Variant:
    """Look up a DINOv2 variant by hub name (``dinov2_vitb14``, ``dinov2_vitl14_reg``, ...) or by
    timm name (``vit_base_patch14_dinov2``, ...)."""
    if model_name in DINOV2_VARIANTS:
        return DINOV2_VARIANTS[model_name]
    for v in DINOV2_VARIANTS.values():
        if v.timm_name == model_name:
            return v
    raise ValueError(
        f"Unknown MODEL.DINOV2.MODEL_NAME {model_name!r}; expected one of "
        f"{sorted(DINOV2_VARIANTS)} or the matching timm names"
    )


def _read_state_dict(path: str, config_key: str = "MODEL.DINOV2.WEIGHTS") -> Dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{config_key} file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file  # optional dependency, only for this format

        return load_file(path, device="cpu")
    from wsovvis.utils.io import torch_load_trusted

    try:  # weights_only + the checkpoint allow-list: never runs code from the file
        obj = torch_load_trusted(path)
    except Exception as e:
        raise ValueError(f"{config_key} {path} cannot be read: {e}") from None
    for key in ("model", "state_dict", "teacher"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ValueError(f"{path} does not contain a state dict (got {type(obj).__name__})")
    return obj


def _architecture(sd: Dict[str, torch.Tensor]) -> Optional[Tuple[int, int, int]]:
    """``(embed dim, depth, register tokens)`` of a ViT state dict, None if it is not one."""
    w = sd.get("patch_embed.proj.weight")
    if w is None:
        return None
    depth = 1 + max((int(k.split(".")[1]) for k in sd if k.startswith("blocks.")), default=-1)
    regs = next((sd[k].shape[1] for k in ("register_tokens", "reg_token") if k in sd), 0)
    return int(w.shape[0]), depth, int(regs)


def _describe(sd: Dict[str, torch.Tensor]) -> Optional[str]:
    arch = _architecture(sd)
    if arch is None:
        return None
    dim, depth, regs = arch
    names = [n for n, v in DINOV2_VARIANTS.items()
             if (v.embed_dim, v.depth, v.num_register_tokens) == arch and not n.endswith("_reg4")]
    guess = f" (looks like {names[0]})" if names else ""
    return f"embed dim {dim}, depth {depth}, {regs} register tokens{guess}"


def _check_compatible(sd, model: nn.Module, model_name: str, path: str,
                      config_key: str = "MODEL.DINOV2.WEIGHTS"):
    expect = (model.patch_embed.proj.weight.shape[0], len(model.blocks),
              getattr(model, "num_reg_tokens", 0) or 0)
    arch = _architecture(sd)
    if arch is None:
        raise ValueError(
            f"{path} has no 'patch_embed.proj.weight': not a DINOv2/timm ViT checkpoint")
    if arch != expect:
        raise ValueError(
            f"DINOv2 checkpoint/model mismatch: {config_key.rsplit('.', 1)[0]}.MODEL_NAME="
            f"{model_name!r} builds a ViT with embed dim {expect[0]}, depth {expect[1]}, "
            f"{expect[2]} register tokens, but {config_key}={path!r} has {_describe(sd)}."
        )


def load_dinov2_weights(
    model: nn.Module, path: str, model_name: str, config_key: str = "MODEL.DINOV2.WEIGHTS"
) -> None:
    """Load an official DINOv2 or timm checkpoint into a timm ``VisionTransformer`` (strict).

    Args:
        model: the timm ViT built for ``model_name``.
        path: checkpoint file.
        model_name: the configured variant name (for error messages).
        config_key: the config key that named ``path`` (for error messages).

    Raises:
        ValueError: architecture mismatch (names both sides) or missing / unexpected keys.
    """
    from timm.models.vision_transformer import checkpoint_filter_fn

    sd = _read_state_dict(path, config_key)
    _check_compatible(sd, model, model_name, path, config_key)
    official = "mask_token" in sd
    sd = checkpoint_filter_fn(dict(sd), model)
    # timm ViTs built with num_classes=0 have no head; drop classifier weights of timm checkpoints.
    sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"Loading {path} into {model_name}: missing keys {missing}, "
            f"unexpected keys {unexpected}"
        )
    logger.info("Loaded %s DINOv2 weights from %s", "official" if official else "timm", path)


def load_official_hub_model(repo_path: str, model_name: str, weights: str) -> nn.Module:
    """Build the official DINOv2 module from a local clone of facebookresearch/dinov2.

    Args:
        repo_path: directory containing ``hubconf.py``.
        model_name: hub entry point, e.g. ``dinov2_vitb14`` or ``dinov2_vitb14_reg``.
        weights: optional official ``.pth`` loaded with ``strict=True``.

    Returns:
        The official DINOv2 ``DinoVisionTransformer``.
    """
    if not os.path.isfile(os.path.join(repo_path, "hubconf.py")):
        raise FileNotFoundError(f"MODEL.DINOV2.REPO_PATH {repo_path!r} has no hubconf.py")
    hub_name = model_name[:-1] if model_name.endswith("_reg4") else model_name
    model = torch.hub.load(repo_path, hub_name, source="local", pretrained=False)
    if weights:
        sd = _read_state_dict(weights)
        w = sd.get("patch_embed.proj.weight")
        if w is not None and w.shape[0] != model.embed_dim:
            raise ValueError(
                f"DINOv2 checkpoint/model mismatch: MODEL.DINOV2.MODEL_NAME={model_name!r} has "
                f"embed dim {model.embed_dim} but MODEL.DINOV2.WEIGHTS={weights!r} has {_describe(sd)}."
            )
        model.load_state_dict(sd, strict=True)
    return model
