"""Acceptance: converted tubes scored as predictions against the class-agnostic synthetic GT.

* Perfect masks (GT rendered to id PNGs, then converted) must give AP = 1.0.
* The synthetic VideoCutLER-style pseudo masks must give the AP50 we compute ourselves from the
  masks: GT tracks and tubes are both pixel-disjoint within a video, so the pairs with video IoU
  >= 0.5 form a one-to-one matching whatever the scores. Scoring those tubes 1.0 and the others 0.5
  puts every true positive first, hence AP50 = (number of recall thresholds <= recall) / 101 with
  recall = matched pairs / GT tracks (0 when nothing matches). With equal scores (order unknown)
  AP50 lies between precision * that value and that value.
"""
import os

import numpy as np
import pytest

from wsovvis.evaluation import evaluate_ytvis
from wsovvis.pseudo import (
    ConvertOptions,
    convert_videocutler_pngs,
    make_class_agnostic,
    render_ytvis_to_id_pngs,
    tubes_to_results,
)
from wsovvis.utils.io import read_json
from wsovvis.utils.rle import decode_segmentation


def _tracks(dataset, video):
    """{annotation id: (T, H, W) bool} of one video (null frames -> empty)."""
    h, w, t = video["height"], video["width"], video["length"]
    out = {}
    for a in dataset["annotations"]:
        if a["video_id"] != video["id"]:
            continue
        m = np.zeros((t, h, w), bool)
        for f, seg in enumerate(a["segmentations"]):
            if seg is not None:
                m[f] = decode_segmentation(seg, h, w) > 0
        out[a["id"]] = m
    return out


def _pairs_at_half(gt, tubes):
    """Tube annotation ids with video IoU >= 0.5 against some GT track, and the GT-track count."""
    matched_tubes, num_gt = set(), len(gt["annotations"])
    by_id = {v["id"]: v for v in tubes["videos"]}
    for video in gt["videos"]:
        if video["id"] not in by_id:
            continue
        g, d = _tracks(gt, video), _tracks(tubes, by_id[video["id"]])
        matched_gt = set()
        for did, dm in d.items():
            for gid, gm in g.items():
                inter, union = (dm & gm).sum(), (dm | gm).sum()
                if union and inter / union >= 0.5:
                    assert gid not in matched_gt and did not in matched_tubes  # one-to-one
                    matched_gt.add(gid)
                    matched_tubes.add(did)
    return matched_tubes, num_gt


def _convert(img_root, mask_root, gt_json):
    res = convert_videocutler_pngs(ConvertOptions(mask_root=mask_root, img_root=img_root,
                                                  ref_json=gt_json, progress=False))
    return res


@pytest.mark.parametrize("split", ["train", "val"])
def test_perfect_masks_give_ap_1(tiny_synthetic_dataset, tmp_path, split):
    paths = tiny_synthetic_dataset["splits"][split]
    gt = make_class_agnostic(read_json(paths["gt_json"]))
    mask_root = str(tmp_path / "masks")
    render_ytvis_to_id_pngs(gt, mask_root)
    res = _convert(paths["img_root"], mask_root, paths["gt_json"])
    assert res.report["summary"]["skipped"] == 0
    assert len(res.dataset["annotations"]) == len(gt["annotations"])
    ev = evaluate_ytvis(gt, tubes_to_results(res.dataset), class_agnostic=True)
    assert ev.stats[0] == pytest.approx(1.0) and ev.stats[1] == pytest.approx(1.0)


@pytest.mark.parametrize("split", ["train", "val"])
def test_videocutler_style_pseudo_masks_give_expected_ap50(tiny_synthetic_dataset, split):
    paths = tiny_synthetic_dataset["splits"][split]
    gt = make_class_agnostic(read_json(paths["gt_json"]))
    res = _convert(paths["img_root"], paths["pseudo_mask_root"], paths["gt_json"])
    tubes = res.dataset
    # the generator leaves one split video without output, like the demo's 0-instance crash
    reasons = {s["reason"] for s in res.report["skipped"]}
    assert reasons == {"no_masks"} and res.num_converted == len(gt["videos"]) - 1
    matched, num_gt = _pairs_at_half(gt, tubes)
    recall = len(matched) / num_gt
    if split == "train":  # non-trivial on seed 0: some hits, some false positives
        assert 0 < len(matched) < len(tubes["annotations"])
    # with no true positive the first detection is a false positive: precision 0 everywhere
    n_thr = sum(1 for i in range(101) if i / 100 <= recall + 1e-9) if matched else 0
    oracle = tubes_to_results(tubes)
    for r, a in zip(oracle, tubes["annotations"]):
        r["score"] = 1.0 if a["id"] in matched else 0.5
    ev = evaluate_ytvis(gt, oracle, class_agnostic=True)
    assert ev.stats[1] == pytest.approx(n_thr / 101)
    # equal scores: ties in unknown order, AP50 between precision * bound and bound
    ev = evaluate_ytvis(gt, tubes_to_results(tubes, score=1.0), class_agnostic=True)
    precision = len(matched) / len(tubes["annotations"])
    assert precision * n_thr / 101 - 1e-9 <= ev.stats[1] <= n_thr / 101 + 1e-9
    assert ev.stats[0] <= ev.stats[1]


def test_cli_on_synthetic_pseudo_masks_is_deterministic(tiny_synthetic_dataset, tmp_path):
    from test_convert_cli import _cli  # noqa: E402  (same folder)

    paths = tiny_synthetic_dataset["splits"]["train"]
    outs = []
    for i, workers in enumerate(("1", "2")):
        out = str(tmp_path / f"tubes{i}.json")
        r = _cli("--mask_root", paths["pseudo_mask_root"], "--img_root", paths["img_root"],
                 "--out_json", out, "--num_workers", workers, "--split_name", "train")
        assert r.returncode == 0, r.stderr
        outs.append(open(out, "rb").read())
    assert outs[0] == outs[1]
    assert os.path.exists(tmp_path / "tubes0.skipped.json")
