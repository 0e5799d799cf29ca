"""Train / test loaders on the tiny synthetic dataset."""
import itertools
import json
import os

import pytest
import torch
from detectron2.config import get_cfg

from wsovvis.config import add_wsovvis_config
from wsovvis.data import (
    build_video_test_loader,
    build_video_train_loader,
    get_video_dataset_dicts,
    register_ytvis_instances,
    unregister_ytvis_instances,
)
from wsovvis.utils.io import read_json


@pytest.fixture(scope="module")
def tiny_names(tiny_synthetic_dataset, tmp_path_factory):
    splits = tiny_synthetic_dataset["splits"]
    names = {"train": "wsovvis_test_tiny_train", "val": "wsovvis_test_tiny_val",
             "with_empty": "wsovvis_test_tiny_train_with_empty"}
    for split in ("train", "val"):
        register_ytvis_instances(names[split], {}, splits[split]["gt_json"],
                                 splits[split]["img_root"])
    # the train split plus one video whose only track was removed
    data = read_json(splits["train"]["gt_json"])
    data["annotations"] = [a for a in data["annotations"] if a["video_id"] != 2]
    path = tmp_path_factory.mktemp("empty") / "train_with_empty.json"
    path.write_text(json.dumps(data))
    register_ytvis_instances(names["with_empty"], {}, str(path), splits["train"]["img_root"])
    yield names
    for name in names.values():
        unregister_ytvis_instances(name)


def _cfg(train_name):
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file("configs/Base-LVVIS.yaml")
    cfg.DATASETS.TRAIN = (train_name,)
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (32,), 1000
    cfg.INPUT.CROP.SIZE = (40, 60)
    cfg.INPUT.MIN_SIZE_TEST = 32
    cfg.INPUT.SAMPLING_FRAME_NUM = 3
    return cfg


def test_filter_empty_videos(tiny_names):
    all_videos = get_video_dataset_dicts([tiny_names["with_empty"]], filter_empty=False)
    kept = get_video_dataset_dicts([tiny_names["with_empty"]], filter_empty=True)
    assert len(all_videos) == 4 and len(kept) == 3
    assert 2 not in [v["video_id"] for v in kept]


def test_train_loader_yields_batches(tiny_names):
    cfg = _cfg(tiny_names["with_empty"])
    loader = build_video_train_loader(cfg)
    seen = set()
    for i, batch in enumerate(loader):
        assert isinstance(batch, list) and len(batch) == 2
        for clip in batch:
            assert len(clip["image"]) == len(clip["instances"]) == 3
            seen.add(clip["video_id"])
        if i == 5:
            break
    assert 2 not in seen and len(seen) >= 2


def test_train_loader_with_workers(tiny_names):
    cfg = _cfg(tiny_names["train"])
    cfg.DATALOADER.NUM_WORKERS = 1
    batch = next(iter(build_video_train_loader(cfg)))
    assert len(batch) == 2 and batch[0]["image"][0].shape[0] == 3


def _signature(batches):
    """What a training step sees: video, frames, pixels and track ids of every clip."""
    return [
        [(c["video_id"], tuple(c["frame_idx"]), [im.float().sum().item() for im in c["image"]],
          [inst.gt_ids.tolist() for inst in c["instances"]]) for c in batch]
        for batch in batches
    ]


def test_train_loader_resumes_exactly_whatever_the_workers(tiny_names):
    cfg = _cfg(tiny_names["train"])
    cfg.SEED = 3
    cfg.INPUT.SAMPLING_FRAME_NUM = 2
    full = _signature(itertools.islice(build_video_train_loader(cfg), 5))
    assert len({clip[0] for batch in full for clip in batch}) >= 2  # really shuffled videos
    resumed = _signature(itertools.islice(build_video_train_loader(cfg, start_iter=3), 2))
    assert resumed == full[3:]
    cfg.DATALOADER.NUM_WORKERS = 2
    assert _signature(itertools.islice(build_video_train_loader(cfg), 5)) == full
    # the caller's RNG is untouched by loading (NUM_WORKERS=0 runs the mapper in-process)
    cfg.DATALOADER.NUM_WORKERS = 0
    torch.manual_seed(0)
    next(iter(build_video_train_loader(cfg)))
    after_loading = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), after_loading)
    cfg.SEED = 4
    assert _signature(itertools.islice(build_video_train_loader(cfg), 5)) != full


@pytest.mark.parametrize(
    "key,value,message",
    [("DATALOADER.SAMPLER_TRAIN", "RepeatFactorTrainingSampler", "SAMPLER_TRAIN"),
     ("SOLVER.IMS_PER_BATCH", 0, "IMS_PER_BATCH")],
)
def test_train_loader_rejects_what_it_would_ignore(tiny_names, key, value, message):
    cfg = _cfg(tiny_names["train"])
    cfg.merge_from_list([key, value])
    with pytest.raises(ValueError, match=message):
        build_video_train_loader(cfg)


@pytest.mark.parametrize("style", ["choice_by_clip", "range_by_clip"])
def test_vnext_by_clip_size_sampling(tiny_names, style):
    """VNext YAMLs say "choice_by_clip" / "range_by_clip": one size per clip, as in wsovvis."""
    cfg = _cfg(tiny_names["train"])
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = style
    cfg.INPUT.MIN_SIZE_TRAIN = (32, 40)
    cfg.INPUT.CROP.ENABLED = False
    for batch in itertools.islice(build_video_train_loader(cfg), 3):
        for clip in batch:
            assert len({tuple(im.shape) for im in clip["image"]}) == 1
            assert min(clip["image"][0].shape[1:]) in ((32, 40) if style == "choice_by_clip"
                                                       else range(32, 41))


def test_default_workers_capped_by_usable_cpus(monkeypatch):
    if hasattr(os, "sched_getaffinity"):
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    assert cfg.DATALOADER.NUM_WORKERS == 1
    cfg.merge_from_file("configs/Base-LVVIS.yaml")  # the base config keeps the default
    assert cfg.DATALOADER.NUM_WORKERS == 1


def test_test_loader_every_video_once(tiny_names, tiny_synthetic_dataset):
    cfg = _cfg(tiny_names["train"])
    loader = build_video_test_loader(cfg, tiny_names["val"])
    ids = []
    for batch in loader:
        assert isinstance(batch, list) and len(batch) == 1
        video = batch[0]
        assert "instances" not in video and len(video["image"]) == video["length"]
        assert min(video["image"][0].shape[1:]) == 32
        ids.append(video["video_id"])
    assert ids == [1, 2, 3]
