"""A shortened ``make demo`` (tiny preset, few iterations) through tools/run_demo.py."""
import json
import os
import subprocess
import sys

from PIL import Image

from engine_helpers import REPO


def test_demo_tiny(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "run_demo.py"), "--output-dir", str(out),
         "--preset", "tiny", "--max-iter", "4", "--clip-steps", "3", "SOLVER.CHECKPOINT_PERIOD", "100"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "class-agnostic video AP" in proc.stdout and "untrained" in proc.stdout
    assert "wall time:" in proc.stdout and "GIF: " in proc.stdout and "PNG: " in proc.stdout
    summary = json.loads((out / "demo_summary.json").read_text())
    for row in ("untrained", "trained"):
        assert "segm/AP" in summary[row]
        assert f"\n{row} " in summary["table"]
    assert summary["total_seconds"] >= summary["train_seconds"] > 0
    pseudo = json.loads((out / "pseudo" / "train_pseudo_tubes.json").read_text())
    assert pseudo["annotations"] and {c["id"] for c in pseudo["categories"]} == {1}
    agnostic = json.loads((out / "val_class_agnostic.json").read_text())
    assert {a["category_id"] for a in agnostic["annotations"]} == {1}
    assert (out / "train" / "inference" / "results.json").exists()
    gif, png = summary["visualization"]
    assert Image.open(gif).n_frames > 1 and Image.open(png).size[0] > 0
    # open-vocabulary naming: the tiny CLIP file is loaded back through open_clip, both CLIPs name
    # the trained model's val tubes with the real category ids, the table has all four rows
    assert "open-vocabulary naming" in proc.stdout
    ov = summary["open_vocab"]
    assert list(ov["rows"]) == ["class-agnostic", "untrained CLIP", "trained CLIP", "oracle-label",
                                "untrained CLIP, GT tubes", "trained CLIP, GT tubes"]
    assert {"AP", "APb", "APn"} <= set(ov["rows"]["trained CLIP"])
    assert ov["clip_training"]["steps"] == 3
    assert (out / "clip" / "tiny_clip_trained.pt").exists()
    gt_ids = {c["id"] for c in json.loads(open(summary_val_gt(out)).read())["categories"]}
    for path in ov["named_results"].values():
        named = json.loads(open(path).read())
        assert named and {r["category_id"] for r in named} <= gt_ids


def summary_val_gt(out):
    return json.loads((out / "data_summary.json").read_text())["splits"]["val"]["gt_json"]


def test_demo_data_cache_is_keyed_on_preset_and_seed(tmp_path):
    from wsovvis.engine.demo import prepare_demo_data

    root = str(tmp_path / "demo")
    first = prepare_demo_data(root, preset="tiny", seed=0)
    summary = os.path.join(root, "data_summary.json")
    mtime = os.path.getmtime(first["train_json"])
    assert prepare_demo_data(root, preset="tiny", seed=0) == first  # reused as is
    assert os.path.getmtime(first["train_json"]) == mtime
    prepare_demo_data(root, preset="tiny", seed=1)  # another seed: regenerated, never stale
    with open(summary) as f:
        assert json.load(f)["cache_key"]["seed"] == 1
    with open(os.path.join(root, "data", "synthetic_summary.json")) as f:
        assert json.load(f)["seed"] == 1
