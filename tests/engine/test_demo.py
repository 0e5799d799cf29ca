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
         "--preset", "tiny", "--max-iter", "4", "SOLVER.CHECKPOINT_PERIOD", "100"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "class-agnostic video AP" in proc.stdout and "untrained" in proc.stdout
    summary = json.loads((out / "demo_summary.json").read_text())
    for row in ("untrained", "trained"):
        assert "segm/AP" in summary[row]
    pseudo = json.loads((out / "pseudo" / "train_pseudo_tubes.json").read_text())
    assert pseudo["annotations"] and {c["id"] for c in pseudo["categories"]} == {1}
    agnostic = json.loads((out / "val_class_agnostic.json").read_text())
    assert {a["category_id"] for a in agnostic["annotations"]} == {1}
    assert (out / "train" / "inference" / "results.json").exists()
    gif, png = summary["visualization"]
    assert Image.open(gif).n_frames > 1 and Image.open(png).size[0] > 0
