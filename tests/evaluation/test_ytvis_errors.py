"""Bad input gives errors naming the entry; the CLI prints the table and writes metrics."""

import json
import math

import numpy as np
import pytest

from wsovvis.evaluation import evaluate_ytvis
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
    del gt["annotations"][0]["areas"]
    with pytest.raises(ValueError, match=r"annotations\[0\] \(id=1\) has no 'areas'"):
        evaluate_ytvis(gt, [_det()])


def test_unreadable_json(tmp_path):
    bad = tmp_path / "res.json"
    bad.write_text("[{not json")
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps(_gt()))
    with pytest.raises(ValueError, match="results file .*res.json is not valid JSON"):
        evaluate_ytvis(str(gt), str(bad))
    with pytest.raises(FileNotFoundError, match="results file not found"):
        evaluate_ytvis(str(gt), str(tmp_path / "missing.json"))


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
