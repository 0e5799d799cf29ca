"""Optimizer builder: LLRD, backbone multiplier, frozen params, clipping, poly schedules."""
import pytest
import torch
from detectron2.config import get_cfg
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
