"""Loading and validation of YouTube-VIS / LV-VIS ground truth and results for the scorer.

The official evaluator (youtubevos/cocoapi ``ytvos.py``) reads the GT JSON and the results list and
then mutates both. Here the inputs are only read: the loaders build compact index arrays and keep
references to the original per-frame segmentations, which are converted one video at a time later.

Errors name the offending entry (result index, video id, annotation id) instead of failing deep in
pycocotools.
"""

import contextlib
import logging
import math
import mmap
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from wsovvis.utils.io import read_json

from .ytvis_packed import PackedTracks, kernels_available, load_json_packed, marker_index
from .ytvis_rle_codec import compact_counts_json

__all__ = [
    "GroundTruth",
    "Detections",
    "load_ground_truth",
    "load_detections",
    "load_json_packed_file",
]

logger = logging.getLogger(__name__)

try:  # orjson parses large RLE JSON files several times faster than the standard library
    import orjson as _orjson
except ImportError:  # pragma: no cover - optional dependency
    _orjson = None

_NUMBER_TYPES = (int, float, np.integer, np.floating)


def load_json_packed_file(
    path: str, what: str, compact_counts: bool = True
) -> Tuple[Any, Optional[PackedTracks]]:
    """Read a YTVIS JSON file (with ``orjson`` when installed), masks packed for the kernels.

    Without the kernels (or ``orjson``) ``packed`` is None and the document is parsed whole.

    Args:
        path: JSON file.
        what: description used in error messages, e.g. ``"results file"``.
        compact_counts: without the kernels, turn uncompressed RLE ``counts`` lists into
            ``"#..."`` marker strings (see :mod:`.ytvis_rle_codec`; only the scorer's GT loader
            understands them).

    Returns:
        ``(document, packed)`` (see :func:`.ytvis_packed.load_json_packed`).

    Raises:
        FileNotFoundError, OSError, ValueError: naming the file.
    """
    if _orjson is None:
        return read_json(path, what), None
    try:
        with open(path, "rb") as f:
            if kernels_available():  # the packer reads the page cache in place (no copy of a 100+ MB file)
                with _mapped(f) as data:
                    return load_json_packed(data, _orjson.loads)
            data = f.read()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{what} not found: {path}") from e
    except _orjson.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from e
    except OSError as e:
        raise OSError(f"cannot read {what} {path}: {e}") from e
    try:
        if compact_counts:
            compact = compact_counts_json(data)
            if compact is not None:
                try:
                    return _orjson.loads(compact), None
                except _orjson.JSONDecodeError:
                    pass  # report the error of the original bytes
        return _orjson.loads(data), None
    except _orjson.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from e


@contextlib.contextmanager
def _mapped(f):
    """Read-only memory map of an open file (its bytes when it cannot be mapped, e.g. empty)."""
    try:
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        mm = mmap.mmap(f.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
    except (ValueError, OSError, AttributeError):  # empty file, pipe, no mmap on this platform
        yield f.read()
        return
    view = memoryview(mm)
    try:
        yield view
    finally:
        view.release()
        mm.close()


@dataclass
class GroundTruth:
    """Indexed ground truth.

    Attributes:
        video_ids: sorted GT video ids (the evaluation order).
        video_hw: per video position, ``(height, width)`` or None when the JSON has no size.
        video_len: per video position, number of frames (``length``) or -1 when unknown.
        cat_ids: sorted category ids of the JSON ``categories``.
        partitions: per category position, the LV-VIS ``partition`` or None when absent.
        segs: per kept annotation, its per-frame ``segmentations`` list, or the index of its
            track in ``packed``.
        ann_ids: per kept annotation, its ``id``.
        cat_pos: per kept annotation, the position of its category in ``cat_ids``.
        video_pos: per kept annotation, the position of its video in ``video_ids``.
        crowd: per kept annotation, the ``iscrowd`` flag.
        avg_area: per kept annotation, mean of the truthy JSON ``areas`` (0 if none).
        by_video: per video position, kept annotation indices ordered by (category, file order).
        tracks: per kept annotation, its track in ``packed`` or -1.
        has_annotations: whether the JSON has an ``annotations`` key at all.
        packed: the packed masks of a file read with the compiled kernels, or None.
    """

    video_ids: np.ndarray
    video_hw: List[Optional[tuple]]
    video_len: np.ndarray
    cat_ids: np.ndarray
    partitions: Optional[np.ndarray]
    segs: List[Sequence]
    ann_ids: np.ndarray
    cat_pos: np.ndarray
    video_pos: np.ndarray
    crowd: np.ndarray
    avg_area: np.ndarray
    by_video: List[np.ndarray]
    has_annotations: bool
    tracks: Optional[np.ndarray] = None
    packed: Optional[PackedTracks] = None


@dataclass
class Detections:
    """Validated results (only detections of known categories are kept here).

    Attributes:
        segs: per kept detection, its ``segmentations`` list (not copied, never mutated), or
            the index of its track in ``packed``.
        result_index: per kept detection, its index in the results list (official id - 1).
        cat_pos: category position in ``GroundTruth.cat_ids``.
        video_pos: video position in ``GroundTruth.video_ids``.
        score: detection score (float64).
        tracks: per kept detection, its track in ``packed`` or -1.
        num_dropped_unknown_category: results whose category is not in the GT categories.
        packed: the packed masks of a file read with the compiled kernels, or None.
    """

    segs: List[Sequence]
    result_index: np.ndarray
    cat_pos: np.ndarray
    video_pos: np.ndarray
    score: np.ndarray
    num_dropped_unknown_category: int
    tracks: Optional[np.ndarray] = None
    packed: Optional[PackedTracks] = None


def _as_int_id(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _mean_truthy_area(areas, ann_id) -> float:
    """Mean of the truthy entries of an ``areas`` list, computed exactly as the official code."""
    if not isinstance(areas, (list, tuple)):
        raise ValueError(
            f"GT annotation id={ann_id}: 'areas' must be a list, got {type(areas).__name__}"
        )
    vals = [a for a in areas if a]
    if not vals:
        return 0.0
    try:
        return float(np.array(vals).mean())
    except (TypeError, ValueError) as e:
        raise ValueError(f"GT annotation id={ann_id}: 'areas' has non-numeric entries: {e}") from e


def load_ground_truth(gt: Union[str, Dict[str, Any]]) -> GroundTruth:
    """Validate and index a YTVIS / LV-VIS ground-truth JSON (path or already loaded dict).

    Annotations whose video is not among ``videos`` or whose category is not among ``categories``
    are left out, as the official evaluator does (a warning gives their count).

    Args:
        gt: path to the GT JSON or its decoded dict (not modified). A path is read with
            :func:`load_json_packed_file`; such a dict may also be passed.

    Returns:
        The indexed :class:`GroundTruth`.
    """
    packed = None
    if isinstance(gt, str):
        gt, packed = load_json_packed_file(gt, "ground-truth file")
    if not isinstance(gt, dict):
        raise ValueError(f"ground truth must be a dict (YTVIS JSON), got {type(gt).__name__}")
    for key in ("videos", "categories"):
        if not isinstance(gt.get(key), list):
            raise ValueError(f"ground truth has no '{key}' list")
    video_ids, hw, lengths = [], {}, {}
    for i, v in enumerate(gt["videos"]):
        if not isinstance(v, dict) or "id" not in v:
            raise ValueError(f"ground truth videos[{i}] has no 'id'")
        vid = _as_int_id(v["id"], f"ground truth videos[{i}].id")
        if vid in hw:
            raise ValueError(f"ground truth video id {vid} appears twice")
        video_ids.append(vid)
        h, w = v.get("height"), v.get("width")
        hw[vid] = (int(h), int(w)) if h is not None and w is not None else None
        n = v.get("length")
        if n is None and isinstance(v.get("file_names"), list):
            n = len(v["file_names"])
        lengths[vid] = int(n) if n is not None else -1
    video_ids = np.array(sorted(video_ids), dtype=np.int64)
    vpos = {int(v): p for p, v in enumerate(video_ids)}

    cats = gt["categories"]
    cat_list = []
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or "id" not in c:
            raise ValueError(f"ground truth categories[{i}] has no 'id'")
        cat_list.append(
            (_as_int_id(c["id"], f"ground truth categories[{i}].id"), c.get("partition"))
        )
    cat_list.sort(key=lambda x: x[0])
    cat_ids = np.array([c for c, _ in cat_list], dtype=np.int64)
    if len(np.unique(cat_ids)) != len(cat_ids):
        raise ValueError("ground truth has duplicated category ids")
    partitions = None
    if cat_list and all(p is not None for _, p in cat_list):
        partitions = np.array([int(p) for _, p in cat_list], dtype=np.int64)
    cpos = {int(c): p for p, c in enumerate(cat_ids)}

    anns = gt.get("annotations")
    has_annotations = anns is not None
    anns = anns or []
    segs, ann_ids, a_cat, a_vid, crowd, avg = [], [], [], [], [], []
    packed_areas = []  # (position in avg, packed list index)
    seen_ids = set()
    skipped = 0
    for i, a in enumerate(anns):
        if not isinstance(a, dict):
            raise ValueError(f"ground truth annotations[{i}] is not a dict")
        for key in ("id", "video_id", "category_id", "segmentations", "areas"):
            if key not in a:
                raise ValueError(f"ground truth annotations[{i}] (id={a.get('id')}) has no '{key}'")
        aid = _as_int_id(a["id"], f"ground truth annotations[{i}].id")
        if aid <= 0:
            raise ValueError(
                f"ground truth annotation id must be > 0 (0 means 'unmatched'), got {aid}"
            )
        if aid in seen_ids:
            raise ValueError(f"ground truth annotation id {aid} appears twice")
        seen_ids.add(aid)
        p_v = vpos.get(a["video_id"])
        p_c = cpos.get(a["category_id"])
        if p_v is None or p_c is None:
            skipped += 1
            continue
        seg = a["segmentations"]
        track = marker_index(seg, packed)
        if track >= 0:
            seg = track
        elif not isinstance(seg, list):
            raise ValueError(f"ground truth annotation id={aid}: 'segmentations' must be a list")
        segs.append(seg)
        ann_ids.append(aid)
        a_cat.append(p_c)
        a_vid.append(p_v)
        crowd.append(bool(a.get("iscrowd", 0)))
        area_list = marker_index(a["areas"], packed)
        if area_list >= 0:
            packed_areas.append((len(avg), area_list))
            avg.append(0.0)
        else:
            avg.append(_mean_truthy_area(a["areas"], aid))
    if skipped:
        logger.warning(
            "%d GT annotations have a video or category not listed in the JSON; "
            "they are left out (as in the official evaluator)",
            skipped,
        )
    avg = np.array(avg, dtype=np.float64)
    if packed_areas:
        where, lists = np.array(packed_areas, dtype=np.int64).T
        avg[where] = packed.area_means(lists)
    a_cat = np.array(a_cat, dtype=np.int64)
    a_vid = np.array(a_vid, dtype=np.int64)
    order = np.lexsort((np.arange(len(a_cat)), a_cat, a_vid))
    bounds = np.searchsorted(a_vid[order], np.arange(len(video_ids) + 1))
    by_video = [order[bounds[p] : bounds[p + 1]] for p in range(len(video_ids))]
    return GroundTruth(
        video_ids=video_ids,
        video_hw=[hw[int(v)] for v in video_ids],
        video_len=np.array([lengths[int(v)] for v in video_ids], dtype=np.int64),
        cat_ids=cat_ids,
        partitions=partitions,
        segs=segs,
        ann_ids=np.array(ann_ids, dtype=np.int64),
        cat_pos=a_cat,
        video_pos=a_vid,
        crowd=np.array(crowd, dtype=bool),
        avg_area=avg,
        by_video=by_video,
        has_annotations=has_annotations,
        tracks=np.array([s if type(s) is int else -1 for s in segs], dtype=np.int64),
        packed=packed,
    )


def load_detections(results: Union[str, List[Dict[str, Any]]], gt: GroundTruth) -> Detections:
    """Validate a YTVIS results list (path or list) against the ground truth.

    Checks every entry: ``video_id`` must be a GT video, ``score`` a finite number, ``category_id``
    an integer, ``segmentations`` a list with one entry per video frame. Per-frame RLEs are checked
    while scoring (:func:`check_result_frame`). Detections of categories absent from the GT
    ``categories`` are dropped, as in the official evaluator.

    Args:
        results: path to the results JSON or the decoded list (not modified).
        gt: the indexed ground truth.

    Returns:
        The kept :class:`Detections`.
    """
    packed = None
    if isinstance(results, str):
        results, packed = load_json_packed_file(results, "results file", compact_counts=False)
    if not isinstance(results, list):
        raise ValueError(f"results must be a list of dicts, got {type(results).__name__}")
    vpos = {int(v): p for p, v in enumerate(gt.video_ids)}
    cpos = {int(c): p for p, c in enumerate(gt.cat_ids)}
    unknown_videos = set()
    segs, r_idx, r_cat, r_vid, r_score = [], [], [], [], []
    dropped = 0
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise ValueError(f"results[{i}] is not a dict")
        for key in ("video_id", "score", "category_id", "segmentations"):
            if key not in r:
                raise ValueError(f"results[{i}] (video_id={r.get('video_id')}) has no '{key}'")
        vid = r["video_id"]
        p_v = vpos.get(vid) if isinstance(vid, (int, np.integer)) else None
        if p_v is None:
            unknown_videos.add(repr(vid))
            continue
        score = r["score"]
        if (
            isinstance(score, bool)
            or not isinstance(score, _NUMBER_TYPES)
            or not math.isfinite(score)
        ):
            raise ValueError(
                f"results[{i}] (video_id={vid}): score must be a finite number, got {score!r}"
            )
        cat = _as_int_id(r["category_id"], f"results[{i}].category_id")
        seq = r["segmentations"]
        track = marker_index(seq, packed)
        if track >= 0:
            seq = track
            num_frames = int(packed.num_frames(track))
        elif not isinstance(seq, list):
            raise ValueError(f"results[{i}] (video_id={vid}): 'segmentations' must be a list")
        else:
            num_frames = len(seq)
        n = gt.video_len[p_v]
        if n >= 0 and num_frames != n:
            raise ValueError(
                f"results[{i}] (video_id={vid}): {num_frames} segmentations for a video of "
                f"{n} frames"
            )
        p_c = cpos.get(cat)
        if p_c is None:
            dropped += 1
            continue
        segs.append(seq)
        r_idx.append(i)
        r_cat.append(p_c)
        r_vid.append(p_v)
        r_score.append(float(score))
    if unknown_videos:
        shown = sorted(unknown_videos)
        raise ValueError(
            f"{len(shown)} result video ids are not in the ground truth: "
            f"{', '.join(shown[:20])}{' ...' if len(shown) > 20 else ''}"
        )
    if dropped:
        logger.warning(
            "%d results have a category_id not in the GT categories; they are dropped "
            "(as in the official evaluator)",
            dropped,
        )
    return Detections(
        segs=segs,
        result_index=np.array(r_idx, dtype=np.int64),
        cat_pos=np.array(r_cat, dtype=np.int64),
        video_pos=np.array(r_vid, dtype=np.int64),
        score=np.array(r_score, dtype=np.float64),
        num_dropped_unknown_category=dropped,
        tracks=np.array([s if type(s) is int else -1 for s in segs], dtype=np.int64),
        packed=packed,
    )
