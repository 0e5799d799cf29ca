"""Oracle labels (best video-IoU GT tube) and the three-row diagnostics table."""
import json

import numpy as np
from pycocotools import mask as mask_util

from wsovvis.open_vocab import diagnostics, format_diagnostics, oracle_labels
from wsovvis.open_vocab.diagnostics import _video_ious


def _decode(seg):
    return mask_util.decode({"size": seg["size"], "counts": seg["counts"].encode()}).astype(bool)


def test_video_iou_matches_decoded_masks(tiny_synthetic_dataset):
    gt = json.load(open(tiny_synthetic_dataset["splits"]["val"]["gt_json"]))
    vid = gt["annotations"][0]["video_id"]
    anns = [a["segmentations"] for a in gt["annotations"] if a["video_id"] == vid]
    ious = _video_ious(anns, anns)
    for i, a in enumerate(anns):
        for j, b in enumerate(anns):
            inter = union = 0
            for sa, sb in zip(a, b):
                ma = _decode(sa) if sa else None
                mb = _decode(sb) if sb else None
                if ma is not None and mb is not None:
                    inter += (ma & mb).sum()
                    union += (ma | mb).sum()
                else:
                    union += sum(m.sum() for m in (ma, mb) if m is not None)
            assert np.isclose(ious[i, j], inter / union), (i, j)


def test_oracle_relabels_to_gt_categories(tiny_synthetic_dataset):
    gt_path = tiny_synthetic_dataset["splits"]["val"]["gt_json"]
    gt = json.load(open(gt_path))
    wrong = [{"video_id": a["video_id"], "score": 0.9, "category_id": 99,
              "segmentations": a["segmentations"]} for a in gt["annotations"]]
    fixed = oracle_labels(wrong, gt_path)
    assert [r["category_id"] for r in fixed] == [a["category_id"] for a in gt["annotations"]]
    assert wrong[0]["category_id"] == 99  # input untouched
    named = [dict(r, category_id=(r["category_id"] % 5) + 1) for r in fixed]  # all wrong
    rows = diagnostics(gt_path, wrong, named)
    assert rows["class-agnostic"]["AP"] == 100.0 and rows["oracle-label"]["AP"] == 100.0
    assert rows["open-vocab"]["AP"] == 0.0
    assert {"APb", "APn"} <= set(rows["open-vocab"])  # the synthetic categories have partitions
    text = format_diagnostics(rows)
    assert "oracle-label" in text and "APn" in text


def test_eval_ytvis_oracle_labels_flag(tiny_synthetic_dataset, tmp_path, capsys):
    import importlib.util
    import os

    tool = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "eval_ytvis.py")
    spec = importlib.util.spec_from_file_location("eval_ytvis_tool", tool)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    gt_path = tiny_synthetic_dataset["splits"]["val"]["gt_json"]
    gt = json.load(open(gt_path))
    res = tmp_path / "res.json"
    res.write_text(json.dumps([{"video_id": a["video_id"], "score": 0.5, "category_id": 1,
                                "segmentations": a["segmentations"]} for a in gt["annotations"]]))
    out = tmp_path / "m.json"
    assert mod.main(["--gt", gt_path, "--results", str(res), "--oracle-labels", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["stats"]["AP"] == 1.0
    res.write_text(json.dumps([{"score": 1}]))
    assert mod.main(["--gt", gt_path, "--results", str(res), "--oracle-labels"]) == 2
    assert "error: results[0] needs 'video_id'" in capsys.readouterr().err
