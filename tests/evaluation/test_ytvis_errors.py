"""Bad input gives errors naming the entry; the CLI prints the table and writes metrics."""

import json
import math

import numpy as np
import pytest

from wsovvis.evaluation import evaluate_ytvis, format_summary
from wsovvis.utils.rle import encode_mask


def _gt():
    m = np.zeros((4, 4), np.uint8)
    m[:2, :2] = 1
    return {
        "videos": [{"id": 1, "height": 4, "width": 4, "length": 2}],
        "categories": [{"id": 1, "name": "a", "partition": 0}],
        "annotations": [
            {
                "id": 1,
                "video_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentations": [encode_mask(m), None],
                "areas": [4, None],
            }
        ],
    }


def _det(**kw):
    m = np.zeros((4, 4), np.uint8)
    m[:2, :2] = 1
    d = {"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [encode_mask(m), None]}
    d.update(kw)
    return d


def test_unknown_videos_listed():
    with pytest.raises(ValueError, match=r"2 result video ids are not in the ground truth: 7, 9"):
        evaluate_ytvis(_gt(), [_det(), _det(video_id=9), _det(video_id=7)])


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(score=float("nan")), r"results\[1\].*score must be a finite number"),
        (dict(score="high"), r"results\[1\].*score"),
        (dict(segmentations=[None]), r"results\[1\].*1 segmentations for a video of 2 frames"),
        (
            dict(segmentations=[encode_mask(np.ones((5, 4), np.uint8)), None]),
            r"results\[1\].*frame 0: RLE size \[5, 4\] differs from the video size \[4, 4\]",
        ),
        (
            dict(segmentations=[{"size": [4, 4], "counts": [16]}, None]),
            r"results\[1\].*frame 0: expected a compressed RLE",
        ),
        (dict(category_id="cat"), r"results\[1\].category_id must be an integer"),
    ],
)
def test_malformed_result_entry(bad, message):
    with pytest.raises(ValueError, match=message):
        evaluate_ytvis(_gt(), [_det(), _det(**bad)])


def test_missing_keys_and_types():
    d = _det()
    del d["score"]
    with pytest.raises(ValueError, match=r"results\[0\] .*has no 'score'"):
        evaluate_ytvis(_gt(), [d])
    with pytest.raises(ValueError, match="results must be a list"):
        evaluate_ytvis(_gt(), {"video_id": 1})
    gt = _gt()
    del gt["annotations"][0]["segmentations"]
    with pytest.raises(ValueError, match=r"annotations\[0\] \(id=1\) has no 'segmentations'"):
        evaluate_ytvis(gt, [_det()])


def test_gt_without_areas_uses_the_mask_areas():
    # the dataset loader accepts GT without "areas"; the scorer takes them from the masks
    gt = _gt()
    gt["annotations"][0]["segmentations"][1] = gt["annotations"][0]["segmentations"][0]
    gt["annotations"][0]["areas"] = [4, 4]
    with_areas = evaluate_ytvis(gt, [_det()])
    del gt["annotations"][0]["areas"]
    without = evaluate_ytvis(gt, [_det()])
    assert np.array_equal(with_areas.precision, without.precision)
    assert np.array_equal(with_areas.stats, without.stats)
    assert without.stats[3] == without.stats[0] > 0 and without.stats[4] == -1  # a small track


def test_unreadable_json(tmp_path):
    bad = tmp_path / "res.json"
    bad.write_text("[{not json")
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(_gt()))
    with pytest.raises(ValueError, match="results file .*res.json is not valid JSON"):
        evaluate_ytvis(str(gt), str(bad))
    with pytest.raises(FileNotFoundError, match="results file not found"):
        evaluate_ytvis(str(gt), str(tmp_path / "missing.json"))


def test_nan_score_in_a_results_file_names_the_entry(tmp_path):
    # Python's json.dump writes NaN / Infinity, which are not JSON
    res, gt = tmp_path / "res.json", tmp_path / "gt.json"
    gt.write_text(json.dumps(_gt()))
    for value in (float("nan"), float("inf")):
        res.write_text(json.dumps([_det(), _det(score=value)]))
        match = r"results\[1\] \(video_id=1\): score must be a finite"
        with pytest.raises(ValueError, match=match):
            evaluate_ytvis(str(gt), str(res))


def test_gt_without_annotations_is_an_error():
    gt = _gt()
    gt["annotations"] = []
    with pytest.raises(ValueError, match="no annotations.*nothing to score"):
        evaluate_ytvis(gt, [_det()])
    del gt["annotations"]
    with pytest.raises(ValueError, match="nothing to score"):
        evaluate_ytvis(gt, [_det()])


def _two_category_gt(partitions):
    gt = _gt()
    gt["categories"] = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    for c, p in zip(gt["categories"], partitions):
        if p is not None:
            c["partition"] = p
    second = dict(gt["annotations"][0], id=2, category_id=2)
    gt["annotations"].append(second)
    return gt


def test_string_partitions_work():
    r = evaluate_ytvis(_two_category_gt(["1", "2"]), [_det()])
    assert r.base_stats[0] == pytest.approx(1.0) and r.novel_stats[0] == 0.0
    as_ints = evaluate_ytvis(_two_category_gt([1, 2]), [_det()])
    assert np.array_equal(r.base_stats, as_ints.base_stats)


@pytest.mark.parametrize("partitions, message", [
    ([0, None], r"categories\[1\] \(id=2\) has no 'partition'"),
    ([0, "novel"], r"categories\[1\] \(id=2\): 'partition' must be one of"),
    ([0, 7], r"categories\[1\] \(id=2\): 'partition' must be one of"),
])
def test_bad_partitions_name_the_category(partitions, message):
    with pytest.raises(ValueError, match=message):
        evaluate_ytvis(_two_category_gt(partitions), [_det()])


def test_class_agnostic_base_novel_ignores_the_other_partition():
    gt = _two_category_gt([0, 2])
    gt["annotations"][1]["segmentations"] = [None, gt["annotations"][0]["segmentations"][0]]
    gt["annotations"][1]["areas"] = [None, 4]
    det = _det()  # matches the base track (category 1) only
    r = evaluate_ytvis(gt, [det], class_agnostic=True)
    assert r.stats[8] == 0.5  # AR100: one of the two tracks found
    assert r.base_stats[8] == 1.0 and r.base_stats[0] == pytest.approx(1.0)  # novel ignored
    assert r.novel_stats[8] == 0.0 and r.novel_stats[0] == 0.0  # base detection ignored, no TP


def test_class_agnostic_copy_keeps_the_original_partitions():
    from wsovvis.pseudo.class_agnostic import make_class_agnostic

    gt = _two_category_gt([0, 2])
    gt["annotations"][1]["segmentations"] = [None, gt["annotations"][0]["segmentations"][0]]
    gt["annotations"][1]["areas"] = [None, 4]
    agnostic = make_class_agnostic(gt)
    expected = evaluate_ytvis(gt, [_det()], class_agnostic=True)
    for mode in (False, True):  # the copy has one category; both modes pool everything
        r = evaluate_ytvis(agnostic, [_det()], class_agnostic=mode)
        assert np.array_equal(r.stats, expected.stats)
        assert np.array_equal(r.base_stats, expected.base_stats)
        assert np.array_equal(r.novel_stats, expected.novel_stats)
        assert "novel ] = 0.000" in format_summary(r)


def test_empty_results_score_zero():
    r = evaluate_ytvis(_gt(), [])
    assert r.stats[0] == 0.0 and r.stats[8] == 0.0


def test_cli(tmp_path, capsys):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "eval_ytvis.py")
    spec = importlib.util.spec_from_file_location("eval_ytvis_cli", path)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    gt, res, out = tmp_path / "gt.json", tmp_path / "res.json", tmp_path / "m" / "metrics.json"
    gt.write_text(json.dumps(_gt()))
    res.write_text(json.dumps([_det()]))
    assert cli.main(["--gt", str(gt), "--results", str(res), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000" in text
    assert "novel" in text
    metrics = json.loads(out.read_text())
    assert math.isclose(metrics["stats"]["AP"], 1.0, abs_tol=1e-12)
    assert metrics["stats"]["APl"] is None and metrics["stats"]["APn"] is None
    assert cli.main(["--gt", str(gt), "--results", str(tmp_path / "nope.json")]) == 2
