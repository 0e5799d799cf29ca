"""Optimizer builder: LLRD, backbone multiplier, frozen params, clipping, poly schedules."""
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.projects.deeplab.lr_scheduler import WarmupPolyLR
from torch import nn

from wsovvis.config import add_wsovvis_config
from wsovvis.engine.optimizer import build_lr_scheduler, build_optimizer


class _ViT(nn.Module):
    def __init__(self, depth=4, c=4):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, 3, c))
        self.blocks = nn.ModuleList(nn.Linear(c, c) for _ in range(depth))
        self.norm = nn.LayerNorm(c)


class _Model(nn.Module):
    """Module tree shaped like VidEoMT: ``backbone.encoder.backbone.*`` + heads under backbone."""

    def __init__(self):
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.encoder = nn.Module()
        self.backbone.encoder.backbone = _ViT()
        self.backbone.q = nn.Embedding(5, 4)
        self.backbone.class_head = nn.Linear(4, 3)
        self.head = nn.Linear(4, 2)
        self.frozen = nn.Linear(4, 4).requires_grad_(False)


def _cfg(**solver):
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.SOLVER.BASE_LR = 1.0
    cfg.SOLVER.MAX_ITER = 100
    for k, v in solver.items():
        setattr(cfg.SOLVER, k, v)
    return cfg


def _lr_of(opt, param):
    return next(g["lr"] for g in opt.param_groups if any(p is param for p in g["params"]))


def test_llrd_backbone_multiplier_and_frozen():
    model = _Model()
    opt = build_optimizer(_cfg(LLRD=0.5, BACKBONE_MULTIPLIER=0.1, WEIGHT_DECAY_NORM=0.0), model)
    vit = model.backbone.encoder.backbone
    assert _lr_of(opt, vit.blocks[3].weight) == pytest.approx(0.1)
    assert _lr_of(opt, vit.blocks[0].weight) == pytest.approx(0.1 * 0.5**3)
    assert _lr_of(opt, vit.pos_embed) == pytest.approx(0.1 * 0.5**3)  # embeddings like block 0
    assert _lr_of(opt, vit.norm.weight) == pytest.approx(0.1)  # final norm: no decay
    assert _lr_of(opt, model.backbone.class_head.weight) == pytest.approx(0.1)
    assert _lr_of(opt, model.head.weight) == pytest.approx(1.0)
    optimised = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(model.frozen.weight) not in optimised
    assert isinstance(opt, torch.optim.AdamW)
    norm_group = next(g for g in opt.param_groups if any(p is vit.norm.weight for p in g["params"]))
    assert norm_group["weight_decay"] == 0.0 and norm_group["vit"]


def test_gradient_clipping_is_honoured():
    cfg = _cfg()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "norm"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.01
    cfg.SOLVER.OPTIMIZER = "SGD"
    cfg.SOLVER.MOMENTUM = 0.0
    cfg.SOLVER.WEIGHT_DECAY = 0.0
    cfg.SOLVER.BACKBONE_MULTIPLIER = 1.0
    lin = nn.Linear(3, 1)
    opt = build_optimizer(cfg, lin)
    before = lin.weight.detach().clone()
    (lin(torch.ones(1, 3)) * 1000).sum().backward()
    opt.step()
    assert (lin.weight - before).norm() <= 0.01 + 1e-6  # lr 1, grad clipped to norm 0.01


class _TwoEqualParams(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(4))
        self.b = nn.Parameter(torch.zeros(4))

    def forward(self):
        return 1000 * (self.a.sum() + self.b.sum())


def _clip_cfg(clip_type, value=0.01):
    cfg = _cfg(OPTIMIZER="SGD", MOMENTUM=0.0, WEIGHT_DECAY=0.0, BACKBONE_MULTIPLIER=1.0)
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = clip_type
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = value
    return cfg


def _step_and_total_grad_norm(cfg):
    model = _TwoEqualParams()
    opt = build_optimizer(cfg, model)
    model().backward()
    opt.step()
    grad_norm = torch.cat([model.a.grad, model.b.grad]).norm().item()
    update_norm = torch.cat([model.a, model.b]).detach().norm().item()  # lr 1, started at 0
    return grad_norm, update_norm


def test_full_model_gradient_clipping_clips_the_global_norm():
    grad_norm, update_norm = _step_and_total_grad_norm(_clip_cfg("full_model"))
    assert grad_norm == pytest.approx(0.01, rel=1e-4)  # all gradients together, after the step
    assert update_norm == pytest.approx(0.01, rel=1e-4)
    # detectron2's per-parameter "norm" clips each of the two tensors to 0.01: sqrt(2) x larger
    grad_norm, _ = _step_and_total_grad_norm(_clip_cfg("norm"))
    assert grad_norm == pytest.approx(0.01 * 2**0.5, rel=1e-4)
    with pytest.raises(ValueError, match="CLIP_VALUE"):
        build_optimizer(_clip_cfg("full_model", value=0.0), _TwoEqualParams())


def test_vnext_full_model_solver_config_builds(tmp_path):
    """The SOLVER block of VNext's projects/SeqFormer/configs/base_ytvis.yaml, verbatim."""
    yaml = tmp_path / "vnext_solver.yaml"
    yaml.write_text(
        "SOLVER:\n  IMS_PER_BATCH: 16\n  BASE_LR: 0.0002\n  STEPS: (8000,)\n  MAX_ITER: 12000\n"
        "  WARMUP_FACTOR: 1.0\n  WARMUP_ITERS: 10\n  WEIGHT_DECAY: 0.0001\n"
        "  OPTIMIZER: \"ADAMW\"\n  BACKBONE_MULTIPLIER: 0.1\n  CLIP_GRADIENTS:\n"
        "    ENABLED: True\n    CLIP_TYPE: \"full_model\"\n    CLIP_VALUE: 0.01\n"
        "    NORM_TYPE: 2.0\n  CHECKPOINT_PERIOD: 1000\n"
    )
    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.merge_from_file(str(yaml))
    model = _TwoEqualParams()
    opt = build_optimizer(cfg, model)
    assert isinstance(opt, torch.optim.AdamW)
    build_lr_scheduler(cfg, opt)  # detectron2's WarmupMultiStepLR over the same optimizer
    model().backward()
    opt.step()
    assert torch.cat([model.a.grad, model.b.grad]).norm().item() == pytest.approx(0.01, rel=1e-4)


def test_two_stage_warmup_poly():
    model = _Model()
    cfg = _cfg(LR_SCHEDULER_NAME="TwoStageWarmupPolyLR", WARMUP_STEPS=[10, 20], POLY_POWER=1.0,
               BACKBONE_MULTIPLIER=1.0)
    opt = build_optimizer(cfg, model)
    sched = build_lr_scheduler(cfg, opt)
    vit_w = model.backbone.encoder.backbone.blocks[3].weight
    head_w = model.head.weight
    lrs = []
    for _ in range(100):
        lrs.append((_lr_of(opt, vit_w), _lr_of(opt, head_w)))
        opt.step()
        sched.step()
    assert lrs[0] == (0.0, 0.0)
    assert lrs[5] == (0.0, pytest.approx(0.5))  # ViT frozen while the rest warms up
    assert lrs[10][1] == pytest.approx(1.0) and lrs[20][0] == pytest.approx(0.5)
    assert lrs[30][0] == pytest.approx(1.0)
    assert lrs[65][1] == pytest.approx(1 - 55 / 90)  # poly over the remaining 90 iterations
    assert lrs[65][0] == pytest.approx(1 - 35 / 70)
    state = sched.state_dict()
    sched2 = build_lr_scheduler(cfg, build_optimizer(cfg, _Model()))
    sched2.load_state_dict(state)
    assert sched2.last_epoch == sched.last_epoch


def test_warmup_poly_and_unknown_optimizer():
    cfg = _cfg(LR_SCHEDULER_NAME="WarmupPolyLR", WARMUP_ITERS=0, POLY_POWER=2.0)
    lin = nn.Linear(2, 2)
    opt = build_optimizer(cfg, lin)
    sched = build_lr_scheduler(cfg, opt)
    assert isinstance(sched, WarmupPolyLR)  # detectron2's DeepLab schedule, wsovvis keys
    for _ in range(50):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER"):
        build_optimizer(_cfg(OPTIMIZER="LAMB"), lin)


def test_model_lr_multipliers_hook_with_real_seqformer():
    """SeqFormer + frozen DINOv2 pseudo-FPN: ViT excluded, new neck at the full LR (not x0.1)."""
    import os

    from detectron2.modeling import build_model

    import wsovvis.modeling  # noqa: F401

    cfg = _cfg(BACKBONE_MULTIPLIER=0.1)
    cfg.merge_from_file(os.path.join(os.path.dirname(__file__), "..", "..", "configs", "seqformer",
                                     "tiny_test.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.SOLVER.BASE_LR = 1.0
    model = build_model(cfg)
    opt = build_optimizer(cfg, model)
    named = dict(model.named_parameters())
    optimised = {id(p) for g in opt.param_groups for p in g["params"]}
    vit = [p for n, p in named.items() if n.startswith("backbone.body.vit.")]
    neck = [n for n in named if n.startswith("backbone.body.neck.")]
    assert vit and all(id(p) not in optimised for p in vit)
    assert neck and all(_lr_of(opt, named[n]) == pytest.approx(1.0) for n in neck)
    assert _lr_of(opt, named["query_embed.weight"]) == pytest.approx(1.0)
