"""Multi-process DDP of the real WSVidEoMT on CPU (gloo): equal ranks, 1-process parity, failure."""
import json
import os
import shutil
import time

import torch

from engine_helpers import ddp_worker, run_train_net, sacred_args, tiny_experiment
from wsovvis.engine.launch import launch

# Deterministic WSVidEoMT losses whose DDP average equals the 1-process loss of the same global
# batch: dense mask losses / matching costs (no random points, which differ per rank) and
# no-object weight 1, so the per-rank cross-entropy is a plain mean over equally many queries
# (with 0.1 it is a weighted mean normalised per rank, which DDP averaging does not reproduce).
# Mask BCE / Dice are normalised by the instance count averaged over ranks, like one process.
DETERMINISTIC = ["MODEL.VIDEOMT.TRAIN_NUM_POINTS", 0, "MODEL.VIDEOMT.NO_OBJECT_WEIGHT", 1.0]


def test_two_ranks_match_one_process(agnostic_dataset, tmp_path):
    """Real WSVidEoMT: 2 ranks x 1 clip == 1 process x 2 clips (same clips per step)."""
    weights = {}
    for world in (2, 1):
        out = tmp_path / f"w{world}"
        out.mkdir()
        config = tiny_experiment(agnostic_dataset, out, max_iter=4, num_gpus=world,
                                    opts=DETERMINISTIC)
        launch(ddp_worker, world, args=(config, str(out)), use_cuda=False)
        weights[world] = [torch.load(out / f"rank{r}.pt") for r in range(world)]
    r0, r1 = weights[2]
    init = torch.load(tmp_path / "w1" / "init.pt")
    assert torch.equal(init["backbone.q.weight"], torch.load(tmp_path / "w2" / "init.pt")[
        "backbone.q.weight"]), "both runs must start from the same weights (same seed)"
    assert r0.keys() == weights[1][0].keys()
    moved = 0
    for k in r0:
        assert torch.equal(r0[k], r1[k]), f"ranks differ on {k}"
        torch.testing.assert_close(r0[k], weights[1][0][k], rtol=1e-5, atol=1e-6, msg=k)
        moved += (r0[k] - init[k]).abs().max().item() > 1e-4
    assert moved > len(r0) // 2, "training barely changed the weights: the check would be vacuous"


def test_failing_rank_stops_every_process(agnostic_dataset, tmp_path):
    """A rank that raises (corrupt frame) ends the whole job quickly; the Sacred Run is FAILED."""
    src = agnostic_dataset["splits"]["train"]
    img_root = tmp_path / "JPEGImages"
    shutil.copytree(src["img_root"], img_root)
    with open(src["gt_json"]) as f:
        videos = json.load(f)["videos"]
    for name in videos[0]["file_names"]:  # one unreadable video: only the rank drawing it fails
        (img_root / name).write_bytes(b"not a jpeg")
    config = tiny_experiment(agnostic_dataset, tmp_path / "out", max_iter=20, num_gpus=2)
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
