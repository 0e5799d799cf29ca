"""Bad inputs fail with a clear message before any training step runs."""
import os

import pytest
import torch

from engine_helpers import run_train_net, tiny_experiment
from wsovvis.engine import CheckpointError, ConfigError
from wsovvis.engine.runner import run_experiment
from wsovvis.engine.setup import build_cfg


def _no_training_happened(out):
    metrics = os.path.join(out, "metrics.json")  # detectron2's JSONWriter creates it empty
    no_metrics = not os.path.exists(metrics) or os.path.getsize(metrics) == 0
    ckpts = os.path.isdir(out) and any(f.endswith(".pth") for f in os.listdir(out))
    return no_metrics and not ckpts


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["d2_opts"].extend(["SOLVER.NOT_A_KEY", 1]), "SOLVER.NOT_A_KEY"),
        (lambda c: c["data"].update(train_json="/nonexistent/train.json"), "data.train_json"),
        (lambda c: c.update(d2_cfg_path="/nonexistent/x.yaml"), "d2_cfg_path"),
        (lambda c: c.update(eval_only=True), "eval_only=True needs"),
        (lambda c: c.update(imports=["no_such_module_xyz"]), "no_such_module_xyz"),
        (lambda c: c.update(bogus=1), "Unknown experiment keys"),
        (lambda c: c.update(num_machines=2, machine_rank=1), "dist_url='auto' only works"),
        (lambda c: c.update(num_machines=2, machine_rank=2, dist_url="tcp://h:1"),
         "machine_rank=2"),
        (lambda c: c.update(dist_url="h:1"), "dist_url must be"),
        (lambda c: c.update(num_gpus=4), "not divisible by the 4 processes"),
    ],
)
def test_invalid_config(agnostic_dataset, tmp_path, change, message, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(key, raising=False)
    config = tiny_experiment(agnostic_dataset, tmp_path)
    change(config)
    with pytest.raises(ConfigError, match=message):
        build_cfg(config)


def test_corrupt_checkpoint(agnostic_dataset, tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"model": {"w": torch.zeros(3)}}, good)
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(good.read_bytes()[:40])
    config = tiny_experiment(agnostic_dataset, tmp_path / "out")
    config["d2_opts"] += ["MODEL.WEIGHTS", str(bad)]
    with pytest.raises(ConfigError, match="corrupt"):
        run_experiment(config)
    assert _no_training_happened(tmp_path / "out")


def test_resume_from_corrupt_last_checkpoint(agnostic_dataset, tmp_path):
    """resume=True checks the file ``last_checkpoint`` points to before any process starts."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "last_checkpoint").write_text("model_0000009.pth")
    config = tiny_experiment(agnostic_dataset, out, resume=True)
    with pytest.raises(ConfigError, match="not found"):
        build_cfg(config)
    (out / "model_0000009.pth").write_bytes(b"")
    with pytest.raises(ConfigError, match="empty file"):
        build_cfg(config)


def test_wrong_architecture_checkpoint(agnostic_dataset, tmp_path):
    ckpt = tmp_path / "other_model.pth"
    torch.save({"model": {"backbone.res2.conv1.weight": torch.zeros(4, 3, 1, 1)}}, ckpt)
    config = tiny_experiment(agnostic_dataset, tmp_path / "out")
    config["d2_opts"] += ["MODEL.WEIGHTS", str(ckpt)]
    with pytest.raises(CheckpointError, match="does not fit this model"):
        run_experiment(config)
    assert _no_training_happened(tmp_path / "out")


def test_unknown_sacred_key_cli(tmp_path):
    proc = run_train_net(["-F", str(tmp_path / "runs"), "with", "not_a_key=1"], timeout=120)
    assert proc.returncode != 0
    assert "not_a_key" in proc.stderr
    assert not (tmp_path / "runs").exists() or not any(
        d.isdigit() for d in os.listdir(tmp_path / "runs")
    )


def test_cuda_device_without_cuda_falls_back_to_cpu(agnostic_dataset, tmp_path, monkeypatch,
                                                    caplog):
    """MODEL.DEVICE=cuda on a machine without CUDA: CPU (and no AMP) with a clear warning."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = tiny_experiment(agnostic_dataset, tmp_path,
                             opts=["MODEL.DEVICE", "cuda", "SOLVER.AMP.ENABLED", True])
    with caplog.at_level("WARNING", logger="wsovvis.engine.setup"):
        cfg = build_cfg(config)  # the launcher's validating call
        worker_cfg = build_cfg(config, check=False)  # the training process's (same process)
    assert cfg.MODEL.DEVICE == "cpu" and not cfg.SOLVER.AMP.ENABLED
    assert worker_cfg.MODEL.DEVICE == "cpu" and not worker_cfg.SOLVER.AMP.ENABLED
    assert caplog.text.count("CUDA is not available") == 1  # printed once, not per call
    assert caplog.text.count("AMP runs on CUDA only") == 1
    assert "Falling back to MODEL.DEVICE='cpu'" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="wsovvis.engine.setup"):
        assert build_cfg(tiny_experiment(agnostic_dataset, tmp_path)).MODEL.DEVICE == "cpu"
    assert "CUDA is not available" not in caplog.text  # explicit cpu: silent
    with pytest.raises(ConfigError, match="MODEL.DEVICE"):
        build_cfg(tiny_experiment(agnostic_dataset, tmp_path, opts=["MODEL.DEVICE", "tpu"]))


def test_eval_only_official_videomt_weights(agnostic_dataset, tmp_path, monkeypatch):
    """eval_only + MODEL.WEIGHTS: an official-layout file of another IMG_SIZE loads fully (its
    pos_embed grid is adopted, not silently skipped); foreign keys are an error naming them."""
    from wsovvis.engine import runner
    from wsovvis.engine.trainer import Trainer

    config = tiny_experiment(agnostic_dataset, tmp_path / "out", val=True, eval_only=True)
    other = build_cfg(config, check=False).clone()
    other.defrost()
    other.MODEL.VIDEOMT.IMG_SIZE *= 2
    official = Trainer.build_model(other).state_dict()
    path = tmp_path / "official.pth"
    torch.save({"model": official}, path)
    config["d2_opts"] += ["MODEL.WEIGHTS", str(path)]
    cfg = build_cfg(config)
    seen = {}

    def fake_test(cls, cfg, model, evaluators=None):
        seen["model"] = model
        return {}

    monkeypatch.setattr(Trainer, "test", classmethod(fake_test))
    runner._evaluate_only(cfg, resume=False)
    loaded = seen["model"].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in official.items())
    torch.save({"model": dict(official, **{"head.not_in_model": torch.zeros(1)})}, path)
    with pytest.raises(CheckpointError, match="head.not_in_model"):
        runner._evaluate_only(cfg, resume=False)


def test_train_from_videomt_weights_of_another_img_size(agnostic_dataset, tmp_path):
    """Fine-tuning from MODEL.WEIGHTS whose pos_embed grid differs fails before any step."""
    from wsovvis.engine.trainer import Trainer

    config = tiny_experiment(agnostic_dataset, tmp_path / "out")
    other = build_cfg(config, check=False).clone()
    other.defrost()
    other.MODEL.VIDEOMT.IMG_SIZE *= 2
    path = tmp_path / "official.pth"
    torch.save({"model": Trainer.build_model(other).state_dict()}, path)
    config["d2_opts"] += ["MODEL.WEIGHTS", str(path)]
    with pytest.raises(CheckpointError, match="MODEL.VIDEOMT.IMG_SIZE"):
        run_experiment(config)
    assert _no_training_happened(tmp_path / "out")


def _mirrored(seed=None, output_dir=None, opts=(), d2_cfg_path=""):
    config = {"d2_cfg_path": d2_cfg_path, "d2_opts": list(opts)}
    if seed is not None:
        config["seed"] = seed
    if output_dir is not None:
        config["output_dir"] = output_dir
    cfg = build_cfg(config, check=False)
    return cfg.SEED, cfg.OUTPUT_DIR


def test_d2_opts_seed_and_output_dir_are_used():
    """d2_opts=[SEED, 7, OUTPUT_DIR, runs/mine] used to give SEED 42 and outputs/default."""
    assert _mirrored(opts=["SEED", 7, "OUTPUT_DIR", "runs/mine"]) == (7, "runs/mine")
    assert _mirrored() == (42, os.path.join("outputs", "default"))  # neither side set
    assert _mirrored(seed=3, output_dir="runs/x") == (3, "runs/x")  # Sacred side only
    # both sides, same value: fine
    assert _mirrored(seed=7, output_dir="runs/x/", opts=["SEED", 7, "OUTPUT_DIR", "runs/x"]) == (
        7, "runs/x/")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(seed=3, opts=["SEED", 7]), r"seed=3 and SEED 7 \(from d2_opts\) disagree"),
        (dict(output_dir="runs/a", opts=["OUTPUT_DIR", "runs/b"]),
         r"output_dir='runs/a' and OUTPUT_DIR 'runs/b' \(from d2_opts\) disagree"),
    ],
)
def test_seed_or_output_dir_given_twice_differently_is_an_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        _mirrored(**kwargs)


def test_d2_yaml_seed_used_unless_sacred_sets_another(tmp_path):
    yaml = tmp_path / "d2.yaml"
    yaml.write_text("SEED: 5\n")
    assert _mirrored(d2_cfg_path=str(yaml)) == (5, os.path.join("outputs", "d2"))
    with pytest.raises(ConfigError, match=r"from d2_cfg_path .*d2.yaml"):
        _mirrored(seed=9, d2_cfg_path=str(yaml))


def test_corrupt_mask_in_training_json_stops_before_any_work(agnostic_dataset, tmp_path):
    """A mask whose runs sum to 820 on a 3,072-pixel frame used to train without complaint."""
    import json

    config = tiny_experiment(agnostic_dataset, tmp_path / "out")
    with open(config["data"]["train_json"]) as f:
        data = json.load(f)
    ann = next(a for a in data["annotations"] if any(a["segmentations"]))
    t = next(i for i, s in enumerate(ann["segmentations"]) if s)
    h, w = ann["segmentations"][t]["size"]
    ann["segmentations"][t] = {"size": [h, w], "counts": [400, 20, 400]}
    bad = tmp_path / "corrupt.json"
    bad.write_text(json.dumps(data))
    config["data"]["train_json"] = str(bad)
    with pytest.raises(ConfigError) as exc:
        run_experiment(config)
    msg = str(exc.value)
    for part in ("corrupt.json", f"annotation id {ann['id']}", f"video id {ann['video_id']}",
                 f"frame {t}", "sum to 820"):
        assert part in msg, msg
    assert _no_training_happened(str(tmp_path / "out"))
