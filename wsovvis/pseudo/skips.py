"""Why a video is left out of a pseudo-tube JSON: reason codes shared by the reader and the driver.

Every skipped video is listed in the skip report with one of these codes, a human-readable detail
and, where one file is to blame, that file. Codes in :data:`ERROR_REASONS` describe broken input
(``--strict`` turns them into a hard failure); the others are policy decisions.
"""
from typing import Optional

__all__ = ["SKIP_REASONS", "ERROR_REASONS", "VideoSkipped"]

SKIP_REASONS = {
    "in_skip_list": "video listed in --skip_list",
    "no_masks": "frames exist but there is no mask folder / no mask_*.png "
    "(VideoCutLER's demo crashes on videos with 0 kept instances)",
    "too_few_masks": "fewer mask PNGs than --min_masks",
    "low_coverage": "mask PNGs / frames below --min_coverage",
    "no_frames": "mask folder without a frame folder, or a frame folder without images",
    "not_in_reference": "video folder not listed in the --ref_json videos",
    "reference_mismatch": "frame count or frame size differs from the --ref_json video",
    "no_instances": "every mask PNG is all background",
    "corrupt_png": "mask PNG cannot be decoded",
    "rgb_mask": "mask PNG stores colours (RGB/RGBA), not instance ids",
    "unsupported_mask": "mask PNG mode is neither palette, 8/16-bit grey nor 1-bit",
    "size_mismatch": "mask size differs from its frame's size",
    "orphan_mask": "mask PNG for a frame that does not exist",
    "unreadable_frame": "frame image header cannot be read",
    "frame_size_varies": "frames of one video have different sizes",
    "duplicate_frame": "two frames share a name stem (e.g. 00001.jpg and 00001.png)",
}

ERROR_REASONS = frozenset(
    {
        "corrupt_png",
        "rgb_mask",
        "unsupported_mask",
        "size_mismatch",
        "orphan_mask",
        "unreadable_frame",
        "frame_size_varies",
        "duplicate_frame",
    }
)


class VideoSkipped(Exception):
    """Raised while converting one video: the video is skipped for ``reason``.

    Attributes:
        reason: a key of :data:`SKIP_REASONS`.
        detail: human-readable explanation naming the video.
        path: the offending file, if one file is to blame.
    """

    def __init__(self, reason: str, detail: str, path: Optional[str] = None):
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}")
        super().__init__(f"{reason}: {detail}" + (f" ({path})" if path else ""))
        self.reason = reason
        self.detail = detail
        self.path = path

    def to_dict(self) -> dict:
        """JSON-ready record for the skip report (without the video name / id)."""
        return {"reason": self.reason, "detail": self.detail, "path": self.path}
