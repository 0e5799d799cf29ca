"""Per-iteration seeding: model-side random numbers depend only on (seed, rank, iteration)."""
import random

import numpy as np
import torch

from wsovvis.data.samplers import derive_seed
from wsovvis.engine.data import ResumableLoader, step_seed


def _draw():
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist())


def _noisy_batches(start_iter):
    """A loader that consumes global randomness while producing each batch (like a mapper)."""
    it = start_iter
    while True:
        torch.rand(int(1 + it % 5))
        np.random.rand(7)
        yield it
        it += 1


def _streams(start_iter, n, rank=0, monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr("detectron2.utils.comm.get_rank", lambda: rank)
    loader = ResumableLoader(_noisy_batches, step_seed=7)
    loader.start_iter = start_iter
    out = {}
    for batch in loader:
        out[batch] = _draw()  # what the model would draw in this step
        if batch == start_iter + n - 1:
            return out


def test_resumed_loader_reproduces_model_randomness(monkeypatch):
    torch.manual_seed(123)  # a different process state must not matter
    full = _streams(0, 8)
    torch.manual_seed(456)
    resumed = _streams(5, 3)
    assert all(resumed[i] == full[i] for i in (5, 6, 7))
    assert len({str(v) for v in full.values()}) == 8  # a new stream every iteration


def test_ranks_get_different_streams(monkeypatch):
    r0 = _streams(0, 3, rank=0, monkeypatch=monkeypatch)
    r1 = _streams(0, 3, rank=1, monkeypatch=monkeypatch)
    assert all(r0[i] != r1[i] for i in range(3))
    assert len({step_seed(7, r, i) for r in range(4) for i in range(100)}) == 400
    assert step_seed(7, 0, 3) != derive_seed(7, 0, 3)  # not the per-process setup seed
