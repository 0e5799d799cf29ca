"""A tiny CLIP for offline demos: an open_clip architecture trained from scratch on object crops.

Real CLIP weights cannot be downloaded everywhere (CI, the CPU demo), so the demo trains a small
open_clip model (``wsovvis_tiny_convnext``: ConvNeXt-atto image tower, 2-layer text transformer,
registered from ``model_configs/``) on square crops around the objects of a labelled YTVIS split,
paired with captions made from the category names (the 14 ViLD templates, averaged per category
as the text bank does), with a two-way contrastive loss (crop -> its category's caption, caption
-> the batch's crops of its category) plus a uniformity term on the category captions. Crops are taken from the frame rescaled by ``scale`` (the scale the frames are named at),
so objects have the same size in training and when naming. The result is saved as a plain
state-dict file, loaded back through ``open_clip.create_model(name, pretrained=file)``.
"""
import logging
import time
from typing import Dict, Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_util

from wsovvis.data.video_utils import read_video_frame
from wsovvis.utils.io import atomic_write, read_json

from .clip_model import register_model_configs
from .text_bank import VILD_TEMPLATES
from .vocabulary import vocabulary_from_categories

__all__ = ["TINY_CLIP_MODEL", "collect_crops", "train_tiny_clip"]

logger = logging.getLogger(__name__)

TINY_CLIP_MODEL = "wsovvis_tiny_convnext"


def collect_crops(gt_json: str, img_root: str, *, crop: int = 64, scale: float = 1.0,
                  per_track: int = 6, seed: int = 0):
    """Square crops (side ``crop`` at ``scale`` x the frame) centred near each object.

    Returns:
        ``(crops, labels, vocabulary)``: (N, 3, crop, crop) uint8, (N,) class indices.
    """
    import os

    gt = read_json(gt_json, "ground-truth file")
    vocab = vocabulary_from_categories(gt.get("categories") or [], gt_json)
    index = {c.id: i for i, c in enumerate(vocab.categories)}
    videos = {int(v["id"]): v for v in gt["videos"]}
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for ann in gt.get("annotations", []):
        video = videos[int(ann["video_id"])]
        frames = [t for t, s in enumerate(ann["segmentations"]) if s is not None]
        for t in rng.permutation(frames)[:per_track]:
            seg = ann["segmentations"][int(t)]
            rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
            if mask_util.area(rle) < 16:
                continue
            x, y, w, h = mask_util.toBbox(rle)
            img = read_video_frame(os.path.join(img_root, video["file_names"][int(t)]),
                                   int(video["height"]), int(video["width"]), "RGB")
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            cx = (x + w / 2) * scale + rng.uniform(-0.15, 0.15) * w * scale
            cy = (y + h / 2) * scale + rng.uniform(-0.15, 0.15) * h * scale
            x0, y0 = int(round(cx - crop / 2)), int(round(cy - crop / 2))
            pad = cv2.copyMakeBorder(img, crop, crop, crop, crop, cv2.BORDER_REFLECT)
            crops.append(pad[y0 + crop:y0 + 2 * crop, x0 + crop:x0 + 2 * crop])
            labels.append(index[int(ann["category_id"])])
    if not crops:
        raise ValueError(f"{gt_json}: no object crops (no annotations with non-empty masks)")
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.long), vocab


def train_tiny_clip(gt_json: str, img_root: str, out_path: str, *, steps: int = 1000,
                    batch_size: int = 32, lr: float = 5e-3, crop: int = 64, scale: float = 1.0,
                    seed: int = 0, model_name: str = TINY_CLIP_MODEL,
                    time_limit_s: Optional[float] = None) -> Dict:
    """Train the tiny CLIP on crops + category-name captions; save it in open_clip's format.

    Args:
        gt_json: labelled YTVIS GT (the synthetic *train* split in the demo).
        img_root: its frames.
        out_path: the state-dict file (written atomically).
        steps: optimisation steps.
        batch_size: crops per step.
        lr: AdamW learning rate (cosine decay).
        crop: crop side in pixels (= the model's image size).
        scale: frame rescale factor before cropping (the naming input scale).
        seed: RNG seed (crops, init, batches).
        model_name: open_clip architecture.
        time_limit_s: stop early after this many seconds (None: never).

    Returns:
        ``{"steps", "seconds", "final_loss", "train_accuracy", "num_crops"}``.
    """
    import open_clip

    register_model_configs()
    torch.manual_seed(seed)
    t0 = time.time()
    crops, labels, vocab = collect_crops(gt_json, img_root, crop=crop, scale=scale, seed=seed)
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
        flip = torch.rand(batch_size, generator=g) < 0.5
        x[flip] = x[flip].flip(-1)
        # colours are random per object in the synthetic data: permuting the channels keeps the
        # model from memorising them instead of the shape (val crop accuracy 0.56 vs 0.33 at
        # chance 0.2; inversion / contrast jitter on top did not train in 1,500 steps)
        perm = torch.argsort(torch.rand(batch_size, 3, generator=g), dim=1)
        x = torch.gather(x, 1, perm[:, :, None, None].expand_as(x))
        y = labels[idx]
        img = F.normalize(model.encode_image((x - mean) / std), dim=-1)
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
            "train_accuracy": round(acc, 3), "num_crops": int(len(labels))}
