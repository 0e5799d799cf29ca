"""Building blocks of the video mapper: clip frame sampling, clip augmentations, lazy frames."""
import logging
from typing import List, Optional, Sequence

import cv2
import numpy as np
import torch
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.utils.logger import log_first_n

__all__ = [
    "sample_clip_frame_indices",
    "build_clip_augmentation",
    "read_video_frame",
    "image_to_tensor",
    "LazyVideoFrames",
]


def sample_clip_frame_indices(
    rng: np.random.Generator,
    length: int,
    num_frames: int,
    frame_range: int,
    interval: int = 1,
    consecutive: bool = True,
    shuffle: bool = False,
) -> List[int]:
    """Pick the frames of one training clip.

    ``consecutive``: a window of ``num_frames`` frames ``interval`` apart at a random position
    (the VidEoMT / Mask2Former-VIS style). Otherwise (SeqFormer style): a random anchor frame
    plus distinct frames from the ``2 * frame_range + 1`` window centred on it (shifted inside
    the video near its ends) whose pairwise gaps are at least ``interval``. Videos too short for a full clip repeat frames, spread evenly, so even a 1-frame
    video yields a valid clip.

    Args:
        rng: random generator.
        length: video length (>= 1).
        num_frames: clip length.
        frame_range: max distance of the picked frames from the anchor (random mode).
        interval: minimum distance between picked frames (window stride in consecutive mode).
        consecutive: window vs random picks.
        shuffle: return the frames in random order instead of sorted.

    Returns:
        ``num_frames`` frame indices in [0, length).
    """
    if length < 1 or num_frames < 1:
        raise ValueError(f"cannot sample {num_frames} frames from a video of length {length}")
    interval = max(1, int(interval))
    if consecutive:
        stride = interval
        while stride > 1 and (num_frames - 1) * stride >= length:
            stride -= 1
        span = (num_frames - 1) * stride + 1
        if span <= length:
            start = int(rng.integers(0, length - span + 1))
            picks = list(range(start, start + span, stride))
        else:  # shorter than the clip: every frame, evenly repeated
            picks = np.linspace(0, length - 1, num_frames).round().astype(int).tolist()
    else:
        anchor = int(rng.integers(length))
        # window of 2 * range + 1 frames around the anchor, shifted inside the video at its ends
        lo = max(0, min(anchor - frame_range, length - 1 - 2 * frame_range))
        hi = min(length - 1, lo + 2 * frame_range)
        picks = [anchor]
        for f in rng.permutation(np.arange(lo, hi + 1)).tolist():
            if len(picks) == num_frames:
                break
            if all(abs(f - p) >= interval for p in picks):
                picks.append(f)
        if len(picks) < num_frames:  # not enough distinct frames: repeat some
            picks += rng.choice(picks, size=num_frames - len(picks)).tolist()
    picks = sorted(int(p) for p in picks)
    if shuffle:
        picks = [picks[i] for i in rng.permutation(len(picks))]
    return picks


def build_clip_augmentation(cfg, is_train: bool) -> List[T.Augmentation]:
    """Augmentations applied identically to every frame of a clip.

    Training: optional crop (``INPUT.CROP``), ``ResizeShortestEdge`` (``MIN_SIZE_TRAIN`` choice /
    range), and one flip per clip (``INPUT.RANDOM_FLIP`` "flip_by_clip" / "horizontal" /
    "vertical" / "none"). Test: ``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)``.

    Args:
        cfg: detectron2 config with the wsovvis keys.
        is_train: training or test augmentations.

    Returns:
        list of detectron2 ``Augmentation`` (one draw per clip in :class:`YTVISClipMapper`).
    """
    if not is_train:
        return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]
    augs = []
    if cfg.INPUT.CROP.ENABLED:
        augs.append(T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
    # one draw per clip anyway: VNext's "choice_by_clip" / "range_by_clip" are "choice" / "range"
    style = cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
    style = {"choice_by_clip": "choice", "range_by_clip": "range"}.get(style, style)
    augs.append(T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, style))
    flip = cfg.INPUT.RANDOM_FLIP
    if flip in ("flip_by_clip", "horizontal"):
        augs.append(T.RandomFlip(horizontal=True, vertical=False))
    elif flip == "vertical":
        augs.append(T.RandomFlip(horizontal=False, vertical=True))
    elif flip != "none":
        raise ValueError(f"INPUT.RANDOM_FLIP must be flip_by_clip/horizontal/vertical/none: {flip}")
    return augs


def read_video_frame(
    file_name: str, height: Optional[int], width: Optional[int], image_format: str
) -> np.ndarray:
    """Read one frame as (H, W, C) uint8 in ``image_format``, resized to the annotated size.

    Some datasets (LV-VIS train) contain frames whose size differs from the JSON; the frame is
    then resized to ``(height, width)`` so the annotations stay valid, with a warning.

    Args:
        file_name: image path.
        height: annotated frame height (None: keep the image's size).
        width: annotated frame width (None: keep the image's size).
        image_format: detectron2 format ("RGB", "BGR", ...).

    Returns:
        ``(height, width, C)`` uint8 array.
    """
    img = utils.read_image(file_name, format=image_format)
    if height is not None and width is not None and img.shape[:2] != (height, width):
        log_first_n(
            logging.WARNING,
            f"{file_name} is {img.shape[1]}x{img.shape[0]} but annotated as {width}x{height}; "
            "resizing the frame to the annotated size.",
            n=20,
            name=__name__,
        )
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
        if img.ndim == 2:
            img = img[:, :, None]
    return img


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, C) uint8 array -> (C, H, W) uint8 tensor."""
    return torch.as_tensor(np.ascontiguousarray(img.transpose(2, 0, 1)))


class LazyVideoFrames:
    """A video's frames as a sequence that reads, transforms and converts a frame on access.

    ``len()`` is the number of frames; ``frames[i]`` is a (C, H', W') uint8 tensor; slices
    return lists. Nothing is kept in memory, so a 1000-frame video costs nothing until used.
    Picklable (file names and a TransformList), so it can leave DataLoader workers.
    """

    def __init__(
        self,
        file_names: Sequence[str],
        height: int,
        width: int,
        transforms: T.TransformList,
        image_format: str,
        image_size: Optional[tuple] = None,
    ):
        self.file_names = list(file_names)
        self.height, self.width = int(height), int(width)
        self.transforms = transforms
        self.image_format = image_format
        self.image_size = image_size  # (H', W') after the transforms

    def __len__(self) -> int:
        return len(self.file_names)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return [self[i] for i in range(*idx.indices(len(self)))]
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f"frame {idx} out of range for a video of {len(self)} frames")
        img = read_video_frame(self.file_names[idx], self.height, self.width, self.image_format)
        return image_to_tensor(self.transforms.apply_image(img))

    def __repr__(self) -> str:
        return (
            f"LazyVideoFrames({len(self)} frames, {self.width}x{self.height} -> "
            f"{self.image_size}, first={self.file_names[0] if self.file_names else None})"
        )
