"""Sacred glue: one Run per launch, metrics forwarded while training, artifacts at the end.

Convention: the launcher owns the Run (one per launch, as Sacred expects); workers never see
``_run``. A daemon thread (:class:`MetricsBridge`) tails rank 0's ``<OUTPUT_DIR>/metrics.json`` (detectron2's
``JSONWriter``: one JSON object per line with ``iteration``) and forwards every number with
``_run.log_scalar(name, value, iteration)``. Observers are only attached on global rank 0 /
machine 0 (:func:`prepare_argv` strips ``-F``/``-m`` elsewhere).
"""
import json
import logging
import math
import os
import threading
from typing import Callable, Dict, List, Optional, Set, Tuple

from wsovvis.utils.io import atomic_write

from .runner import is_launcher_main, run_experiment
from .setup import normalize_config

__all__ = ["MetricsBridge", "observer_dependency_error", "prepare_argv", "run_sacred"]

logger = logging.getLogger(__name__)

_OBSERVER_FLAGS = ("-F", "--file_storage", "-m", "--mongo_db", "-s", "--sql", "-t", "--tiny_db",
                   "-S", "--s3")


class MetricsBridge(threading.Thread):
    """Tail a detectron2 ``metrics.json`` and forward its scalars.

    Only complete lines are consumed (a partially written last line is retried); ``iteration`` is
    the step. Forwarded ``(name, step)`` pairs are remembered in :attr:`forwarded`.

    Args:
        path: the ``metrics.json`` to tail (may not exist yet).
        log_scalar: ``(name, value, step) -> None``, e.g. ``_run.log_scalar``.
        from_end: start at the current end of the file (resume: older lines were already sent).
        interval: polling period in seconds.
    """

    def __init__(self, path: str, log_scalar: Callable, *, from_end: bool = False,
                 interval: float = 2.0):
        super().__init__(name="wsovvis-metrics-bridge", daemon=True)
        self._path = path
        self._log_scalar = log_scalar
        self._interval = interval
        self._offset = os.path.getsize(path) if from_end and os.path.isfile(path) else 0
        self._stop_event = threading.Event()
        self.forwarded: Set[Tuple[str, int]] = set()

    def poll(self) -> int:
        """Forward all new complete lines (a partial last line is left for the next poll).

        Returns:
            the number of scalars sent.
        """
        if not os.path.isfile(self._path):
            return 0
        with open(self._path, "rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        sent = 0
        while b"\n" in chunk:
            line, chunk = chunk.split(b"\n", 1)
            self._offset += len(line) + 1
            try:
                record = json.loads(line.decode("utf-8"))
            except ValueError:
                logger.warning(f"Skipping malformed line in {self._path}: {line[:80]!r}")
                continue
            if not isinstance(record, dict) or "iteration" not in record:
                continue
            step = int(record.pop("iteration"))
            for name, value in record.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                if not math.isfinite(value):
                    continue
                self._log_scalar(name, float(value), step)
                self.forwarded.add((name, step))
                sent += 1
        return sent

    def run(self):  # thread body
        while not self._stop_event.wait(self._interval):
            try:
                self.poll()
            except Exception:  # never kill training because of reporting
                logger.exception("metrics bridge poll failed")

    def stop(self) -> None:
        """Stop the thread and forward whatever is left."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=30)
        try:  # called from a ``finally``: must not hide the training error
            self.poll()
        except Exception:
            logger.exception("metrics bridge final poll failed")


def _cli_machine_rank(argv: List[str]) -> int:
    """``machine_rank`` of a ``train_net.py`` command line (0 if unset or unparsable).

    A ``machine_rank=i`` update wins over the config files given after ``with`` (as in Sacred);
    among files the last one that sets it wins.
    """
    from_update, from_file = None, None
    after_with = False
    for a in argv:
        if a == "with":
            after_with = True
        elif a.startswith("machine_rank="):
            try:
                from_update = int(a.split("=", 1)[1])
            except ValueError:
                pass
        elif after_with and a.endswith((".yaml", ".yml", ".json")) and os.path.isfile(a):
            try:
                import yaml  # JSON is YAML

                with open(a) as f:
                    loaded = yaml.safe_load(f)
                if isinstance(loaded, dict) and "machine_rank" in loaded:
                    from_file = int(loaded["machine_rank"])
            except Exception:  # Sacred reports unreadable files itself
                pass
    if from_update is not None:
        return from_update
    return from_file if from_file is not None else 0


def prepare_argv(argv: List[str]) -> List[str]:
    """Remove observer options on processes that must not report (rank != 0 / machine != 0).

    Under torchrun or ``srun`` every rank runs ``train_net.py``; only global rank 0 may attach
    observers. For multi-machine ``launch()`` the same holds for ``machine_rank`` != 0 (read from
    the ``with`` updates, e.g. ``machine_rank=1``, or from a config file given after ``with``).

    Args:
        argv: the command line (``sys.argv``).

    Returns:
        ``argv`` unchanged on the reporting process, else a copy without observer options.
    """
    machine_rank = _cli_machine_rank(argv)
    if is_launcher_main({"machine_rank": machine_rank}):
        return list(argv)
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in _OBSERVER_FLAGS:
            skip = True
            continue
        if any(a.startswith(f + "=") for f in _OBSERVER_FLAGS if f.startswith("--")):
            continue
        out.append(a)
    return out


# observer flag -> (module it needs, how to install it)
_OBSERVER_DEPS = {
    "-m": ("pymongo", "pip install -e .[mongo]  (or: pip install pymongo)"),
    "--mongo_db": ("pymongo", "pip install -e .[mongo]  (or: pip install pymongo)"),
    "-s": ("sqlalchemy", "pip install sqlalchemy"),
    "--sql": ("sqlalchemy", "pip install sqlalchemy"),
    "-t": ("tinydb", "pip install tinydb hashfs"),
    "--tiny_db": ("tinydb", "pip install tinydb hashfs"),
    "-S": ("boto3", "pip install boto3"),
    "--s3": ("boto3", "pip install boto3"),
}


def observer_dependency_error(argv: List[str]) -> Optional[str]:
    """A one-line message when an observer option needs a package that is not installed.

    Sacred imports e.g. ``pymongo`` only when the observer is created and then dies with a
    traceback; this check runs before anything else.

    Args:
        argv: the command line (``sys.argv``).

    Returns:
        None when every requested observer can be created, else the message.
    """
    import importlib.util

    for a in argv[1:]:  # options may come before or after ``with``
        flag = a.split("=", 1)[0] if a.startswith("--") else a
        if flag in _OBSERVER_DEPS:
            module, install = _OBSERVER_DEPS[flag]
            if importlib.util.find_spec(module) is None:
                return (f"{flag} needs the Python package '{module}', which is not installed: "
                        f"{install}")
    return None


def _add_artifact(_run, path: str, name: str) -> None:
    if os.path.isfile(path):
        _run.add_artifact(path, name=name)


def run_sacred(_run, config: Dict) -> Dict[str, float]:
    """Body of the Sacred ``main``: validate, launch, bridge metrics, store config and artifacts.

    Args:
        _run: the Sacred Run (stays in this process).
        config: ``_run.config``.

    Returns:
        final flat metrics (stored by Sacred as the run result).
    """
    config = normalize_config(config)
    state: Dict[str, object] = {}
    report = is_launcher_main(config)

    def on_started(cfg):
        state["cfg"] = cfg
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        if not report:
            return
        resolved = os.path.join(cfg.OUTPUT_DIR, "config_resolved.yaml")
        atomic_write(resolved, lambda f: f.write(cfg.dump()))
        _run.add_artifact(resolved, name="d2_config.yaml")
        _run.info["d2_config"] = json.loads(json.dumps(cfg, default=str))
        _run.info["output_dir"] = os.path.abspath(cfg.OUTPUT_DIR)
        with open(os.path.join(cfg.OUTPUT_DIR, "sacred_runs.txt"), "a") as f:
            f.write(f"{_run._id}\tresume={config['resume']}\teval_only={config['eval_only']}\n")
        # Lines already in metrics.json belong to earlier launches (resume or reused OUTPUT_DIR).
        bridge = MetricsBridge(os.path.join(cfg.OUTPUT_DIR, "metrics.json"), _run.log_scalar,
                               from_end=True)
        bridge.start()
        state["bridge"] = bridge

    try:
        final = run_experiment(config, on_started=on_started)
    finally:
        bridge: Optional[MetricsBridge] = state.get("bridge")  # type: ignore[assignment]
        if bridge is not None:
            bridge.stop()
            out = state["cfg"].OUTPUT_DIR  # logs are useful for failed runs too
            _add_artifact(_run, os.path.join(out, "metrics.json"), "d2_metrics.json")
            _add_artifact(_run, os.path.join(out, "log.txt"), "d2_log.txt")
    if not report:
        return {}
    step = int(final.get("iteration", 0))
    metrics = final.get("metrics", {})
    for name, value in metrics.items():  # e.g. eval_only, or the final test with EVAL_PERIOD 0
        if (name, step) not in bridge.forwarded:
            _run.log_scalar(name, value, step)
    tests = state["cfg"].DATASETS.TEST
    for sub in [""] + [f"{n}/" for n in tests]:
        _add_artifact(_run, os.path.join(out, "inference", sub, "results.json"),
                      "results.json" if not sub else f"results_{sub[:-1]}.json")
    _add_artifact(_run, os.path.join(out, "final_metrics.json"), "final_metrics.json")
    return metrics
