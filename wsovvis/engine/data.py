"""Per-iteration training data for the trainer: deferred start and model-side RNG seeding.

The skip-consistent stream itself (batch ``i`` depends only on ``(seed, i)``) is built by
:func:`wsovvis.data.build.build_video_train_loader`. :class:`ResumableLoader` adds what only the
trainer knows: the iteration it resumes at, and re-seeding of every RNG from
``(step_seed, rank, iteration)`` right before each batch, so model-side randomness (point
sampling, dropout, drop-path) is a function of the iteration too.
"""
from typing import Callable, Optional

from detectron2.utils import comm

from wsovvis.data.samplers import derive_seed, seed_all

__all__ = ["step_seed", "ResumableLoader"]


def step_seed(seed: int, rank: int, iteration: int) -> int:
    """Seed of the model-side RNGs of training iteration ``iteration`` on global rank ``rank``.

    A function of ``(seed, rank, iteration)`` only: resuming at iteration ``i`` reproduces the
    random streams of an uninterrupted run, and every rank draws different random numbers.
    """
    return derive_seed(seed, 0x57E9, rank, iteration)


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
        build_fn: ``start_iter -> iterable`` (e.g. a partial of
            :func:`wsovvis.data.build.build_video_train_loader`).
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
