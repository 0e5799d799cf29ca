"""A tiny CLIP for offline demos: an open_clip architecture trained from scratch on object views.

Real CLIP weights cannot be downloaded everywhere (CI, the CPU demo), so the demo trains a small
open_clip model (``wsovvis_tiny_convnext``: timm ``test_convnext`` image tower, 2-layer text
transformer, registered from ``model_configs/``) on the objects of a labelled YTVIS split, paired
with captions made from the category names (the 14 ViLD templates, averaged per category as the
text bank does), with a two-way contrastive loss (object -> its category's caption, caption ->
the batch's objects of its category) plus a uniformity term on the category captions. The image
side of the loss is the *mask-pooled* embedding (:func:`mask_pooled_embedding`): the stride-32
map averaged under the object's mask, then the image head, exactly what
:class:`~wsovvis.open_vocab.TubeClassifier` reads when it names a tube, at the scale the frames
are named at (``scale``), so objects span the same number of map cells in training and naming.

Training views are square crops around one object, cut at the naming scale. Measured on the
earlier synthetic data with random colours per object, a crops-then-whole-frames recipe named
held-out GT tubes better (top-1 0.49 vs 0.32-0.36), but on the current data (a typical hue per
category) crops alone name the demo's val tubes at 34.2 AP (13.2 untrained), so that recipe was
dropped. The result is saved as a plain state-dict file, loaded back through
``open_clip.create_model(name, pretrained=file)``.
"""
import logging
import time
from typing import Dict, Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from wsovvis.data.video_utils import read_video_frame
from wsovvis.utils.io import atomic_write, read_json
from wsovvis.utils.rle import CorruptRLEError, decode_segmentation

from .clip_model import register_model_configs
from .text_bank import VILD_TEMPLATES
from .vocabulary import vocabulary_from_categories

__all__ = ["TINY_CLIP_MODEL", "collect_crops", "mask_pooled_embedding", "train_tiny_clip"]

logger = logging.getLogger(__name__)

TINY_CLIP_MODEL = "wsovvis_tiny_convnext"


def collect_crops(gt_json: str, img_root: str, *, crop: int = 64, scale: float = 1.0,
                  per_track: int = 6, jitter: float = 0.3, seed: int = 0):
    """Square crops (side ``crop`` at ``scale`` x the frame) near each object, with its mask.

    The object's box centre is shifted from the crop centre by up to ``jitter`` x its box size.

    Every mask is checked (:func:`wsovvis.utils.rle.decode_segmentation`) before it is decoded.

    Returns:
        ``(crops, masks, labels, vocabulary)``: (N, 3, crop, crop) uint8 crops, (N, crop, crop)
        uint8 masks of the object in each crop, (N,) class indices.

    Raises:
        ValueError: a corrupt mask (names the file, video, annotation and frame), no crops.
    """
    import os

    gt = read_json(gt_json, "ground-truth file")
    vocab = vocabulary_from_categories(gt.get("categories") or [], gt_json)
    index = {c.id: i for i, c in enumerate(vocab.categories)}
    videos = {int(v["id"]): v for v in gt["videos"]}
    rng = np.random.default_rng(seed)
    crops, masks, labels = [], [], []
    for ann in gt.get("annotations", []):
        video = videos[int(ann["video_id"])]
        height, width = int(video["height"]), int(video["width"])
        frames = [t for t, s in enumerate(ann["segmentations"]) if s is not None]
        for t in rng.permutation(frames)[:per_track]:
            try:
                mask = decode_segmentation(ann["segmentations"][int(t)], height, width)
            except CorruptRLEError as e:
                raise ValueError(f"{gt_json}: video {ann['video_id']}, annotation "
                                 f"{ann.get('id')}, frame {int(t)}: {e}") from None
            ys, xs = np.nonzero(mask)
            if len(ys) < 16:
                continue
            img = read_video_frame(os.path.join(img_root, video["file_names"][int(t)]),
                                   height, width, "RGB")
            if scale != 1.0:
                img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
                mask = cv2.resize(mask, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
            w, h = (xs.max() - xs.min() + 1) * scale, (ys.max() - ys.min() + 1) * scale
            cx = (xs.min() + xs.max() + 1) / 2 * scale + rng.uniform(-jitter, jitter) * w
            cy = (ys.min() + ys.max() + 1) / 2 * scale + rng.uniform(-jitter, jitter) * h
            x0, y0 = int(round(cx - crop / 2)) + crop, int(round(cy - crop / 2)) + crop
            pad = cv2.copyMakeBorder(img, crop, crop, crop, crop, cv2.BORDER_REFLECT)
            pad_m = cv2.copyMakeBorder(mask, crop, crop, crop, crop, cv2.BORDER_CONSTANT, value=0)
            crops.append(pad[y0:y0 + crop, x0:x0 + crop])
            masks.append(pad_m[y0:y0 + crop, x0:x0 + crop])
            labels.append(index[int(ann["category_id"])])
    if not crops:
        raise ValueError(f"{gt_json}: no object crops (no annotations with non-empty masks)")
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    return x, torch.from_numpy(np.stack(masks)), torch.tensor(labels, dtype=torch.long), vocab


def mask_pooled_embedding(model, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Image embeddings of the objects under ``masks``, computed as :class:`DenseClip` names tubes.

    The stride-32 map of the timm trunk is averaged with each cell weighted by the fraction of it
    the mask covers (the mask is area-pooled from its own resolution to the map's), then passed
    through the trunk's head and ``visual.head``.

    Args:
        model: an open_clip model with a timm (ConvNeXt) image tower.
        x: (B, 3, H, W) normalised images.
        masks: (B, h', w') float masks in {0, 1} (any resolution of the same aspect as ``x``).

    Returns:
        (B, D) embeddings (not normalised).
    """
    v = model.visual
    feats = v.trunk.forward_features(x)  # (B, C, h, w)
    w = F.adaptive_avg_pool2d(masks[:, None], feats.shape[-2:]).flatten(1)  # (B, h*w)
    pooled = (feats.flatten(2) * w[:, None]).sum(-1) / w.sum(1, keepdim=True).clamp(min=1e-6)
    return v.head(v.trunk.forward_head(pooled[:, :, None, None]))


def train_tiny_clip(gt_json: str, img_root: str, out_path: str, *, steps: int = 1000,
                    batch_size: int = 32, lr: float = 5e-3, crop: int = 64, scale: float = 1.0,
                    seed: int = 0, model_name: str = TINY_CLIP_MODEL, per_track: int = 6,
                    jitter: float = 0.3, permute_channels: bool = False, pooling: str = "mask",
                    time_limit_s: Optional[float] = None) -> Dict:
    """Train the tiny CLIP on object crops + category-name captions; save it in open_clip's format.

    Args:
        gt_json: labelled YTVIS GT (the synthetic *train* split in the demo).
        img_root: its frames.
        out_path: the state-dict file (written atomically).
        steps: optimisation steps.
        batch_size: crops per step.
        lr: AdamW learning rate (one-cycle schedule).
        crop: crop side in pixels (= the model's image size).
        scale: frame rescale factor before cropping (the naming input scale).
        seed: RNG seed (crops, init, batches).
        model_name: open_clip architecture.
        per_track: crops per GT track (its frames drawn at random).
        jitter: largest shift of the object from the crop centre, as a fraction of its box.
        permute_channels: permute each crop's RGB channels at random (colour invariance; off
            when colour is a cue of the category, as in the synthetic data).
        pooling: "mask": the crop's dense map is mask-pooled under the object's mask and passed
            through the image head, exactly as tubes are named (:class:`TubeClassifier`), so the
            embedding the naming step reads is the one trained; "image": the whole crop through
            ``encode_image`` (plain CLIP training).
        time_limit_s: stop early after this many seconds (None: never).

    Returns:
        ``{"steps", "seconds", "final_loss", "train_accuracy", "num_objects"}``.

    Raises:
        ValueError: unknown ``pooling``, bad GT (see :func:`collect_crops`).
    """
    import open_clip

    if pooling not in ("mask", "image"):
        raise ValueError(f"pooling must be 'mask' or 'image', not {pooling!r}")
    register_model_configs()
    torch.manual_seed(seed)
    t0 = time.time()
    crops, masks, labels, vocab = collect_crops(gt_json, img_root, crop=crop, scale=scale,
                                                per_track=per_track, jitter=jitter, seed=seed)
    model = open_clip.create_model(model_name, pretrained=None)
    model.train()
    tokenizer = open_clip.get_tokenizer(model_name)
    prompts = vocab.prompt_lists()
    cfg = model.visual.preprocess_cfg
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1) * 255
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1) * 255
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    k = len(vocab)
    captions = [t.format(name) for names in prompts for name in names for t in VILD_TEMPLATES]
    owner = torch.tensor([c for c, names in enumerate(prompts) for _ in names for _ in VILD_TEMPLATES])
    off_diag = ~torch.eye(k, dtype=torch.bool)
    loss_v, acc, done = float("nan"), float("nan"), 0

    for step in range(steps):
        idx = torch.randint(len(labels), (batch_size,), generator=g)
        x = crops[idx].float()
        m = masks[idx].float()
        flip = torch.rand(batch_size, generator=g) < 0.5
        x[flip] = x[flip].flip(-1)
        m[flip] = m[flip].flip(-1)
        if permute_channels:
            # with random colours per object (the earlier synthetic data) permuting the channels
            # kept the model from memorising them (crop accuracy 0.56 vs 0.33); with a typical
            # hue per category it destroys the hue cue (demo AP at chance, 12.3 vs 13.2)
            perm = torch.argsort(torch.rand(batch_size, 3, generator=g), dim=1)
            x = torch.gather(x, 1, perm[:, :, None, None].expand_as(x))
        y = labels[idx]
        x = (x - mean) / std
        if pooling == "mask":
            img = F.normalize(mask_pooled_embedding(model, x, m), dim=-1)
        else:
            img = F.normalize(model.encode_image(x), dim=-1)
        # one caption embedding per category: the normalised mean over its prompt names x
        # templates, exactly as the text bank classifies at naming time
        txt = F.normalize(model.encode_text(tokenizer(captions)), dim=-1)
        txt = F.normalize(torch.zeros(k, txt.shape[1]).index_add(0, owner, txt), dim=-1)
        logits = model.logit_scale.exp().clamp(max=100) * img @ txt.T  # (B, K)
        # contrastive both ways: image -> its category caption, caption -> its batch images
        pos = (y[None, :] == torch.arange(k)[:, None]).float()  # (K, B)
        seen = pos.sum(1) > 0
        loss_t = -(pos / pos.sum(1, keepdim=True).clamp(min=1) * logits.T.log_softmax(1)).sum(1)[seen].mean()
        loss = 0.5 * (F.cross_entropy(logits, y) + loss_t)
        # uniformity of the category captions: keeps the text tower from collapsing onto the
        # mean image direction before the image tower separates the categories
        loss = loss + 0.5 * torch.logsumexp(4.0 * (txt @ txt.T)[off_diag], dim=0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        acc = float((logits.argmax(1) == y).float().mean())
        loss_v, done = float(loss.detach()), step + 1
        if step % 50 == 0:
            logger.info(f"tiny CLIP step {step}: loss {loss_v:.3f}, batch accuracy {acc:.2f}")
        if time_limit_s is not None and time.time() - t0 > time_limit_s:
            break
    model.eval()
    atomic_write(out_path, lambda f: torch.save(model.state_dict(), f), mode="wb")
    return {"steps": done, "seconds": round(time.time() - t0, 1), "final_loss": round(loss_v, 4),
            "train_accuracy": round(acc, 3), "num_objects": int(len(labels))}
