"""Issue-level acceptance of the foundation: registry model + detectron2 training machinery on CPU.

A meta-architecture is built from detectron2's META_ARCH_REGISTRY out of a YAML config, fed by the
real wsovvis loader over the synthetic dataset and trained for a few iterations with the wsovvis
optimizer by detectron2's ``SimpleTrainer``.
"""
import math
import os
import subprocess
import sys

import torch
from detectron2.config import get_cfg
from detectron2.engine import SimpleTrainer
from detectron2.modeling import META_ARCH_REGISTRY, build_model
from detectron2.utils.events import EventStorage

from wsovvis.config import add_wsovvis_config
from wsovvis.data import build_video_train_loader
from wsovvis.data.datasets.ytvis import register_ytvis_instances
from wsovvis.engine.optimizer import build_optimizer
from wsovvis.modeling import WSSeqFormer

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


def test_registry_model_trains_with_wsovvis_loader_and_optimizer(tiny_synthetic_dataset, tmp_path):
    """YAML -> META_ARCH_REGISTRY model, wsovvis loader and optimizer, detectron2's training loop.

    (Checkpoint round trips are the engine's tests: ``tests/engine``.)
    """
    cfg = _tiny_cfg(tiny_synthetic_dataset, tmp_path)
    assert META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE) is WSSeqFormer
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = build_optimizer(cfg, model)
    trainer = SimpleTrainer(model, build_video_train_loader(cfg), optimizer)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with EventStorage(0) as storage:
        trainer.storage = storage
        for trainer.iter in range(3):
            trainer.run_step()
        losses = storage.latest()
    assert losses and all(math.isfinite(v) for v, _ in losses.values())
    after = model.state_dict()
    changed = [k for k, v in after.items()
               if v.dtype.is_floating_point and not torch.equal(before[k], v)]
    assert changed, "three optimizer steps changed no weight"
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(torch.equal(before[n], after[n]) for n in frozen)  # frozen DINOv2 ViT
