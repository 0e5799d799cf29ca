"""Render a YTVIS JSON to VideoCutLER-style instance-id PNGs (the inverse of the converter).

Useful to feed ground truth (or any tube JSON) through the pseudo-tube pipeline, to visualise
tubes with any palette-aware viewer, and for round-trip tests.
"""
import os
from collections import defaultdict
from typing import Dict, Iterable, Optional, Sequence, Union

import numpy as np
from PIL import Image
from tqdm import tqdm

from wsovvis.utils.io import atomic_write, read_json
from wsovvis.utils.rle import CorruptRLEError, decode_segmentation

from .png_io import mask_name_for_frame

__all__ = ["id_palette", "render_ytvis_to_id_pngs", "save_id_png"]


def id_palette() -> list:
    """A 256-entry palette (flat RGB list): index 0 black, neighbouring ids in distinct colours.

    The colour of index ``i`` spreads the bits of ``i`` over the high bits of R, G and B, so the
    first ids are saturated, well separated colours.
    """
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        pal.extend((r, g, b))
    return pal


_PALETTE = id_palette()


def save_id_png(
    id_map: np.ndarray, path: str, palette: bool = True, colors: Optional[Sequence[int]] = None
) -> None:
    """Write an (H, W) id map atomically as a palette PNG (``uint8``) or a grey PNG.

    Args:
        id_map: integer array, 0 = background.
        path: destination ``.png``.
        palette: palette ("P") PNG like VideoCutLER's demo; ids must be <= 255. With False, an
            8-bit grey PNG is written (16-bit if an id exceeds 255).
        colors: flat RGB list (up to 768 values) used as the palette; default :func:`id_palette`.
            The pixel values (ids) do not depend on it.
    """
    id_map = np.asarray(id_map)
    top = int(id_map.max()) if id_map.size else 0
    if id_map.min(initial=0) < 0 or top > 65535:
        raise ValueError(f"{path}: ids must be in 0..65535")
    if palette:
        if top > 255:
            raise ValueError(f"{path}: palette PNGs hold ids <= 255, got {top}")
        im = Image.fromarray(id_map.astype(np.uint8), mode="P")
        im.putpalette(_PALETTE if colors is None else list(colors))
    elif top > 255:
        im = Image.fromarray(id_map.astype(np.uint16))
    else:
        im = Image.fromarray(id_map.astype(np.uint8), mode="L")
    atomic_write(path, lambda f: im.save(f, format="PNG"), mode="wb")


def _video_folder(video: dict) -> str:
    parts = video["file_names"][0].replace("\\", "/").split("/")
    if len(parts) < 2:
        raise ValueError(f"video {video.get('id')}: file_names have no folder: {parts[0]!r}")
    return parts[-2]


def render_ytvis_to_id_pngs(
    dataset: Union[str, dict],
    out_root: str,
    palette: bool = True,
    video_ids: Optional[Iterable[int]] = None,
    progress: bool = False,
) -> Dict[int, Dict[int, int]]:
    """Write ``<out_root>/<video>/mask_<frame>.png`` for every frame of every video.

    Instance ids are ``1..N`` in the order of the video's annotation ids; frames where nothing is
    present get an all-zero PNG (as VideoCutLER writes them). Where annotations overlap, the later
    one wins (VideoCutLER's painting order too), so overlapping pixels are lost.

    Args:
        dataset: YTVIS dict or path to a YTVIS JSON.
        out_root: destination folder (the converter's ``--mask_root``).
        palette: palette PNGs (default) or grey PNGs, see :func:`save_id_png`.
        video_ids: restrict to these video ids.
        progress: show a progress bar.

    Returns:
        ``{video_id: {annotation_id: png_id}}``.
    """
    if isinstance(dataset, str):
        dataset = read_json(dataset, "YTVIS JSON")
    by_video = defaultdict(list)
    for ann in dataset.get("annotations", []):
        by_video[ann["video_id"]].append(ann)
    keep = None if video_ids is None else set(video_ids)
    mapping: Dict[int, Dict[int, int]] = {}
    videos = [v for v in dataset["videos"] if keep is None or v["id"] in keep]
    for video in tqdm(videos, desc="render id PNGs", unit="video", disable=not progress):
        anns = sorted(by_video.get(video["id"], []), key=lambda a: a["id"])
        if palette and len(anns) > 255:
            raise ValueError(f"video {video['id']}: {len(anns)} instances > 255; use palette=False")
        h, w = int(video["height"]), int(video["width"])
        folder = os.path.join(out_root, _video_folder(video))
        for ann in anns:
            if len(ann["segmentations"]) != len(video["file_names"]):
                raise ValueError(
                    f"annotation id {ann['id']} (video id {video['id']}) has "
                    f"{len(ann['segmentations'])} segmentations for {len(video['file_names'])} "
                    "frames"
                )
        mapping[video["id"]] = {a["id"]: j + 1 for j, a in enumerate(anns)}
        dtype = np.uint8 if len(anns) <= 255 else np.uint16
        for t, fname in enumerate(video["file_names"]):
            canvas = np.zeros((h, w), dtype=dtype)
            for j, ann in enumerate(anns):
                seg = ann["segmentations"][t]
                if seg:
                    try:
                        mask = decode_segmentation(seg, h, w)
                    except CorruptRLEError as e:
                        raise ValueError(
                            f"annotation id {ann['id']} (video id {video['id']}) frame {t}: {e}"
                        ) from e
                    canvas[mask > 0] = j + 1
            base = os.path.basename(fname.replace("\\", "/"))
            save_id_png(canvas, os.path.join(folder, mask_name_for_frame(base)), palette=palette)
    return mapping
