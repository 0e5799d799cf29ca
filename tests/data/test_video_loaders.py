"""Train / test loaders on the tiny synthetic dataset."""
import json

import pytest
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
