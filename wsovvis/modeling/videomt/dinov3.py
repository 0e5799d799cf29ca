"""DINOv3 trunks of VidEoMT: official/Hugging Face DINOv3 names <-> wsovvis (timm ``Eva``) names.

The official DINOv3 VidEoMT checkpoints (``dinov3_online/*.pth``) hold a Hugging Face
``DINOv3ViTModel`` under ``backbone.encoder.backbone.`` with two attributes renamed to timm's
(``embeddings -> patch_embed``, ``layer -> blocks``); a plain Hugging Face DINOv3 checkpoint
(e.g. ``facebook/dinov3-vitl16-pretrain-lvd1689m``) uses ``embeddings.*`` / ``layer.*``. wsovvis
runs the trunk as a timm ``Eva`` (``vit_*_patch16_dinov3_qkvb``), whose names differ:

=================================================  ==========================================
official / Hugging Face                            wsovvis (timm Eva)
=================================================  ==========================================
``patch_embed.cls_token`` / ``register_tokens``    ``cls_token`` / ``reg_token``
``patch_embed.patch_embeddings.{weight,bias}``     ``patch_embed.proj.{weight,bias}``
``blocks.i.attention.{q,k,v}_proj.weight``         ``blocks.i.attn.qkv.weight`` (concatenated)
``blocks.i.attention.q_proj.bias`` / ``v_proj``    ``blocks.i.attn.q_bias`` / ``v_bias``
``blocks.i.attention.o_proj``                      ``blocks.i.attn.proj``
``blocks.i.layer_scale{1,2}.lambda1``              ``blocks.i.gamma_{1,2}``
``blocks.i.mlp.{up,down}_proj``                    ``blocks.i.mlp.fc{1,2}``
=================================================  ==========================================

``norm1``, ``norm2`` and the final ``norm`` keep their names. A ``k_proj.bias`` (DINOv3 has
none; a non-zero one would add the same amount to every attention logit of a query row, which
softmax ignores) and the unused ``mask_token`` are dropped and reported. The converter is
registered with the checkpoint policy (:mod:`wsovvis.checkpoint.formats`), so an official DINOv3
VidEoMT file loads as ``MODEL.WEIGHTS`` like a wsovvis one.
"""

import re
from typing import Dict, Mapping, Tuple

import torch

from wsovvis.checkpoint.formats import ConversionReport, fuse_qkv, register_format_converter

__all__ = [
    "OfficialDinov3VidEoMTFormat",
    "dinov3_official_to_wsovvis",
    "dinov3_wsovvis_to_official",
    "hf_dinov3_to_timm",
    "load_dinov3_weights",
]

VIT = "backbone.encoder.backbone."
_BLOCK = re.compile(r"^(blocks|layer|model\.layer)\.(\d+)\.(.+)$")  # model.layer: transformers 5
_RENAMES = {
    "attention.o_proj.weight": "attn.proj.weight",
    "attention.o_proj.bias": "attn.proj.bias",
    "attention.q_proj.bias": "attn.q_bias",
    "attention.v_proj.bias": "attn.v_bias",
    "layer_scale1.lambda1": "gamma_1",
    "layer_scale2.lambda1": "gamma_2",
    "mlp.up_proj.weight": "mlp.fc1.weight",
    "mlp.up_proj.bias": "mlp.fc1.bias",
    "mlp.down_proj.weight": "mlp.fc2.weight",
    "mlp.down_proj.bias": "mlp.fc2.bias",
}
_EMBED = {
    "cls_token": "cls_token",
    "register_tokens": "reg_token",
    "patch_embeddings.weight": "patch_embed.proj.weight",
    "patch_embeddings.bias": "patch_embed.proj.bias",
}


def hf_dinov3_to_timm(sd: Mapping[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], Dict]:
    """Rename a DINOv3 trunk state dict (HF or official-VidEoMT names, no prefix) to timm Eva.

    Args:
        sd: tensors named ``embeddings.*``/``patch_embed.*``, ``layer.i.*`` (``model.layer.i.*``
            in transformers 5) / ``blocks.i.*``, ``norm.*`` (``rope_embeddings.*`` dropped).

    Returns:
        ``(timm state dict, {dropped key: reason})``.

    Raises:
        ValueError: an unknown key, or a block without all of its q/k/v weights.
    """
    out: Dict[str, torch.Tensor] = {}
    ignored: Dict[str, str] = {}
    qkv: Dict[int, Dict[str, torch.Tensor]] = {}
    for key, v in sd.items():
        head, _, rest = key.partition(".")
        if head in ("embeddings", "patch_embed") and rest in _EMBED:
            out[_EMBED[rest]] = v
        elif head in ("embeddings", "patch_embed") and rest == "mask_token":
            ignored[key] = "DINOv3 mask token (pre-training only)"
        elif head == "rope_embeddings":
            ignored[key] = "RoPE frequencies (recomputed)"
        elif head == "norm":
            out[key] = v
        elif _BLOCK.match(key):
            _, idx, name = _BLOCK.match(key).groups()
            i = int(idx)
            m = re.fullmatch(r"attention\.([qkv])_proj\.weight", name)
            if m:
                qkv.setdefault(i, {})[m.group(1) + "weight"] = v
            elif name == "attention.k_proj.bias":
                ignored[key] = "k bias (softmax-invariant; DINOv3 has none)"
            elif name in _RENAMES:
                out[f"blocks.{i}.{_RENAMES[name]}"] = v
            elif name.startswith(("norm1.", "norm2.")):
                out[f"blocks.{i}.{name}"] = v
            else:
                raise ValueError(f"unknown DINOv3 tensor {key}")
        else:
            raise ValueError(f"unknown DINOv3 tensor {key}")
    out.update(fuse_qkv(qkv, ("weight",), "blocks.{i}.attn.qkv.{kind}", "DINOv3 block"))
    return out, ignored


def dinov3_official_to_wsovvis(
    sd: Mapping[str, torch.Tensor],
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Official DINOv3 VidEoMT state dict -> wsovvis names (everything outside the ViT as is).

    Args:
        sd: official model tensors (``backbone.encoder.backbone.*`` in HF DINOv3 layout).

    Returns:
        ``(state dict, report)``.
    """
    vit = {k[len(VIT) :]: v for k, v in sd.items() if k.startswith(VIT)}
    timm_sd, ignored = hf_dinov3_to_timm(vit)
    out = {k: v for k, v in sd.items() if not k.startswith(VIT)}
    out.update({VIT + k: v for k, v in timm_sd.items()})
    report = ConversionReport(
        format="official VidEoMT DINOv3",
        converted=len(out),
        ignored={VIT + k: r for k, r in ignored.items()},
        notes=["DINOv3 trunk renamed from Hugging Face names to timm Eva"],
    )
    return out, report


def dinov3_wsovvis_to_official(sd: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """wsovvis DINOv3 VidEoMT state dict -> official names (inverse of the above, no k bias).

    Args:
        sd: wsovvis model tensors.

    Returns:
        The state dict the official ``VidEoMT_CLASS`` (DINOv3, unfused q/k/v) loads.
    """
    inv_embed = {v: k for k, v in _EMBED.items()}
    inv = {v: k for k, v in _RENAMES.items()}
    out: Dict[str, torch.Tensor] = {}
    for key, v in sd.items():
        if not key.startswith(VIT):
            out[key] = v
            continue
        name = key[len(VIT) :]
        m = _BLOCK.match(name)
        if name in inv_embed:
            out[VIT + "patch_embed." + inv_embed[name]] = v
        elif m and m.group(3) == "attn.qkv.weight":
            for part, w in zip("qkv", v.chunk(3)):
                out[f"{VIT}blocks.{m.group(2)}.attention.{part}_proj.weight"] = w
        elif m and m.group(3) in inv:
            out[f"{VIT}blocks.{m.group(2)}.{inv[m.group(3)]}"] = v
        else:
            out[key] = v  # norm1/norm2/norm
    return out


class OfficialDinov3VidEoMTFormat:
    """Checkpoint-policy converter for official DINOv3 VidEoMT files (see the module docs)."""

    name = "official VidEoMT DINOv3"

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        return VIT + "patch_embed.patch_embeddings.weight" in sd

    def convert(self, sd):
        return dinov3_official_to_wsovvis(sd)


register_format_converter(OfficialDinov3VidEoMTFormat())


def load_dinov3_weights(vit, path: str, config_key: str = "MODEL.VIDEOMT.VIT_WEIGHTS") -> None:
    """Load pre-trained DINOv3 trunk weights into the timm Eva of :func:`build_vit` (strict).

    Accepts a Hugging Face DINOv3 file (``model.safetensors`` of e.g.
    ``facebook/dinov3-vitl16-pretrain-lvd1689m``, the init of the official recipe), an original
    DINOv3 ``.pth`` (converted with timm's ``checkpoint_filter_fn``) or a timm file.

    Args:
        vit: the timm ``Eva``.
        path: weights file (``.safetensors`` or torch).
        config_key: the config key naming ``path`` (error messages).

    Raises:
        ValueError: unreadable file or keys that do not fit the model.
    """
    import os

    from timm.models.eva import checkpoint_filter_fn

    from wsovvis.utils.io import torch_load_trusted

    if not os.path.isfile(path):
        raise ValueError(f"{config_key}: DINOv3 weights file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            sd = load_file(path)
        else:
            sd = torch_load_trusted(path, ())
            sd = sd.get("model", sd.get("state_dict", sd)) if isinstance(sd, dict) else sd
    except Exception as e:
        raise ValueError(f"{config_key}: cannot read {path}: {e}") from e
    if any(k.startswith(("embeddings.", "layer.", "model.layer.")) for k in sd):
        sd, _ = hf_dinov3_to_timm(sd)
    elif "storage_tokens" in sd or any(".attn.qkv.bias_mask" in k for k in sd):
        sd = checkpoint_filter_fn(dict(sd), vit)
    sd = {k: v for k, v in sd.items() if not k.startswith(("head.", "rope.", "mask_token"))}
    missing, unexpected = vit.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("k_bias")]
    if missing or unexpected:
        raise ValueError(
            f"{config_key}={path} does not fit the DINOv3 ViT: missing {missing}, "
            f"unexpected {unexpected}"
        )
