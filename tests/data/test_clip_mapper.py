"""YTVISClipMapper: one augmentation per clip, consistent track slots, short videos, lazy test."""
import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from wsovvis.config import add_wsovvis_config
from wsovvis.data import LazyVideoFrames, YTVISClipMapper, load_ytvis_json
from wsovvis.utils.io import read_json
from wsovvis.utils.rle import decode_segmentation


@pytest.fixture(scope="module")
def train_videos(tiny_synthetic_dataset):
    split = tiny_synthetic_dataset["splits"]["train"]
    return load_ytvis_json(split["gt_json"], split["img_root"])


def _mapper(augs, num=3, **kw):
    return YTVISClipMapper(True, augmentations=augs, image_format="RGB", sampling_frame_num=num,
                           sampling_frame_range=2, seed=0, **kw)


def _find_crop_flip(original, target):
    """Recover (y0, x0, flipped) such that target == crop(original) (optionally h-flipped)."""
    th, tw = target.shape[:2]
    for flipped in (False, True):
        src = original[:, ::-1] if flipped else original
        for y0 in range(src.shape[0] - th + 1):
            for x0 in range(src.shape[1] - tw + 1):
                if np.array_equal(src[y0:y0 + th, x0:x0 + tw], target):
                    return y0, x0, flipped
    raise AssertionError("output frame is not a crop of the input frame")


def _apply(img, y0, x0, flipped, th, tw):
    # detectron2 crops first, then flips the crop
    out = img[y0:y0 + th, x0:x0 + tw]
    return out[:, ::-1] if flipped else out


def test_same_crop_and_flip_on_every_frame(train_videos):
    np.random.seed(0)
    mapper = _mapper([T.RandomCrop("absolute", (40, 60)), T.RandomFlip(prob=0.5)])
    flips = set()
    for video in train_videos:
        for _ in range(2):
            out = mapper(video)
            frames = [utils.read_image(video["file_names"][t], "RGB") for t in out["frame_idx"]]
            imgs = [im.permute(1, 2, 0).numpy() for im in out["image"]]
            assert all(im.shape == (40, 60, 3) for im in imgs)
            # crop of the flipped image == flip of the crop at the mirrored offset
            y0, x0, flipped = _find_crop_flip(frames[0], imgs[0])
            if flipped:
                x0 = frames[0].shape[1] - 60 - x0
            flips.add(flipped)
            for k, (frame, img) in enumerate(zip(frames, imgs)):
                np.testing.assert_array_equal(_apply(frame, y0, x0, flipped, 40, 60), img)
                inst = out["instances"][k]
                assert inst.image_size == (40, 60)
                by_id = {o["id"]: o for o in video["annotations"][out["frame_idx"][k]]}
                for j, tid in enumerate(inst.gt_ids.tolist()):
                    got = inst.gt_masks.tensor[j].numpy()
                    if tid == -1:
                        assert not got.any() and not inst.gt_boxes.tensor[j].any()
                        continue
                    full = decode_segmentation(by_id[tid]["segmentation"], 64, 96)
                    np.testing.assert_array_equal(_apply(full, y0, x0, flipped, 40, 60) > 0, got)
                    ys, xs = np.nonzero(got)
                    assert inst.gt_boxes.tensor[j].tolist() == [xs.min(), ys.min(),
                                                                xs.max() + 1, ys.max() + 1]
    assert flips == {False, True}


def test_slots_consistent_and_absent_frames_match_json(tiny_synthetic_dataset, train_videos):
    """Whole-video clips without augmentation: slot pattern == the JSON's null pattern."""
    gt = read_json(tiny_synthetic_dataset["splits"]["train"]["gt_json"])
    present = {a["id"]: [s is not None for s in a["segmentations"]] for a in gt["annotations"]}
    category = {a["id"]: a["category_id"] for a in gt["annotations"]}  # ids 1..5 -> 0..4
    mapper = _mapper([], num=6, sampling_consecutive=True)
    seen_absent = 0
    for video in train_videos:
        out = mapper(video)
        assert out["frame_idx"] == list(range(6))
        track_ids = sorted(a["id"] for a in gt["annotations"] if a["video_id"] == video["video_id"])
        for t, inst in enumerate(out["instances"]):
            expected = [tid if present[tid][t] else -1 for tid in track_ids]
            assert inst.gt_ids.tolist() == expected  # slot j = j-th track on every frame
            assert inst.gt_classes.tolist() == [category[tid] - 1 for tid in track_ids]
            seen_absent += expected.count(-1)
    assert seen_absent > 0


def test_short_videos_repeat_frames(train_videos):
    video = dict(train_videos[0])
    video.update(length=1, file_names=video["file_names"][:1],
                 annotations=video["annotations"][:1])
    for consecutive in (True, False):
        out = _mapper([T.RandomFlip(prob=0.5)], num=4, sampling_consecutive=consecutive)(video)
        assert out["frame_idx"] == [0, 0, 0, 0]
        assert all(torch.equal(out["image"][0], im) for im in out["image"])
        assert all(torch.equal(out["instances"][0].gt_ids, i.gt_ids) for i in out["instances"])


def test_from_config_train_and_lazy_test(tiny_synthetic_dataset, train_videos):
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file("configs/Base-LVVIS.yaml")
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (32,), 1000
    cfg.INPUT.CROP.SIZE = (40, 60)
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 48, 1000
    out = YTVISClipMapper(cfg, is_train=True)(train_videos[1])
    assert len(out["image"]) == cfg.INPUT.SAMPLING_FRAME_NUM
    assert len({tuple(im.shape) for im in out["image"]}) == 1
    assert min(out["image"][0].shape[1:]) == 32
    assert out["image"][0].dtype == torch.uint8
    assert out["instances"][0].gt_masks.tensor.shape[1:] == out["image"][0].shape[1:]

    test = YTVISClipMapper(cfg, is_train=False)
    video = dict(train_videos[0])
    video.pop("annotations")
    video["file_names"] = video["file_names"][:-1] + ["/nonexistent/frame.jpg"]
    out = test(video)  # lazy: the missing frame is not touched
    assert "instances" not in out and isinstance(out["image"], LazyVideoFrames)
    assert len(out["image"]) == video["length"] == len(out["frame_idx"])
    assert tuple(out["image"][0].shape) == (3, 48, 72) == (3, *out["image"].image_size)
    with pytest.raises(FileNotFoundError):
        out["image"][-1]


def test_min_clip_instances_resamples(train_videos):
    video = dict(train_videos[0])
    frames = [[] for _ in range(video["length"])]
    frames[-1] = video["annotations"][-1] or video["annotations"][0]
    video["annotations"] = frames  # only the last frame has objects

    def nonempty(min_inst):
        mapper = _mapper([], num=1, min_clip_instances=min_inst)
        return sum(len(mapper(video)["instances"][0]) > 0 for _ in range(30))

    assert nonempty(0) <= 12 and nonempty(1) >= 20
