"""Video dataset dict -> model input: a clip with one augmentation for all its frames."""
import logging
from typing import List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Boxes, Instances

from wsovvis.utils.rle import CorruptRLEError, decode_segmentation

from .video_utils import (
    LazyVideoFrames,
    build_clip_augmentation,
    image_to_tensor,
    read_video_frame,
    sample_clip_frame_indices,
)

__all__ = ["YTVISClipMapper"]

_MAX_RESAMPLE = 10  # attempts to reach min_clip_instances before accepting a clip


class YTVISClipMapper:
    """Map a YTVIS video dict (``load_ytvis_json``) to model input.

    Training: sample ``sampling_frame_num`` frames, draw ONE random augmentation from the first
    frame and apply it to every frame, and build per-frame ``Instances`` whose slot j is the same
    track on every frame (``gt_ids`` -1, empty mask and zero box where the track is absent or
    cropped away; ``gt_classes`` is the track's class on every frame). Slots are sorted by track
    id; tracks absent from every frame of the augmented clip get no slot. Test: the whole video as a :class:`LazyVideoFrames` (frames are read and
    resized on access). Output format: ``docs/CONTRACTS.md``.
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        augmentations: List[T.Augmentation],
        image_format: str,
        sampling_frame_num: int = 2,
        sampling_frame_range: int = 5,
        sampling_interval: int = 1,
        sampling_consecutive: bool = True,
        sampling_frame_shuffle: bool = False,
        min_clip_instances: int = 0,
        seed: Optional[int] = None,
    ):
        """
        Args:
            is_train: training (clip + instances) or test (whole lazy video) mode.
            augmentations: detectron2 augmentations, applied identically to all clip frames.
            image_format: detectron2 image format ("RGB" / "BGR").
            sampling_frame_num: frames per training clip.
            sampling_frame_range: random-pick mode: max distance of the frames from the anchor.
            sampling_interval: minimum distance between sampled frames.
            sampling_consecutive: consecutive window (True) or random picks (False).
            sampling_frame_shuffle: keep the sampled frames in random order.
            min_clip_instances: resample clips with fewer present tracks (0 = never).
            seed: seed of a private frame-sampling RNG. None (default): frames are drawn from
                numpy's global RNG, which detectron2 seeds per process and per DataLoader
                worker (a private RNG would be duplicated identically into every worker).
                Augmentations always use detectron2's global RNG.
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.sampling_frame_num = sampling_frame_num
        self.sampling_frame_range = sampling_frame_range
        self.sampling_interval = sampling_interval
        self.sampling_consecutive = sampling_consecutive
        self.sampling_frame_shuffle = sampling_frame_shuffle
        self.min_clip_instances = min_clip_instances
        self._rng = None if seed is None else np.random.default_rng(seed)
        mode = "training" if is_train else "inference"
        logging.getLogger(__name__).info(
            f"[YTVISClipMapper] Augmentations used in {mode} (one draw per clip): {augmentations}"
            + (
                f"; clip sampling: {sampling_frame_num} frames, "
                f"{'consecutive' if sampling_consecutive else 'random'}, "
                f"range {sampling_frame_range}, interval {sampling_interval}, "
                f"shuffle {sampling_frame_shuffle}"
                if is_train
                else ""
            )
        )

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return {
            "is_train": is_train,
            "augmentations": build_clip_augmentation(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "sampling_frame_num": cfg.INPUT.SAMPLING_FRAME_NUM,
            "sampling_frame_range": cfg.INPUT.SAMPLING_FRAME_RANGE,
            "sampling_interval": cfg.INPUT.SAMPLING_INTERVAL,
            "sampling_consecutive": cfg.INPUT.SAMPLING_CONSECUTIVE,
            "sampling_frame_shuffle": cfg.INPUT.SAMPLING_FRAME_SHUFFLE,
            "min_clip_instances": cfg.DATALOADER.MIN_CLIP_INSTANCES,
        }

    def __call__(self, dataset_dict: dict) -> dict:
        """Map one video dict; see the class docstring."""
        video = dataset_dict  # read only; the output is a new dict
        out = {k: video[k] for k in ("video_id", "height", "width", "length")}
        if not self.is_train:
            return self._map_test(video, out)
        for _ in range(_MAX_RESAMPLE):
            clip = self._map_train(video, out)
            if _num_present_tracks(clip) >= self.min_clip_instances:
                break
        return clip

    def _map_test(self, video: dict, out: dict) -> dict:
        h, w = video["height"], video["width"]
        # The test augmentations only look at the image size: no frame is decoded here.
        aug_input = T.AugInput(np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (h, w, 3)))
        transforms = self.augmentations(aug_input)
        out["file_names"] = list(video["file_names"])
        out["frame_idx"] = list(range(video["length"]))
        out["image"] = LazyVideoFrames(
            video["file_names"], h, w, transforms, self.image_format, aug_input.image.shape[:2]
        )
        return out

    def _map_train(self, video: dict, base: dict) -> dict:
        h, w = video["height"], video["width"]
        rng = self._rng or np.random.default_rng(np.random.randint(2**31))
        idx = sample_clip_frame_indices(
            rng,
            video["length"],
            self.sampling_frame_num,
            self.sampling_frame_range,
            self.sampling_interval,
            self.sampling_consecutive,
            self.sampling_frame_shuffle,
        )
        annos = [
            [o for o in video["annotations"][t] if not o.get("iscrowd", 0)] for t in idx
        ] if "annotations" in video else [[] for _ in idx]
        track_ids = sorted({o["id"] for frame in annos for o in frame})
        slot = {tid: j for j, tid in enumerate(track_ids)}
        classes = {o["id"]: o["category_id"] for frame in annos for o in frame}

        out = dict(base)
        out["file_names"] = [video["file_names"][t] for t in idx]
        out["frame_idx"] = idx
        images, instances, transforms = [], [], None
        for fname, frame_annos in zip(out["file_names"], annos):
            img = read_video_frame(fname, h, w, self.image_format)
            if transforms is None:
                aug_input = T.AugInput(img)
                transforms = self.augmentations(aug_input)
                img = aug_input.image
            else:
                img = transforms.apply_image(img)
            images.append(image_to_tensor(img))
            try:
                inst = _frame_instances(
                    frame_annos, slot, classes, track_ids, transforms, (h, w), img.shape[:2]
                )
            except CorruptRLEError as e:
                raise CorruptRLEError(
                    f"video id {video.get('video_id', '?')}, frame {fname}: {e}"
                ) from e
            instances.append(inst)
        # Tracks that the crop removed from every clip frame carry no signal: drop their slots.
        keep = torch.zeros(len(track_ids), dtype=torch.bool)
        for inst in instances:
            keep |= inst.gt_ids >= 0
        if not bool(keep.all()):
            instances = [inst[keep] for inst in instances]
        out["image"] = images
        out["instances"] = instances
        return out


def _frame_instances(frame_annos, slot, classes, track_ids, transforms, frame_size, image_size):
    """Instances of one frame with one slot per clip track (absent -> id -1, empty mask/box).

    ``frame_size`` is the annotated (H, W) of the video, ``image_size`` the augmented one.
    """
    n = len(track_ids)
    hh, ww = image_size
    masks = np.zeros((n, hh, ww), dtype=bool)
    ids = torch.full((n,), -1, dtype=torch.long)
    for obj in frame_annos:
        j = slot[obj["id"]]
        seg = obj["segmentation"]
        try:
            mask = decode_segmentation(seg, *frame_size)
        except CorruptRLEError as e:  # dataset dicts not made by load_ytvis_json
            raise CorruptRLEError(f"annotation id {obj['id']}: {e}") from e
        m = transforms.apply_segmentation(mask)
        masks[j] = m > 0
        ids[j] = obj["id"]
    inst = Instances((hh, ww))
    bit = BitMasks(torch.from_numpy(masks))
    boxes = bit.get_bounding_boxes() if n else Boxes(torch.zeros((0, 4)))
    empty = ~bit.tensor.flatten(1).any(dim=1) if n else torch.zeros(0, dtype=torch.bool)
    ids[empty] = -1  # absent, or cropped out of view
    boxes.tensor[empty] = 0.0
    inst.gt_ids = ids
    inst.gt_classes = torch.tensor([classes[t] for t in track_ids], dtype=torch.long)
    inst.gt_masks = bit
    inst.gt_boxes = boxes
    return inst


def _num_present_tracks(clip: dict) -> int:
    present = torch.zeros(len(clip["instances"][0]), dtype=torch.bool)
    for inst in clip["instances"]:
        present |= inst.gt_ids >= 0
    return int(present.sum())

