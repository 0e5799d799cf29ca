"""Issue-level acceptance of the foundation: registry model + detectron2 training machinery on CPU.

A meta-architecture is built from detectron2's META_ARCH_REGISTRY out of a YAML config, fed by the
real wsovvis loader over the synthetic dataset, trained for a few iterations by detectron2's
``SimpleTrainer`` with its hooks, checkpointed with ``DetectionCheckpointer`` and reloaded.
"""
import os
import subprocess
import sys

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.engine import SimpleTrainer, hooks
from detectron2.modeling import META_ARCH_REGISTRY, build_model
from detectron2.utils.events import EventStorage

import wsovvis.modeling  # noqa: F401  (registers the meta-architectures)
from wsovvis.config import add_wsovvis_config
from wsovvis.data.build import build_video_train_loader
from wsovvis.data.datasets.ytvis import register_ytvis_instances

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_detectron2_and_wsovvis_in_a_fresh_interpreter():
    subprocess.run([sys.executable, "-c", "import detectron2, wsovvis"], check=True, cwd=ROOT)


def _tiny_cfg(dataset, out_dir):
    name = "acceptance_synthetic_train"
    register_ytvis_instances(
        name, {}, dataset["splits"]["train"]["gt_json"], dataset["splits"]["train"]["img_root"]
    )
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(os.path.join(ROOT, "configs", "seqformer", "tiny_test.yaml"))
    cfg.merge_from_list([
        "DATASETS.TRAIN", (name,), "DATALOADER.NUM_WORKERS", 0, "SOLVER.IMS_PER_BATCH", 1,
        "INPUT.MIN_SIZE_TRAIN", (64,), "INPUT.MAX_SIZE_TRAIN", 96, "INPUT.CROP.ENABLED", False,
        "SOLVER.BASE_LR", 1e-3, "OUTPUT_DIR", str(out_dir), "SEED", 0, "MODEL.DEVICE", "cpu",
        "MODEL.SeqFormer.NUM_CLASSES", len(dataset["categories"]),
    ])
    cfg.freeze()
    return cfg


def test_registry_model_trains_with_detectron2_machinery_and_checkpoints(tiny_synthetic_dataset, tmp_path):
    cfg = _tiny_cfg(tiny_synthetic_dataset, tmp_path)
    assert cfg.MODEL.META_ARCHITECTURE in META_ARCH_REGISTRY
    torch.manual_seed(0)
    model = build_model(cfg)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.SOLVER.BASE_LR)
    loader = build_video_train_loader(cfg)
    trainer = SimpleTrainer(model, loader, optimizer)
    checkpointer = DetectionCheckpointer(model, str(tmp_path), optimizer=optimizer)
    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.PeriodicCheckpointer(checkpointer, period=3, max_iter=3, file_prefix="model"),
    ])
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainer.train(0, 3)
    after = model.state_dict()
    changed = [k for k, v in after.items() if v.dtype.is_floating_point and not torch.equal(before[k], v)]
    assert changed, "three optimizer steps changed no weight"
    assert os.path.isfile(tmp_path / "model_final.pth")
    assert open(tmp_path / "last_checkpoint").read().strip() == "model_final.pth"

    # a fresh model reloads exactly the trained weights (and the optimizer state)
    torch.manual_seed(1)
    fresh = build_model(cfg)
    fresh_opt = torch.optim.AdamW([p for p in fresh.parameters() if p.requires_grad], lr=1e-3)
    extra = DetectionCheckpointer(fresh, str(tmp_path), optimizer=fresh_opt).resume_or_load(
        "", resume=True
    )
    assert extra["iteration"] == 2
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, after[k]), k
    assert fresh_opt.state_dict()["state"], "optimizer state was not restored"

    # the reloaded model runs a training step (losses are finite)
    with EventStorage(0):
        losses = fresh([next(iter(build_video_train_loader(cfg)))[0]])
    assert all(torch.isfinite(v) for v in losses.values())
