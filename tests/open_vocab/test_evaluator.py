"""The open-vocabulary detectron2 evaluator behind ``MODEL.OPEN_VOCAB.ENABLED`` (trainer hook)."""
import json
import os

import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog

from wsovvis.config import add_wsovvis_config
from wsovvis.data.datasets.ytvis import register_ytvis_instances


@pytest.fixture(scope="module")
def val_split(tiny_synthetic_dataset):
    split = tiny_synthetic_dataset["splits"]["val"]
    name = "wsovvis_test_openvocab_val"
    register_ytvis_instances(name, {}, split["gt_json"], split["img_root"])
    return name, split


def _cfg(tmp_path, clip_file, **extra):
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path),
                         "MODEL.OPEN_VOCAB.ENABLED", True,
                         "MODEL.OPEN_VOCAB.CLIP_MODEL", "wsovvis_tiny_convnext",
                         "MODEL.OPEN_VOCAB.CLIP_WEIGHTS", clip_file])
    for k, v in extra.items():
        cfg.merge_from_list([k, v])
    return cfg


def test_trainer_builds_it_and_it_scores_three_ways(val_split, tiny_clip_file, tmp_path):
    from wsovvis.engine.trainer import Trainer
    from wsovvis.open_vocab.evaluator import OpenVocabEvaluator

    name, split = val_split
    cfg = _cfg(tmp_path, tiny_clip_file)
    ev = Trainer.build_evaluator(cfg, name)
    assert isinstance(ev, OpenVocabEvaluator)
    gt = json.load(open(split["gt_json"]))
    ev.reset()
    for d in DatasetCatalog.get(name):  # model outputs = the GT tubes, class-agnostic label 0
        tracks = {}
        for t, objs in enumerate(d["annotations"]):
            for o in objs:
                tracks.setdefault(o["id"], [None] * d["length"])[t] = o["segmentation"]
        out = {"video_id": d["video_id"], "height": d["height"], "width": d["width"],
               "pred_scores": [0.9] * len(tracks), "pred_labels": [0] * len(tracks),
               "pred_segmentations": list(tracks.values())}
        ev.process([d], [out])
    res = ev.evaluate()
    assert res["class_agnostic"]["AP"] == 100.0 and res["oracle"]["AP"] == 100.0
    assert {"AP", "APb", "APn"} <= set(res["segm"])
    named = json.load(open(os.path.join(tmp_path, "inference", "results.json")))
    assert {r["category_id"] for r in named} <= {c["id"] for c in gt["categories"]}
    assert os.path.isfile(os.path.join(tmp_path, "inference", "results_class_agnostic.json"))
    assert os.listdir(os.path.join(tmp_path, "open_vocab_cache"))


def test_vocabulary_names_must_be_gt_categories(val_split, tiny_clip_file, tmp_path):
    from wsovvis.open_vocab import build_open_vocab_evaluator

    names = tmp_path / "names.txt"
    names.write_text("disc\nzebra\n")
    cfg = _cfg(tmp_path, tiny_clip_file, **{"MODEL.OPEN_VOCAB.VOCABULARY": str(names)})
    with pytest.raises(ValueError, match="names not among the GT categories.*zebra"):
        build_open_vocab_evaluator(cfg, val_split[0])
    names.write_text("ring\ndisc\n")
    ev = build_open_vocab_evaluator(cfg, val_split[0])
    assert ev.classifier.vocabulary.ids == [4, 1]  # GT ids, user order
