"""Train / test data loaders for video datasets (DDP- and worker-safe).

The one training loader is :func:`build_video_train_loader` (skip-consistent, see
:mod:`wsovvis.data.samplers`); the test loader uses detectron2's ``InferenceSampler``.
"""
import itertools
import logging
from typing import List, Sequence

import torch
import torch.utils.data as torchdata
from detectron2.config import configurable
from detectron2.data import DatasetCatalog
from detectron2.data.build import trivial_batch_collator, worker_init_reset_seed
from detectron2.data.common import DatasetFromList, MapDataset
from detectron2.data.samplers import InferenceSampler
from detectron2.utils import comm

from .dataset_mapper import YTVISClipMapper
from .datasets.builtin import register_all_builtin
from .samplers import PositionSeededDataset, ResumableTrainingSampler, derive_seed

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
    """Wrap a list of video dicts (serialised once, shared by workers) or a dataset in a mapper."""
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

    Raises:
        ValueError: ``DATALOADER.SAMPLER_TRAIN`` is not ``TrainingSampler`` (the training loader
            only implements that stream, in its resumable form; anything else would be ignored).
    """
    name = cfg.DATALOADER.SAMPLER_TRAIN
    if name != "TrainingSampler":
        raise ValueError(
            f"DATALOADER.SAMPLER_TRAIN: video training needs 'TrainingSampler' (built as "
            f"wsovvis.data.samplers.ResumableTrainingSampler), got {name!r}"
        )
    _register_from_cfg(cfg)
    return get_video_dataset_dicts(
        cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_VIDEOS
    )


def _train_loader_from_config(cfg, mapper=None, *, dataset=None, seed=None, start_iter=0):
    if dataset is None:
        dataset = get_train_dataset_dicts(cfg)
    if mapper is None:
        mapper = YTVISClipMapper(cfg, is_train=True)
    if seed is None:
        seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
    return {
        "dataset": dataset,
        "mapper": mapper,
        "seed": seed,
        "total_batch_size": cfg.SOLVER.IMS_PER_BATCH,
        "start_iter": start_iter,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
    }


@configurable(from_config=_train_loader_from_config)
def build_video_train_loader(
    dataset, mapper, *, seed, total_batch_size, start_iter=0, num_workers=0
) -> torchdata.DataLoader:
    """The training loader: infinite, DDP-sharded, and batch ``i`` depends only on ``(seed, i)``.

    Clips come from :class:`~wsovvis.data.samplers.ResumableTrainingSampler` (shuffled epochs,
    startable at any iteration) through :class:`~wsovvis.data.samplers.PositionSeededDataset`
    (augmentation seeded by stream position), so a run resumed at ``start_iter`` sees exactly the
    clips of an uninterrupted one, whatever ``num_workers`` and world size.

    Call as ``build_video_train_loader(cfg, mapper=None, dataset=None, seed=None, start_iter=0)``
    (defaults: :func:`get_train_dataset_dicts`, :class:`YTVISClipMapper`, ``cfg.SEED`` or a
    random seed shared by all ranks when it is negative) or with explicit arguments.

    Args:
        dataset: list of training video dicts (already filtered) or a map-style dataset.
        mapper: callable video dict -> model input (e.g. ``YTVISClipMapper(cfg, is_train=True)``),
            or None to skip the item.
        seed: data seed, identical on every rank.
        total_batch_size: clips per iteration over all ranks (``SOLVER.IMS_PER_BATCH``), a
            multiple of the world size.
        start_iter: first iteration to produce (resume).
        num_workers: DataLoader worker processes (``DATALOADER.NUM_WORKERS``).

    Returns:
        An infinite ``DataLoader`` yielding lists of ``total_batch_size // world_size`` clips.

    Raises:
        ValueError: ``total_batch_size`` is not a positive multiple of the world size.
    """
    world = comm.get_world_size()
    if total_batch_size <= 0 or total_batch_size % world != 0:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH ({total_batch_size}) must be a positive multiple of the "
            f"world size ({world})"
        )
    if isinstance(dataset, list):  # one pickled buffer instead of per-worker Python objects
        dataset = DatasetFromList(dataset, copy=False, serialize=True)
    sampler = ResumableTrainingSampler(len(dataset), seed, start_iter * total_batch_size)
    # DataLoader draws its workers' base seed at every iter(); from its own generator that draw
    # leaves the caller's torch RNG alone (items seed themselves, see PositionSeededDataset)
    base_seed_rng = torch.Generator().manual_seed(derive_seed(seed, 0xB5EED, start_iter))
    return torchdata.DataLoader(
        PositionSeededDataset(dataset, mapper, seed),
        batch_sampler=torchdata.BatchSampler(sampler, total_batch_size // world, drop_last=True),
        num_workers=num_workers,
        collate_fn=trivial_batch_collator,
        # items seed themselves; this only keeps workers from sharing one global RNG state
        worker_init_fn=worker_init_reset_seed if num_workers > 0 else None,
        generator=base_seed_rng,
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
