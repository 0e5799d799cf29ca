"""Engine test helpers: tiny experiments of the real model over the shared tiny synthetic dataset.

:func:`tiny_experiment` trains the real ``WSVidEoMT`` with
``configs/videomt/VidEoMT-tiny-test.yaml`` (random weights, 32-wide ViT; ~50 ms per iteration on
one CPU thread). Engine tests train it on
class-agnostic GT tubes (:func:`class_agnostic_dataset`, like the class-agnostic pseudo tubes of the
real pipeline); ``tests/test_train_net.py`` uses the multi-class GT.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

VIDEOMT_CFG = os.path.join(REPO, "configs", "videomt", "VidEoMT-tiny-test.yaml")

TINY_OPTS = [
    "MODEL.VIDEOMT.TRAIN_NUM_POINTS", 64,  # random point sampling stays on (exact-resume test)
    "SOLVER.IMS_PER_BATCH", 2,
    "SOLVER.BASE_LR", 1e-3,
    "SOLVER.LR_SCHEDULER_NAME", "WarmupPolyLR",
    "SOLVER.WARMUP_ITERS", 2,
    "SOLVER.CHECKPOINT_PERIOD", 4,
    "SOLVER.AMP.ENABLED", False,
    "INPUT.MIN_SIZE_TRAIN", (48,),
    "INPUT.MAX_SIZE_TRAIN", 72,
    "INPUT.MIN_SIZE_TEST", 48,
    "INPUT.MAX_SIZE_TEST", 72,
    "INPUT.SAMPLING_FRAME_NUM", 2,
    "TEST.EVAL_PERIOD", 0,
    "TEST.CLASS_AGNOSTIC", True,
    "DATALOADER.NUM_WORKERS", 0,
]


def class_agnostic_dataset(dataset, out_dir):
    """Copy of ``dataset`` (tiny_synthetic_dataset layout) whose GT JSONs have one category."""
    from wsovvis.pseudo.class_agnostic import make_class_agnostic

    splits = {}
    for split, paths in dataset["splits"].items():
        with open(paths["gt_json"]) as f:
            agnostic = make_class_agnostic(json.load(f))
        gt_json = os.path.join(str(out_dir), f"{split}_class_agnostic.json")
        with open(gt_json, "w") as f:
            json.dump(agnostic, f)
        splits[split] = dict(paths, gt_json=gt_json)
    return dict(dataset, splits=splits, categories=agnostic["categories"])


def tiny_experiment(dataset, output_dir, max_iter=6, val=False, opts=(), **overrides):
    """Plain experiment dict training the real tiny ``WSVidEoMT`` on ``dataset``'s train split.

    Args:
        dataset: ``tiny_synthetic_dataset`` layout (or :func:`class_agnostic_dataset` of it).
        output_dir: ``OUTPUT_DIR``.
        max_iter: ``SOLVER.MAX_ITER``.
        val: also register the val split as ``DATASETS.TEST``.
        opts: extra detectron2 overrides (KEY, VALUE, ...).
        overrides: experiment keys (``num_gpus``, ``resume``, ...).
    """
    tr, va = dataset["splits"]["train"], dataset["splits"]["val"]
    with open(tr["gt_json"]) as f:
        num_classes = len(json.load(f)["categories"])
    data = {"train_json": tr["gt_json"], "train_img_root": tr["img_root"]}
    if val:
        data.update(val_json=va["gt_json"], val_img_root=va["img_root"])
    config = {
        "d2_cfg_path": VIDEOMT_CFG,
        "d2_opts": TINY_OPTS + ["MODEL.VIDEOMT.NUM_CLASSES", num_classes,
                                "SOLVER.MAX_ITER", max_iter] + list(opts),
        "data": data,
        "output_dir": str(output_dir),
        "seed": 7,
    }
    config.update(overrides)
    return config


def sacred_args(config):
    """``with`` updates for train_net.py equivalent to ``config``."""
    args = []
    for key, value in config.items():
        if key == "data":
            args += [f"data.{k}={v}" for k, v in value.items()]
        else:
            args.append(f"{key}={value!r}")
    return args


def run_train_net(args, timeout=180, **kwargs):
    """Run ``python train_net.py <args>`` from the repo root with ``tests/engine`` importable."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, REPO]), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "train_net.py")] + list(args),
        cwd=REPO, env=env, timeout=timeout, capture_output=True, text=True, **kwargs
    )


def ddp_worker(config, out_dir):
    """Train with :class:`wsovvis.engine.Trainer` on this rank and save this rank's weights."""
    import torch
    from detectron2.utils import comm

    from wsovvis.engine.setup import build_cfg, normalize_config, setup_process
    from wsovvis.engine.trainer import Trainer

    cfg = build_cfg(normalize_config(config), check=False)
    setup_process(cfg)
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    if comm.is_main_process():  # initial weights (DDP broadcast rank 0's at construction)
        torch.save(model.state_dict(), os.path.join(out_dir, "init.pt"))
    trainer.train()
    torch.save(model.state_dict(), os.path.join(out_dir, f"rank{comm.get_rank()}.pt"))
