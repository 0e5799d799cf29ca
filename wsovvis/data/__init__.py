"""Video data layer: YTVIS/LV-VIS datasets, clip mapper, loaders and the synthetic dataset.

Importing this package registers the builtin LV-VIS / YouTube-VIS splits (see
:mod:`wsovvis.data.datasets.builtin`).
"""
from .build import (
    build_video_test_loader,
    build_video_train_loader,
    get_train_dataset_dicts,
    get_video_dataset_dicts,
)
from .dataset_mapper import YTVISClipMapper
from .samplers import PositionSeededDataset, ResumableTrainingSampler
from .datasets import (
    default_datasets_root,
    ensure_ytvis_metadata,
    load_ytvis_categories,
    load_ytvis_json,
    register_all_builtin,
    register_ytvis_instances,
    unregister_ytvis_instances,
)
from .video_utils import LazyVideoFrames, sample_clip_frame_indices

__all__ = [
    "LazyVideoFrames",
    "PositionSeededDataset",
    "ResumableTrainingSampler",
    "YTVISClipMapper",
    "build_video_test_loader",
    "build_video_train_loader",
    "default_datasets_root",
    "ensure_ytvis_metadata",
    "get_train_dataset_dicts",
    "get_video_dataset_dicts",
    "load_ytvis_categories",
    "load_ytvis_json",
    "register_all_builtin",
    "register_ytvis_instances",
    "sample_clip_frame_indices",
    "unregister_ytvis_instances",
]
