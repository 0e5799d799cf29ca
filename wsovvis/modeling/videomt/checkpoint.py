"""Load official VidEoMT checkpoints (tue-mps/videomt ``.pth``) into :class:`WSVidEoMT`.

The wsovvis module tree uses the official key names (``backbone.encoder.backbone.*``,
``backbone.q``, ``backbone.query_updater``, ``backbone.class_head``, ``backbone.mask_head.{0,2,4}``,
``backbone.upscale.*``, ``backbone.attn_mask_probs``, ``criterion.empty_weight``), so loading is a
checked ``load_state_dict``:

* the reference grid of ``pos_embed`` is taken from the checkpoint (``IMG_SIZE`` is inferred from
  ``pos_embed.shape[1]``: 1600 tokens -> 640, 6400 -> 1280);
* class-dependent tensors (``class_head``, ``criterion.empty_weight``) whose size differs from the
  model (another vocabulary) keep their fresh initialisation, with a log line;
* any other missing, unexpected or mis-shaped key is an error listing the keys.
"""

import logging
import math
import os
from typing import Dict, Iterable, Mapping, Union

import torch
from torch import nn

from wsovvis.utils.io import atomic_write, torch_load_trusted

__all__ = [
    "POS_EMBED_KEY",
    "read_checkpoint",
    "infer_img_size",
    "load_videomt_checkpoint",
    "convert_videomt_checkpoint",
]

logger = logging.getLogger(__name__)

POS_EMBED_KEY = "backbone.encoder.backbone.pos_embed"
CLASS_DEPENDENT_KEYS = (
    "backbone.class_head.weight",
    "backbone.class_head.bias",
    "criterion.empty_weight",
)
# buffers without learned content: tolerated when absent from a checkpoint
OPTIONAL_KEYS = ("criterion.empty_weight", "backbone.attn_mask_probs")


def read_checkpoint(checkpoint: Union[str, Mapping], trusted: Iterable[str] = ()
                    ) -> Dict[str, torch.Tensor]:
    """State dict from a path or an already-loaded object (``{"model": sd}`` or a raw sd).

    A file is read with ``weights_only=True`` and the allow-list of
    :func:`wsovvis.utils.io.torch_load_trusted`; other Python objects are refused unless the file
    is in ``trusted`` (never unpickled in full otherwise: that could run code).

    Args:
        checkpoint: ``.pth`` path, or the object ``torch.load`` returned.
        trusted: files that may be unpickled in full (``--trust-checkpoint``).

    Returns:
        The state dict (a new dict; the tensors are not copied).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file cannot be unpickled, or the object is not a state dict of
            tensors (the message names the file).
    """
    where = f"checkpoint {checkpoint}" if isinstance(checkpoint, str) else "checkpoint object"
    if isinstance(checkpoint, str):
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"VidEoMT checkpoint not found: {checkpoint}")
        try:
            obj = torch_load_trusted(checkpoint, trusted)
        except Exception as e:  # truncated / not a torch file
            raise ValueError(f"cannot read VidEoMT {where}: {e}") from e
    else:
        obj = checkpoint
    sd = obj.get("model", obj) if isinstance(obj, Mapping) else None
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{where} is neither {{'model': state_dict}} nor a state dict of tensors")
    return dict(sd)


def infer_img_size(state_dict: Mapping[str, torch.Tensor], patch_size: int = 16) -> int:
    """Reference image size of a VidEoMT checkpoint from its ``pos_embed`` (patch tokens only).

    Args:
        state_dict: official-format state dict.
        patch_size: ViT patch size (16 for VidEoMT).

    Returns:
        ``sqrt(number of pos_embed tokens) * patch_size`` (e.g. 1600 tokens -> 640).
    """
    if POS_EMBED_KEY not in state_dict:
        raise KeyError(f"{POS_EMBED_KEY} not in checkpoint (not an official VidEoMT state dict?)")
    num = state_dict[POS_EMBED_KEY].shape[1]
    side = math.isqrt(num)
    if side * side != num:
        raise ValueError(f"pos_embed has {num} tokens, not a square grid")
    return side * patch_size


def load_videomt_checkpoint(model: nn.Module, checkpoint: Union[str, Mapping]) -> Dict[str, list]:
    """Load an official-format VidEoMT checkpoint into a ``WSVidEoMT`` model, strictly.

    Args:
        model: a :class:`~wsovvis.modeling.videomt.meta_arch.WSVidEoMT`.
        checkpoint: path to a ``.pth`` or a loaded ``{"model": sd}`` / state dict.

    Returns:
        ``{"reinitialized": [...], "absent_optional": [...]}`` key lists.

    Raises:
        KeyError: missing / unexpected keys (other than class-dependent / optional ones).
        ValueError: shape mismatches outside the class head.
    """
    sd = read_checkpoint(checkpoint)
    where = f"checkpoint {checkpoint}" if isinstance(checkpoint, str) else "checkpoint"
    own = model.state_dict()
    if POS_EMBED_KEY in sd and sd[POS_EMBED_KEY].shape != own[POS_EMBED_KEY].shape:
        img = model.backbone.encoder.set_reference_grid(sd[POS_EMBED_KEY].shape[1])
        logger.info(
            "VidEoMT: pos_embed reference grid taken from the checkpoint (IMG_SIZE=%d)", img
        )
        own = model.state_dict()
    reinit = [
        k for k in CLASS_DEPENDENT_KEYS if k in sd and k in own and sd[k].shape != own[k].shape
    ]
    if reinit:
        k_ckpt = (
            sd["backbone.class_head.weight"].shape[0] - 1
            if "backbone.class_head.weight" in sd
            else "?"
        )
        logger.warning(
            "VidEoMT: class head re-initialised (checkpoint has %s classes, model has %d): %s",
            k_ckpt,
            model.backbone.num_classes,
            ", ".join(reinit),
        )
        for k in reinit:
            sd.pop(k)
    missing = sorted(set(own) - set(sd) - set(reinit) - set(OPTIONAL_KEYS))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise KeyError(
            f"{where} does not match the VidEoMT model:\n"
            f"  missing ({len(missing)}): {missing}\n  unexpected ({len(unexpected)}): {unexpected}"
        )
    bad = [
        f"{k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)}"
        for k in sd
        if sd[k].shape != own[k].shape
    ]
    if bad:
        raise ValueError(f"{where}: shapes do not match the model:\n  " + "\n  ".join(bad))
    absent = sorted(set(OPTIONAL_KEYS) & (set(own) - set(sd)) - set(reinit))
    model.load_state_dict(sd, strict=False)
    return {"reinitialized": reinit, "absent_optional": absent}


def convert_videomt_checkpoint(cfg, src: str, dst: str, trusted: Iterable[str] = ()
                               ) -> Dict[str, object]:
    """Validate an official checkpoint against a wsovvis config and write a loadable copy.

    The model is built from ``cfg`` on CPU with ``MODEL.VIDEOMT.IMG_SIZE`` taken from the
    checkpoint and no DINOv2 ``VIT_WEIGHTS`` (the size configs name a DINOv2 file that the
    checkpoint replaces anyway; it need not exist), the checkpoint is loaded strictly
    (:func:`load_videomt_checkpoint`), and the resulting state dict (class head freshly
    initialised if the vocabulary differs) is saved atomically as ``{"model": state_dict}`` for
    ``MODEL.WEIGHTS``.

    Args:
        cfg: a wsovvis config for ``WSVidEoMT`` (not modified).
        src: official ``.pth``.
        dst: output ``.pth``.
        trusted: files that may be unpickled in full (see :func:`read_checkpoint`).

    Returns:
        ``{"img_size": int, "reinitialized": [...], "absent_optional": [...]}``.
    """
    from detectron2.modeling import build_model

    import wsovvis.modeling  # noqa: F401  (registers WSVidEoMT)

    sd = read_checkpoint(src, trusted)
    cfg = cfg.clone()
    cfg.defrost()
    img_size = infer_img_size(sd, cfg.MODEL.VIDEOMT.PATCH_SIZE)
    if img_size != cfg.MODEL.VIDEOMT.IMG_SIZE:
        logger.warning(
            "checkpoint IMG_SIZE=%d but config MODEL.VIDEOMT.IMG_SIZE=%d: train/test with "
            "MODEL.VIDEOMT.IMG_SIZE %d so the pos_embed shape matches",
            img_size,
            cfg.MODEL.VIDEOMT.IMG_SIZE,
            img_size,
        )
    cfg.MODEL.VIDEOMT.IMG_SIZE = img_size
    cfg.MODEL.VIDEOMT.VIT_WEIGHTS = ""  # every ViT tensor comes from the checkpoint
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    info = load_videomt_checkpoint(model, sd)
    atomic_write(dst, lambda f: torch.save({"model": model.state_dict()}, f), mode="wb")
    return {"img_size": img_size, **info}
