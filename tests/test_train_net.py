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


# --- the seed configuration users arrive with, observers, detectron2 resolution ---------------

SEED_YAML = os.path.join(REPO, "configs", "seqformer_pseudo_sacred.yaml")


def _train_net_experiment():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_net_module",
                                                  os.path.join(REPO, "train_net.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # builds the Experiment; main only runs under __main__
    return mod.ex


def test_seed_config_loads_through_sacred_and_resolves(tiny_synthetic_dataset, tmp_path,
                                                        monkeypatch):
    """configs/seqformer_pseudo_sacred.yaml -> SeqFormer R50 on the pseudo tubes, agnostic val."""
    from detectron2.data import MetadataCatalog

    from wsovvis.engine.setup import build_cfg

    monkeypatch.chdir(REPO)  # the YAML's paths are relative to the repository root
    train, val = tiny_synthetic_dataset["splits"]["train"], tiny_synthetic_dataset["splits"]["val"]
    data = {"train_json": train["gt_json"], "train_img_root": train["img_root"],
            "val_json": val["gt_json"], "val_img_root": val["img_root"]}
    run = _train_net_experiment().run(
        "print_config", named_configs=[SEED_YAML], config_updates={"data": data},
        options={"--loglevel": "ERROR"},
    )
    config = dict(run.config)
    assert config["d2_cfg_path"] == "configs/seqformer/seqformer_R50_lvvis_pseudo.yaml"
    assert config["num_gpus"] == 8 and config["output_dir"] == "outputs/wsovvis_seqformer"
    cfg = build_cfg(config, check=True)  # layout, data files and weights checked too
    assert cfg.MODEL.META_ARCHITECTURE == "WSSeqFormer"
    assert cfg.MODEL.BACKBONE.NAME == "build_resnet_backbone" and cfg.MODEL.RESNETS.DEPTH == 50
    assert cfg.MODEL.SeqFormer.NUM_CLASSES == 1 and cfg.TEST.CLASS_AGNOSTIC
    assert cfg.DATASETS.TRAIN == ("sacred_train",) and cfg.DATASETS.TEST == ("sacred_val",)
    assert MetadataCatalog.get("sacred_train").json_file == os.path.abspath(train["gt_json"])
    assert MetadataCatalog.get("sacred_val").image_root == os.path.abspath(val["img_root"])
    assert (cfg.SEED, cfg.OUTPUT_DIR) == (42, "outputs/wsovvis_seqformer")
    # the DINOv2 overlay named in the header
    with open(SEED_YAML) as f:
        header = f.read().split("\nd2_cfg_path")[0]
    overlay = "configs/seqformer/seqformer_dinov2_vitb14_lvvis_pseudo.yaml"
    assert overlay in header and os.path.isfile(os.path.join(REPO, overlay))
    dino = build_cfg(dict(config, d2_cfg_path=overlay), check=False)
    assert dino.MODEL.BACKBONE.NAME == "DINOv2PseudoFPN"
    assert dino.DATASETS.TRAIN == ("sacred_train",)


def test_seed_config_command_line_with_comment_flag(tmp_path):
    """The users' command line (-F ... -c no) parses; -c is Sacred's --comment."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "train_net.py"), "print_config", "with", SEED_YAML,
         "-F", str(tmp_path / "runs"), "-c", "no"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "d2_cfg_path = 'configs/seqformer/seqformer_R50_lvvis_pseudo.yaml'" in out
    assert "train_json = 'datasets/lvvis/train/train_pseudo_videocutler.json'" in out


def test_missing_observer_package_is_one_error_line(monkeypatch):
    import importlib.util

    from wsovvis.engine.sacred_bridge import observer_dependency_error

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pymongo" else real(name, *a))
    for argv in (["train_net.py", "-m", "localhost:27017:x", "with", "seed=1"],
                 ["train_net.py", "with", "x.yaml", "--mongo_db=localhost:27017:x"]):
        msg = observer_dependency_error(argv)
        assert "pymongo" in msg and "pip install -e .[mongo]" in msg
    assert observer_dependency_error(["train_net.py", "-F", "runs", "with", "seed=1"]) is None


def test_mongo_flag_without_pymongo_cli(tmp_path):
    import importlib.util

    if importlib.util.find_spec("pymongo") is not None:
        import pytest

        pytest.skip("pymongo is installed")
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "train_net.py"), "print_config", "-m",
         "localhost:27017:wsovvis"],
        cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
        timeout=300,
    )
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("error:")]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr
    assert "pymongo" in lines[0] and ".[mongo]" in lines[0]
