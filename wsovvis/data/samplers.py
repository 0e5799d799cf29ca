"""Skip-consistent training stream: the sample at stream position ``p`` depends only on ``p``.

detectron2's ``TrainingSampler`` restarts its stream on resume and mapper randomness depends on
worker start-up seeds, so a resumed run sees different clips than an uninterrupted one. Here:

* :class:`ResumableTrainingSampler` yields ``(position, index)`` pairs; epoch ``e`` is the
  permutation ``randperm(size, seed + e)``, so the stream can start at any position in O(1).
  Ranks interleave positions exactly like detectron2 (rank ``r`` takes ``r, r + W, ...``), hence a
  W-process run sees the same clips per iteration as a 1-process run with the same global batch.
* :class:`PositionSeededDataset` runs the mapper under ``random``/numpy/torch RNGs seeded from
  ``(seed, position)`` and restores the caller's RNG state afterwards, making augmentation
  independent of worker count and rank, and loading (``NUM_WORKERS=0``) invisible to the model.

:func:`wsovvis.data.build.build_video_train_loader` assembles both into the training loader.
"""
import contextlib
import logging
import random
from typing import Callable, Iterator, Sequence, Tuple

import numpy as np
import torch
from detectron2.utils import comm
from torch.utils.data import Dataset, Sampler

__all__ = [
    "derive_seed",
    "seed_all",
    "isolated_cpu_rng",
    "ResumableTrainingSampler",
    "PositionSeededDataset",
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
