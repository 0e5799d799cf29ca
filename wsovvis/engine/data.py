"""Skip-consistent training data: the sample at global stream position ``p`` depends only on ``p``.

detectron2's ``TrainingSampler`` restarts its stream on resume and mapper randomness depends on
worker start-up seeds, so a resumed run sees different clips than an uninterrupted one. Here:

* :class:`ResumableTrainingSampler` yields ``(position, index)`` pairs; epoch ``e`` is the
  permutation ``randperm(size, seed + e)``, so the stream can start at any position in O(1).
  Ranks interleave positions exactly like detectron2 (rank ``r`` takes ``r, r + W, ...``), hence a
  W-process run sees the same clips per iteration as a 1-process run with the same global batch.
* :class:`PositionSeededDataset` runs the mapper under ``random``/numpy/torch RNGs seeded from
  ``(seed, position)`` and restores the caller's RNG state afterwards, making augmentation
  independent of worker count and rank, and loading (``NUM_WORKERS=0``) invisible to the model.
* :class:`ResumableLoader` builds the real ``DataLoader`` lazily at the first ``next()``, after
  ``resume_or_load`` has set :attr:`ResumableLoader.start_iter`. With ``step_seed`` it re-seeds
  every RNG from ``(step_seed, rank, iteration)`` right before handing out each batch, so
  model-side randomness (point sampling, dropout, drop-path) is a function of the iteration too.
"""
import contextlib
import logging
import random
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.data.common import DatasetFromList
from detectron2.utils import comm
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

__all__ = [
    "derive_seed",
    "seed_all",
    "step_seed",
    "isolated_cpu_rng",
    "ResumableTrainingSampler",
    "PositionSeededDataset",
    "ResumableLoader",
    "build_resumable_loader",
]

logger = logging.getLogger(__name__)


def derive_seed(*parts: int) -> int:
    """Mix integers into one 31-bit seed (stable across processes and Python versions)."""
    state = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)
    return int(state[0]) & (2**31 - 1)


def seed_all(seed: int) -> None:
    """Seed Python ``random``, numpy's global RNG and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def step_seed(seed: int, rank: int, iteration: int) -> int:
    """Seed of the model-side RNGs of training iteration ``iteration`` on global rank ``rank``.

    A function of ``(seed, rank, iteration)`` only: resuming at iteration ``i`` reproduces the
    random streams of an uninterrupted run, and every rank draws different random numbers.
    """
    return derive_seed(seed, 0x57E9, rank, iteration)


@contextlib.contextmanager
def isolated_cpu_rng(seed: int):
    """Run the body under Python/numpy/torch-CPU RNGs seeded with ``seed``; restore them after."""
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)


class ResumableTrainingSampler(Sampler):
    """Infinite shuffled stream of ``(position, dataset index)`` for this rank, startable anywhere.

    Args:
        size: dataset length.
        seed: stream seed; must be identical on every rank.
        start_position: first global stream position (``start_iter * global_batch_size``).
        shuffle: shuffle each epoch (False = ``0..size-1`` repeated).
    """

    def __init__(self, size: int, seed: int, start_position: int = 0, shuffle: bool = True):
        if size <= 0:
            raise ValueError("ResumableTrainingSampler needs a non-empty dataset")
        self._size = size
        self._seed = int(seed)
        self._start = int(start_position)
        self._shuffle = shuffle
        self._rank = comm.get_rank()
        self._world = comm.get_world_size()

    def _perm(self, epoch: int) -> torch.Tensor:
        if not self._shuffle:
            return torch.arange(self._size)
        g = torch.Generator()
        g.manual_seed(derive_seed(self._seed, epoch))
        return torch.randperm(self._size, generator=g)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        pos = self._start + self._rank
        epoch, perm = -1, None
        while True:
            e = pos // self._size
            if e != epoch:
                epoch, perm = e, self._perm(e)
            yield pos, int(perm[pos % self._size])
            pos += self._world


class PositionSeededDataset(Dataset):
    """Map ``(position, index)`` to ``mapper(dataset[index])`` under an RNG seeded by position.

    The mapper runs inside :func:`isolated_cpu_rng`: the calling process's RNG state is unchanged
    afterwards (with ``NUM_WORKERS=0`` loading would otherwise decide the model's random numbers).
    If the mapper returns None (e.g. a clip without instances) the next indices are tried in order,
    still under the same position seed, so the result stays a function of the position.

    Args:
        dataset: list of dataset dicts.
        mapper: callable turning one dict into the model input (or None to skip it).
        seed: data seed, mixed with the position.
    """

    def __init__(self, dataset: Sequence, mapper: Callable, seed: int):
        self._dataset = dataset
        self._mapper = mapper
        self._seed = int(seed)

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, key: Tuple[int, int]):
        position, index = key
        with isolated_cpu_rng(derive_seed(self._seed, 0x5EED, position)):
            for attempt in range(len(self._dataset)):
                data = self._mapper(self._dataset[(index + attempt) % len(self._dataset)])
                if data is not None:
                    if attempt:
                        logger.debug(f"Position {position}: mapper skipped {attempt} dataset items")
                    return data
        raise RuntimeError("The mapper returned None for every item of the training dataset")


def _collate(batch: List):
    return batch


def _worker_init(worker_id: int) -> None:
    # Items re-seed themselves; this only keeps workers from sharing torch's default state.
    seed_all(torch.initial_seed() % 2**31)


def build_resumable_loader(
    dataset: Sequence,
    mapper: Callable,
    *,
    seed: int,
    total_batch_size: int,
    start_iter: int = 0,
    num_workers: int = 0,
) -> DataLoader:
    """Build a training ``DataLoader`` whose batch ``i`` depends only on ``(seed, i)``.

    Args:
        dataset: list of training dataset dicts (already filtered).
        mapper: dict -> model input callable (e.g. ``YTVISClipMapper(cfg, is_train=True)``).
        seed: data seed shared by every rank.
        total_batch_size: global batch size (``SOLVER.IMS_PER_BATCH``), divisible by world size.
        start_iter: first iteration to produce (resume).
        num_workers: DataLoader worker processes.

    Returns:
        an infinite ``DataLoader`` yielding lists of ``total_batch_size // world_size`` inputs.
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
    return DataLoader(
        PositionSeededDataset(dataset, mapper, seed),
        batch_sampler=BatchSampler(sampler, total_batch_size // world, drop_last=True),
        num_workers=num_workers,
        collate_fn=_collate,
        worker_init_fn=_worker_init if num_workers > 0 else None,
    )


class ResumableLoader:
    """An iterable whose iterator builds its ``DataLoader`` only at the first ``next()``.

    detectron2's ``SimpleTrainer`` calls ``iter(data_loader)`` in its constructor, before
    ``resume_or_load``; this wrapper defers the real work until :attr:`start_iter` is known.

    Per-iteration seeding: with ``step_seed`` set, batch ``k`` of the iterator is training
    iteration ``start_iter + k``, and just before it is returned Python ``random``, numpy and torch
    (CPU and CUDA) are seeded with :func:`step_seed` ``(step_seed, rank, iteration)``. The trainer
    runs the model right after fetching the batch, so every random number the model draws in that
    step (matcher / loss point sampling, dropout) depends only on ``(seed, rank, iteration)``:
    independent of where the run was (re)started, of ``NUM_WORKERS`` and of the data loading itself.

    Args:
        build_fn: ``start_iter -> iterable`` (e.g. a partial of :func:`build_resumable_loader`).
        step_seed: base seed of the per-iteration seeding (identical on every rank), or None to
            leave the RNGs alone.
    """

    def __init__(self, build_fn: Callable[[int], object], step_seed: Optional[int] = None):
        self._build_fn = build_fn
        self._step_seed = step_seed
        self.start_iter = 0

    def __iter__(self):
        iteration = self.start_iter
        rank = comm.get_rank()
        for batch in self._build_fn(self.start_iter):
            if self._step_seed is not None:
                seed_all(step_seed(self._step_seed, rank, iteration))
            iteration += 1
            yield batch
