"""Experiment configuration -> detectron2 config, with every check done before any work starts.

The Sacred launcher and every training process call :func:`build_cfg` on the same plain dict
(:data:`DEFAULT_CONFIG` layout), so a bad key, a missing file or an unreadable checkpoint fails in
the launcher with a clear message, before processes are spawned.
"""
import copy
import importlib
import logging
import os
import zipfile
from typing import Any, Dict, List

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from wsovvis.config import add_wsovvis_config

from wsovvis.data.samplers import derive_seed, seed_all

__all__ = [
    "DEFAULT_CONFIG", "MIRRORED_KEYS", "ConfigError", "to_plain", "normalize_config", "build_cfg",
    "seed_process",
    "setup_process", "uses_cuda",
]

logger = logging.getLogger(__name__)

#: Experiment-level settings (the Sacred config of ``train_net.py``).
DEFAULT_CONFIG: Dict[str, Any] = {
    "d2_cfg_path": "",  # detectron2 YAML of the model / solver
    "d2_opts": [],  # detectron2 overrides: [KEY, VALUE, KEY, VALUE, ...] or [[KEY, VALUE], ...]
    "data": {  # optional YTVIS JSONs registered on the fly (override DATASETS.TRAIN / TEST)
        "train_json": "",
        "train_img_root": "",
        "val_json": "",
        "val_img_root": "",
        "train_name": "sacred_train",
        "val_name": "sacred_val",
    },
    "num_gpus": 1,  # processes per machine (GPUs; CPU processes without CUDA)
    "num_machines": 1,
    "machine_rank": 0,
    "dist_url": "auto",  # "auto" (one machine) or tcp://<host of machine 0>:<port>
    "dist_timeout_min": 30,  # process-group timeout
    "eval_only": False,  # evaluate MODEL.WEIGHTS (or the last checkpoint with resume) and exit
    "resume": False,  # continue from <output_dir>/last_checkpoint
    # output_dir / seed set detectron2's OUTPUT_DIR / SEED; left at these defaults, a value from
    # d2_opts or the d2 YAML is used instead; both given and different is an error
    "output_dir": "",  # "" = outputs/<d2 config name>; independent of the Sacred run id
    "seed": 42,  # cfg.SEED; rank r of the job is seeded from (seed, r)
    "imports": [],  # extra modules imported in every process first (register custom models/data)
}


class ConfigError(ValueError):
    """The experiment configuration is invalid."""


def to_plain(obj):
    """Deep-copy Sacred ``ReadOnlyDict``/``ReadOnlyList`` into plain dicts and lists."""
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return copy.deepcopy(obj)


def _opts_list(d2_opts) -> List:
    if isinstance(d2_opts, dict):
        return [x for kv in d2_opts.items() for x in kv]
    opts = list(d2_opts)
    if opts and all(isinstance(o, (list, tuple)) for o in opts):
        if any(len(o) != 2 for o in opts):
            raise ConfigError(f"d2_opts pairs must be [KEY, VALUE], got {opts}")
        return [x for o in opts for x in o]
    if len(opts) % 2:
        raise ConfigError(f"d2_opts must alternate KEY, VALUE; got an odd-length list {opts}")
    return opts


def _check_file(path: str, what: str) -> None:
    if not path:
        raise ConfigError(f"{what} is not set")
    if not os.path.isfile(path):
        raise ConfigError(f"{what} not found: {path}")


def _check_dir(path: str, what: str) -> None:
    if not path or not os.path.isdir(path):
        raise ConfigError(f"{what} is not a directory: {path!r}")


def _check_checkpoint_file(path: str, what: str = "MODEL.WEIGHTS") -> None:
    """Cheap sanity check of a local checkpoint (exists, non-empty, torch zip or pickle)."""
    if "://" in path:
        return  # remote: resolved by detectron2's PathManager at load time
    _check_file(path, what)
    if os.path.getsize(path) == 0:
        raise ConfigError(f"{what} {path} is an empty file")
    if zipfile.is_zipfile(path):
        return
    with open(path, "rb") as f:
        head = f.read(2)
    if not head.startswith(b"\x80"):
        raise ConfigError(f"{what} {path} is not a torch checkpoint or pickle (corrupt?)")


def _check_layout(config: Dict[str, Any]) -> int:
    """Validate the process layout and return the world size.

    Under torchrun / ``srun`` (one task per GPU) the world size comes from the environment and
    ``num_gpus`` / ``num_machines`` / ``machine_rank`` / ``dist_url`` are not used.
    """
    from .launch import check_dist_url, external_dist_env, missing_master_env

    env = external_dist_env()
    if env is not None:
        missing = missing_master_env()
        if missing:
            raise ConfigError(f"{' and '.join(missing)} must be exported for srun launches with "
                              "one task per GPU (torchrun sets them)")
        return env["world_size"]
    num_gpus, num_machines = int(config["num_gpus"]), int(config["num_machines"])
    machine_rank, dist_url = int(config["machine_rank"]), str(config["dist_url"])
    if num_gpus < 1 or num_machines < 1:
        raise ConfigError(f"num_gpus={num_gpus} and num_machines={num_machines} must be >= 1")
    if not 0 <= machine_rank < num_machines:
        raise ConfigError(
            f"machine_rank={machine_rank} must be in [0, num_machines={num_machines})"
        )
    try:
        check_dist_url(dist_url, num_machines)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return num_gpus * num_machines


def _register_data(cfg: CfgNode, data: Dict[str, str]) -> None:
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from wsovvis.data import register_all_builtin, register_ytvis_instances
    from wsovvis.data import unregister_ytvis_instances

    if cfg.DATASETS.ROOT:
        register_all_builtin(cfg.DATASETS.ROOT)
    for split, key in (("train", "TRAIN"), ("val", "TEST")):
        json_file, root = data.get(f"{split}_json", ""), data.get(f"{split}_img_root", "")
        if not json_file:
            continue
        _check_file(json_file, f"data.{split}_json")
        _check_dir(root, f"data.{split}_img_root")
        name = data.get(f"{split}_name") or f"sacred_{split}"
        json_file, root = os.path.abspath(json_file), os.path.abspath(root)
        if name in DatasetCatalog.list():  # an earlier experiment in this process used the name
            meta = MetadataCatalog.get(name)
            if (meta.get("json_file"), meta.get("image_root")) != (json_file, root):
                unregister_ytvis_instances(name)
        register_ytvis_instances(name, {}, json_file, root)
        setattr(cfg.DATASETS, key, (name,))


def _check_datasets(cfg: CfgNode, config: Dict[str, Any]) -> None:
    from detectron2.data import DatasetCatalog, MetadataCatalog

    names = list(cfg.DATASETS.TEST) + ([] if config["eval_only"] else list(cfg.DATASETS.TRAIN))
    if not config["eval_only"] and not cfg.DATASETS.TRAIN:
        raise ConfigError("No training data: set data.train_json or DATASETS.TRAIN")
    if config["eval_only"] and not cfg.DATASETS.TEST:
        raise ConfigError("eval_only=True needs data.val_json or DATASETS.TEST")
    registered = set(DatasetCatalog.list())
    for name in names:
        if name not in registered:
            raise ConfigError(
                f"Dataset '{name}' is not registered (set DATASETS.ROOT for builtin splits or "
                "data.*_json for your own files)"
            )
        meta = MetadataCatalog.get(name)
        json_file, root = meta.get("json_file"), meta.get("image_root")
        if json_file:
            _check_file(json_file, f"annotation file of dataset '{name}'")
        if root:
            _check_dir(root, f"image root of dataset '{name}'")
        # Load it once here: a corrupt mask, a bad id or a wrong size stops the launch with one
        # message (naming file, video, annotation and frame) before any process starts.
        try:
            DatasetCatalog.get(name)
        except (ValueError, KeyError, FileNotFoundError) as e:
            raise ConfigError(f"dataset '{name}': {e}") from e


def _resolve_device(cfg: CfgNode, warn: bool = True) -> None:
    """Validate ``MODEL.DEVICE``; CUDA requested but unavailable -> CPU with a warning.

    Decision: a config asking for CUDA on a machine without a usable CUDA runtime falls back to
    CPU instead of failing, so the shipped configs stay usable for CPU smoke runs, evaluation and
    the demo; the warning names the cause and the fix. It is printed once, by the validating
    call (``build_cfg(check=True)`` in the launcher), not again by every training process.
    Processes then run on CPU with the gloo backend and AMP is switched off (CUDA only).
    """
    try:
        device = torch.device(cfg.MODEL.DEVICE)
    except RuntimeError as e:
        raise ConfigError(f"Invalid MODEL.DEVICE {cfg.MODEL.DEVICE!r}: {e}") from e
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"MODEL.DEVICE must be 'cpu' or 'cuda[:N]', got {cfg.MODEL.DEVICE!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        log = logger.warning if warn else logger.debug
        log(
            f"MODEL.DEVICE={cfg.MODEL.DEVICE!r} but CUDA is not available "
            "(torch.cuda.is_available() is False: CPU-only torch build, no GPU or driver, or "
            "CUDA_VISIBLE_DEVICES hides every GPU). Falling back to MODEL.DEVICE='cpu'; set it "
            "explicitly to silence this warning."
        )
        cfg.MODEL.DEVICE = "cpu"
    if not uses_cuda(cfg) and cfg.SOLVER.AMP.ENABLED:
        (logger.warning if warn else logger.debug)(
            "SOLVER.AMP.ENABLED ignored: AMP runs on CUDA only."
        )
        cfg.SOLVER.AMP.ENABLED = False


#: Experiment keys that set a detectron2 key: (experiment key, detectron2 key).
MIRRORED_KEYS = (("seed", "SEED"), ("output_dir", "OUTPUT_DIR"))


def _same(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return os.path.normpath(a) == os.path.normpath(b)
    return a == b


def _resolve_mirrored(cfg: CfgNode, config: Dict[str, Any], d2_default: CfgNode,
                      opt_keys: List[str]) -> None:
    """Set ``SEED`` / ``OUTPUT_DIR`` from the experiment or from detectron2, by one rule.

    A side counts as set when its value differs from its default (experiment:
    :data:`DEFAULT_CONFIG`; detectron2: ``get_cfg()``, i.e. ``SEED -1`` and ``./output``).
    The experiment key wins when only it is set, the detectron2 value (``d2_opts`` or the
    ``d2_cfg_path`` YAML) when only that is set; neither set gives ``seed`` 42 and
    ``outputs/<d2 config name>``; both set to different values is an error.

    Raises:
        ConfigError: both sides set, to different values.
    """
    for key, d2_key in MIRRORED_KEYS:
        ours, theirs = config[key], cfg.get(d2_key)
        ours_set = not _same(ours, DEFAULT_CONFIG[key])
        theirs_set = not _same(theirs, d2_default.get(d2_key))
        if ours_set and theirs_set and not _same(str(ours), str(theirs)):
            source = "d2_opts" if d2_key in opt_keys else f"d2_cfg_path {config['d2_cfg_path']}"
            raise ConfigError(
                f"{key}={ours!r} and {d2_key} {theirs!r} (from {source}) disagree; set only one "
                f"of them (the detectron2 value is used when {key} is left at its default "
                f"{DEFAULT_CONFIG[key]!r})"
            )
        if ours_set or not theirs_set:
            value = ours
            if key == "output_dir" and not ours_set:
                name = os.path.basename(config["d2_cfg_path"] or "default")
                value = os.path.join("outputs", os.path.splitext(name)[0])
            setattr(cfg, d2_key, int(value) if key == "seed" else str(value))


def uses_cuda(cfg: CfgNode) -> bool:
    """Whether the processes of a built ``cfg`` run on CUDA (NCCL) or on CPU (gloo)."""
    return torch.device(cfg.MODEL.DEVICE).type == "cuda"


def normalize_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """Fill defaults into an experiment dict and reject unknown keys.

    Raises:
        ConfigError: a key is not in :data:`DEFAULT_CONFIG`.
    """
    config = {k: v for k, v in to_plain(config).items() if k != "__doc__"}
    unknown = set(config) - set(DEFAULT_CONFIG)
    if unknown:
        raise ConfigError(f"Unknown experiment keys: {sorted(unknown)}")
    data = config.get("data", {})
    unknown = set(data) - set(DEFAULT_CONFIG["data"])
    if unknown:
        raise ConfigError(f"Unknown data keys: {sorted(unknown)}")
    return {**to_plain(DEFAULT_CONFIG), **config, "data": {**DEFAULT_CONFIG["data"], **data}}


def build_cfg(config: Dict[str, Any], *, check: bool = True) -> CfgNode:
    """Build the frozen detectron2 config of an experiment.

    Args:
        config: experiment dict (:data:`DEFAULT_CONFIG` layout; unknown keys are rejected).
        check: also validate datasets, checkpoint files and resume state.

    Returns:
        frozen ``CfgNode`` with ``OUTPUT_DIR``, ``SEED`` and the dataset names filled in.

    Raises:
        ConfigError: unknown/invalid setting, missing file, bad detectron2 key, ``seed`` /
            ``output_dir`` contradicting ``SEED`` / ``OUTPUT_DIR`` of detectron2, nothing to resume,
            unreadable checkpoint (``MODEL.WEIGHTS`` or the one ``resume`` continues from),
            bad process layout (``num_gpus``, ``num_machines``, ``machine_rank``, ``dist_url``).
    """
    config = normalize_config(config)
    data = config["data"]
    import wsovvis.modeling  # noqa: F401  (registers the meta-architectures)

    for module in config["imports"]:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"imports: cannot import {module!r}: {e}") from e

    cfg = get_cfg()
    add_wsovvis_config(cfg)
    cfg.set_new_allowed(False)
    d2_default = cfg.clone()
    if config["d2_cfg_path"]:
        _check_file(config["d2_cfg_path"], "d2_cfg_path")
        try:
            cfg.merge_from_file(config["d2_cfg_path"])
        except (KeyError, ValueError, AssertionError) as e:
            raise ConfigError(f"Invalid detectron2 config {config['d2_cfg_path']}: {e}") from e
    opts = [str(o) if i % 2 == 0 else o for i, o in enumerate(_opts_list(config["d2_opts"]))]
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError) as e:
        raise ConfigError(f"Invalid d2_opts {config['d2_opts']}: {e}") from e
    _resolve_mirrored(cfg, config, d2_default, opts[::2])
    _resolve_device(cfg, warn=check)
    _register_data(cfg, data)
    if check:
        world_size = _check_layout(config)
        _check_datasets(cfg, config)
        last = os.path.join(cfg.OUTPUT_DIR, "last_checkpoint")
        if config["resume"] and os.path.isfile(last):  # the file detectron2 will resume from
            with open(last) as f:
                name = f.read().strip()
            _check_checkpoint_file(os.path.join(cfg.OUTPUT_DIR, name), f"{last} -> checkpoint")
        if config["resume"] and config["eval_only"] and not os.path.isfile(last):
            raise ConfigError(f"eval_only with resume=True, but {last} does not exist")
        if not config["resume"] and not config["eval_only"] and os.path.isfile(last):
            logger.warning(
                f"{last} exists but resume=False: training starts from scratch and overwrites "
                "the checkpoints of that run (pass resume=True to continue it)."
            )
        if cfg.MODEL.WEIGHTS and not (config["resume"] and os.path.isfile(last)):
            _check_checkpoint_file(cfg.MODEL.WEIGHTS)
        if config["eval_only"] and not cfg.MODEL.WEIGHTS and not config["resume"]:
            raise ConfigError("eval_only=True needs MODEL.WEIGHTS or resume=True")
        if cfg.SOLVER.IMS_PER_BATCH % world_size:
            raise ConfigError(
                f"SOLVER.IMS_PER_BATCH={cfg.SOLVER.IMS_PER_BATCH} is not divisible by the "
                f"{world_size} processes"
            )
    cfg.freeze()
    return cfg


def seed_process(cfg: CfgNode) -> None:
    """Seed Python, numpy and torch of this process from ``cfg.SEED`` and the process rank.

    ``SEED < 0`` gives a random seed per process, as detectron2's ``default_setup`` does (not a
    fixed seed derived from -1).
    """
    base = cfg.SEED if cfg.SEED >= 0 else int.from_bytes(os.urandom(4), "little")
    seed_all(derive_seed(base, comm.get_rank()))


def setup_process(cfg: CfgNode) -> None:
    """Per-process setup (``default_setup`` without argparse): logs, config dump, seeds."""
    rank = comm.get_rank()
    if comm.is_main_process():
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=rank, name="fvcore")
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=rank, name="detectron2")
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=rank, name="wsovvis", abbrev_name="wsovvis")
    if comm.is_main_process():
        from wsovvis.utils.io import atomic_write

        atomic_write(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), lambda f: f.write(cfg.dump()))
    seed_process(cfg)
    torch.backends.cudnn.benchmark = cfg.CUDNN_BENCHMARK

