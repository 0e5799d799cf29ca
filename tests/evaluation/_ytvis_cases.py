"""Randomised YTVIS ground truth / results covering the official evaluator's edge cases.

Used by the parity tests (self-consistency against the reference transcription, and against the
official code when ``WSOVVIS_OFFICIAL_YTVIS`` is set).
"""

import numpy as np
import pycocotools.mask as mask_util

from wsovvis.utils.rle import encode_mask


def _rect(rng, h, w):
    m = np.zeros((h, w), dtype=np.uint8)
    y0, x0 = rng.integers(0, h), rng.integers(0, w)
    y1, x1 = rng.integers(y0, h + 1), rng.integers(x0, w + 1)
    m[y0:y1, x0:x1] = 1
    return m


def _uncompressed(mask):
    """Uncompressed RLE (counts list), as the YTVIS 2019 GT JSON."""
    rle = encode_mask(mask)
    m = mask_util.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    flat = m.flatten(order="F")
    counts, cur, run = [], 0, 0
    for v in flat:
        if v != cur:
            counts.append(run)
            run, cur = 0, v
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


def random_case(seed: int, num_videos: int = 6, big: bool = False, many: int = 0):
    """Return ``(gt_dict, results_list)`` for one random scenario.

    ``many`` extra detections of one category go to the first video (maxDets truncation).
    """
    rng = np.random.default_rng(seed)
    cat_ids = [1, 3, 4, 7, 10]
    gt = {
        "videos": [],
        "annotations": [],
        "categories": [
            {"id": c, "name": f"c{c}", "partition": int(rng.integers(0, 4))} for c in cat_ids
        ],
    }
    results = []
    ann_id = 1
    vids = rng.permutation(np.arange(1, num_videos + 1) * 3)
    for vid in vids.tolist():
        h, w = (
            (300, 300)
            if big and rng.random() < 0.5
            else (int(rng.integers(6, 12)), int(rng.integers(6, 12)))
        )
        n = int(rng.integers(1, 6))
        gt["videos"].append(
            {
                "id": vid,
                "height": h,
                "width": w,
                "length": n,
                "file_names": [f"{vid}/{t}.jpg" for t in range(n)],
            }
        )
        tracks = []
        for _ in range(int(rng.integers(0, 4))):
            cat = int(rng.choice(cat_ids[:4]))
            length = n if rng.random() < 0.8 else int(rng.integers(1, n + 2))
            masks = [
                (
                    None
                    if rng.random() < 0.2
                    else (np.zeros((h, w), np.uint8) if rng.random() < 0.1 else _rect(rng, h, w))
                )
                for _ in range(length)
            ]
            if all(m is None for m in masks) and rng.random() < 0.5:
                masks = [np.zeros((h, w), np.uint8) for _ in range(length)]  # all-empty track
            segs, areas = [], []
            for m in masks:
                if m is None:
                    segs.append(None)
                    areas.append(None)
                    continue
                r = rng.random()
                if r < 0.1 and m.sum() > 0:  # frame of another size: no I, no U
                    segs.append(encode_mask(np.pad(m, ((0, 1), (0, 0)))))
                elif r < 0.15 and m.sum() > 0:  # polygon (rasterised at the video size)
                    ys, xs = np.nonzero(m)
                    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
                    segs.append([[float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]])
                elif r < 0.3:
                    segs.append(_uncompressed(m))
                else:
                    segs.append(encode_mask(m))
                areas.append(
                    int(m.sum())
                    if rng.random() < 0.9
                    else float(rng.choice([16384, 65536, 20000.5, 70000]))
                )
            gt["annotations"].append(
                {
                    "id": ann_id,
                    "video_id": vid,
                    "category_id": cat,
                    "iscrowd": int(rng.random() < 0.15),
                    "segmentations": segs,
                    "areas": areas,
                    "length": 1,
                }
            )
            ann_id += 1
            tracks.append((cat, masks))
        for _ in range(int(rng.integers(0, 9))):
            if tracks and rng.random() < 0.7:
                cat, src = tracks[int(rng.integers(len(tracks)))]
                masks = [
                    (m if rng.random() < 0.6 else _rect(rng, h, w)) if m is not None else None
                    for m in src[:n]
                ] + [None] * max(0, n - len(src))
            else:
                cat, masks = int(rng.choice(cat_ids)), [_rect(rng, h, w) for _ in range(n)]
            if rng.random() < 0.15:
                cat = int(rng.choice([cat_ids[-1], 99]))  # category without GT / unknown
            masks = [None if (m is None or rng.random() < 0.1) else m for m in masks]
            results.append(
                {
                    "video_id": vid,
                    "category_id": cat,
                    "score": float(np.round(rng.random(), 1)),
                    "segmentations": [encode_mask(m) if m is not None else None for m in masks],
                }
            )
    if many:
        v = gt["videos"][0]
        for _ in range(many):
            m = _rect(rng, v["height"], v["width"])
            results.append(
                {
                    "video_id": v["id"],
                    "category_id": 1,
                    "score": float(np.round(rng.random(), 2)),
                    "segmentations": [encode_mask(m)] * v["length"],
                }
            )
    return gt, results
