"""What every training process runs (:func:`train_worker`) and how the launcher starts them.

:func:`run_experiment` is the launcher side (no Sacred inside): it validates the config, spawns the
workers through :mod:`wsovvis.engine.launch` and collects the final metrics that rank 0 writes to
``<OUTPUT_DIR>/final_metrics.json``. The Sacred glue lives in :mod:`wsovvis.engine.sacred_bridge`.
"""
import logging
import os
import uuid
from datetime import timedelta
from typing import Any, Dict, Optional

from detectron2.utils import comm
from torch.multiprocessing import ProcessRaisedException

from wsovvis.utils.io import atomic_write_json, read_json

from .checkpoint import CheckpointError, VideoCheckpointer
from .launch import external_dist_env, launch, run_external
from .setup import ConfigError, build_cfg, normalize_config, setup_process, uses_cuda
from .trainer import Trainer, flat_metrics

__all__ = ["FINAL_METRICS", "train_worker", "run_experiment"]

logger = logging.getLogger(__name__)

FINAL_METRICS = "final_metrics.json"


def _evaluate_only(cfg, resume: bool):
    """Score ``MODEL.WEIGHTS`` (or the last checkpoint) after the policy's eval fit check."""
    model = Trainer.build_model(cfg)
    ckpt = VideoCheckpointer(model, cfg.OUTPUT_DIR, cfg=cfg, mode="eval")
    path = ckpt.get_checkpoint_file() if resume else cfg.MODEL.WEIGHTS
    extra = ckpt.load(path, checkpointables=[])
    # d2 checkpoints store the index of the last finished iteration; report iterations trained,
    # the step at which training logs its final evaluation.
    last = extra.get("iteration") if isinstance(extra, dict) else None
    return Trainer.test(cfg, model), (int(last) + 1 if last is not None else 0)


def train_worker(config: Dict[str, Any], token: str = "") -> Optional[Dict]:
    """Train (or evaluate) on this rank; rank 0 writes ``final_metrics.json``.

    Args:
        config: plain experiment dict (see :data:`wsovvis.engine.setup.DEFAULT_CONFIG`).
        token: launch id written into ``final_metrics.json`` so the launcher never reads a stale
            file from an earlier run.

    Returns:
        the final evaluation results (nested dict) on rank 0, else None.
    """
    config = normalize_config(config)
    cfg = build_cfg(config, check=False)
    setup_process(cfg)
    if config.get("eval_only"):
        results, iteration = _evaluate_only(cfg, bool(config.get("resume")))
    else:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=bool(config.get("resume")))
        results = trainer.train()
        iteration = trainer.iter
        if results is None and cfg.DATASETS.TEST:  # no EvalHook ran (TEST.EVAL_PERIOD == 0)
            results = Trainer.test(cfg, trainer.model)
    if comm.is_main_process():
        atomic_write_json(
            {"token": token, "iteration": iteration, "metrics": flat_metrics(results),
             "results": results or {}},
            os.path.join(cfg.OUTPUT_DIR, FINAL_METRICS), indent=2,
        )
    comm.synchronize()
    return results


def worker_input_error(trace: str) -> Optional[Exception]:
    """The bad-input error (checkpoint / config) a spawned worker died of, rebuilt in the launcher.

    ``torch.multiprocessing`` re-raises a worker's exception as ``ProcessRaisedException`` holding
    the worker's traceback text; a :class:`CheckpointError` or :class:`ConfigError` there is bad
    input, which the CLI reports as one ``error:`` line (not a traceback).

    Args:
        trace: ``str(ProcessRaisedException)``.

    Returns:
        the rebuilt exception, or None if the worker died of something else.
    """
    for cls in (CheckpointError, ConfigError):
        marker = f"{cls.__module__}.{cls.__name__}: "
        at = trace.rfind(marker)
        if at >= 0:
            return cls(trace[at + len(marker):].strip())
    return None


def is_launcher_main(config: Dict[str, Any]) -> bool:
    """Whether this launcher process is the one that reports (machine 0 / global rank 0).

    Args:
        config: experiment dict (only ``machine_rank`` is read, and only without torchrun/srun).

    Returns:
        True on global rank 0 under torchrun/srun, else when ``machine_rank`` is 0.
    """
    env = external_dist_env()
    if env is not None:
        return env["rank"] == 0
    return int(config.get("machine_rank", 0)) == 0


def run_experiment(config: Dict[str, Any], on_started=None) -> Dict[str, Any]:
    """Validate ``config``, run :func:`train_worker` on every rank and return the final metrics.

    Args:
        config: plain experiment dict.
        on_started: optional callback ``(cfg) -> None`` run after validation, before any process
            starts (the Sacred bridge stores the resolved config and starts its metrics tailer).

    Returns:
        ``{"iteration", "metrics", "results"}`` read back from rank 0 (empty on other machines).
    """
    config = normalize_config(config)
    cfg = build_cfg(config, check=True)
    if on_started is not None:
        on_started(cfg)
    token = uuid.uuid4().hex
    timeout = timedelta(minutes=float(config.get("dist_timeout_min", 30)))
    env = external_dist_env()
    if env is not None:
        run_external(train_worker, env, args=(config, token), timeout=timeout,
                     use_cuda=uses_cuda(cfg))
    else:
        try:
            launch(
                train_worker,
                int(config["num_gpus"]),
                num_machines=int(config["num_machines"]),
                machine_rank=int(config["machine_rank"]),
                dist_url=config["dist_url"],
                args=(config, token),
                timeout=timeout,
                use_cuda=uses_cuda(cfg),
            )
        except ProcessRaisedException as e:
            bad_input = worker_input_error(str(e))
            if bad_input is None:
                raise
            raise bad_input from None
    if not is_launcher_main(config):
        return {}
    final = read_json(os.path.join(cfg.OUTPUT_DIR, FINAL_METRICS), "final metrics")
    if final.get("token") != token:
        raise RuntimeError(f"{FINAL_METRICS} in {cfg.OUTPUT_DIR} was not written by this launch")
    return final
