"""Exact resume: SIGKILL mid-training + ``resume=True`` ends with the uninterrupted weights.

Trains the real ``WSVidEoMT`` (tiny config) with random point sampling in the matcher and the
mask losses: bit-identical weights need the per-iteration seeding of the engine
(:class:`wsovvis.engine.data.ResumableLoader`), not only a resumable data stream.

The kill is deterministic: a trainer hook (``kill_at_iteration.py``) SIGKILLs ``train_net.py``
right after iteration ``KILL_AT``, between two periodic checkpoints, so the resumed run must redo
the iterations done after the last checkpoint.
"""
import json
import os
import signal
import subprocess
import sys

import torch

from engine_helpers import HERE, REPO, run_train_net, sacred_args, tiny_experiment
from wsovvis.engine.runner import run_experiment

MAX_ITER = 40
KILL_AT = 22  # 0-based; CHECKPOINT_PERIOD 4 saves after iterations 3, 7, ..., 19, 23
LAST_CHECKPOINT = "model_0000019.pth"


def _weights(out_dir):
    return torch.load(os.path.join(out_dir, "model_final.pth"), weights_only=True)["model"]


def test_sigkill_and_resume_is_exact(agnostic_dataset, tmp_path):
    # Uninterrupted reference, in-process, through the same library path as train_net.py.
    ref_out = tmp_path / "ref"
    ref = run_experiment(tiny_experiment(agnostic_dataset, ref_out, max_iter=MAX_ITER, val=True))

    out, runs = tmp_path / "killed", tmp_path / "runs"
    args = ["-F", str(runs), "with"] + sacred_args(
        tiny_experiment(agnostic_dataset, out, max_iter=MAX_ITER, val=True)
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, REPO]), OMP_NUM_THREADS="1")
    killed = subprocess.run(
        [sys.executable, os.path.join(HERE, "kill_at_iteration.py"), str(KILL_AT),
         os.path.join(REPO, "train_net.py")] + args,
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "model_final.pth").exists()
    killed_at = (out / "last_checkpoint").read_text()
    assert killed_at == LAST_CHECKPOINT

    resumed = run_train_net(args + ["resume=True"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resumed from {out / killed_at}" in resumed.stdout + resumed.stderr

    ref_w, res_w = _weights(ref_out), _weights(out)
    assert ref_w.keys() == res_w.keys()
    for k in ref_w:
        assert torch.equal(ref_w[k], res_w[k]), f"{k} differs after resume"
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["metrics"] == ref["metrics"] and final["iteration"] == MAX_ITER
    assert any(k.endswith("AP") for k in final["metrics"])

    # Sacred: two runs recorded in the same OUTPUT_DIR; the resumed one completed and reported
    # metrics only for iterations after the checkpoint, with results.json attached.
    assert len((out / "sacred_runs.txt").read_text().splitlines()) == 2
    run_dirs = sorted(d for d in os.listdir(runs) if d.isdigit())
    assert len(run_dirs) == 2
    last = runs / run_dirs[-1]
    run = json.loads((last / "run.json").read_text())
    assert run["status"] == "COMPLETED"
    assert {"d2_config.yaml", "results.json", "d2_metrics.json"} <= set(run["artifacts"])
    scalars = json.loads((last / "metrics.json").read_text())
    start = int(killed_at.split("_")[1].split(".")[0])
    assert min(scalars["total_loss"]["steps"]) > start

    # eval_only on the last checkpoint of the run (also exercises `-C no`): same metrics,
    # recorded in a third Run together with results.json.
    (out / "inference" / "results.json").unlink()
    ev = run_train_net(["-C", "no"] + args + ["resume=True", "eval_only=True"])
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert (out / "inference" / "results.json").exists()
    ev_dir = runs / sorted((d for d in os.listdir(runs) if d.isdigit()), key=int)[-1]
    ev_run = json.loads((ev_dir / "run.json").read_text())
    assert ev_run["status"] == "COMPLETED" and "results.json" in ev_run["artifacts"]
    assert ev_run["result"] == ref["metrics"]
    assert (ev_dir / "cout.txt").read_text() == ""  # -C no: nothing captured
    ev_scalars = json.loads((ev_dir / "metrics.json").read_text())
    some_ap = next(k for k in ref["metrics"] if k.endswith("AP"))
    assert ev_scalars[some_ap]["values"] == [ref["metrics"][some_ap]]
    assert ev_scalars[some_ap]["steps"] == [MAX_ITER]
