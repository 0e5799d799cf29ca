"""train_net.py / Sacred bridge: metrics tailing, observer gating per rank, torchrun launch."""
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "engine"))

from engine_helpers import REPO, sacred_args, tiny_experiment  # noqa: E402
from wsovvis.engine.sacred_bridge import MetricsBridge, prepare_argv  # noqa: E402


def test_metrics_bridge_forwards_while_running(tmp_path):
    path = tmp_path / "metrics.json"
    got = []
    lock = threading.Lock()

    def log_scalar(name, value, step):
        with lock:
            got.append((name, value, step))

    bridge = MetricsBridge(str(path), log_scalar, interval=0.05)
    bridge.start()
    with open(path, "w") as f:
        f.write(json.dumps({"iteration": 9, "total_loss": 1.5, "lr": 0.1, "note": "x"}) + "\n")
        f.write('{"iteration": 19, "total_lo')  # partially written line: must wait
        f.flush()
        time.sleep(0.5)
        with lock:  # forwarded by the thread before the run ends
            assert sorted(got) == [("lr", 0.1, 9), ("total_loss", 1.5, 9)]
        f.write('ss": 1.0, "segm/AP": NaN}\n')
    bridge.stop()
    assert ("total_loss", 1.0, 19) in got and len(got) == 3  # NaN dropped
    resumed = []
    MetricsBridge(str(path), lambda *a: resumed.append(a), from_end=True).poll()
    assert resumed == []  # resume: old lines are not sent again


def test_observers_only_on_reporting_process(monkeypatch, tmp_path):
    argv = ["train_net.py", "-F", "runs", "--mongo_db=db:1:x", "-C", "no", "with", "seed=1"]
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("SLURM_STEP_NUM_TASKS", raising=False)
    assert prepare_argv(argv) == argv
    assert prepare_argv(argv + ["machine_rank=1"]) == [
        "train_net.py", "-C", "no", "with", "seed=1", "machine_rank=1"
    ]
    cfg_file = tmp_path / "machine1.yaml"
    cfg_file.write_text("machine_rank: 1\nnum_machines: 2\n")
    assert prepare_argv(argv + [str(cfg_file)]) == [
        "train_net.py", "-C", "no", "with", "seed=1", str(cfg_file)
    ]
    assert prepare_argv(argv + [str(cfg_file), "machine_rank=0"]) == argv + [
        str(cfg_file), "machine_rank=0"
    ]  # a command-line update wins over the file, as in Sacred
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert prepare_argv(argv) == ["train_net.py", "-C", "no", "with", "seed=1"]


def test_slurm_detection(monkeypatch):
    """srun with one task per GPU joins the job; one task per node or a bare sbatch script spawn."""
    from wsovvis.engine.launch import external_dist_env

    for key in ("RANK", "WORLD_SIZE", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NUM_NODES"):
        monkeypatch.delenv(key, raising=False)
    # sbatch --nodes=1 --ntasks=8 running train_net.py directly in the batch script (no srun)
    for key, value in (("SLURM_NTASKS", "8"), ("SLURM_NNODES", "1"), ("SLURM_PROCID", "0")):
        monkeypatch.setenv(key, value)
    assert external_dist_env() is None
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")  # srun --ntasks-per-node=1 on 2 nodes
    monkeypatch.setenv("SLURM_STEP_NUM_NODES", "2")
    assert external_dist_env() is None
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "16")  # srun, 8 tasks per node on 2 nodes
    monkeypatch.setenv("SLURM_PROCID", "9")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    assert external_dist_env() == {"rank": 9, "world_size": 16, "local_rank": 1,
                                   "local_world_size": 8}


def test_torchrun_two_ranks_one_run(tiny_synthetic_dataset, tmp_path):
    out, runs = tmp_path / "out", tmp_path / "runs"
    args = sacred_args(tiny_experiment(tiny_synthetic_dataset, out, max_iter=4, val=True))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(HERE, "engine"), REPO]),
               OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(29500 + os.getpid() % 1000), os.path.join(REPO, "train_net.py"),
         "-F", str(runs), "with"] + args,
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = [d for d in os.listdir(runs) if d.isdigit()]
    assert run_dirs == ["1"]  # only global rank 0 attached the observer
    run = json.loads((runs / "1" / "run.json").read_text())
    assert run["status"] == "COMPLETED" and "results.json" in run["artifacts"]
    scalars = json.loads((runs / "1" / "metrics.json").read_text())
    assert scalars["total_loss"]["steps"] == [3] and "segm/AP" in scalars
    assert json.loads((runs / "1" / "config.json").read_text())["seed"] == 7
