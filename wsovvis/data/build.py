"""Train / test data loaders for video datasets, on detectron2's samplers (DDP- and worker-safe)."""
import itertools
import logging
from typing import List, Sequence

import torch.utils.data as torchdata
from detectron2.config import configurable
from detectron2.data import DatasetCatalog
from detectron2.data.build import build_batch_data_loader, trivial_batch_collator
from detectron2.data.common import DatasetFromList, MapDataset
from detectron2.data.samplers import InferenceSampler, TrainingSampler

from .dataset_mapper import YTVISClipMapper
from .datasets.builtin import register_all_builtin

__all__ = [
    "get_video_dataset_dicts",
    "get_train_dataset_dicts",
    "build_video_train_loader",
    "build_video_test_loader",
]

logger = logging.getLogger(__name__)


def _has_instances(video: dict) -> bool:
    return any(len(frame) > 0 for frame in video.get("annotations", []))


def get_video_dataset_dicts(names: Sequence[str], filter_empty: bool = True) -> List[dict]:
    """Load and concatenate registered video datasets.

    Args:
        names: registered dataset names.
        filter_empty: drop videos without any annotated instance (training).

    Returns:
        list[dict] of videos.
    """
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ValueError("no dataset names given (DATASETS.TRAIN / DATASETS.TEST is empty)")
    dicts = []
    for name in names:
        d = DatasetCatalog.get(name)
        if not d:
            raise ValueError(f"dataset '{name}' is empty")
        dicts.append(d)
    videos = list(itertools.chain.from_iterable(dicts))
    if filter_empty:
        before = len(videos)
        videos = [v for v in videos if _has_instances(v)]
        logger.info(f"Removed {before - len(videos)} videos without instances; {len(videos)} left.")
        if not videos:
            raise ValueError(f"no video with instances in {list(names)}")
    return videos


def _mapped_dataset(dataset, mapper) -> MapDataset:
    """Wrap a list of video dicts (serialised once, shared by workers) or a dataset in ``mapper``."""
    if isinstance(dataset, list):
        dataset = DatasetFromList(dataset, copy=False, serialize=True)
    return MapDataset(dataset, mapper)


def _register_from_cfg(cfg) -> None:
    if cfg.DATASETS.ROOT:
        register_all_builtin(cfg.DATASETS.ROOT)


def get_train_dataset_dicts(cfg) -> List[dict]:
    """Training video dicts of ``cfg.DATASETS.TRAIN``, as every training loader reads them.

    Builtin splits are re-rooted at ``cfg.DATASETS.ROOT`` when it is set, and videos without
    instances are dropped when ``cfg.DATALOADER.FILTER_EMPTY_VIDEOS``.

    Args:
        cfg: detectron2 config with the wsovvis keys.

    Returns:
        list of video dataset dicts (see :func:`get_video_dataset_dicts`).
    """
    _register_from_cfg(cfg)
    return get_video_dataset_dicts(
        cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_VIDEOS
    )


def _train_loader_from_config(cfg, mapper=None, *, dataset=None, sampler=None):
    if dataset is None:
        dataset = get_train_dataset_dicts(cfg)
    if mapper is None:
        mapper = YTVISClipMapper(cfg, is_train=True)
    if sampler is None:
        name = cfg.DATALOADER.SAMPLER_TRAIN
        if name != "TrainingSampler":
            raise ValueError(f"video loaders need SAMPLER_TRAIN TrainingSampler, got {name}")
        sampler = TrainingSampler(len(dataset))
    return {
        "dataset": dataset,
        "mapper": mapper,
        "sampler": sampler,
        "total_batch_size": cfg.SOLVER.IMS_PER_BATCH,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
    }


@configurable(from_config=_train_loader_from_config)
def build_video_train_loader(dataset, *, mapper, sampler=None, total_batch_size, num_workers=0):
    """Infinite training loader yielding lists of mapped clips (``total_batch_size / world``).

    Call as ``build_video_train_loader(cfg, mapper=None)`` or with explicit arguments.

    Args:
        dataset: list of video dicts or a map-style dataset.
        mapper: callable video dict -> model input (default :class:`YTVISClipMapper`).
        sampler: index sampler (default ``TrainingSampler``: infinite, shuffled, DDP-sharded).
        total_batch_size: clips per iteration over all GPUs (``SOLVER.IMS_PER_BATCH``).
        num_workers: DataLoader workers.

    Returns:
        An infinite iterable of lists of ``total_batch_size / world_size`` mapped clips.
    """
    dataset = _mapped_dataset(dataset, mapper)
    if sampler is None:
        sampler = TrainingSampler(len(dataset))
    return build_batch_data_loader(
        dataset, sampler, total_batch_size, aspect_ratio_grouping=False, num_workers=num_workers
    )


def _test_loader_from_config(cfg, dataset_name, mapper=None):
    _register_from_cfg(cfg)
    return {
        "dataset": get_video_dataset_dicts([dataset_name], filter_empty=False),
        "mapper": YTVISClipMapper(cfg, is_train=False) if mapper is None else mapper,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
    }


@configurable(from_config=_test_loader_from_config)
def build_video_test_loader(dataset, *, mapper, sampler=None, num_workers=0):
    """Test loader: every video exactly once over all ranks, batch size 1, batches are lists.

    Call as ``build_video_test_loader(cfg, dataset_name, mapper=None)``.

    Args:
        dataset: list of video dicts or a map-style dataset.
        mapper: callable video dict -> model input (default: test-mode :class:`YTVISClipMapper`,
            lazy frames).
        sampler: default ``InferenceSampler`` (shards without padding, so no duplicated videos).
        num_workers: DataLoader workers.

    Returns:
        A ``torch.utils.data.DataLoader`` yielding one-element lists of mapped videos.
    """
    dataset = _mapped_dataset(dataset, mapper)
    if sampler is None:
        sampler = InferenceSampler(len(dataset))
    batch_sampler = torchdata.sampler.BatchSampler(sampler, 1, drop_last=False)
    return torchdata.DataLoader(
        dataset,
        num_workers=num_workers,
        batch_sampler=batch_sampler,
        collate_fn=trivial_batch_collator,
    )
