"""Build the official tue-mps/videomt backbone from a user-supplied checkout (benchmarks only).

Nothing of the official code lives in this repository: the caller passes the path of a checkout
of https://github.com/tue-mps/videomt. Only ``videomt/modeling/backbone/`` is imported, as a
private package (the checkout's ``videomt/__init__.py`` pulls in its data/evaluation stack and
its meta-architectures). The official module needs ``einops`` and ``transformers`` (and
``detectron2``) importable; when anything is missing, :class:`OfficialUnavailable` says what.

The official ``ViT`` wrapper calls ``timm.create_model(..., pretrained=True)``; while it is built,
``timm.create_model`` is forced to ``pretrained=False`` (no download), since the caller loads
the weights of the wsovvis network into it anyway (the state-dict keys are identical).
"""

import contextlib
import importlib
import os
import sys
import types
from typing import Sequence

__all__ = [
    "OfficialUnavailable",
    "build_official_backbone",
    "official_commit",
    "official_style_vis",
]

_PKG = "_official_videomt_backbone"


class OfficialUnavailable(RuntimeError):
    """The official checkout is missing or its backbone cannot be imported/built."""


def _backbone_dir(path: str) -> str:
    d = os.path.join(os.path.abspath(os.path.expanduser(path)), "videomt", "modeling", "backbone")
    if not os.path.isfile(os.path.join(d, "videomt.py")):
        raise OfficialUnavailable(
            f"{path!r} is not a tue-mps/videomt checkout (no videomt/modeling/backbone/videomt.py)"
        )
    return d


def official_commit(path: str) -> str:
    """Best-effort commit id of the checkout (``.git/HEAD``), or ``"unknown"``."""
    git = os.path.join(path, ".git")
    try:
        with open(os.path.join(git, "HEAD")) as f:
            head = f.read().strip()
        if head.startswith("ref: "):
            with open(os.path.join(git, head[5:])) as f:
                head = f.read().strip()
        return head[:12]
    except OSError:
        return "unknown"


def _import_official_module(path: str) -> types.ModuleType:
    backbone_dir = _backbone_dir(path)
    pkg = sys.modules.get(_PKG)
    if pkg is not None:
        if list(pkg.__path__) != [backbone_dir]:
            raise OfficialUnavailable(
                f"an official backbone from {pkg.__path__[0]} is already imported in this process"
            )
    else:
        pkg = types.ModuleType(_PKG)
        pkg.__path__ = [backbone_dir]
        sys.modules[_PKG] = pkg
    try:
        return importlib.import_module(f"{_PKG}.videomt")
    except Exception as e:  # ImportError, registry clashes, syntax of a future version, ...
        for name in [m for m in sys.modules if m == _PKG or m.startswith(_PKG + ".")]:
            del sys.modules[name]
        raise OfficialUnavailable(
            f"importing the official backbone from {backbone_dir} failed: "
            f"{type(e).__name__}: {e} (it needs einops, transformers and detectron2)"
        ) from e


@contextlib.contextmanager
def _no_pretrained_download():
    import timm

    create = timm.create_model

    def create_without_download(*args, **kwargs):
        kwargs["pretrained"] = False
        return create(*args, **kwargs)

    timm.create_model = create_without_download
    try:
        yield
    finally:
        timm.create_model = create


@contextlib.contextmanager
def _random_hf_dinov3(vit):
    if vit is None:
        yield
        return
    import transformers
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    blk = vit.blocks[0]
    config = DINOv3ViTConfig(
        hidden_size=vit.embed_dim,
        num_hidden_layers=len(vit.blocks),
        num_attention_heads=blk.attn.num_heads,
        intermediate_size=blk.mlp.fc1.out_features,
        num_register_tokens=vit.reg_token.shape[1],
        patch_size=16,
        rope_theta=100.0,
        query_bias=True,
        key_bias=False,
        value_bias=True,
        layer_norm_eps=blk.norm1.eps,
    )
    original = transformers.AutoModel.from_pretrained

    def from_config(*args, **kwargs):
        return DINOv3ViTModel(config)

    transformers.AutoModel.from_pretrained = from_config
    try:
        yield
    finally:
        transformers.AutoModel.from_pretrained = original


def build_official_backbone(
    path: str,
    *,
    model_name: str,
    img_size: int,
    num_classes: int,
    num_queries: int,
    segmenter_blocks: Sequence[int],
    norm_queries: bool = False,
    dinov3_like=None,
):
    """The official ``VidEoMT_CLASS`` network with random weights (load a state dict into it).

    For DINOv3 (``"v3"`` in ``model_name``) the official code calls
    ``transformers.AutoModel.from_pretrained(model_name)``; here that returns a random Hugging
    Face ``DINOv3ViTModel`` with the architecture of ``dinov3_like`` (the wsovvis timm Eva), so no
    download happens and tiny test trunks work too.

    Args:
        path: checkout of tue-mps/videomt.
        model_name: timm model id (e.g. ``vit_small_patch14_reg4_dinov2``).
        img_size: ``IMG_SIZE`` (pos-embed reference grid).
        num_classes: foreground classes K.
        num_queries: Q.
        segmenter_blocks: indices of the query blocks.
        norm_queries: ``NORM_QUERIES``.
        dinov3_like: DINOv3 only: the wsovvis trunk whose architecture the HF model copies.

    Returns:
        The official module; call it as ``net(images (1, 3, H, W), resume=bool)``.

    Raises:
        OfficialUnavailable: the checkout is missing, or importing/building it failed.
    """
    mod = _import_official_module(path)
    cls = getattr(mod, "VidEoMT_CLASS", None)
    if cls is None:
        raise OfficialUnavailable(f"{mod.__file__} has no VidEoMT_CLASS (unsupported version)")
    try:
        with _no_pretrained_download(), _random_hf_dinov3(dinov3_like):
            return cls(
                img_size=img_size,
                num_classes=num_classes,
                name=model_name,
                num_frames=1,
                num_q=num_queries,
                segmenter_blocks=list(segmenter_blocks),
                norm_queries=norm_queries,
            )
    except Exception as e:
        raise OfficialUnavailable(
            f"building the official backbone failed: {type(e).__name__}: {e}"
        ) from e


def official_style_vis(backbone, images, image_size, output_size, topk):
    """Upstream's VIS test path (``videomt_online.forward``, window 1) over a whole video.

    Re-stated from the official ``run_window_inference`` + ``post_processing`` +
    ``inference_video_vis``, with the official backbone: all frames are normalised and padded
    into one tensor up front, each frame's outputs are kept on the CPU as float32
    (``(1, Q, T, h, w)`` masks), the class logits are averaged, the flattened top-k picked and the
    selected masks of all frames resized at once, then ``> 0``.

    Args:
        backbone: the official module (:func:`build_official_backbone`), eval mode.
        images: (T, 3, H_pad, W_pad) normalised padded frames.
        image_size: (H, W) before padding.
        output_size: original (H, W).
        topk: tracks kept (``MAX_NUM``).

    Returns:
        ``(scores (k,), labels (k,), masks (k, T, H, W) bool)``.
    """
    import torch
    import torch.nn.functional as F

    logits, masks = [], []
    for t in range(images.shape[0]):
        out = backbone(images[t : t + 1], resume=t > 0)
        logits.append(out["pred_logits"].float().cpu())
        masks.append(out["pred_masks"].float().cpu())
    pred_logits = torch.cat(logits, dim=1)[0].mean(0)  # (Q, K + 1)
    pred_masks = torch.cat(masks, dim=2)[0]  # (Q, T, h, w)
    num_classes = pred_logits.shape[-1] - 1
    scores = F.softmax(pred_logits, dim=-1)[:, :-1]
    top, idx = scores.flatten(0, 1).topk(min(topk, scores.numel()), sorted=False)
    sel = pred_masks[idx // num_classes]
    sel = F.interpolate(sel, size=images.shape[-2:], mode="bilinear", align_corners=False)
    sel = sel[:, :, : image_size[0], : image_size[1]]
    sel = F.interpolate(sel, size=tuple(output_size), mode="bilinear", align_corners=False)
    return top, idx % num_classes, sel > 0
