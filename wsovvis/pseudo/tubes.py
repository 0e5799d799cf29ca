"""Building YTVIS tubes (per-frame RLE / box / area lists) from per-frame instance-id maps."""
from typing import Dict, List, Optional

import numpy as np

from wsovvis.utils.rle import encode_masks_areas_boxes

__all__ = ["TubeBuilder", "tubes_to_results"]


class TubeBuilder:
    """Accumulates the id maps of one video, frame by frame, into tubes.

    Pixel value ``k >= 1`` is instance ``k`` on every frame of the video. Frames never given to
    :meth:`add_frame` (no mask PNG) and frames where ``k`` has no pixel are ``None`` in the tube's
    lists; instances without a pixel on any frame produce no tube. Only one frame's id map is held
    in memory at a time.

    Args:
        length: number of frames of the video.
        height: frame height; every id map must have this height.
        width: frame width.
    """

    def __init__(self, length: int, height: int, width: int):
        self.length = int(length)
        self.height = int(height)
        self.width = int(width)
        # instance id -> {frame index: (rle, area, bbox)}
        self._frames: Dict[int, Dict[int, tuple]] = {}

    def add_frame(self, t: int, id_map: np.ndarray) -> None:
        """Add the id map of one frame.

        Args:
            t: frame index in ``[0, length)``.
            id_map: (H, W) integer array, 0 = background, k >= 1 = instance k.
        """
        if not 0 <= t < self.length:
            raise IndexError(f"frame index {t} outside [0, {self.length})")
        if id_map.shape != (self.height, self.width):
            raise ValueError(f"id map shape {id_map.shape} != {(self.height, self.width)}")
        top = int(id_map.max()) if id_map.size else 0
        if top == 0:
            return
        # VideoCutLER maps hold ids 1..10: test each; sparse 16-bit maps: only the ids present
        if top <= 64:
            ids = np.arange(1, top + 1, dtype=id_map.dtype)  # same dtype: no upcast in ==
        else:
            ids = np.unique(id_map)
            ids = ids[ids > 0]
        # Compare on the transposed map so each (H, W) mask is already Fortran-ordered: the
        # encoder then needs neither a dtype cast nor a Fortran copy of the N masks.
        id_t = np.ascontiguousarray(id_map.T)
        masks = (id_t[None, :, :] == ids[:, None, None]).view(np.uint8).transpose(0, 2, 1)
        for k, rle, area, box in zip(ids.tolist(), *encode_masks_areas_boxes(masks)):
            if area:  # ids absent from this frame give empty RLEs
                self._frames.setdefault(k, {})[t] = (rle, area, box)

    @property
    def num_instances(self) -> int:
        """Number of instance ids seen so far (each has at least one pixel)."""
        return len(self._frames)

    def tubes(self) -> List[dict]:
        """Tubes in increasing instance-id order.

        Returns:
            One dict per instance: ``png_id`` (the id in the PNGs), ``segmentations`` (compressed
            RLE with str counts or None per frame), ``bboxes`` (XYWH floats or None), ``areas``
            (int or None); every list has ``length`` entries.
        """
        out = []
        for k in sorted(self._frames):
            per_frame = self._frames[k]
            segs: List[Optional[dict]] = [None] * self.length
            boxes: List[Optional[list]] = [None] * self.length
            areas: List[Optional[int]] = [None] * self.length
            for t, (rle, area, box) in per_frame.items():
                segs[t], areas[t], boxes[t] = rle, area, box
            out.append({"png_id": k, "segmentations": segs, "bboxes": boxes, "areas": areas})
        return out


def tubes_to_results(
    dataset: dict, score: float = 1.0, category_id: Optional[int] = None
) -> List[dict]:
    """Turn a tube (GT-style) JSON into YTVIS *results* (predictions) to score it with an evaluator.

    VideoCutLER saves no scores, so every tube gets ``score`` unless its annotation carries a
    ``score`` field.

    Args:
        dataset: YTVIS dataset dict with ``annotations``.
        score: score given to annotations without a ``score`` key.
        category_id: overrides every ``category_id`` (e.g. 1 for class-agnostic scoring).

    Returns:
        List of ``{"video_id", "category_id", "score", "segmentations"}``.
    """
    results = []
    for ann in dataset["annotations"]:
        results.append(
            {
                "video_id": ann["video_id"],
                "category_id": ann["category_id"] if category_id is None else category_id,
                "score": float(ann.get("score", score)),
                "segmentations": list(ann["segmentations"]),
            }
        )
    return results

