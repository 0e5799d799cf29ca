"""Training engine: trainer, optimizer/LR builders, launching, and the Sacred bridge.

``train_net.py`` is a thin CLI over :func:`wsovvis.engine.sacred_bridge.run_sacred`; library users
can call :func:`wsovvis.engine.runner.run_experiment` (no Sacred) or use :class:`Trainer` directly.
"""
from .checkpoint import CheckpointError, VideoCheckpointer
from .data import ResumableLoader
from .launch import launch
from .optimizer import TwoStageWarmupPolyLR, build_lr_scheduler, build_optimizer, get_param_groups
from .runner import run_experiment, train_worker
from .setup import DEFAULT_CONFIG, ConfigError, build_cfg
from .trainer import Trainer

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DEFAULT_CONFIG",
    "ResumableLoader",
    "Trainer",
    "TwoStageWarmupPolyLR",
    "VideoCheckpointer",
    "build_cfg",
    "build_lr_scheduler",
    "build_optimizer",
    "get_param_groups",
    "launch",
    "run_experiment",
    "train_worker",
]
