"""Write a synthetic LV-VIS-layout dataset with VideoCutLER-style pseudo masks.

Layout under ``root`` (the LV-VIS download layout plus the VideoCutLER demo output)::

    <split>/JPEGImages/<video:05d>/<frame:05d>.jpg
    <split>/<split>_instances.json                      YTVIS GT (RLE str / null, bboxes, areas)
    videocutler_png/<split>/masks/<video:05d>/mask_<frame:05d>.png   8-bit "P", ids 1..<=10
    videocutler_png/<split>/noise_log.json              what was corrupted, per video (its
        "gt_index_of_id" maps each PNG id to positions in that video's "gt_annotation_ids")
    synthetic_summary.json                              parameters + counts

Generation is deterministic in ``seed``: every video draws from its own
``SeedSequence([seed, split, video])``, so the same seed gives byte-identical files.
"""
import dataclasses
import os
import shutil
import tempfile
from typing import Dict, Optional

import cv2
import numpy as np
from tqdm import tqdm

from wsovvis.pseudo.png_io import mask_name_for_frame
from wsovvis.pseudo.render import save_id_png
from wsovvis.utils.io import atomic_write_json
from wsovvis.utils.rle import encode_masks_areas_boxes

from .pseudo_noise import PseudoNoiseConfig, make_pseudo_label_maps
from .render import CATEGORIES, render_video, sample_objects

__all__ = ["PRESETS", "SyntheticSpec", "generate_synthetic_dataset", "PALETTE"]


@dataclasses.dataclass
class SyntheticSpec:
    """Size of a synthetic dataset."""

    videos: Dict[str, int]  # split name -> number of videos
    num_frames: int
    height: int
    width: int
    min_objects: int = 1
    max_objects: int = 4
    enter_leave_prob: float = 0.35  # per object: fast enough to enter / leave the frame


PRESETS = {
    "tiny": SyntheticSpec(videos={"train": 4, "val": 3}, num_frames=6, height=64, width=96),
    "small": SyntheticSpec(videos={"train": 16, "val": 6}, num_frames=8, height=96, width=128),
    # demo: many short training videos so the from-scratch model does not overfit the noisy
    # pseudo tubes (generation takes a few seconds); the 12 val videos do not depend on "train"
    "demo": SyntheticSpec(videos={"train": 192, "val": 12}, num_frames=12, height=128, width=192),
}

# 13-colour palette like the VideoCutLER demo (index 0 black); unused entries stay black.
_PALETTE_RGB = [
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190),
    (0, 128, 128), (170, 110, 40),
]
PALETTE = [c for rgb in _PALETTE_RGB for c in rgb] + [0] * (768 - 3 * len(_PALETTE_RGB))


def _write_jpeg(path: str, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {path}")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def _video_annotations(visible, objects, video_id, next_ann_id, t, h, w):
    anns = []
    for k, obj in enumerate(objects):
        present = visible[k].reshape(t, -1).any(axis=1)
        if not present.any():
            continue  # never visible (fully occluded or off-frame): not an object of this video
        rles, all_areas, all_boxes = encode_masks_areas_boxes(visible[k])
        segs = [r if p else None for r, p in zip(rles, present)]
        areas = [a if p else None for a, p in zip(all_areas, present)]
        bboxes = [b if p else None for b, p in zip(all_boxes, present)]
        anns.append(
            {
                "id": next_ann_id + len(anns),
                "video_id": video_id,
                "category_id": obj.category_id,
                "iscrowd": 0,
                "height": h,
                "width": w,
                "length": t,
                "segmentations": segs,
                "bboxes": bboxes,
                "areas": areas,
            }
        )
    return anns


def _forced_noise(video_index: int, num_videos: int):
    """Corruptions every split shows at least once, whatever the seed (small sets included)."""
    if num_videos >= 3 and video_index == num_videos - 1:
        return ("empty",)
    return {0: ("merge", "missing_frame"), 1: ("miss", "spurious")}.get(video_index, ())


def _generate_split(root, split, split_idx, spec, seed, noise, progress):
    h, w, t = spec.height, spec.width, spec.num_frames
    img_root = os.path.join(root, split, "JPEGImages")
    mask_root = os.path.join(root, "videocutler_png", split, "masks")
    videos, annotations, noise_log = [], [], {}
    stats = {"videos": 0, "frames": 0, "instances": 0, "null_frames": 0, "pseudo_pngs": 0,
             "pseudo_empty_videos": 0, "pseudo_missing_frames": 0}
    for v in tqdm(range(spec.videos[split]), desc=f"synthetic {split}", disable=not progress):
        video_id = v + 1
        name = f"{video_id:05d}"
        rng = np.random.default_rng(np.random.SeedSequence([seed, split_idx, v]))
        force = _forced_noise(v, spec.videos[split])
        n_obj = int(rng.integers(spec.min_objects, spec.max_objects + 1))
        if force:
            n_obj = max(n_obj, 2)
        objects = sample_objects(rng, n_obj, t, h, w, spec.enter_leave_prob)
        frames, visible = render_video(rng, objects, t, h, w)
        os.makedirs(os.path.join(img_root, name), exist_ok=True)
        file_names = []
        for f in range(t):
            rel = f"{name}/{f:05d}.jpg"
            _write_jpeg(os.path.join(img_root, rel), frames[f])
            file_names.append(rel)
        videos.append({"id": video_id, "file_names": file_names, "length": t,
                       "height": h, "width": w})
        anns = _video_annotations(visible, objects, video_id, len(annotations) + 1, t, h, w)
        annotations.extend(anns)
        stats["null_frames"] += sum(s is None for a in anns for s in a["segmentations"])

        kept = [k for k in range(len(objects)) if visible[k].any()]
        labels, write, log = make_pseudo_label_maps(rng, visible[kept], noise, force)
        log["gt_annotation_ids"] = [a["id"] for a in anns]
        noise_log[name] = log
        if any(write):
            os.makedirs(os.path.join(mask_root, name), exist_ok=True)
            for f in range(t):
                if write[f]:
                    png = os.path.join(mask_root, name, mask_name_for_frame(f"{f:05d}.jpg"))
                    save_id_png(labels[f], png, colors=PALETTE)
            stats["pseudo_pngs"] += sum(write)
            stats["pseudo_missing_frames"] += t - sum(write)
        else:
            stats["pseudo_empty_videos"] += 1
            if v % 2 == 0:  # the demo sometimes dies after creating the folder
                os.makedirs(os.path.join(mask_root, name), exist_ok=True)
        stats["videos"] += 1
        stats["frames"] += t
        stats["instances"] += len(anns)

    gt_json = os.path.join(root, split, f"{split}_instances.json")
    atomic_write_json(
        {
            "info": {"description": f"wsovvis synthetic {split} split", "seed": seed},
            "licenses": [],
            "videos": videos,
            "categories": CATEGORIES,
            "annotations": annotations,
        },
        gt_json,
    )
    os.makedirs(mask_root, exist_ok=True)
    atomic_write_json(noise_log, os.path.join(root, "videocutler_png", split, "noise_log.json"))
    return stats


def _split_paths(root: str, split: str) -> Dict[str, str]:
    return {
        "img_root": os.path.join(root, split, "JPEGImages"),
        "gt_json": os.path.join(root, split, f"{split}_instances.json"),
        "pseudo_mask_root": os.path.join(root, "videocutler_png", split, "masks"),
    }


def generate_synthetic_dataset(
    out: str,
    preset: str = "tiny",
    seed: int = 0,
    num_videos: Optional[int] = None,
    num_frames: Optional[int] = None,
    height: Optional[int] = None,
    width: Optional[int] = None,
    noise: Optional[PseudoNoiseConfig] = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Dict[str, object]:
    """Generate a synthetic VIS dataset with GT JSON and VideoCutLER-style pseudo PNGs.

    The dataset is built in a temporary sibling directory and renamed to ``out`` at the end, so a
    crash never leaves a half-written dataset behind.

    Args:
        out: dataset root to create.
        preset: one of :data:`PRESETS` ("tiny", "small", "demo").
        seed: random seed; same seed -> byte-identical output.
        num_videos: override the number of training videos (>= 1; validation keeps its preset
            size, but never more than this).
        num_frames: override frames per video (>= 1).
        height: override frame height (>= 1).
        width: override frame width (>= 1).
        noise: pseudo-mask corruption probabilities (default :class:`PseudoNoiseConfig`).
        overwrite: replace an existing ``out``; otherwise an existing non-empty ``out`` is an error.
        progress: show tqdm bars.

    Returns:
        ``{"root", "preset", "seed", "categories", "splits": {split: {"img_root", "gt_json",
        "pseudo_mask_root"}}, "summary": {split: counts}}``.

    Raises:
        ValueError: unknown preset, or an override below 1 (named).
        FileExistsError: ``out`` exists, is not empty and ``overwrite`` is False.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown synthetic preset {preset!r}; choose from {sorted(PRESETS)}")
    overrides = {"num_videos": num_videos, "num_frames": num_frames, "height": height,
                 "width": width}
    for name, value in overrides.items():  # 0 is an error, never "use the preset"
        if value is not None and (isinstance(value, bool) or int(value) < 1):
            raise ValueError(f"{name} must be >= 1, got {value}")
    spec = dataclasses.replace(PRESETS[preset])
    spec.videos = dict(spec.videos)
    if num_videos is not None:
        spec.videos = {"train": num_videos, "val": min(spec.videos["val"], num_videos)}
    spec.num_frames = num_frames if num_frames is not None else spec.num_frames
    spec.height = height if height is not None else spec.height
    spec.width = width if width is not None else spec.width
    noise = noise or PseudoNoiseConfig()

    out = os.path.abspath(out)
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass overwrite=True / --overwrite)")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".partial-", dir=parent)
    try:
        summary = {}
        for split_idx, split in enumerate(sorted(spec.videos, key=lambda s: s != "train")):
            summary[split] = _generate_split(staging, split, split_idx, spec, seed, noise,
                                                progress)
        meta = {"preset": preset, "seed": seed, "spec": dataclasses.asdict(spec),
                "noise": dataclasses.asdict(noise), "summary": summary}
        atomic_write_json(meta, os.path.join(staging, "synthetic_summary.json"), indent=1)
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.replace(staging, out)
        os.chmod(out, 0o755)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {
        "root": out,
        "preset": preset,
        "seed": seed,
        "categories": CATEGORIES,
        "splits": {split: _split_paths(out, split) for split in summary},
        "summary": summary,
    }
