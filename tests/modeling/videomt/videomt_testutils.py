"""Helpers for the VidEoMT tests: tiny config/model and synthetic clips in mapper format."""

import os

import torch
from detectron2.config import get_cfg
from detectron2.structures import BitMasks, Instances

from wsovvis.config import add_wsovvis_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TINY_CONFIG = os.path.join(REPO, "configs", "videomt", "VidEoMT-tiny-test.yaml")


def tiny_cfg(**videomt):
    """The tiny test config, with optional ``MODEL.VIDEOMT`` overrides."""
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(TINY_CONFIG)
    for k, v in videomt.items():
        setattr(cfg.MODEL.VIDEOMT, k, v)
    return cfg


def tiny_model(seed=0, layer_scale=1.0, **videomt):
    """A freshly initialised tiny ``WSVidEoMT`` (train mode).

    ``layer_scale`` overwrites the DINOv2 layer-scale init (1e-5, blocks ~ identity) so the random
    network behaves like a trained one, where every block matters.
    """
    import wsovvis.modeling  # noqa: F401  (registration)
    from detectron2.modeling import build_model

    torch.manual_seed(seed)
    model = build_model(tiny_cfg(**videomt))
    if layer_scale is not None:
        with torch.no_grad():
            for blk in model.backbone.encoder.backbone.blocks:
                if hasattr(blk, "ls1"):  # timm VisionTransformer (DINOv2)
                    blk.ls1.gamma.fill_(layer_scale)
                    blk.ls2.gamma.fill_(layer_scale)
                else:  # timm Eva (DINOv3)
                    blk.gamma_1.fill_(layer_scale)
                    blk.gamma_2.fill_(layer_scale)
    return model


def synthetic_clip(
    seed=0, num_frames=3, height=48, width=64, num_tracks=2, absent=None, classes=None
):
    """One training clip in ``YTVISClipMapper`` format with moving rectangles.

    Args:
        absent: optional set of (track, frame) pairs where the track is not visible.
        classes: optional list of class ids per track.
    """
    g = torch.Generator().manual_seed(seed)
    absent = absent or set()
    classes = classes if classes is not None else [i % 3 for i in range(num_tracks)]
    images, instances = [], []
    base = torch.randint(0, 256, (3, 1, 1), generator=g, dtype=torch.uint8)
    starts = [
        (
            int(torch.randint(0, height // 2, (1,), generator=g)),
            int(torch.randint(0, width // 2, (1,), generator=g)),
        )
        for _ in range(num_tracks)
    ]
    for t in range(num_frames):
        img = base.expand(3, height, width).clone()
        masks = torch.zeros(num_tracks, height, width, dtype=torch.bool)
        ids = []
        for j, (y, x) in enumerate(starts):
            if (j, t) in absent:
                ids.append(-1)
                continue
            y0, x0 = y + 2 * t, x + 3 * t
            masks[j, y0 : y0 + height // 3, x0 : x0 + width // 3] = True
            img[:, masks[j]] = torch.tensor(
                [60 * (j + 1), 255 - 50 * j, 30 * j], dtype=torch.uint8
            )[:, None]
            ids.append(j + 1)
        inst = Instances((height, width))
        inst.gt_ids = torch.tensor(ids)
        inst.gt_classes = torch.tensor(classes)
        inst.gt_masks = BitMasks(masks)
        inst.gt_boxes = BitMasks(masks).get_bounding_boxes()
        images.append(img)
        instances.append(inst)
    return {
        "video_id": seed,
        "height": height,
        "width": width,
        "length": num_frames,
        "file_names": [f"f{t}.jpg" for t in range(num_frames)],
        "frame_idx": list(range(num_frames)),
        "image": images,
        "instances": instances,
    }


def eval_video(seed=0, num_frames=4, height=40, width=56, orig=(60, 84)):
    """An eval-mode video dict (resized frames, original size ``orig``)."""
    g = torch.Generator().manual_seed(seed)
    frames = [
        torch.randint(0, 256, (3, height, width), generator=g, dtype=torch.uint8)
        for _ in range(num_frames)
    ]
    return {
        "video_id": seed,
        "height": orig[0],
        "width": orig[1],
        "length": num_frames,
        "image": frames,
    }
