"""Reading frames and instance-id mask PNGs, with validation that names the offending file.

Layout (what VideoCutLER's ``demo_video/demo.py --save-masks`` writes)::

    <img_root>/<video>/<frame>.jpg              frames (.jpg / .jpeg / .png)
    <mask_root>/<video>/mask_<frame>.png        one id map per frame, pixel k >= 1 = instance k

Masks are read as **ids**: palette ("P") PNGs give their palette indices, 8/16-bit grey PNGs their
values and 1-bit PNGs a single instance. Colour (RGB/RGBA) masks are rejected: their pixel values
are colours, which is what ``cv2.imread`` turns a palette PNG into.
"""
import os
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from .skips import VideoSkipped

__all__ = [
    "FRAME_EXTENSIONS",
    "MASK_PREFIX",
    "list_frames",
    "list_masks",
    "mask_name_for_frame",
    "read_frame_size",
    "read_id_mask",
]

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
MASK_PREFIX = "mask_"
_ID_MODES = ("P", "L", "1", "I", "I;16", "I;16B", "I;16L")
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")
# Anything that goes wrong while parsing one file is blamed on that file (PIL raises OSError,
# SyntaxError, ValueError, zlib.error, struct.error, DecompressionBombError, ... on bad input).
_PIL_ERRORS = (Exception,)


def mask_name_for_frame(frame_file: str) -> str:
    """Mask file name VideoCutLER writes for a frame: ``00012.jpg`` -> ``mask_00012.png``."""
    return MASK_PREFIX + os.path.splitext(frame_file)[0] + ".png"


def list_frames(video_dir: str) -> List[str]:
    """Sorted frame file names (not paths) of one video folder.

    Frames are files ending in .jpg/.jpeg/.png (any case) whose name does not start with
    ``mask_``; the order is the lexicographic one VideoCutLER's demo uses (``sorted(glob)``).

    Raises:
        VideoSkipped: ``duplicate_frame`` when two frames share a stem (``1.jpg`` and ``1.png``),
            which would make the frame <-> mask match ambiguous.
    """
    names = sorted(
        n
        for n in os.listdir(video_dir)
        if n.lower().endswith(FRAME_EXTENSIONS)
        and not n.startswith(MASK_PREFIX)
        and os.path.isfile(os.path.join(video_dir, n))
    )
    stems: Dict[str, str] = {}
    for n in names:
        stem = os.path.splitext(n)[0]
        if stem in stems:
            raise VideoSkipped(
                "duplicate_frame",
                f"frames {stems[stem]!r} and {n!r} share the stem {stem!r} in {video_dir}",
                os.path.join(video_dir, n),
            )
        stems[stem] = n
    return names


def list_masks(mask_dir: str) -> Dict[str, str]:
    """Map frame stem -> mask file name for every ``mask_<stem>.png`` in ``mask_dir``.

    Other files (the demo's visualisation frames, mp4s, ...) are ignored. A missing folder gives {}.
    """
    if not os.path.isdir(mask_dir):
        return {}
    out = {}
    for n in os.listdir(mask_dir):
        if n.startswith(MASK_PREFIX) and n.lower().endswith(".png"):
            out[n[len(MASK_PREFIX) : -len(".png")]] = n
    return out


def read_frame_size(path: str) -> Tuple[int, int]:
    """``(height, width)`` of an image, read from its header only (no pixel decoding).

    Raises:
        VideoSkipped: ``unreadable_frame`` if the header cannot be parsed.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
    except _PIL_ERRORS as e:
        raise VideoSkipped("unreadable_frame", f"cannot read image header: {e}", path) from e
    return int(h), int(w)


def read_id_mask(path: str) -> np.ndarray:
    """Decode one instance-id mask PNG to an (H, W) integer array (0 = background).

    Args:
        path: a palette, 8/16-bit grey or 1-bit PNG.

    Returns:
        ``uint8`` array (``uint16`` for 16-bit PNGs) of instance ids.

    Raises:
        VideoSkipped: ``corrupt_png`` (undecodable / truncated), ``rgb_mask`` (colour PNG) or
            ``unsupported_mask`` (any other mode, e.g. grey + alpha).
    """
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in _COLOUR_MODES:
                raise VideoSkipped(
                    "rgb_mask",
                    f"mask is a colour image (mode {mode}); instance ids must be palette "
                    "indices or grey values. Re-save it as a palette ('P') or 8-bit grey PNG "
                    "(VideoCutLER's demo writes palette PNGs; do not round-trip them through "
                    "cv2.imread/imwrite)",
                    path,
                )
            if mode not in _ID_MODES:
                raise VideoSkipped(
                    "unsupported_mask",
                    f"mask mode {mode!r} is not an id image (expected P, L, 1 or I;16)",
                    path,
                )
            im.load()
            arr = np.array(im)
    except VideoSkipped:
        raise
    except _PIL_ERRORS as e:
        raise VideoSkipped("corrupt_png", f"cannot decode mask PNG: {e}", path) from e
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise VideoSkipped("unsupported_mask", "mask ids outside 0..65535", path)
        arr = arr.astype(np.uint16)
    return arr
