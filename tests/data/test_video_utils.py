"""Clip frame sampling and lazy test-time frames."""
import pickle

import numpy as np
import pytest
from detectron2.data import transforms as T

from wsovvis.data.video_utils import LazyVideoFrames, sample_clip_frame_indices


@pytest.mark.parametrize("length", [1, 2, 3, 7, 40])
@pytest.mark.parametrize("consecutive", [True, False])
def test_sampling_valid_for_any_length(length, consecutive):
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = sample_clip_frame_indices(rng, length, 5, 2, 1, consecutive)
        assert len(idx) == 5 and idx == sorted(idx)
        assert all(0 <= i < length for i in idx)
        if length >= 5:
            assert len(set(idx)) == 5  # distinct when the video allows it


def test_consecutive_window_and_stride():
    rng = np.random.default_rng(1)
    starts = set()
    for _ in range(50):
        idx = sample_clip_frame_indices(rng, 20, 4, 2, interval=3, consecutive=True)
        assert np.all(np.diff(idx) == 3)
        starts.add(idx[0])
    assert len(starts) > 3  # the window moves
    short = sample_clip_frame_indices(rng, 3, 5, 2, 1, True)
    assert short == [0, 0, 1, 2, 2]  # every frame, evenly repeated


def test_random_picks_honour_range_and_interval():
    rng = np.random.default_rng(2)
    for _ in range(50):
        idx = sample_clip_frame_indices(rng, 100, 3, frame_range=10, interval=4, consecutive=False)
        assert max(idx) - min(idx) <= 20
        assert min(np.diff(idx)) >= 4


def test_shuffle_changes_order_sometimes():
    rng = np.random.default_rng(3)
    orders = [sample_clip_frame_indices(rng, 50, 5, 10, 1, False, shuffle=True) for _ in range(20)]
    assert any(o != sorted(o) for o in orders)


def test_lazy_frames_read_on_access(tiny_synthetic_dataset, tmp_path):
    img_root = tiny_synthetic_dataset["splits"]["val"]["img_root"]
    files = [f"{img_root}/00001/00000.jpg", str(tmp_path / "not_there.jpg")]
    tf = T.TransformList([T.ResizeTransform(64, 96, 32, 48)])
    frames = LazyVideoFrames(files, 64, 96, tf, "RGB", (32, 48))
    assert len(frames) == 2  # constructing it read nothing (the second file does not exist)
    assert tuple(frames[0].shape) == (3, 32, 48) and tuple(frames[-2].shape) == (3, 32, 48)
    with pytest.raises(FileNotFoundError):
        frames[1]
    with pytest.raises(IndexError):
        frames[2]
    assert len(frames[0:1]) == 1
    again = pickle.loads(pickle.dumps(frames))
    assert (again[0] == frames[0]).all()
