"""Synthetic dataset: exact GT, VideoCutLER-like pseudo PNGs, determinism, CLI."""
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
from PIL import Image

from wsovvis.data import load_ytvis_json
from wsovvis.data.synthetic import MAX_PSEUDO_INSTANCES, generate_synthetic_dataset
from wsovvis.data.synthetic.render import _local_coords, render_video, sample_objects, shape_mask
from wsovvis.utils.io import read_json
from wsovvis.utils.rle import decode_segmentation


def _tree_bytes(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def test_render_gt_is_exact_visible_masks():
    rng = np.random.default_rng(5)
    objects = sample_objects(rng, 4, 5, 40, 50)
    frames, visible = render_video(rng, objects, 5, 40, 50)
    assert frames.shape == (5, 40, 50, 3) and frames.dtype == np.uint8
    assert visible.sum(axis=0).max() <= 1  # one owner per pixel
    yy, xx = np.mgrid[0:40, 0:50].astype(np.float32)
    for t in range(5):
        full = []
        for obj in objects:
            cx, cy, a = obj.pose(t)
            full.append(shape_mask(obj.shape, *_local_coords(xx, yy, cx, cy, a), obj.radius))
        np.testing.assert_array_equal(np.any(full, axis=0), visible[:, t].any(axis=0))
        for k, obj in enumerate(objects):
            assert not (visible[k, t] & ~full[k]).any()
            # a pixel is object k's iff k covers it and no object in front of k does
            front = [full[j] for j, o in enumerate(objects) if o.depth > obj.depth]
            expected = full[k] & ~np.any(front, axis=0) if front else full[k]
            np.testing.assert_array_equal(visible[k, t], expected)


def test_gt_json_layout_and_consistency(tiny_synthetic_dataset):
    ds = tiny_synthetic_dataset
    assert set(ds["splits"]) == {"train", "val"}
    for split, paths in ds["splits"].items():
        gt = read_json(paths["gt_json"])
        assert paths["gt_json"].endswith(f"{split}/{split}_instances.json")
        assert {c["partition"] for c in gt["categories"]} == {0, 1, 2, 3}
        videos = {v["id"]: v for v in gt["videos"]}
        for v in gt["videos"]:
            assert v["file_names"][0] == f"{v['id']:05d}/00000.jpg"
            assert all(os.path.isfile(os.path.join(paths["img_root"], f)) for f in v["file_names"])
        nulls = 0
        for a in gt["annotations"]:
            v = videos[a["video_id"]]
            assert len(a["segmentations"]) == len(a["bboxes"]) == len(a["areas"]) == v["length"]
            assert any(s is not None for s in a["segmentations"])
            for s, b, ar in zip(a["segmentations"], a["bboxes"], a["areas"]):
                if s is None:
                    assert b is None and ar is None
                    nulls += 1
                    continue
                assert isinstance(s["counts"], str) and s["size"] == [v["height"], v["width"]]
                assert ar == decode_segmentation(s, v["height"], v["width"]).sum() > 0
                rle = {"size": s["size"], "counts": s["counts"].encode()}
                assert b == mask_util.toBbox(rle).tolist()
        assert nulls > 0 or split == "val"
        assert len(load_ytvis_json(paths["gt_json"], paths["img_root"])) == len(videos)


def test_pseudo_pngs_look_like_videocutler(tiny_synthetic_dataset):
    ds = tiny_synthetic_dataset
    cases = {"empty": 0, "missing_frame": 0, "merged": 0, "spurious": 0, "missed": 0}
    for split, paths in ds["splits"].items():
        gt = read_json(paths["gt_json"])
        log = read_json(os.path.join(os.path.dirname(paths["pseudo_mask_root"]), "noise_log.json"))
        for v in gt["videos"]:
            name = f"{v['id']:05d}"
            d = os.path.join(paths["pseudo_mask_root"], name)
            pngs = sorted(os.listdir(d)) if os.path.isdir(d) else []
            entry = log[name]
            if entry["empty"]:
                assert pngs == []
                cases["empty"] += 1
                continue
            expected = [f"mask_{os.path.basename(f)[:-4]}.png" for f in v["file_names"]]
            assert set(pngs) <= set(expected) and len(pngs) >= len(expected) - 1
            cases["missing_frame"] += len(pngs) < len(expected)
            cases["merged"] += bool(entry["merged"])
            cases["spurious"] += bool(entry["spurious_ids"])
            cases["missed"] += bool(entry["missed"])
            ids = set()
            for p in pngs:
                img = Image.open(os.path.join(d, p))
                assert img.mode == "P" and img.size == (v["width"], v["height"])
                arr = np.array(img)
                assert arr.dtype == np.uint8 and arr.max() <= MAX_PSEUDO_INSTANCES
                ids |= set(np.unique(arr).tolist())
            assert ids - {0} == set(range(1, len(entry["gt_index_of_id"]) + 1))
    assert all(n > 0 for n in cases.values()), cases
    assert ds["summary"]["train"]["pseudo_empty_videos"] >= 1


def test_deterministic_by_seed(tmp_path, tiny_synthetic_dataset):
    a = generate_synthetic_dataset(str(tmp_path / "a"), "tiny", seed=0)
    b = generate_synthetic_dataset(str(tmp_path / "b"), "tiny", seed=1)
    same = _tree_bytes(a["root"])
    assert same == _tree_bytes(tiny_synthetic_dataset["root"])
    other = _tree_bytes(b["root"])
    key = "train/train_instances.json"
    assert other[key] != same[key]
    assert other["train/JPEGImages/00001/00000.jpg"] != same["train/JPEGImages/00001/00000.jpg"]


def test_overrides_and_refuses_to_clobber(tmp_path):
    out = str(tmp_path / "o")
    p = generate_synthetic_dataset(out, "tiny", seed=3, num_videos=2, num_frames=3, height=20,
                                   width=30)
    assert p["summary"]["train"]["videos"] == 2 and p["summary"]["val"]["videos"] == 2
    v = read_json(p["splits"]["train"]["gt_json"])["videos"][0]
    assert (v["length"], v["height"], v["width"]) == (3, 20, 30)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_synthetic_dataset(out, "tiny")
    generate_synthetic_dataset(out, "tiny", num_videos=1, overwrite=True)
    assert read_json(os.path.join(out, "synthetic_summary.json"))["summary"]["train"]["videos"] == 1
    assert not [f for f in os.listdir(tmp_path) if ".partial-" in f]  # staging dir cleaned up
    with pytest.raises(ValueError, match="preset"):
        generate_synthetic_dataset(str(tmp_path / "x"), "huge")
