"""tools/name_tubes.py end to end with a tiny open_clip file, and its bad-input errors."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(REPO, "tools", "name_tubes.py")


def _run(args, tmp_path, progress=False):
    return subprocess.run([sys.executable, TOOL] + ([] if progress else ["--no-progress"])
                          + ["--clip-model", "wsovvis_tiny_convnext",
                           "--cache-dir", str(tmp_path / "cache")] + args,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest.fixture(scope="module")
def val(tiny_synthetic_dataset, tmp_path_factory):
    split = tiny_synthetic_dataset["splits"]["val"]
    gt = json.load(open(split["gt_json"]))
    tmp = tmp_path_factory.mktemp("name_tubes")
    results = [{"video_id": a["video_id"], "score": 0.8, "category_id": 1,
                "segmentations": a["segmentations"]} for a in gt["annotations"]]
    path = tmp / "agnostic.json"
    path.write_text(json.dumps(results))
    return {"gt": split["gt_json"], "img_root": split["img_root"], "results": str(path), "doc": gt}


def test_names_results_file(val, tiny_clip_file, tmp_path):
    out = tmp_path / "named.json"
    proc = _run(["--results", val["results"], "--vocab", val["gt"], "--img_root", val["img_root"],
                 "--out", str(out), "--clip-weights", tiny_clip_file, "--topk", "3"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    named = json.loads(out.read_text())
    cats = {c["id"] for c in val["doc"]["categories"]}
    assert len(named) == 3 * len(val["doc"]["annotations"])
    assert all(r["category_id"] in cats and 0 <= r["score"] <= 1 for r in named)
    from wsovvis.evaluation import evaluate_ytvis

    assert evaluate_ytvis(val["gt"], str(out)).stats[0] >= 0
    assert os.listdir(tmp_path / "cache")  # the text bank was cached


def test_progress_bar_over_videos(val, tiny_clip_file, tmp_path):
    out = tmp_path / "named.json"
    proc = _run(["--results", val["results"], "--vocab", val["gt"], "--img_root", val["img_root"],
                 "--out", str(out), "--clip-weights", tiny_clip_file], tmp_path, progress=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n = len({a["video_id"] for a in val["doc"]["annotations"]})
    assert "naming tubes: 100%" in proc.stderr and f"{n}/{n}" in proc.stderr, proc.stderr


def test_names_gt_style_tubes_with_a_names_file(val, tiny_clip_file, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("disc, circle\nsquare\n")
    out = tmp_path / "named.json"
    proc = _run(["--results", val["gt"], "--vocab", str(names), "--img_root", val["img_root"],
                 "--out", str(out), "--clip-weights", tiny_clip_file], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert {r["category_id"] for r in json.loads(out.read_text())} <= {1, 2}


@pytest.mark.parametrize("case, message", [
    ("dup_vocab", "duplicate category name 'disc'"),
    ("missing_frames", "is not on disk"),
    ("unknown_clip", "'convnext_nope' is not an open_clip architecture"),
    ("other_arch", "do not fit the architecture 'convnext_base_w_320'"),
    ("no_videos", "no video list"),
    ("empty_results", "no tubes"),
    ("corrupt_rle", "results[1] (video "),
])
def test_bad_input_one_error_line_nothing_written(val, tiny_clip_file, tmp_path, case, message):
    vocab, img_root, results = val["gt"], val["img_root"], val["results"]
    extra = ["--clip-weights", tiny_clip_file]
    if case == "dup_vocab":
        vocab = str(tmp_path / "names.txt")
        open(vocab, "w").write("disc\nsquare\ndisc\n")
    elif case == "missing_frames":
        img_root = str(tmp_path / "empty")
        os.makedirs(img_root)
    elif case == "unknown_clip":
        extra += ["--clip-model", "convnext_nope"]
    elif case == "other_arch":
        extra += ["--clip-model", "convnext_base_w_320"]
    elif case == "no_videos":
        vocab = str(tmp_path / "names.txt")
        open(vocab, "w").write("disc\n")
    elif case == "empty_results":
        results = str(tmp_path / "empty.json")
        open(results, "w").write("[]")
    elif case == "corrupt_rle":
        # run lengths summing to less than h * w: pycocotools would decode uninitialised memory
        docs = json.load(open(results))
        t = next(t for t, s in enumerate(docs[1]["segmentations"]) if s is not None)
        docs[1]["segmentations"][t] = {"size": docs[1]["segmentations"][t]["size"], "counts": "05"}
        results = str(tmp_path / "corrupt.json")
        open(results, "w").write(json.dumps(docs))
        message = f"results[1] (video {docs[1]['video_id']}), frame {t}: RLE run lengths sum to"
    out = tmp_path / "named.json"
    # with the progress bar on: a bad input stops before any work, so the error is the only line
    proc = _run(["--results", results, "--vocab", vocab, "--img_root", img_root, "--out", str(out)]
                + extra, tmp_path, progress=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not out.exists()
