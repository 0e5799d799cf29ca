"""Render YTVIS tracks (ground truth or ``results.json`` predictions) over video frames.

Each video becomes an animated GIF and a PNG contact sheet: one colour per track, the mask blended
over the frame with its outline, and a ``category [score]`` label at the mask's top-left corner.
"""

import colorsys
import logging
import os
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from wsovvis.data.video_utils import read_video_frame
from wsovvis.utils.io import atomic_write, read_json
from wsovvis.utils.rle import CorruptRLEError, check_rle, decode_segmentation

__all__ = [
    "track_color",
    "tracks_from_gt",
    "tracks_from_results",
    "render_frames",
    "save_gif",
    "save_contact_sheet",
    "visualize_ytvis",
]

logger = logging.getLogger(__name__)


def track_color(index: int) -> tuple:
    """A distinct, saturated colour per track (golden-ratio hue walk).

    Args:
        index: track position in the video's track list.

    Returns:
        ``(r, g, b)`` ints in 0..255.
    """
    h = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def tracks_from_gt(data: dict) -> Dict[int, List[dict]]:
    """GT tracks grouped by video.

    Args:
        data: a decoded YTVIS GT dict (its ``annotations`` are used; none -> no tracks).

    Returns:
        ``{video_id: [track]}``, a track being ``{id, category_id, segmentations, score: None,
        where}`` (``where`` names the annotation in error messages).
    """
    out = defaultdict(list)
    for i, ann in enumerate(data.get("annotations", [])):
        if not isinstance(ann, dict) or "video_id" not in ann or "segmentations" not in ann:
            raise ValueError(f"annotations[{i}] needs 'video_id' and 'segmentations'")
        ann_id = ann.get("id", len(out[ann["video_id"]]) + 1)
        out[ann["video_id"]].append(
            {
                "id": ann_id,
                "category_id": ann.get("category_id"),
                "segmentations": ann["segmentations"],
                "score": None,
                "where": f"annotation id {ann_id}",
            }
        )
    return out


def tracks_from_results(
    results: Sequence[dict], score_thresh: float = 0.0, top_k: Optional[int] = None
) -> Dict[int, List[dict]]:
    """Predicted tracks grouped by video, by decreasing score.

    Args:
        results: a decoded YTVIS ``results.json`` list.
        score_thresh: results with a lower score are left out.
        top_k: at most this many results per video (None: all).

    Returns:
        ``{video_id: [track]}``, a track being ``{id, category_id, segmentations, score, where}``
        (``id`` = 1 + rank of the result by score over the whole file; ``where`` =
        ``results[index in the file]`` for error messages).

    Raises:
        ValueError: an entry is not a dict with ``video_id``, ``segmentations`` and a numeric
            ``score`` (when present).
    """
    for j, r in enumerate(results):
        if not isinstance(r, dict) or "video_id" not in r or "segmentations" not in r:
            raise ValueError(f"results[{j}] needs 'video_id' and 'segmentations'")
        score = r.get("score", 0.0)
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise ValueError(
                f"results[{j}] (video id {r['video_id']}): score {score!r} is not a number"
            )
    order = sorted(range(len(results)), key=lambda j: -results[j].get("score", 0.0))
    out = defaultdict(list)
    for i, j in enumerate(order):
        r = results[j]
        if r.get("score", 0.0) < score_thresh:
            continue
        if top_k is not None and len(out[r["video_id"]]) >= top_k:
            continue
        out[r["video_id"]].append(
            {
                "id": i + 1,
                "category_id": r.get("category_id"),
                "segmentations": r["segmentations"],
                "score": float(r.get("score", 0.0)),
                "where": f"results[{j}]",
            }
        )
    return out


def _label(track: dict, names: Dict[int, str]) -> str:
    text = names.get(track["category_id"], str(track["category_id"]))
    if track["score"] is not None:
        text += f" {track['score']:.2f}"
    return text


def render_frames(
    frames: Sequence[np.ndarray],
    tracks: Sequence[dict],
    names: Optional[Dict[int, str]] = None,
    alpha: float = 0.5,
    video_id=None,
) -> List[Image.Image]:
    """Overlay ``tracks`` on ``frames`` (RGB uint8 arrays of the video size).

    Args:
        frames: T frames, (H, W, 3) uint8 RGB.
        tracks: tracks with per-frame ``segmentations`` (RLE/polygon or None), ``category_id``,
            ``score`` (None for GT).
        names: category id -> name for the labels.
        alpha: mask opacity.
        video_id: the video, for error messages.

    Returns:
        T ``PIL.Image`` frames.

    Raises:
        ValueError: a track has another number of frames than ``frames``, or a corrupt mask or
            one of another size than its frame (names the track's ``where``, the video and the
            sizes).
    """
    for k, track in enumerate(tracks):
        if len(track["segmentations"]) != len(frames):
            raise ValueError(
                f"{track.get('where', f'track {k}')} (video id {video_id}) has "
                f"{len(track['segmentations'])} segmentations for {len(frames)} frames"
            )
    names = names or {}
    font = ImageFont.load_default()
    out = []
    for t, frame in enumerate(frames):
        h, w = frame.shape[:2]
        canvas = frame.astype(np.float32)
        labels = []
        for k, track in enumerate(tracks):
            segs = track["segmentations"]
            if t >= len(segs) or not segs[t]:  # None / [] / {}: absent on this frame (YTVIS)
                continue
            try:
                mask = decode_segmentation(segs[t], h, w).astype(bool)
            except CorruptRLEError as e:
                raise ValueError(
                    f"{track.get('where', f'track {k}')} (video id {video_id}) frame {t}: {e}"
                ) from e
            if not mask.any():
                continue
            color = np.array(track_color(k), np.float32)
            canvas[mask] = canvas[mask] * (1 - alpha) + color * alpha
            p = np.pad(mask, 1)  # no wrap-around: pixels on the image border are edges
            edge = mask & ~(p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:])
            canvas[edge] = color
            ys, xs = np.nonzero(mask)
            labels.append((int(xs.min()), int(ys.min()), _label(track, names), track_color(k)))
        img = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for x, y, text, color in labels:
            box = draw.textbbox((x, y), text, font=font)
            y0 = max(0, y - (box[3] - box[1]) - 2)
            draw.rectangle((x, y0, x + box[2] - box[0] + 2, y0 + box[3] - box[1] + 2), fill=color)
            draw.text((x + 1, y0), text, fill=(0, 0, 0), font=font)
        out.append(img)
    return out


def save_gif(frames: Sequence[Image.Image], path: str, duration_ms: int = 200) -> None:
    """Write an animated, looping GIF atomically.

    Args:
        frames: at least one frame.
        path: destination ``.gif``.
        duration_ms: display time of each frame.
    """
    first, rest = frames[0], list(frames[1:])
    atomic_write(
        path,
        lambda f: first.save(
            f, format="GIF", save_all=True, append_images=rest, duration=duration_ms, loop=0
        ),
        "wb",
    )


def save_contact_sheet(frames: Sequence[Image.Image], path: str, cols: int = 6) -> None:
    """Write a PNG grid of ``frames`` (row-major, ``cols`` per row) atomically.

    Args:
        frames: at least one frame, all of the same size.
        path: destination ``.png``.
        cols: frames per row.
    """
    w, h = frames[0].size
    cols = min(cols, len(frames))
    rows = (len(frames) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * w, rows * h), (0, 0, 0))
    for i, f in enumerate(frames):
        sheet.paste(f, ((i % cols) * w, (i // cols) * h))
    atomic_write(path, lambda f: sheet.save(f, format="PNG"), "wb")


def _check_video_tracks(video: dict, tracks: Sequence[dict]) -> None:
    """Frame counts, RLE sizes and run lengths of a video's tracks, checked before drawing."""
    h, w, num = video.get("height"), video.get("width"), len(video["file_names"])
    for track in tracks:
        where = f"{track['where']} (video id {video['id']})"
        segs = track["segmentations"]
        if not isinstance(segs, list) or len(segs) != num:
            n = len(segs) if isinstance(segs, list) else type(segs).__name__
            raise ValueError(f"{where} has {n} segmentations for a video of {num} frames")
        for t, seg in enumerate(segs):
            if not seg or not isinstance(seg, dict):
                continue  # absent frame / polygons (checked when drawn)
            try:
                sh, sw = check_rle(seg)
            except CorruptRLEError as e:
                raise ValueError(f"{where} frame {t}: {e}") from e
            if h is not None and w is not None and (sh, sw) != (int(h), int(w)):
                raise ValueError(
                    f"{where} frame {t}: mask size {sh} x {sw} differs from the video size "
                    f"{h} x {w}"
                )


def visualize_ytvis(
    json_file: str,
    image_root: str,
    output_dir: str,
    *,
    results_file: Optional[str] = None,
    video_ids: Optional[Sequence[int]] = None,
    max_videos: Optional[int] = None,
    score_thresh: float = 0.3,
    top_k: Optional[int] = 10,
    duration_ms: int = 200,
) -> List[str]:
    """Render GT (``json_file``) or predictions (``results_file``) to ``<video>.gif`` + ``.png``.

    Args:
        json_file: YTVIS JSON with ``videos`` (file names, sizes) and categories; its
            ``annotations`` are drawn unless ``results_file`` is given.
        image_root: folder the video ``file_names`` are relative to.
        output_dir: destination folder.
        results_file: YTVIS ``results.json`` to draw instead of the GT.
        video_ids: only these videos (default: all, in file order).
        max_videos: at most this many videos.
        score_thresh: predictions below this score are not drawn.
        top_k: at most this many predictions per video.
        duration_ms: GIF frame duration.

    Returns:
        paths of the written files.

    Raises:
        ValueError: malformed JSON / results, a track of an unknown video, or a track whose
            frame count, mask size or run lengths do not fit its video (names the annotation id
            or ``results[i]``, the video id and the sizes); checked before anything is written.
        FileNotFoundError: a missing frame.
    """
    data = read_json(json_file, "YTVIS JSON")
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise ValueError(f"{json_file} is not a YTVIS JSON (no 'videos' list)")
    if results_file:
        results = read_json(results_file, "results file")
        if not isinstance(results, list):
            raise ValueError(f"{results_file} is not a YTVIS results list")
        tracks = tracks_from_results(results, score_thresh, top_k)
    else:
        tracks = tracks_from_gt(data)
    names = {c["id"]: c.get("name", str(c["id"])) for c in data.get("categories", [])}
    videos = data["videos"]
    unknown = sorted(set(tracks) - {v.get("id") for v in videos}, key=str)
    if unknown:
        raise ValueError(
            f"{results_file or json_file} has tracks of video ids {unknown[:10]} that are not "
            f"videos of {json_file}"
        )
    if video_ids is not None:
        wanted = set(video_ids)
        videos = [v for v in videos if v["id"] in wanted]
        missing = wanted - {v["id"] for v in videos}
        if missing:
            raise ValueError(f"video ids not in {json_file}: {sorted(missing)}")
    videos = videos[:max_videos] if max_videos else videos
    for video in videos:  # every check before the first file is written
        if not video.get("file_names"):
            raise ValueError(f"video {video.get('id')} of {json_file} has no 'file_names'")
        _check_video_tracks(video, tracks.get(video["id"], []))
    written = []
    for video in videos:
        frames = []
        for name in video["file_names"]:
            # LV-VIS file_names may use Windows backslash separators (the loader accepts them)
            path = os.path.join(image_root, *name.replace("\\", "/").split("/"))
            if not os.path.isfile(path):
                raise FileNotFoundError(f"frame of video {video['id']} not found: {path}")
            # as the data loader reads frames: EXIF orientation, resized to the annotated size
            frames.append(read_video_frame(path, video.get("height"), video.get("width"), "RGB"))
        rendered = render_frames(frames, tracks.get(video["id"], []), names, video_id=video["id"])
        stem = os.path.join(output_dir, f"video_{video['id']}")
        save_gif(rendered, stem + ".gif", duration_ms)
        save_contact_sheet(rendered, stem + ".png")
        written += [stem + ".gif", stem + ".png"]
        n = len(tracks.get(video["id"], []))
        logger.info("video %s: %d tracks -> %s.gif/.png", video["id"], n, stem)
    return written
