"""The wsovvis trainer: detectron2's ``DefaultTrainer`` with video loaders, YTVIS evaluation,
LLRD optimizer, exact resume and strict checkpoint checks."""
import functools
import logging
import os
import weakref
from collections import OrderedDict
from typing import Dict

from detectron2.engine import (
    AMPTrainer,
    DefaultTrainer,
    SimpleTrainer,
    TrainerBase,
    create_ddp_model,
)
from detectron2.evaluation.testing import flatten_results_dict
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from .checkpoint import VideoCheckpointer
from .data import ResumableLoader
from .optimizer import build_lr_scheduler, build_optimizer
from .setup import uses_cuda

__all__ = ["Trainer", "flat_metrics"]

logger = logging.getLogger(__name__)


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` for video instance segmentation.

    Differences to detectron2's: skip-consistent training loader (:mod:`wsovvis.data.samplers`),
    per-iteration seeding, optimizer state in checkpoints (v0.6 saves only the iteration and
    hooks), :class:`VideoCheckpointer` with architecture checks, AdamW + LLRD optimizer,
    ``YTVISEvaluator``, and :meth:`train` returning the last evaluation results.

    Per-iteration seeding: between fetching a batch and running the model on it, Python
    ``random``, numpy and torch (CPU + CUDA) are re-seeded from ``(SEED, rank, iteration)``
    (:class:`~wsovvis.engine.data.ResumableLoader`), so model-side randomness (WSVidEoMT's random
    point sampling, dropout) differs per rank and per iteration but not between an uninterrupted
    and a resumed run: with deterministic kernels (CPU), SIGKILL + resume ends with bit-identical
    weights. Data augmentation has its own position-based seeds and does not touch these RNGs.
    """

    def __init__(self, cfg):
        # Mirrors DefaultTrainer.__init__ (v0.6) except: CPU-capable DDP, VideoCheckpointer.
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        ddp_kwargs = {} if uses_cuda(cfg) else {"device_ids": None}
        model = create_ddp_model(model, broadcast_buffers=False, **ddp_kwargs)
        trainer_cls = AMPTrainer if cfg.SOLVER.AMP.ENABLED else SimpleTrainer
        self._trainer = trainer_cls(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = VideoCheckpointer(model, cfg.OUTPUT_DIR, cfg=cfg, mode="init",
                                              trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    # --- builders -------------------------------------------------------------------------
    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        return build_lr_scheduler(cfg, optimizer)

    @classmethod
    def build_train_loader(cls, cfg):
        """Lazy, skip-consistent training loader over ``YTVISClipMapper`` clips."""
        from wsovvis.data import YTVISClipMapper, build_video_train_loader, get_train_dataset_dicts

        if cfg.SEED < 0:
            logger.warning("cfg.SEED < 0: training data order is random and resume is not exact.")
        seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        dicts = get_train_dataset_dicts(cfg)
        build = functools.partial(
            build_video_train_loader,
            dicts,
            YTVISClipMapper(cfg, is_train=True),
            seed=seed,
            total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )
        return ResumableLoader(lambda start_iter: build(start_iter=start_iter), step_seed=seed)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        from wsovvis.data import build_video_test_loader

        return build_video_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        """``YTVISEvaluator`` writing ``<OUTPUT_DIR>/inference[/<name>]/results.json``.

        With ``MODEL.OPEN_VOCAB.ENABLED`` the open-vocabulary evaluator instead (class-agnostic
        tubes named by a frozen CLIP; AP/APb/APn plus class-agnostic and oracle-label AP).
        """
        from wsovvis.evaluation import YTVISEvaluator

        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
            if len(cfg.DATASETS.TEST) > 1:
                output_folder = os.path.join(output_folder, dataset_name)
        if cfg.MODEL.OPEN_VOCAB.ENABLED:  # name the class-agnostic tubes with CLIP, then score
            from wsovvis.open_vocab import build_open_vocab_evaluator

            return build_open_vocab_evaluator(cfg, dataset_name, output_folder)
        return YTVISEvaluator(
            dataset_name,
            output_dir=output_folder,
            class_agnostic=cfg.TEST.CLASS_AGNOSTIC,
            distributed=True,
        )

    # --- checkpoint state -----------------------------------------------------------------
    def state_dict(self):
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()  # optimizer (+ AMP grad scaler)
        ret["scheduler"] = self.scheduler.state_dict()
        return ret

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        if "_trainer" in state_dict:
            self._trainer.load_state_dict(state_dict["_trainer"])
        if "scheduler" in state_dict:
            self.scheduler.load_state_dict(state_dict["scheduler"])

    def resume_or_load(self, resume: bool = True):
        """Load the last checkpoint of ``OUTPUT_DIR`` (resume) or ``MODEL.WEIGHTS``, with checks.

        The checkpoint policy (:class:`VideoCheckpointer`) decides: resuming requires a
        checkpoint that provides every model tensor (checked before the optimizer state is
        touched); ``MODEL.WEIGHTS`` may be partial (what it lacks is re-initialised and listed
        once in the log) but must fit at least one tensor, and a pretrained-by-design backbone
        may not start random without ``ALLOW_RANDOM_INIT``. The training loader then starts at
        the resumed iteration.

        Raises:
            CheckpointError: the checkpoint does not fit (one message with config hints).
        """
        ckpt = self.checkpointer
        resuming = resume and ckpt.has_checkpoint()
        path = ckpt.get_checkpoint_file() if resuming else self.cfg.MODEL.WEIGHTS
        super().resume_or_load(resume=resume)
        if not resuming:
            ckpt.check_initialisation()
        if resuming:
            logger.info(f"Resumed from {path}; continuing at iteration {self.start_iter}")
        if isinstance(self.data_loader, ResumableLoader):
            self.data_loader.start_iter = self.start_iter

    # --- train / test -----------------------------------------------------------------------
    def train(self):
        """Run training; returns the last evaluation results (or None if none ran)."""
        super().train()
        return getattr(self, "_last_eval_results", None)  # set by detectron2's eval hook

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """Evaluate ``model`` on ``cfg.DATASETS.TEST`` (see ``DefaultTrainer.test``)."""
        if not cfg.DATASETS.TEST:
            logger.warning("cfg.DATASETS.TEST is empty: nothing to evaluate.")
            return OrderedDict()
        return super().test(cfg, model, evaluators=evaluators)


def flat_metrics(results) -> Dict[str, float]:
    """Flatten ``{"segm": {"AP": ..}}`` results to ``{"segm/AP": ..}`` (finite floats only)."""
    flat = flatten_results_dict(results or {})
    out = {}
    for k, v in flat.items():
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        if v == v and abs(v) != float("inf"):
            out[k] = v
    return out
