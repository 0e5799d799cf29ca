"""Synthetic YTVIS-format ground truth and predictions for evaluator benchmarks.

Masks are moving ellipses whose RLE is built column by column in numpy (no full-frame encode), so
LV-VIS-scale files are generated in seconds. Predictions are perturbed copies of GT tracks (some
with a wrong category, some frames missing) with 2-decimal scores, so score ties occur.
"""

import json
import os
from typing import Dict, List, Tuple

import numpy as np
from pycocotools import _mask

__all__ = ["make_case", "write_case"]


def _ellipse_counts(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> List[int]:
    """Uncompressed (column-major) RLE counts of a filled ellipse kept inside rows 1..h-2."""
    xs = np.arange(max(0, int(np.ceil(cx - rx))), min(w, int(np.floor(cx + rx)) + 1))
    half = ry * np.sqrt(np.clip(1.0 - ((xs - cx) / max(rx, 1e-6)) ** 2, 0.0, 1.0))
    top = np.clip(np.ceil(cy - half), 1, h - 1).astype(np.int64)
    bot = np.clip(np.floor(cy + half) + 1, 1, h - 1).astype(np.int64)
    ok = bot > top
    xs, top, bot = xs[ok], top[ok], bot[ok]
    if len(xs) == 0:
        return [h * w]
    bounds = np.empty(2 * len(xs) + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, h * w
    bounds[1:-1:2] = xs * h + top
    bounds[2:-1:2] = xs * h + bot
    return np.diff(bounds).tolist()


def _track(rng, h, w, n, base=None, jitter=0.0, drop=0.0):
    """Per-frame ellipse parameters: a new track, or a perturbed copy of ``base``."""
    if base is None:
        cy, cx = rng.uniform(0.2 * h, 0.8 * h), rng.uniform(0.2 * w, 0.8 * w)
        ry, rx = rng.uniform(0.05 * h, 0.3 * h), rng.uniform(0.05 * w, 0.3 * w)
        vy, vx = rng.uniform(-2, 2), rng.uniform(-3, 3)
        params = [(cy + vy * t, cx + vx * t, ry, rx) for t in range(n)]
        present = rng.random(n) >= drop
        present[rng.integers(n)] = True
        return [p if ok else None for p, ok in zip(params, present)]
    out = []
    for p in base:
        if p is None or rng.random() < drop:
            out.append(None)
            continue
        cy, cx, ry, rx = p
        out.append(
            (
                cy + rng.normal(0, jitter * ry),
                cx + rng.normal(0, jitter * rx),
                ry * rng.uniform(1 - jitter, 1 + jitter),
                rx * rng.uniform(1 - jitter, 1 + jitter),
            )
        )
    return out


def make_case(
    num_videos: int,
    num_frames: int,
    gt_per_video: int,
    preds_per_video: int,
    num_categories: int,
    h: int = 360,
    w: int = 640,
    seed: int = 0,
    gt_uncompressed: bool = True,
) -> Tuple[Dict, List[Dict]]:
    """Build ``(gt_dict, results_list)``.

    Args:
        num_videos, num_frames, gt_per_video, preds_per_video, num_categories: case size.
        h, w: frame size.
        seed: RNG seed.
        gt_uncompressed: GT RLE as counts lists (YTVIS 2019/2021 JSON style) instead of strings.
    """
    rng = np.random.default_rng(seed)
    cats = [
        {"id": i + 1, "name": f"cat{i + 1}", "partition": int(i % 4)} for i in range(num_categories)
    ]
    videos, anns, results = [], [], []
    pending_gt, pending_dt = [], []
    for v in range(num_videos):
        vid = v + 1
        videos.append(
            {
                "id": vid,
                "height": h,
                "width": w,
                "length": num_frames,
                "file_names": [f"v{vid}/{t:05d}.jpg" for t in range(num_frames)],
            }
        )
        tracks = []
        for _ in range(gt_per_video):
            cat = int(rng.integers(1, num_categories + 1))
            tr = _track(rng, h, w, num_frames, drop=0.1)
            tracks.append((cat, tr))
            anns.append(
                {
                    "id": len(anns) + 1,
                    "video_id": vid,
                    "category_id": cat,
                    "iscrowd": 0,
                    "segmentations": tr,
                    "height": h,
                    "width": w,
                }
            )
            pending_gt.append(anns[-1])
        for j in range(preds_per_video):
            cat, base = tracks[j % len(tracks)] if tracks else (1, None)
            if rng.random() < 0.25:
                cat = int(rng.integers(1, num_categories + 1))
            tr = _track(rng, h, w, num_frames, base=base, jitter=0.15, drop=0.05)
            results.append(
                {
                    "video_id": vid,
                    "category_id": cat,
                    "segmentations": tr,
                    "score": float(np.round(rng.uniform(0.05, 1.0), 2)),
                }
            )
            pending_dt.append(results[-1])
    for objs, compressed in ((pending_gt, not gt_uncompressed), (pending_dt, True)):
        flat = [
            {"size": [h, w], "counts": _ellipse_counts(h, w, *p)}
            for o in objs
            for p in o["segmentations"]
            if p is not None
        ]
        enc = _mask.frUncompressedRLE(flat, h, w) if compressed else None
        i = 0
        for o in objs:
            segs, areas = [], []
            for p in o["segmentations"]:
                if p is None:
                    segs.append(None)
                    areas.append(None)
                    continue
                counts = flat[i]["counts"]
                areas.append(int(sum(counts[1::2])))
                segs.append(
                    {"size": [h, w], "counts": enc[i]["counts"].decode()} if compressed else flat[i]
                )
                i += 1
            o["segmentations"] = segs
            if "iscrowd" in o:
                o["areas"] = areas
                o["bboxes"] = [None] * len(segs)
    gt = {"info": {}, "licenses": [], "videos": videos, "categories": cats, "annotations": anns}
    return gt, results


def write_case(directory: str, name: str, **kwargs) -> Tuple[str, str]:
    """Generate a case once and cache its GT / results JSON files in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    tag = "_".join(f"{k}{v}" for k, v in sorted(kwargs.items()))
    gt_path = os.path.join(directory, f"{name}_{tag}_gt.json")
    res_path = os.path.join(directory, f"{name}_{tag}_results.json")
    if not (os.path.exists(gt_path) and os.path.exists(res_path)):
        gt, res = make_case(**kwargs)
        for obj, path in ((gt, gt_path), (res, res_path)):
            with open(path + ".tmp", "w") as f:
                json.dump(obj, f)
            os.replace(path + ".tmp", path)
    return gt_path, res_path
