"""Loading and validation of YouTube-VIS / LV-VIS ground truth and results for the scorer.

Files are parsed by ``msgspec`` with typed schemas; every RLE ``counts`` value stays undecoded
(``msgspec.Raw``) until :mod:`.ytvis_masks` turns all of them into run lengths at once. In-memory
inputs are serialised with ``orjson`` and take the same path, so a dict and its file give the same
numbers. Inputs are never modified. Errors name the file and the entry (result index and video
id, annotation id) instead of failing deep in pycocotools.
"""

import json
import logging
import math
import mmap
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

import msgspec
import numpy as np
import orjson

from .ytvis_masks import Masks, build_masks

__all__ = ["GroundTruth", "Detections", "load_ground_truth", "load_detections", "read_categories"]

logger = logging.getLogger(__name__)

UNSET = msgspec.UNSET


# gc=False: these hold no reference cycles, so Python's cyclic garbage collector need not track
# (and repeatedly traverse) the ~10**5 objects of a large file
class _Size(msgspec.Struct, array_like=True, gc=False):
    h: int
    w: int


class _Rle(msgspec.Struct, gc=False):
    size: Union[_Size, msgspec.UnsetType] = UNSET
    counts: msgspec.Raw = msgspec.Raw(b"")


_Frame = Optional[Union[_Rle, List[Any]]]  # RLE dict, polygon list ([] = absent), or null


class _Ann(msgspec.Struct, gc=False):
    id: Any = UNSET
    video_id: Any = UNSET
    category_id: Any = UNSET
    iscrowd: Any = 0
    segmentations: Union[List[_Frame], msgspec.UnsetType] = UNSET
    areas: Any = UNSET
    orig_category_id: Any = None


class _GT(msgspec.Struct):
    videos: Any = UNSET
    categories: Any = UNSET
    annotations: Optional[List[_Ann]] = None
    orig_categories: Any = None


class _Result(msgspec.Struct, gc=False):
    video_id: Any = UNSET
    score: Any = UNSET
    category_id: Any = UNSET
    segmentations: Union[List[_Frame], msgspec.UnsetType] = UNSET


class _Categories(msgspec.Struct):
    categories: Any = UNSET


_DECODERS = {
    "gt": msgspec.json.Decoder(_GT),
    "results": msgspec.json.Decoder(List[_Result]),
    "categories": msgspec.json.Decoder(_Categories),
}


@dataclass
class GroundTruth:
    """Indexed ground truth.

    Attributes:
        video_ids: sorted GT video ids (the evaluation order).
        video_hw: int64 [V, 2] ``(height, width)`` per video position, -1 when unknown.
        video_len: per video position, number of frames (``length``) or -1 when unknown.
        cat_ids: sorted category ids of the JSON ``categories``.
        partitions: per category position, the LV-VIS ``partition`` (int), or None without.
        ann_ids, cat_pos, video_pos, crowd: per kept annotation: its id, category / video
            position, ``iscrowd`` flag.
        avg_area: per kept annotation, mean of the truthy ``areas`` (from the masks when the
            JSON has no ``areas``).
        track_partition: per kept annotation, the partition of its original category when the
            GT is a class-agnostic copy (``orig_category_id`` + ``orig_categories``), else None.
        masks: the per-frame masks of the kept annotations.
    """

    video_ids: np.ndarray
    video_hw: np.ndarray
    video_len: np.ndarray
    cat_ids: np.ndarray
    partitions: Optional[np.ndarray]
    ann_ids: np.ndarray
    cat_pos: np.ndarray
    video_pos: np.ndarray
    crowd: np.ndarray
    avg_area: np.ndarray
    track_partition: Optional[np.ndarray]
    masks: Masks


@dataclass
class Detections:
    """Validated results of known categories.

    Attributes:
        result_index: per kept detection, its index in the results list (official id - 1).
        cat_pos, video_pos: category / video position in the ground truth.
        score: float64 scores.
        masks: their per-frame masks.
        num_dropped_unknown_category: results whose category is not in the GT categories.
    """

    result_index: np.ndarray
    cat_pos: np.ndarray
    video_pos: np.ndarray
    score: np.ndarray
    masks: Masks
    num_dropped_unknown_category: int


def _json_default(obj):
    if isinstance(obj, bytes):
        return obj.decode("ascii")
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _non_finite_message(data: bytes, what: str) -> Optional[str]:
    """Name the entry when a document is JSON except for NaN/Infinity (Python's json.dump)."""
    if not re.search(rb"NaN|Infinity", data):
        return None
    try:
        doc = json.loads(bytes(data))
    except ValueError:
        return None
    for i, r in enumerate(doc if isinstance(doc, list) else []):
        s = r.get("score") if isinstance(r, dict) else None
        if isinstance(s, float) and not math.isfinite(s):
            return (f"{what}: results[{i}] (video_id={r.get('video_id')}): score must be a finite "
                    f"number, got {s!r} (NaN/Infinity are not JSON)")
    return f"{what} holds NaN or Infinity, which JSON does not allow"


def _read(path: str):
    """The file's bytes, memory-mapped (no copy; the parsed RLE text points into the map)."""
    with open(path, "rb") as f:
        try:  # MAP_POPULATE (Linux): map the whole file at once instead of page by page
            flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
            return mmap.mmap(f.fileno(), 0, flags=flags, prot=mmap.PROT_READ)
        except (ValueError, OSError, AttributeError):  # empty, unmappable, no POSIX mmap
            return f.read()


def _decode(source, kind: str, what: str):
    """Parse a path (``what`` names it in errors) or serialise-and-parse an in-memory object."""
    if isinstance(source, str):
        try:
            data = _read(source)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{what} not found: {source}") from e
        except OSError as e:
            raise OSError(f"cannot read {what} {source}: {e}") from e
        what = f"{what} {source}"
    else:
        data = orjson.dumps(source, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)
    try:
        return _DECODERS[kind].decode(data), what
    except msgspec.DecodeError as e:
        message = _non_finite_message(data, what)
        if message:
            raise ValueError(message) from None
        raise ValueError(_decode_error(what, e, kind)) from None


def _decode_error(what: str, error: msgspec.DecodeError, kind: str) -> str:
    """msgspec's ``... - at `$[3].segmentations[0]``` as ``results[3].segmentations[0]: ...``."""
    message = str(error)
    m = re.search(r" - at `\$(.*)`$", message)
    if not isinstance(error, msgspec.ValidationError):
        return f"{what} is not valid JSON: {message}"
    if not m:  # the document itself
        expected = "a JSON list" if kind == "results" else "a JSON object"
        return f"{what} is not {expected} ({message})"
    root = "results" if kind == "results" else "ground truth"
    return f"{what}: {root}{m.group(1)}: {message[: m.start()]}"


def _as_int_id(value, what: str) -> int:
    if type(value) is not int:
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(value)


def _mean_truthy_area(areas, ann_id) -> float:
    """Mean of the truthy entries of an ``areas`` list, computed exactly as the official code."""
    if not isinstance(areas, list):
        raise ValueError(f"GT annotation id={ann_id}: 'areas' must be a list, got {areas!r:.40}")
    vals = [a for a in areas if a]
    if set(map(type, vals)) <= {int}:  # numpy's mean of integers is this exact division
        return sum(vals) / len(vals) if vals else 0.0
    try:
        return float(np.array(vals).mean())
    except (TypeError, ValueError) as e:
        raise ValueError(f"GT annotation id={ann_id}: 'areas' has non-numeric entries: {e}") from e


def _partition(c: dict, i: int) -> int:
    p = c.get("partition")
    try:
        value = int(p) if not isinstance(p, (bool, float)) else None
    except (TypeError, ValueError):
        value = None
    if value not in (0, 1, 2, 3):
        raise ValueError(
            f"ground truth categories[{i}] (id={c.get('id')}): 'partition' must be one of 0, 1 "
            f"(base), 2, 3 (novel), got {p!r}; give every category one or none"
        )
    return value


def _partitions(cats: list, where: str) -> Optional[Dict[int, int]]:
    """Category id -> LV-VIS partition; None when no category has one."""
    if not isinstance(cats, list) or not any("partition" in c for c in cats if isinstance(c, dict)):
        return None
    out = {}
    for i, c in enumerate(cats):
        if not isinstance(c, dict) or "partition" not in c:
            cid = c.get("id") if isinstance(c, dict) else c
            raise ValueError(f"ground truth {where}[{i}] (id={cid!r}) has no 'partition' while "
                             "others have: base/novel AP would silently leave it out")
        out[c.get("id")] = _partition(c, i)
    return out


def read_categories(path: str) -> list:
    """The ``categories`` list of a YTVIS JSON file (masks are not decoded)."""
    doc, what = _decode(path, "categories", "ground-truth file")
    if not isinstance(doc, _Categories) or not isinstance(doc.categories, list):
        raise ValueError(f"{what} is not a JSON object with a 'categories' list")
    return doc.categories


def load_ground_truth(gt: Union[str, Dict[str, Any]]) -> GroundTruth:
    """Validate and index a YTVIS / LV-VIS ground-truth JSON (path or already loaded dict).

    Annotations whose video or category is not listed are left out, as the official evaluator
    does (a warning gives their count). Without ``areas`` the mean areas come from the masks.

    Args:
        gt: path to the GT JSON or its decoded dict (not modified).

    Returns:
        The indexed :class:`GroundTruth`.
    """
    doc, what = _decode(gt, "gt", "ground-truth file")
    for key in ("videos", "categories"):
        if not isinstance(getattr(doc, key), list):
            raise ValueError(f"{what}: ground truth has no '{key}' list")
    hw, lengths = {}, {}
    for i, v in enumerate(doc.videos):
        if not isinstance(v, dict) or "id" not in v:
            raise ValueError(f"ground truth videos[{i}] has no 'id'")
        vid = _as_int_id(v["id"], f"ground truth videos[{i}].id")
        if vid in hw:
            raise ValueError(f"ground truth video id {vid} appears twice")
        h, w = v.get("height"), v.get("width")
        hw[vid] = (int(h), int(w)) if h is not None and w is not None else (-1, -1)
        n = v.get("length")
        if n is None and isinstance(v.get("file_names"), list):
            n = len(v["file_names"])
        lengths[vid] = int(n) if n is not None else -1
    video_ids = np.array(sorted(hw), dtype=np.int64)
    vpos = {int(v): p for p, v in enumerate(video_ids)}
    cats = []
    for i, c in enumerate(doc.categories):
        if not isinstance(c, dict) or "id" not in c:
            raise ValueError(f"ground truth categories[{i}] has no 'id'")
        cats.append(_as_int_id(c["id"], f"ground truth categories[{i}].id"))
    cat_ids = np.array(sorted(cats), dtype=np.int64)
    if len(np.unique(cat_ids)) != len(cat_ids):
        raise ValueError("ground truth has duplicated category ids")
    parts = _partitions(doc.categories, "categories")
    partitions = None if parts is None else np.array([parts[int(c)] for c in cat_ids], np.int64)
    orig_parts = _partitions(doc.orig_categories, "orig_categories")
    cpos = {int(c): p for p, c in enumerate(cat_ids)}

    kept, ann_ids, a_cat, a_vid, crowd, avg, t_part = [], [], [], [], [], [], []
    seen, skipped = set(), 0
    for i, a in enumerate(doc.annotations or []):
        for key in ("id", "video_id", "category_id", "segmentations"):
            if getattr(a, key) is UNSET:
                raise ValueError(f"ground truth annotations[{i}] (id={a.id}) has no '{key}'")
        aid = _as_int_id(a.id, f"ground truth annotations[{i}].id")
        if aid <= 0:
            raise ValueError(f"ground truth annotation id must be > 0 (0: unmatched), got {aid}")
        if aid in seen:
            raise ValueError(f"ground truth annotation id {aid} appears twice")
        seen.add(aid)
        p_v, p_c = vpos.get(a.video_id), cpos.get(a.category_id)
        if p_v is None or p_c is None:
            skipped += 1
            continue
        kept.append(a)
        ann_ids.append(aid)
        a_cat.append(p_c)
        a_vid.append(p_v)
        crowd.append(bool(a.iscrowd))
        avg.append(np.nan if a.areas is UNSET else _mean_truthy_area(a.areas, aid))
        if orig_parts is not None:
            t_part.append(orig_parts.get(a.orig_category_id, -1))
    if skipped:
        logger.warning("%d GT annotations have a video or category not listed in the JSON; "
                       "they are left out (as in the official evaluator)", skipped)
    a_cat, a_vid = np.array(a_cat, dtype=np.int64), np.array(a_vid, dtype=np.int64)
    shapes = np.array([tuple(hw[int(v)]) for v in video_ids], dtype=np.int64).reshape(-1, 2)
    masks = build_masks([a.segmentations for a in kept], [f"GT annotation id={i}" for i in ann_ids],
                        video_ids[a_vid], shapes[a_vid], gt=True,
                        source=f"{what}: " if isinstance(gt, str) else "")
    avg = np.array(avg, dtype=np.float64)
    no_areas = np.isnan(avg)
    avg[no_areas] = masks.mean_areas(np.nonzero(no_areas)[0])
    lengths = np.array([lengths[int(v)] for v in video_ids], dtype=np.int64)
    t_part = np.array(t_part, dtype=np.int64) if orig_parts is not None else None
    return GroundTruth(video_ids, shapes, lengths, cat_ids, partitions,
                       np.array(ann_ids, dtype=np.int64), a_cat, a_vid, np.array(crowd, bool), avg,
                       t_part, masks)


def load_detections(results: Union[str, List[Dict[str, Any]]], gt: GroundTruth) -> Detections:
    """Validate a YTVIS results list (path or list) against the ground truth.

    Every entry needs a GT ``video_id``, a finite ``score``, an integer ``category_id`` and one
    ``segmentations`` entry per video frame: null or a compressed RLE of the video's size.
    Detections of categories absent from the GT ``categories`` are dropped (and not checked
    further), as in the official evaluator.

    Args:
        results: path to the results JSON or the decoded list (not modified).
        gt: the indexed ground truth.

    Returns:
        The kept :class:`Detections`.
    """
    if isinstance(results, list):  # JSON has no NaN: name the entry before serialising
        for i, r in enumerate(results):
            s = r.get("score") if isinstance(r, dict) else None
            if isinstance(s, (float, np.floating)) and not math.isfinite(s):
                raise ValueError(
                    f"results[{i}] (video_id={r.get('video_id')}): score must be a finite "
                    f"number, got {s!r}"
                )
    elif not isinstance(results, str):
        raise ValueError(f"results must be a list of dicts, got {type(results).__name__}")
    doc, what = _decode(results, "results", "results file")
    vpos = {int(v): p for p, v in enumerate(gt.video_ids)}
    cpos = {int(c): p for p, c in enumerate(gt.cat_ids)}
    unknown_videos = set()
    kept, r_idx, r_cat, r_vid, r_score = [], [], [], [], []
    video_len = gt.video_len.tolist()
    dropped = 0
    for i, r in enumerate(doc):
        for key in ("video_id", "score", "category_id", "segmentations"):
            if getattr(r, key) is UNSET:
                vid = None if r.video_id is UNSET else r.video_id
                raise ValueError(f"results[{i}] (video_id={vid}) has no '{key}'")
        vid = r.video_id
        p_v = vpos.get(vid) if isinstance(vid, int) else None
        if p_v is None:
            unknown_videos.add(repr(vid))
            continue
        score = r.score
        if type(score) not in (int, float) or not math.isfinite(score):
            raise ValueError(
                f"results[{i}] (video_id={vid}): score must be a finite number, got {score!r}"
            )
        cat = _as_int_id(r.category_id, f"results[{i}].category_id")
        seq = r.segmentations
        n = video_len[p_v]
        if n >= 0 and len(seq) != n:
            raise ValueError(
                f"results[{i}] (video_id={vid}): {len(seq)} segmentations for a video of {n} frames"
            )
        p_c = cpos.get(cat)
        if p_c is None:
            dropped += 1
            continue
        kept.append(seq)
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
        logger.warning("%d results have a category_id not in the GT categories; they are "
                       "dropped (as in the official evaluator)", dropped)
    r_vid = np.array(r_vid, dtype=np.int64)
    masks = build_masks(kept, [f"results[{i}]" for i in r_idx], gt.video_ids[r_vid],
                        gt.video_hw[r_vid], gt=False,
                        source=f"{what}: " if isinstance(results, str) else "")
    return Detections(np.array(r_idx, dtype=np.int64), np.array(r_cat, dtype=np.int64), r_vid,
                      np.array(r_score, dtype=np.float64), masks, dropped)
