"""visualize_ytvis: GT and results.json rendered to a GIF + PNG contact sheet per video."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gt_and_results(tiny_synthetic_dataset, tmp_path):
    val = tiny_synthetic_dataset["splits"]["val"]
    with open(val["gt_json"]) as f:
        gt = json.load(f)
    video = gt["videos"][0]
    anns = [a for a in gt["annotations"] if a["video_id"] == video["id"]]
    results = [
        {
            "video_id": video["id"],
            "category_id": a["category_id"],
            "score": 0.9,
            "segmentations": a["segmentations"],
        }
        for a in anns
    ]
    results.append(dict(results[0], score=0.1))  # below the threshold: not drawn
    res_file = tmp_path / "results.json"
    res_file.write_text(json.dumps(results))
    for extra, out in (([], "gt"), (["--results", str(res_file)], "pred")):
        proc = subprocess.run(
            [
                sys.executable,
                os.path.join(REPO, "tools", "visualize_ytvis.py"),
                "--json",
                val["gt_json"],
                "--image-root",
                val["img_root"],
                "--out",
                str(tmp_path / out),
                "--video-ids",
                str(video["id"]),
            ]
            + extra,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        gif = Image.open(tmp_path / out / f"video_{video['id']}.gif")
        assert gif.n_frames == video["length"] and gif.size == (video["width"], video["height"])
        sheet = np.asarray(Image.open(tmp_path / out / f"video_{video['id']}.png").convert("RGB"))
        frame0 = np.asarray(Image.open(os.path.join(val["img_root"], video["file_names"][0])))
        h, w = frame0.shape[:2]
        assert np.abs(sheet[:h, :w].astype(int) - frame0.astype(int)).mean() > 5  # overlay drawn


def test_absent_frames_and_border_outline():
    from wsovvis.utils.rle import encode_mask
    from wsovvis.visualization import render_frames

    frames = [np.zeros((6, 5, 3), np.uint8) for _ in range(4)]
    mask = np.zeros((6, 5), np.uint8)
    mask[0:2, :] = 1  # touches the top, left and right borders
    mask[5, :] = 1  # and the bottom one
    track = {
        "id": 1,
        "category_id": 1,
        "score": None,
        "segmentations": [encode_mask(mask), [], {}, None],
    }  # YTVIS absent frames
    out = [np.asarray(f) for f in render_frames(frames, [track], alpha=0.5)]
    assert all(not o.any() for o in out[1:])
    # every masked pixel lies on the image border here, so all get the full outline colour
    # (with wrap-around, row 0 and row 5 would see each other as neighbours)
    drawn = out[0].astype(int)[mask.astype(bool)]
    full = drawn.max(axis=1) >= 200
    assert full.mean() > 0.9


def test_frame_of_another_size_is_read_at_the_annotated_size(tmp_path):
    """LV-VIS train has frames whose file size differs from the JSON: resized like the loader."""
    from wsovvis.utils.rle import encode_mask
    from wsovvis.visualization import visualize_ytvis

    (tmp_path / "v").mkdir()
    Image.fromarray(np.full((20, 25, 3), 40, np.uint8)).save(tmp_path / "v" / "0.jpg")
    mask = np.zeros((40, 50), np.uint8)
    mask[16:30, 10:40] = 1
    gt = {
        "videos": [{"id": 1, "height": 40, "width": 50, "length": 1, "file_names": ["v/0.jpg"]}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0,
             "segmentations": [encode_mask(mask)], "areas": [420]}
        ],
    }
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    visualize_ytvis(str(tmp_path / "gt.json"), str(tmp_path), str(tmp_path / "out"))
    frame = np.asarray(Image.open(tmp_path / "out" / "video_1.png").convert("RGB")).astype(int)
    assert frame.shape[:2] == (40, 50)
    assert np.abs(frame[mask.astype(bool)] - 40).mean() > 20  # the mask is drawn over it
    assert np.abs(frame[34:] - 40).max() < 10  # below the mask: no mask, outline or label
