"""Hand-made video sets for the pseudo-tube tests: frames on disk + a YTVIS GT with known masks."""
import os

import numpy as np
from PIL import Image

from wsovvis.utils.rle import areas_and_bboxes, encode_mask


def make_gt_video(video_id, name, length, height, width, tracks, ext=".jpg"):
    """A YTVIS video record and its annotations from explicit per-frame boxes.

    ``tracks`` is a list of per-instance lists of length ``length``: each entry is None (absent) or
    an (x0, y0, x1, y1) rectangle. Returns ``(video, annotations)`` with annotation ids starting at
    ``video_id * 100``.
    """
    video = {
        "id": video_id,
        "file_names": [f"{name}/{t:05d}{ext}" for t in range(length)],
        "length": length,
        "height": height,
        "width": width,
    }
    anns = []
    for j, boxes in enumerate(tracks):
        segs = []
        for box in boxes:
            if box is None:
                segs.append(None)
                continue
            m = np.zeros((height, width), np.uint8)
            x0, y0, x1, y1 = box
            m[y0:y1, x0:x1] = 1
            segs.append(encode_mask(m))
        areas, bboxes = areas_and_bboxes(segs)
        anns.append({
            "id": video_id * 100 + j + 1, "video_id": video_id, "category_id": 7 + j,
            "iscrowd": 0, "height": height, "width": width, "length": length,
            "segmentations": segs, "bboxes": bboxes, "areas": areas,
        })
    return video, anns


def write_frames(img_root, video, colour=(90, 120, 200)):
    """Write the frames of ``video`` (small solid images) under ``img_root``."""
    for fname in video["file_names"]:
        path = os.path.join(img_root, fname)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.new("RGB", (video["width"], video["height"]), colour).save(path)


def default_gt():
    """Three videos with disjoint moving rectangles; some instances absent on some frames."""
    videos, anns = [], []
    specs = [
        ("vid_a", 5, 24, 32, [
            [(1, 1, 6, 5), (2, 1, 7, 5), (3, 2, 8, 6), None, (5, 2, 10, 6)],
            [(10, 12, 20, 22), (11, 12, 21, 22), (12, 13, 22, 23), (13, 13, 23, 23), None],
        ]),
        ("vid_b", 4, 20, 16, [
            [(0, 0, 4, 4), (0, 1, 4, 5), (1, 1, 5, 5), (1, 2, 5, 6)],
        ]),
        ("vid_c", 6, 16, 24, [
            [None, (2, 2, 6, 6), (2, 3, 6, 7), (3, 3, 7, 7), (3, 4, 7, 8), (4, 4, 8, 8)],
            [(12, 2, 16, 9), (12, 3, 16, 10), None, None, (13, 3, 17, 10), (14, 3, 18, 10)],
            [(20, 10, 23, 15)] * 6,
        ]),
    ]
    for i, (name, length, h, w, tracks) in enumerate(specs):
        v, a = make_gt_video(i + 1, name, length, h, w, tracks)
        videos.append(v)
        anns.extend(a)
    return {
        "videos": videos,
        "annotations": anns,
        "categories": [{"id": 7 + k, "name": f"c{k}"} for k in range(3)],
    }
