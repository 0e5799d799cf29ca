"""YTVISEvaluator: contract conversion, dedup, results.json, metrics; 2-process gloo gather."""

import json
import logging
import math
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils import comm

from wsovvis.data.datasets.ytvis import register_ytvis_instances
from wsovvis.engine.launch import launch
from wsovvis.evaluation import YTVISEvaluator
from wsovvis.utils.rle import encode_mask


def _mask(y0, x0):
    m = np.zeros((8, 8), np.uint8)
    m[y0 : y0 + 3, x0 : x0 + 3] = 1
    return m


def _write_gt(path, with_annotations=True):
    gt = {
        "videos": [
            {
                "id": v,
                "height": 8,
                "width": 8,
                "length": 2,
                "file_names": [f"{v}/0.jpg", f"{v}/1.jpg"],
            }
            for v in (1, 2, 3)
        ],
        "categories": [
            {"id": 3, "name": "cat", "partition": 0},
            {"id": 8, "name": "dog", "partition": 2},
        ],
    }
    if with_annotations:
        gt["annotations"] = [
            {
                "id": i + 1,
                "video_id": v,
                "category_id": c,
                "iscrowd": 0,
                "segmentations": [encode_mask(_mask(i, i))] * 2,
                "areas": [9, 9],
            }
            for i, (v, c) in enumerate([(1, 3), (2, 8), (3, 3)])
        ]
    with open(path, "w") as f:
        json.dump(gt, f)
    return gt


# Hand-computed AP of the outputs below (each detection covers its GT mask on frame 0 of 2, so
# IoU = 9 / 18 = 0.5: a true positive at the 0.5 threshold only). cat (base): 1 of 2 GT found,
# precision 1 up to recall 0.5 -> 51 of 101 recall points at 1 threshold of 10; dog (novel): its
# GT found first (precision 1 at every recall point) -> 1 of 10 thresholds. Class-agnostic: the
# dog detection in video 3 covers the cat GT there, all 3 GT are found -> 1 of 10 thresholds.
AP_CAT = 51 / 101 / 10
AP_DOG = 1 / 10
EXPECTED = {"AP": (AP_CAT + AP_DOG) / 2, "APb": AP_CAT, "APn": AP_DOG, "AP50": (51 / 101 + 1) / 2}
EXPECTED_AGNOSTIC_AP = 1 / 10


def _register(name, json_file):
    if name not in DatasetCatalog.list():
        register_ytvis_instances(name, {}, json_file, os.path.dirname(json_file))


def _output(video_id, label, index, score=0.9):
    """Model output of one video (CONTRACTS.md): one track on GT ``index``'s mask."""
    track = [encode_mask(_mask(index, index))] * 2
    track[1] = None
    return {
        "video_id": video_id,
        "height": 8,
        "width": 8,
        "pred_scores": [score],
        "pred_labels": [label],
        "pred_segmentations": [track],
    }


def test_single_process(tmp_path, caplog):
    gt_path = str(tmp_path / "gt.json")
    _write_gt(gt_path)
    _register("wsovvis_test_eval_single", gt_path)
    ev = YTVISEvaluator("wsovvis_test_eval_single", output_dir=str(tmp_path / "inference"))
    ev.reset()
    outs = [_output(1, 0, 0), _output(2, 1, 1), _output(3, 1, 2)]
    ev.process([{"video_id": o["video_id"]} for o in outs], outs)
    ev.process([{"video_id": 1}], [_output(1, 0, 0)])  # duplicate video (padding sampler)
    with caplog.at_level(logging.INFO, logger="wsovvis.evaluation"):
        metrics = ev.evaluate()
    saved = json.loads((tmp_path / "inference" / "results.json").read_text())
    assert [r["video_id"] for r in saved] == [1, 2, 3]
    assert [r["category_id"] for r in saved] == [3, 8, 8]
    assert saved[0]["segmentations"][1] is None and isinstance(
        saved[0]["segmentations"][0]["counts"], str
    )
    assert set(metrics["segm"]) == {
        "AP",
        "AP50",
        "AP75",
        "APs",
        "APm",
        "APl",
        "AR1",
        "AR10",
        "APb",
        "APn",
    }
    for key, value in EXPECTED.items():
        assert metrics["segm"][key] == pytest.approx(value * 100, rel=1e-12), key
    assert math.isnan(metrics["segm"]["APl"])
    assert "Average Precision" in caplog.text

    agn = YTVISEvaluator("wsovvis_test_eval_single", class_agnostic=True)
    agn.process([{}] * 3, outs)
    assert agn.evaluate()["segm"]["AP"] == pytest.approx(EXPECTED_AGNOSTIC_AP * 100, rel=1e-12)


def test_no_annotations_saves_and_explains(tmp_path, caplog):
    gt_path = str(tmp_path / "gt.json")
    _write_gt(gt_path, with_annotations=False)
    _register("wsovvis_test_eval_noann", gt_path)
    ev = YTVISEvaluator("wsovvis_test_eval_noann", output_dir=str(tmp_path))
    ev.process([{}], [_output(1, 0, 0)])
    with caplog.at_level(logging.WARNING, logger="wsovvis.evaluation"):
        assert ev.evaluate() == {}
    assert "no annotations" in caplog.text
    assert (tmp_path / "results.json").exists()


def test_bad_label_is_named(tmp_path):
    gt_path = str(tmp_path / "gt.json")
    _write_gt(gt_path)
    _register("wsovvis_test_eval_badlabel", gt_path)
    ev = YTVISEvaluator("wsovvis_test_eval_badlabel")
    with pytest.raises(ValueError, match="video 1: predicted label 5"):
        ev.process([{}], [_output(1, 5, 0)])


def _worker(gt_path, out_path):
    _register("wsovvis_test_eval_dist", gt_path)
    ev = YTVISEvaluator("wsovvis_test_eval_dist", output_dir=os.path.dirname(out_path))
    # rank 0 gets videos 1, 2; rank 1 gets 3 and a padded duplicate of 1
    rank = comm.get_rank()
    outs = (
        [_output(1, 0, 0), _output(2, 1, 1)] if rank == 0 else [_output(3, 1, 2), _output(1, 0, 0)]
    )
    ev.process([{}] * 2, outs)
    metrics = ev.evaluate()
    if rank == 0:
        with open(out_path, "w") as f:
            json.dump(metrics, f)
    else:
        assert metrics == {}


def test_two_process_gather_dedup(tmp_path):
    gt_path = str(tmp_path / "gt.json")
    _write_gt(gt_path)
    out_path = str(tmp_path / "metrics.json")
    launch(_worker, 2, args=(gt_path, out_path), use_cuda=False)
    metrics = json.loads(open(out_path).read())
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["video_id"] for r in saved] == [1, 2, 3]
    assert metrics["segm"]["AP"] == pytest.approx(EXPECTED["AP"] * 100, rel=1e-12)


@pytest.mark.parametrize("score", [float("nan"), float("inf")])
def test_non_finite_score_is_named_before_writing(tmp_path, score):
    gt_path = str(tmp_path / "gt.json")
    _write_gt(gt_path)
    _register("wsovvis_test_eval_nan", gt_path)
    ev = YTVISEvaluator("wsovvis_test_eval_nan", output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="video 2: track 0 has a non-finite score"):
        ev.process([{}], [_output(2, 0, 0, score=score)])
    assert not (tmp_path / "results.json").exists()


def test_categories_read_without_loading_the_dataset(tmp_path):
    gt_path = str(tmp_path / "gt.json")
    _write_gt(gt_path)
    _register("wsovvis_test_eval_cats", gt_path)
    ev = YTVISEvaluator("wsovvis_test_eval_cats")
    meta = MetadataCatalog.get("wsovvis_test_eval_cats")
    assert meta.thing_classes == ["cat", "dog"] and meta.thing_partitions == [0, 2]
    ev.process([{}], [_output(2, 1, 1)])
    assert ev._predictions[0][1][0]["category_id"] == 8


def test_gt_that_is_not_an_object_is_named(tmp_path):
    gt_path = tmp_path / "gt.json"
    gt_path.write_text("[1, 2]")
    _register("wsovvis_test_eval_notobj", str(gt_path))
    with pytest.raises(ValueError, match=f"{gt_path} is not a JSON object"):
        YTVISEvaluator("wsovvis_test_eval_notobj")
