"""Builtin LV-VIS and YouTube-VIS splits, registered on import under ``$WSOVVIS_DATASETS``.

Expected layout (as downloaded), relative to the root (default ``./datasets``)::

    lvvis/train/JPEGImages/  lvvis/train/train_instances.json
    lvvis/train/train_pseudo_videocutler.json   (tools/convert_videocutler_png_to_json.py output)
    lvvis/val/JPEGImages/    lvvis/val/val_instances.json
                             lvvis/val/val_instances_class_agnostic.json   (tools/ output)
    ytvis_2019/{train,valid}/JPEGImages/  ytvis_2019/{train,valid}.json
    ytvis_2021/{train,valid}/JPEGImages/  ytvis_2021/{train,valid}.json

Registration never touches the files; a missing file is reported when the split is loaded.
"""
import logging
import os
from typing import Optional

from .ytvis import register_ytvis_instances, unregister_ytvis_instances

logger = logging.getLogger(__name__)

__all__ = ["_PREDEFINED_SPLITS", "register_all_builtin", "default_datasets_root"]

# name -> (image_root, json_file), both relative to the datasets root
_PREDEFINED_SPLITS = {
    "lvvis_train": ("lvvis/train/JPEGImages", "lvvis/train/train_instances.json"),
    # VideoCutLER pseudo tubes of the train videos (class-agnostic, one category)
    "lvvis_train_pseudo": ("lvvis/train/JPEGImages", "lvvis/train/train_pseudo_videocutler.json"),
    "lvvis_val": ("lvvis/val/JPEGImages", "lvvis/val/val_instances.json"),
    "lvvis_val_class_agnostic": (
        "lvvis/val/JPEGImages",
        "lvvis/val/val_instances_class_agnostic.json",
    ),
    "ytvis_2019_train": ("ytvis_2019/train/JPEGImages", "ytvis_2019/train.json"),
    "ytvis_2019_val": ("ytvis_2019/valid/JPEGImages", "ytvis_2019/valid.json"),
    "ytvis_2021_train": ("ytvis_2021/train/JPEGImages", "ytvis_2021/train.json"),
    "ytvis_2021_val": ("ytvis_2021/valid/JPEGImages", "ytvis_2021/valid.json"),
}

_REGISTERED_ROOT: Optional[str] = None


def default_datasets_root() -> str:
    """``$WSOVVIS_DATASETS`` if set, else ``./datasets`` (absolute)."""
    return os.path.abspath(os.path.expanduser(os.environ.get("WSOVVIS_DATASETS", "datasets")))


def register_all_builtin(root: Optional[str] = None) -> str:
    """Register every split of :data:`_PREDEFINED_SPLITS` under ``root`` (idempotent).

    Args:
        root: datasets root; ``None`` or "" -> :func:`default_datasets_root`.

    Returns:
        The absolute root used.

    If they were registered under another root (e.g. on import, before ``cfg.DATASETS.ROOT``
    was read), they are unregistered and registered again under ``root``.
    """
    global _REGISTERED_ROOT
    root = os.path.abspath(os.path.expanduser(root)) if root else default_datasets_root()
    if _REGISTERED_ROOT == root:
        return root
    if _REGISTERED_ROOT is not None:
        logger.info(f"Moving builtin video datasets from {_REGISTERED_ROOT} to {root}")
        for name in _PREDEFINED_SPLITS:
            unregister_ytvis_instances(name)
    for name, (image_root, json_file) in _PREDEFINED_SPLITS.items():
        register_ytvis_instances(
            name, {}, os.path.join(root, json_file), os.path.join(root, image_root)
        )
    _REGISTERED_ROOT = root
    return root
