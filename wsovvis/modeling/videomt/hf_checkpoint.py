"""Hugging Face VidEoMT checkpoints (transformers ``VideomtForUniversalSegmentation``, >= 5.4).

A Hugging Face VidEoMT checkpoint is a folder with ``config.json`` and ``model.safetensors`` (or
a hub id such as ``tue-mps/...`` when the network allows). It holds the same DINOv2-reg network
as the official ``.pth`` under other names; this module renames both ways:

Hugging Face name -> wsovvis name (``V.`` = ``backbone.encoder.backbone.``):

* ``embeddings.cls_token`` / ``register_tokens`` -> ``V.cls_token`` / ``V.reg_token``
* ``embeddings.position_embeddings.weight`` (N, C) -> ``V.pos_embed`` (1, N, C)
* ``embeddings.patch_embeddings.projection`` -> ``V.patch_embed.proj``
* ``layers.i.attention.{q,k,v}_proj`` -> ``V.blocks.i.attn.qkv`` (concatenated)
* ``layers.i.attention.out_proj`` -> ``V.blocks.i.attn.proj``
* ``layers.i.layer_scale{1,2}.lambda1`` -> ``V.blocks.i.ls{1,2}.gamma``
* ``layers.i.{norm1,norm2,mlp.fc1,mlp.fc2}`` -> ``V.blocks.i.{same}``; ``layernorm`` -> ``V.norm``
* ``query`` / ``query_updater`` / ``class_predictor`` -> ``backbone.q`` /
  ``backbone.query_updater`` / ``backbone.class_head``
* ``mask_head.fc{1,2,3}`` -> ``backbone.mask_head.{0,2,4}``
* ``upscale_block.block.i.{conv1,conv2,layernorm2d}`` -> ``backbone.upscale.i.{conv1,conv2,norm}``
* ``attn_mask_probs`` -> ``backbone.attn_mask_probs``; ``criterion.empty_weight`` unchanged

``embeddings.mask_token`` (pre-training only) has no wsovvis counterpart: dropped on import,
written as zeros on export. Loading goes through the checkpoint policy: the converter
:class:`HFVidEoMTFormat` is registered with :mod:`wsovvis.checkpoint.formats`, and
:func:`hf_weights_file` turns a folder / hub id given as ``MODEL.WEIGHTS`` into its
``model.safetensors``. The networks compute the same function; the implementations differ in
the input size they accept (see the README): transformers adds its ``position_embeddings`` to a
fixed ``image_size`` grid (inputs must be exactly ``image_size``), wsovvis resamples
``pos_embed`` to any padded input as the official code.
"""

import json
import os
import re
import shutil
import tempfile
from typing import Dict, Mapping, Optional, Tuple

import torch

from wsovvis.checkpoint.formats import ConversionReport, fuse_qkv, register_format_converter

__all__ = [
    "HFVidEoMTFormat",
    "convert_checkpoint_to_hf",
    "export_hf_checkpoint",
    "hf_config_kwargs",
    "hf_to_wsovvis",
    "hf_weights_file",
    "read_safetensors",
    "wsovvis_to_hf",
]

VIT = "backbone.encoder.backbone."
_FIXED = {  # HF name -> wsovvis name (exact keys)
    "embeddings.cls_token": VIT + "cls_token",
    "embeddings.register_tokens": VIT + "reg_token",
    "embeddings.patch_embeddings.projection.weight": VIT + "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": VIT + "patch_embed.proj.bias",
    "layernorm.weight": VIT + "norm.weight",
    "layernorm.bias": VIT + "norm.bias",
    "query.weight": "backbone.q.weight",
    "query_updater.weight": "backbone.query_updater.weight",
    "query_updater.bias": "backbone.query_updater.bias",
    "class_predictor.weight": "backbone.class_head.weight",
    "class_predictor.bias": "backbone.class_head.bias",
    "attn_mask_probs": "backbone.attn_mask_probs",
    "criterion.empty_weight": "criterion.empty_weight",
}
for _i, _j in ((1, 0), (2, 2), (3, 4)):
    for _p in ("weight", "bias"):
        _FIXED[f"mask_head.fc{_i}.{_p}"] = f"backbone.mask_head.{_j}.{_p}"
_POS = "embeddings.position_embeddings.weight"
_MASK_TOKEN = "embeddings.mask_token"
_LAYER = re.compile(r"^layers\.(\d+)\.(.+)$")
_UPSCALE = re.compile(r"^upscale_block\.block\.(\d+)\.(conv1|conv2|layernorm2d)\.(weight|bias)$")
_LAYER_RENAMES = {
    "attention.out_proj.weight": "attn.proj.weight",
    "attention.out_proj.bias": "attn.proj.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
}
_LAYER_SAME = ("norm1.", "norm2.", "mlp.fc1.", "mlp.fc2.")
_FILE_EXT = r"\.(pth|pkl|pt|bin|ckpt|safetensors|json|ya?ml)$"  # local files, never hub ids


def hf_to_wsovvis(
    sd: Mapping[str, torch.Tensor],
) -> Tuple[Dict[str, torch.Tensor], ConversionReport]:
    """Rename a Hugging Face VidEoMT state dict to wsovvis names.

    Args:
        sd: ``VideomtForUniversalSegmentation`` tensors.

    Returns:
        ``(state dict, report)``.

    Raises:
        ValueError: an unknown key, or a layer without all of its q/k/v tensors.
    """
    out: Dict[str, torch.Tensor] = {}
    ignored: Dict[str, str] = {}
    qkv: Dict[int, Dict[str, torch.Tensor]] = {}
    for key, v in sd.items():
        m = _LAYER.match(key)
        u = _UPSCALE.match(key)
        if key in _FIXED:
            out[_FIXED[key]] = v
        elif key == _POS:
            out[VIT + "pos_embed"] = v[None]
        elif key == _MASK_TOKEN:
            ignored[key] = "mask token (pre-training only)"
        elif u:
            name = "norm" if u.group(2) == "layernorm2d" else u.group(2)
            out[f"backbone.upscale.{u.group(1)}.{name}.{u.group(3)}"] = v
        elif m:
            i, name = int(m.group(1)), m.group(2)
            p = re.fullmatch(r"attention\.([qkv])_proj\.(weight|bias)", name)
            if p:
                qkv.setdefault(i, {})[p.group(1) + p.group(2)] = v
            elif name in _LAYER_RENAMES:
                out[f"{VIT}blocks.{i}.{_LAYER_RENAMES[name]}"] = v
            elif name.startswith(_LAYER_SAME):
                out[f"{VIT}blocks.{i}.{name}"] = v
            else:
                raise ValueError(f"unknown Hugging Face VidEoMT tensor {key}")
        else:
            raise ValueError(f"unknown Hugging Face VidEoMT tensor {key}")
    out.update(fuse_qkv(qkv, ("weight", "bias"), VIT + "blocks.{i}.attn.qkv.{kind}",
                        "Hugging Face VidEoMT layer"))
    report = ConversionReport(
        format="Hugging Face VidEoMT",
        converted=len(out),
        ignored=ignored,
        notes=["transformers VideomtForUniversalSegmentation names -> wsovvis"],
    )
    return out, report


def wsovvis_to_hf(sd: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a wsovvis / official DINOv2 VidEoMT state dict to Hugging Face names.

    Args:
        sd: wsovvis model tensors (DINOv2 trunk).

    Returns:
        The ``VideomtForUniversalSegmentation`` state dict (``mask_token`` zeros, all tensors
        contiguous).

    Raises:
        ValueError: a DINOv3 (RoPE) trunk, which transformers' VidEoMT does not have, or a
            tensor without a Hugging Face counterpart.
    """
    if VIT + "pos_embed" not in sd:
        raise ValueError(
            "only DINOv2 VidEoMT (learned pos_embed) has a Hugging Face VideomtForUniversal"
            "Segmentation counterpart; this checkpoint has no pos_embed (DINOv3 RoPE trunk?)"
        )
    inv = {v: k for k, v in _FIXED.items()}
    inv_layer = {v: k for k, v in _LAYER_RENAMES.items()}
    out: Dict[str, torch.Tensor] = {}
    for key, v in sd.items():
        block = re.match(rf"^{re.escape(VIT)}blocks\.(\d+)\.(.+)$", key)
        up = re.match(r"^backbone\.upscale\.(\d+)\.(conv1|conv2|norm)\.(weight|bias)$", key)
        if key in inv:
            out[inv[key]] = v
        elif key == VIT + "pos_embed":
            out[_POS] = v[0]
        elif up:
            name = "layernorm2d" if up.group(2) == "norm" else up.group(2)
            out[f"upscale_block.block.{up.group(1)}.{name}.{up.group(3)}"] = v
        elif block and block.group(2) in ("attn.qkv.weight", "attn.qkv.bias"):
            kind = block.group(2).rsplit(".", 1)[1]
            for part, t in zip("qkv", v.chunk(3)):
                out[f"layers.{block.group(1)}.attention.{part}_proj.{kind}"] = t
        elif block and block.group(2) in inv_layer:
            out[f"layers.{block.group(1)}.{inv_layer[block.group(2)]}"] = v
        elif block and block.group(2).startswith(_LAYER_SAME):
            out[f"layers.{block.group(1)}.{block.group(2)}"] = v
        else:
            raise ValueError(f"{key} has no Hugging Face VidEoMT counterpart")
    out[_MASK_TOKEN] = torch.zeros_like(out["embeddings.cls_token"])
    return {k: v.detach().contiguous() for k, v in out.items()}


class HFVidEoMTFormat:
    """Checkpoint-policy converter for Hugging Face VidEoMT state dicts."""

    name = "Hugging Face VidEoMT"

    def detect(self, sd: Mapping[str, torch.Tensor]) -> bool:
        return "embeddings.patch_embeddings.projection.weight" in sd and "query.weight" in sd

    def convert(self, sd):
        return hf_to_wsovvis(sd)


register_format_converter(HFVidEoMTFormat())


def read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file (no pickle: nothing in it can run code).

    Raises:
        ValueError: the file is not a readable safetensors file (message names it).
    """
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except Exception as e:
        raise ValueError(f"cannot read safetensors checkpoint {path}: {e}") from e


def hf_weights_file(path: str) -> Optional[str]:
    """The ``model.safetensors`` behind a Hugging Face VidEoMT ``MODEL.WEIGHTS`` value.

    Args:
        path: a folder with ``config.json`` + ``model.safetensors``, or a hub id
            (``owner/name``, optionally ``hf://owner/name``) that is not a local path.

    Returns:
        The weights file, or None when ``path`` is not a Hugging Face checkpoint (a local file,
        a URL, an empty string).

    Raises:
        ValueError: a folder/hub checkpoint that is not a single-file VidEoMT checkpoint, or a
            hub id that cannot be downloaded (one message naming it).
    """
    if (
        not path
        or os.path.isfile(path)
        or re.match(r"^[a-z]+://", path)
        and not path.startswith("hf://")
    ):
        return None
    hub_like = re.fullmatch(r"[\w-][\w.-]*/[\w.-]+", path) and not re.search(_FILE_EXT, path)
    if path.startswith("hf://") or (hub_like and not os.path.exists(path)):
        repo = path[len("hf://") :] if path.startswith("hf://") else path
        try:
            from huggingface_hub import snapshot_download

            path = snapshot_download(repo, allow_patterns=["config.json", "*.safetensors*"])
        except Exception as e:
            raise ValueError(
                f"cannot download Hugging Face checkpoint {repo}: {type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}. Offline? Download the folder "
                "elsewhere and pass it as MODEL.WEIGHTS /path/to/folder"
            ) from None
    if not os.path.isdir(path):
        return None
    config = os.path.join(path, "config.json")
    weights = os.path.join(path, "model.safetensors")
    if not os.path.isfile(config) or not os.path.isfile(weights):
        raise ValueError(
            f"{path} is a folder but not a Hugging Face checkpoint with config.json and "
            "model.safetensors (sharded checkpoints are not supported)"
        )
    with open(config) as f:
        model_type = json.load(f).get("model_type")
    if model_type != "videomt":
        raise ValueError(f"{config}: model_type is {model_type!r}, not 'videomt'")
    return weights


def hf_config_kwargs(model) -> Dict[str, object]:
    """``VideomtConfig`` arguments describing a wsovvis DINOv2 ``WSVidEoMT`` (or its network).

    Args:
        model: ``WSVidEoMT`` or :class:`~wsovvis.modeling.videomt.network.VidEoMTNetwork`.

    Returns:
        keyword arguments for ``transformers.VideomtConfig``.
    """
    net = getattr(model, "backbone", model)
    vit = net.encoder.backbone
    if getattr(vit, "pos_embed", None) is None:
        raise ValueError("Hugging Face VideomtForUniversalSegmentation has no DINOv3 (RoPE) trunk")
    blk = vit.blocks[0]
    patch = vit.patch_embed.patch_size[0]
    ratio, rest = divmod(blk.mlp.fc1.out_features, vit.embed_dim)
    if rest:
        raise ValueError("transformers' VidEoMT needs an integer MLP ratio")
    return {
        "hidden_size": vit.embed_dim,
        "num_hidden_layers": len(vit.blocks),
        "num_attention_heads": blk.attn.num_heads,
        "mlp_ratio": ratio,
        "layer_norm_eps": vit.norm.eps,
        "image_size": vit.patch_embed.grid_size[0] * patch,
        "patch_size": patch,
        "num_blocks": net.num_blocks,
        "num_queries": net.num_queries,
        "num_labels": net.num_classes,
        "num_register_tokens": vit.reg_token.shape[1],
        "num_upscale_blocks": len(net.upscale),
        "hidden_act": "gelu",
    }


def export_hf_checkpoint(model, out_dir: str) -> str:
    """Write a wsovvis DINOv2 VidEoMT as a Hugging Face checkpoint folder (atomically).

    ``transformers.VideomtForUniversalSegmentation.from_pretrained(out_dir)`` loads it.

    Args:
        model: ``WSVidEoMT`` with the weights to export.
        out_dir: destination folder (replaced if it exists).

    Returns:
        ``out_dir``.
    """
    from safetensors.torch import save_file
    from transformers import VideomtConfig

    if getattr(model.backbone.encoder.backbone, "pos_embed", None) is None:
        raise ValueError("Hugging Face VideomtForUniversalSegmentation has no DINOv3 (RoPE) trunk")
    if model.backbone.norm_queries:
        raise ValueError(
            "NORM_QUERIES models propagate normalised queries; transformers' VidEoMT does not"
        )
    sd = wsovvis_to_hf(model.state_dict())
    config = VideomtConfig(**hf_config_kwargs(model))
    config.architectures = ["VideomtForUniversalSegmentation"]
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".hf-videomt-", dir=parent)
    try:
        config.save_pretrained(tmp)
        save_file(sd, os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def convert_checkpoint_to_hf(cfg, src: str, out_dir: str, trusted=()) -> Dict[str, object]:
    """Official / wsovvis VidEoMT checkpoint -> Hugging Face checkpoint folder.

    The model is built from ``cfg`` (on CPU, no ``VIT_WEIGHTS``) with ``IMG_SIZE`` and
    ``NUM_CLASSES`` taken from the checkpoint, loaded strictly, and exported with
    :func:`export_hf_checkpoint`.

    Args:
        cfg: a wsovvis ``WSVidEoMT`` config of the same architecture (DINOv2 trunk).
        src: ``.pth`` (official or wsovvis), ``.safetensors`` or Hugging Face folder.
        out_dir: destination folder.
        trusted: files that may be unpickled in full.

    Returns:
        ``{"img_size": int, "num_classes": int}``.

    Raises:
        ValueError / KeyError: unreadable input or tensors that do not fit ``cfg``.
    """
    from detectron2.modeling import build_model

    import wsovvis.modeling  # noqa: F401  (registers WSVidEoMT)
    from wsovvis.checkpoint.formats import convert_to_wsovvis

    from .checkpoint import infer_img_size, read_checkpoint

    weights = hf_weights_file(src)
    if weights or src.endswith(".safetensors"):
        sd = read_safetensors(weights or src)
    else:
        sd = read_checkpoint(src, trusted)
    sd, _ = convert_to_wsovvis(sd)
    if "backbone.class_head.weight" not in sd:
        raise KeyError(f"{src}: backbone.class_head.weight missing (not a VidEoMT checkpoint?)")
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.VIDEOMT.IMG_SIZE = infer_img_size(sd, cfg.MODEL.VIDEOMT.PATCH_SIZE)
    cfg.MODEL.VIDEOMT.NUM_CLASSES = sd["backbone.class_head.weight"].shape[0] - 1
    cfg.MODEL.VIDEOMT.VIT_WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    own = model.state_dict()
    optional = {"criterion.empty_weight", "backbone.attn_mask_probs"}
    missing = sorted(set(own) - set(sd) - optional)
    unexpected = sorted(set(sd) - set(own))
    bad = sorted(k for k in set(sd) & set(own) if sd[k].shape != own[k].shape)
    if missing or unexpected or bad:
        raise ValueError(
            f"{src} does not fit {cfg.MODEL.VIDEOMT.MODEL_NAME}: missing {missing}, "
            f"unexpected {unexpected}, shape mismatch {bad}"
        )
    model.load_state_dict(sd, strict=False)
    export_hf_checkpoint(model, out_dir)
    return {
        "img_size": cfg.MODEL.VIDEOMT.IMG_SIZE,
        "num_classes": cfg.MODEL.VIDEOMT.NUM_CLASSES,
    }
