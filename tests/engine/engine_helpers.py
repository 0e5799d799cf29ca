"""Engine test helpers: a tiny experiment config over the shared tiny synthetic dataset."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

TINY_OPTS = [
    "MODEL.META_ARCHITECTURE", "TinyVideoSegmenter",
    "SOLVER.IMS_PER_BATCH", 2,
    "SOLVER.BASE_LR", 0.01,
    "SOLVER.WARMUP_ITERS", 2,
    "SOLVER.LR_SCHEDULER_NAME", "WarmupPolyLR",
    "SOLVER.CHECKPOINT_PERIOD", 4,
    "INPUT.MIN_SIZE_TRAIN", (48,),
    "INPUT.MAX_SIZE_TRAIN", 72,
    "INPUT.MIN_SIZE_TEST", 48,
    "INPUT.MAX_SIZE_TEST", 72,
    "INPUT.SAMPLING_FRAME_NUM", 2,
    "TEST.EVAL_PERIOD", 0,
    "TEST.CLASS_AGNOSTIC", True,
    "DATALOADER.NUM_WORKERS", 0,
]


def tiny_experiment(dataset, output_dir, max_iter=6, val=False, **overrides):
    """Plain experiment dict training ``TinyVideoSegmenter`` on the tiny synthetic train split."""
    tr, va = dataset["splits"]["train"], dataset["splits"]["val"]
    data = {"train_json": tr["gt_json"], "train_img_root": tr["img_root"]}
    if val:
        data.update(val_json=va["gt_json"], val_img_root=va["img_root"])
    config = {
        "d2_opts": TINY_OPTS + ["SOLVER.MAX_ITER", max_iter],
        "data": data,
        "output_dir": str(output_dir),
        "imports": ["tiny_arch"],
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
