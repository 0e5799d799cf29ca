"""The checkpoint policy of VideoCheckpointer: fit check per mode, one error with config hints,
random pretrained backbones refused, downloads that fail in one line, the CLI's ``error:``."""
import logging
import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model

import wsovvis.modeling  # noqa: F401  (registers the meta-architectures)
from engine_helpers import run_train_net, sacred_args, tiny_experiment
from wsovvis.config import add_wsovvis_config
from wsovvis.engine.checkpoint import CheckpointError, VideoCheckpointer
from wsovvis.engine.runner import run_experiment
from wsovvis.engine.setup import build_cfg

SEQFORMER_TINY = "configs/seqformer/tiny_test.yaml"
RESNET = ["MODEL.BACKBONE.NAME", "build_resnet_backbone", "MODEL.RESNETS.DEPTH", 18,
          "MODEL.RESNETS.RES2_OUT_CHANNELS", 64, "MODEL.RESNETS.NORM", "FrozenBN",
          "MODEL.RESNETS.OUT_FEATURES", ["res2", "res3", "res4", "res5"]]


def _seqformer(opts=()):
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(SEQFORMER_TINY)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu"] + list(opts))
    return build_model(cfg), cfg


def _nothing_written(out):
    return not os.path.exists(os.path.join(out, "inference")) and not any(
        f.endswith(".pth") for f in os.listdir(out)) if os.path.isdir(out) else True


def test_eval_rejects_checkpoint_of_another_backbone(tmp_path):
    """A SeqFormer ResNet checkpoint into a SeqFormer DINOv2 model: one error, with the hint."""
    resnet, _ = _seqformer(RESNET)
    path = tmp_path / "seqformer_r18.pth"
    torch.save({"model": resnet.state_dict()}, path)
    model, cfg = _seqformer()
    with pytest.raises(CheckpointError) as err:
        VideoCheckpointer(model, cfg=cfg, mode="eval").load(str(path))
    msg = str(err.value)
    assert "evaluation needs every model tensor" in msg and "seqformer_r18.pth" in msg
    assert "backbone.body.vit" in msg and "backbone.body.res" in msg  # grouped by prefix
    assert "MODEL.BACKBONE.NAME build_resnet_backbone" in msg
    # training may start from it (the transformer fits): one summary of what was re-initialised
    ckpt = VideoCheckpointer(model, cfg=cfg, mode="init")
    ckpt.load(str(path))
    assert ckpt.last_report.loaded and any(k.startswith("backbone.body.vit.")
                                           for k in ckpt.last_report.reinitialized)


def test_frozen_bn_defaults_do_not_count_as_loaded(tmp_path):
    """FrozenBN fills absent running stats with defaults: the policy still reports them."""
    model, cfg = _seqformer(RESNET)
    sd = {k: v for k, v in model.state_dict().items() if not k.endswith("running_var")}
    path = tmp_path / "no_running_var.pth"
    torch.save({"model": sd}, path)
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint \(\d+\).*running_var"):
        VideoCheckpointer(model, cfg=cfg, mode="eval").load(str(path))


def _eval_from_four_class_checkpoint(config, tmp_path):
    """Write the model of ``config`` with MODEL.VIDEOMT.NUM_CLASSES 4 (an official-layout file
    with another class count) and point ``config``'s MODEL.WEIGHTS at it; returns the path."""
    from wsovvis.engine.trainer import Trainer

    other = build_cfg(config, check=False).clone()
    other.defrost()
    other.MODEL.VIDEOMT.NUM_CLASSES = 4
    path = tmp_path / "four_classes.pth"
    torch.save({"model": Trainer.build_model(other).state_dict()}, path)
    config["d2_opts"] += ["MODEL.WEIGHTS", str(path)]
    return path


def test_eval_only_rejects_another_class_count(agnostic_dataset, tmp_path):
    """An official-layout VidEoMT file with 4 classes into NUM_CLASSES 1: eval-only stops before
    any work, naming MODEL.VIDEOMT.NUM_CLASSES 4; training from it re-initialises the head."""
    config = tiny_experiment(agnostic_dataset, tmp_path / "out", val=True, eval_only=True)
    path = _eval_from_four_class_checkpoint(config, tmp_path)
    with pytest.raises(CheckpointError, match=r"(?s)class_head.*MODEL.VIDEOMT.NUM_CLASSES 4 "):
        run_experiment(config)
    assert _nothing_written(str(tmp_path / "out"))
    train = tiny_experiment(agnostic_dataset, tmp_path / "train", max_iter=1,
                            opts=["MODEL.WEIGHTS", str(path)])
    run_experiment(train)
    log = (tmp_path / "train" / "log.txt").read_text()
    assert log.count("Re-initialised (training starts them from scratch)") == 1
    assert "backbone.class_head.weight (5,) " not in log and "backbone.class_head" in log


def test_resume_with_another_architecture_fails_with_the_fit_message(agnostic_dataset, tmp_path):
    from wsovvis.engine.trainer import Trainer

    out = tmp_path / "out"
    config = tiny_experiment(agnostic_dataset, out, resume=True)
    other = build_cfg(config, check=False).clone()
    other.defrost()
    other.MODEL.VIDEOMT.DEPTH = 4
    other.MODEL.VIDEOMT.SEGMENTER_BLOCKS = [2, 3]
    out.mkdir()
    torch.save({"model": Trainer.build_model(other).state_dict(), "iteration": 3,
                "_trainer": {"optimizer": {"state": {}, "param_groups": []}}},
               out / "model_0000003.pth")
    (out / "last_checkpoint").write_text("model_0000003.pth")
    with pytest.raises(CheckpointError, match=r"(?s)resuming needs every model tensor.*"
                                              r"MODEL.VIDEOMT.DEPTH \(or MODEL_NAME\) 4"):
        run_experiment(config)


def test_random_pretrained_backbones_are_refused(agnostic_dataset, tmp_path, caplog):
    config = tiny_experiment(agnostic_dataset, tmp_path / "out",
                             opts=["MODEL.VIDEOMT.ALLOW_RANDOM_INIT", False])
    with pytest.raises(CheckpointError, match="MODEL.VIDEOMT.VIT_WEIGHTS is empty"):
        run_experiment(config)
    assert _nothing_written(str(tmp_path / "out"))
    model, cfg = _seqformer(["MODEL.DINOV2.ALLOW_RANDOM_INIT", False])
    ckpt = VideoCheckpointer(model, cfg=cfg)
    with pytest.raises(CheckpointError, match=r"DINOv2 ViT.*MODEL.DINOV2.WEIGHTS is empty"):
        ckpt.check_initialisation()
    model, cfg = _seqformer()  # tiny config: ALLOW_RANDOM_INIT True -> said in the log
    with caplog.at_level(logging.WARNING, logger="wsovvis.checkpoint.policy"):
        VideoCheckpointer(model, cfg=cfg).check_initialisation()
    assert "starts from random initialisation (MODEL.DINOV2.ALLOW_RANDOM_INIT True)" in caplog.text


def test_random_resnet_and_swin_backbones_are_refused(tmp_path, caplog):
    """Siblings of the DINOv2 case: a ResNet only MODEL.WEIGHTS can fill, a Swin without
    MODEL.SWIN.WEIGHTS."""
    swin = ["MODEL.BACKBONE.NAME", "D2SwinTransformer", "MODEL.SWIN.EMBED_DIM", 16,
            "MODEL.SWIN.DEPTHS", [2, 2, 2, 2], "MODEL.SWIN.NUM_HEADS", [1, 2, 2, 4],
            "MODEL.SWIN.WINDOW_SIZE", 4]
    for opts, node, fix in ((RESNET, "MODEL.RESNETS", "Set MODEL.WEIGHTS"),
                            (swin, "MODEL.SWIN", "Set MODEL.SWIN.WEIGHTS")):
        model, cfg = _seqformer(opts)
        with pytest.raises(CheckpointError, match=rf"random initialisation.*{fix}.*"
                                                  rf"{node}.ALLOW_RANDOM_INIT True"):
            VideoCheckpointer(model, cfg=cfg).check_initialisation()
        # a checkpoint that fills the backbone is enough
        path = tmp_path / f"{node}.pth"
        torch.save({"model": {k: v for k, v in model.state_dict().items()
                              if k.startswith("backbone.")}}, path)
        ckpt = VideoCheckpointer(model, cfg=cfg, mode="init")
        ckpt.load(str(path))
        ckpt.check_initialisation()
        model, cfg = _seqformer(list(opts) + [f"{node}.ALLOW_RANDOM_INIT", True])
        with caplog.at_level(logging.WARNING, logger="wsovvis.checkpoint.policy"):
            VideoCheckpointer(model, cfg=cfg).check_initialisation()
        assert f"({node}.ALLOW_RANDOM_INIT True)" in caplog.text


def test_download_failure_is_one_clear_error():
    model, cfg = _seqformer()
    url = "http://127.0.0.1:9/ImageNetPretrained/R-50.pkl"  # nothing listens on port 9
    with pytest.raises(CheckpointError, match=r"cannot download checkpoint http://127.0.0.1:9/"
                                              r".*MODEL.WEIGHTS /path/to/file") as err:
        VideoCheckpointer(model, cfg=cfg).load(url)
    assert "\n" not in str(err.value)


def test_untrusted_checkpoint_is_refused_unless_listed(agnostic_dataset, tmp_path):
    import datetime

    from wsovvis.engine.trainer import Trainer

    config = tiny_experiment(agnostic_dataset, tmp_path / "out", max_iter=1)
    sd = Trainer.build_model(build_cfg(config, check=False)).state_dict()
    path = tmp_path / "odd.pth"
    torch.save({"model": sd, "when": datetime.timedelta(1)}, path)
    config["d2_opts"] += ["MODEL.WEIGHTS", str(path)]
    with pytest.raises(CheckpointError, match=r"odd\.pth.*datetime\.timedelta.*TRUSTED"):
        run_experiment(config)
    config["d2_opts"] += ["MODEL.TRUSTED_CHECKPOINTS", [str(path)]]
    run_experiment(config)


def test_train_net_reports_a_bad_checkpoint_as_one_error_line(agnostic_dataset, tmp_path):
    config = tiny_experiment(agnostic_dataset, tmp_path / "out", val=True, eval_only=True)
    _eval_from_four_class_checkpoint(config, tmp_path)
    proc = run_train_net(["with"] + sacred_args(config), timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "error: Checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_two_process_eval_reports_the_worker_fit_error(agnostic_dataset, tmp_path):
    """With spawned ranks the worker's CheckpointError reaches the launcher as itself."""
    config = tiny_experiment(agnostic_dataset, tmp_path / "out", val=True, eval_only=True,
                             num_gpus=2)
    _eval_from_four_class_checkpoint(config, tmp_path)
    with pytest.raises(CheckpointError, match=r"(?s)^Checkpoint .*MODEL.VIDEOMT.NUM_CLASSES 4 "):
        run_experiment(config)


def test_imagenet_style_pkl_initialises_the_backbone_only(tmp_path):
    """A detectron2 model-zoo style .pkl (numpy arrays, matching heuristics) is read with the
    restricted unpickler; its backbone tensors load, the rest is listed as re-initialised."""
    import pickle

    model, cfg = _seqformer(RESNET)
    prefix = "backbone.body."
    backbone = {k[len(prefix):]: v.numpy() for k, v in model.state_dict().items()
                if k.startswith(prefix)}
    path = tmp_path / "R-18.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": backbone, "__author__": "torchvision",
                     "matching_heuristics": True}, f)
    fresh, _ = _seqformer(RESNET)
    ckpt = VideoCheckpointer(fresh, cfg=cfg, mode="init")
    ckpt.load(str(path))
    rep = ckpt.last_report
    assert sorted(rep.loaded) == sorted(prefix + k for k in backbone)
    assert rep.reinitialized and not any(k.startswith(prefix) for k in rep.reinitialized)
    with pytest.raises(CheckpointError, match="evaluation needs every model tensor"):
        VideoCheckpointer(fresh, cfg=cfg, mode="eval").load(str(path))
