"""make_class_agnostic and its CLI on LV-VIS-style (partitions) and YTVIS-style inputs."""
import copy
import json
import os
import subprocess
import sys

import pytest

from wsovvis.pseudo import make_class_agnostic

from pseudo_testdata import default_gt

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "make_class_agnostic_ytvis_json.py")


def _lvvis():
    gt = default_gt()
    gt["categories"] = [{"id": 7, "name": "c0", "partition": 0},
                        {"id": 8, "name": "c1", "partition": 1},
                        {"id": 9, "name": "c2", "partition": 3}]
    gt["info"] = {"description": "lvvis-like"}
    return gt


def test_lvvis_input_keeps_everything_and_gets_partition():
    gt = _lvvis()
    before = copy.deepcopy(gt)
    out = make_class_agnostic(gt, 1, "object")
    assert gt == before  # input untouched
    assert out["categories"] == [{"id": 1, "name": "object", "supercategory": "object",
                                  "partition": 0}]
    assert out["orig_categories"] == before["categories"]
    assert out["videos"] == before["videos"] and out["info"] == before["info"]
    assert len(out["annotations"]) == len(before["annotations"])
    for a, b in zip(out["annotations"], before["annotations"]):
        assert a["category_id"] == 1 and a["orig_category_id"] == b["category_id"]
        assert {k: v for k, v in a.items() if k not in ("category_id", "orig_category_id")} == {
            k: v for k, v in b.items() if k != "category_id"}


def test_ytvis_input_has_no_partition_and_is_idempotent():
    gt = default_gt()
    out = make_class_agnostic(gt, 5, "thing")
    assert out["categories"] == [{"id": 5, "name": "thing", "supercategory": "thing"}]
    again = make_class_agnostic(out, 1, "object")
    assert again["orig_categories"] == gt["categories"]
    assert [a["orig_category_id"] for a in again["annotations"]] == [
        a["category_id"] for a in gt["annotations"]]


def test_bad_inputs():
    with pytest.raises(ValueError, match="results/predictions list"):
        make_class_agnostic([{"video_id": 1}])
    gt = default_gt()
    del gt["annotations"]  # an images-only (test split) file
    with pytest.raises(ValueError, match="no 'annotations'"):
        make_class_agnostic(gt)
    with pytest.raises(ValueError, match="category_id"):
        make_class_agnostic(default_gt(), category_id=0)


def test_cli(tmp_path):
    src, dst = tmp_path / "in.json", tmp_path / "sub" / "out.json"
    src.write_text(json.dumps(_lvvis()))
    r = subprocess.run([sys.executable, TOOL, "--in_json", str(src), "--out_json", str(dst)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(dst.read_text())
    assert out == make_class_agnostic(_lvvis())
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = subprocess.run([sys.executable, TOOL, "--in_json", str(bad), "--out_json", str(dst)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and str(bad) in r.stderr and "not valid JSON" in r.stderr
