"""Real multi-process DDP on CPU (gloo): identical ranks, equivalence to one process, failures."""
import json
import os
import shutil
import time

import torch

from engine_helpers import run_train_net, sacred_args, tiny_experiment
from tiny_arch import ddp_worker
from wsovvis.engine.launch import launch


def test_two_ranks_match_one_process(tiny_dataset, tmp_path):
    """2 ranks x 1 clip == 1 process x 2 clips (same clips per step, DDP gradient averaging)."""
    weights = {}
    for world in (2, 1):
        out = tmp_path / f"w{world}"
        out.mkdir()
        config = tiny_experiment(tiny_dataset, out, max_iter=3, num_gpus=world)
        launch(ddp_worker, world, args=(config, str(out)))
        weights[world] = [torch.load(out / f"rank{r}.pt") for r in range(world)]
    r0, r1 = weights[2]
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks differ on {k}"
        torch.testing.assert_close(r0[k], weights[1][0][k], rtol=1e-5, atol=1e-6)


def test_failing_rank_stops_every_process(tiny_dataset, tmp_path):
    """A rank that raises (corrupt frame) ends the whole job quickly; the Sacred Run is FAILED."""
    src = tiny_dataset["splits"]["train"]
    img_root = tmp_path / "JPEGImages"
    shutil.copytree(src["img_root"], img_root)
    with open(src["gt_json"]) as f:
        videos = json.load(f)["videos"]
    for name in videos[0]["file_names"]:  # one unreadable video: only the rank drawing it fails
        (img_root / name).write_bytes(b"not a jpeg")
    config = tiny_experiment(tiny_dataset, tmp_path / "out", max_iter=20, num_gpus=2)
    config["data"]["train_img_root"] = str(img_root)
    start = time.time()
    proc = run_train_net(["-F", str(tmp_path / "runs"), "with"] + sacred_args(config), timeout=150)
    elapsed = time.time() - start
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert elapsed < 120
    runs = [d for d in os.listdir(tmp_path / "runs") if d.isdigit()]
    assert len(runs) == 1, runs  # exactly one Sacred Run for the whole launch
    with open(tmp_path / "runs" / runs[0] / "run.json") as f:
        run = json.load(f)
    assert run["status"] == "FAILED"
    assert "not a jpeg" in proc.stderr or "cannot identify image" in (proc.stderr + proc.stdout)
