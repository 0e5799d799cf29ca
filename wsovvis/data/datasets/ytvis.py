"""YouTube-VIS / LV-VIS JSON -> detectron2 dataset dicts, and dataset registration.

The JSON is the YTVIS 2019 format (``videos``, ``annotations`` with per-frame ``segmentations``,
``categories``) as used by LV-VIS, VNext and the wsovvis pseudo-tube writer. See
``docs/CONTRACTS.md`` for the produced dicts.
"""
import logging
import os
from typing import Dict, List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from fvcore.common.timer import Timer

from wsovvis.utils.io import read_json
from wsovvis.utils.rle import check_compressed_counts, rle_bboxes, to_compressed_rle

__all__ = [
    "load_ytvis_json",
    "load_ytvis_categories",
    "register_ytvis_instances",
    "ensure_ytvis_metadata",
    "unregister_ytvis_instances",
]

logger = logging.getLogger(__name__)

_VIDEO_KEYS = ("id", "file_names", "height", "width")
_ANN_KEYS = ("id", "video_id", "category_id", "segmentations")
# name -> (json_file, image_root, metadata) of datasets registered by register_ytvis_instances
_REGISTERED: Dict[str, tuple] = {}


def _require(record: dict, keys: Sequence[str], json_file: str, what: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise KeyError(f"{json_file}: {what} is missing required key(s) {missing}")


def load_ytvis_categories(json_file: str, categories: Optional[List[dict]] = None) -> dict:
    """Category metadata of a YTVIS JSON, in detectron2's naming.

    Args:
        json_file: the YTVIS JSON (read only when ``categories`` is None).
        categories: the JSON's ``categories`` list, if already loaded.

    Returns:
        ``{"thing_classes", "thing_dataset_id_to_contiguous_id"}`` plus ``"thing_partitions"``
        (aligned with the classes) when every category has an LV-VIS ``partition``. Contiguous
        ids follow the sorted dataset ids.
    """
    if categories is None:
        categories = read_json(json_file, "YTVIS annotation file").get("categories", [])
    for c in categories:
        _require(c, ("id", "name"), json_file, f"category {c.get('id', c)}")
    cats = sorted(categories, key=lambda c: c["id"])
    ids = [c["id"] for c in cats]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{json_file}: duplicate category ids in {ids}")
    meta = {
        "thing_classes": [c["name"] for c in cats],
        "thing_dataset_id_to_contiguous_id": {cid: i for i, cid in enumerate(ids)},
    }
    if cats and all("partition" in c for c in cats):
        meta["thing_partitions"] = [int(c["partition"]) for c in cats]
    return meta


def _set_metadata(dataset_name: str, json_file: str, values: dict) -> None:
    """Set metadata, raising a readable error (not detectron2's assert) if it would change."""
    meta = MetadataCatalog.get(dataset_name)
    for key, val in values.items():
        old = meta.get(key, None)
        if old is None:
            setattr(meta, key, val)
        elif (list(old) if isinstance(old, tuple) else old) != val:
            raise ValueError(
                f"Metadata '{key}' of dataset '{dataset_name}' is already {old!r}, but {json_file} "
                f"gives {val!r}. Register the dataset with matching metadata or under another name."
            )


def _frame_objects(ann, video, json_file, id_map, extra_keys):
    """Per-frame object dicts of one track (None where the track is absent)."""
    ann_id, vid = ann["id"], video["id"]
    h, w, length = video["height"], video["width"], video["length"]
    where = f"{json_file}: annotation id {ann_id} (video id {vid})"
    if not isinstance(ann_id, int) or ann_id <= 0:
        raise ValueError(f"{where}: track ids must be positive integers")
    segs = ann["segmentations"]
    if len(segs) != length:
        raise ValueError(f"{where}: {len(segs)} segmentations for a video of length {length}")
    boxes = ann.get("bboxes")
    if boxes is not None and len(boxes) != length:
        raise ValueError(f"{where}: {len(boxes)} bboxes for a video of length {length}")
    if ann["category_id"] not in id_map:
        raise ValueError(f"{where}: category_id {ann['category_id']} is not in 'categories'")
    frames, rles = [], []
    for t, seg in enumerate(segs):
        if not seg:  # null (or an empty polygon list / dict): absent on this frame
            continue
        if isinstance(seg, dict):
            if "size" not in seg or "counts" not in seg:
                raise ValueError(f"{where}: frame {t} RLE needs 'size' and 'counts'")
            if _plain_compressed(seg):  # the common case, checked by _check_compressed_rles
                if seg["size"] != [h, w]:
                    raise ValueError(
                        f"{where}: frame {t} RLE size {seg['size']} != video size [{h}, {w}]"
                    )
                frames.append(t)
                rles.append(seg["counts"])
                continue
        try:  # uncompressed RLE / polygons / unusual sizes: checked here (wsovvis.utils.rle)
            rle = to_compressed_rle(seg, h, w)
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{where}: frame {t} has an invalid segmentation: {e}") from e
        if [int(v) for v in rle["size"]] != [h, w]:
            raise ValueError(f"{where}: frame {t} RLE size {rle['size']} != video size [{h}, {w}]")
        counts = rle["counts"]
        frames.append(t)
        rles.append(counts.decode("ascii"))
    if not rles:
        return []
    need_box = [i for i, t in enumerate(frames) if boxes is None or boxes[t] is None]
    derived = {}
    if need_box:
        boxes_of = rle_bboxes([{"size": [h, w], "counts": rles[i]} for i in need_box])
        derived = dict(zip(need_box, boxes_of))
    category_id = id_map[ann["category_id"]]
    iscrowd = int(ann.get("iscrowd", 0))
    extra = {k: ann[k] for k in extra_keys if k in ann}
    out = []
    for i, (t, counts) in enumerate(zip(frames, rles)):
        box = derived[i] if i in derived else boxes[t]
        if not isinstance(box, (list, tuple)) or len(box) != 4:
            raise ValueError(f"{where}: frame {t} bbox {box!r:.60} is not [x, y, w, h]")
        obj = {
            "id": ann_id,
            "category_id": category_id,
            "bbox": [float(v) for v in box],
            "bbox_mode": BoxMode.XYWH_ABS,
            "segmentation": {"size": [h, w], "counts": counts},
            "iscrowd": iscrowd,
        }
        if extra:
            obj.update(extra)
        out.append((t, obj))
    return out


def _plain_compressed(seg: dict) -> bool:
    """A compressed RLE with str counts and a ``[h, w]`` list of non-negative ints."""
    size = seg.get("size")
    return (
        isinstance(seg.get("counts"), str)
        and type(size) is list
        and len(size) == 2
        and type(size[0]) is int
        and type(size[1]) is int
        and size[0] >= 0
        and size[1] >= 0
    )


def _check_compressed_rles(annotations: List[dict], by_id: dict, json_file: str) -> None:
    """Check every compressed RLE string of the file (those of the video's size) in one pass.

    pycocotools decodes a string whose run lengths do not sum to ``h * w`` outside its buffer,
    so such a mask must never reach training (see :mod:`wsovvis.utils.rle`). Strings of another
    size are reported by :func:`_frame_objects`.
    """
    strings, sizes, where = [], [], []
    for i, ann in enumerate(annotations):
        segs = ann.get("segmentations") if isinstance(ann, dict) else None
        rec = by_id.get(ann.get("video_id")) if isinstance(ann, dict) else None
        if not isinstance(segs, list) or rec is None:
            continue  # reported by the per-annotation checks
        hw = [rec["height"], rec["width"]]
        for t, seg in enumerate(segs):
            if type(seg) is dict and _plain_compressed(seg) and seg["size"] == hw:
                strings.append(seg["counts"])
                sizes.append(seg["size"])
                where.append((i, t))
    if not strings:
        return
    bad = check_compressed_counts(strings, sizes)
    if bad is not None:
        i, t = where[bad[0]]
        ann = annotations[i]
        raise ValueError(
            f"{json_file}: annotation id {ann.get('id', '?')} (video id "
            f"{ann.get('video_id', '?')}) frame {t} has an invalid segmentation: {bad[1]}"
        )


def _video_record(video, image_root, json_file):
    _require(video, _VIDEO_KEYS, json_file, f"video id {video.get('id', '?')}")
    vid = video["id"]
    names = video["file_names"]
    length = int(video.get("length", len(names)))
    if len(names) != length:
        raise ValueError(
            f"{json_file}: video id {vid} has {len(names)} file_names but length {length}"
        )
    if length < 1:
        raise ValueError(f"{json_file}: video id {vid} has no frames")
    for key in ("height", "width"):
        value = video[key]
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not integral or value < 1:
            raise ValueError(f"{json_file}: video id {vid} has {key} {value!r} (a positive int)")
    bad = [f for f in names if not isinstance(f, str) or not f]
    if bad:
        raise ValueError(
            f"{json_file}: video id {vid} has file_names that are not paths: {bad[:3]}"
        )
    files = [os.path.abspath(os.path.join(image_root, f.replace("\\", "/"))) for f in names]
    return {
        "file_names": [f.replace(os.sep, "/") for f in files],
        "height": int(video["height"]),
        "width": int(video["width"]),
        "length": length,
        "video_id": vid,
    }


def load_ytvis_json(
    json_file: str,
    image_root: str,
    dataset_name: Optional[str] = None,
    extra_annotation_keys: Optional[Sequence[str]] = None,
) -> List[dict]:
    """Load a YouTube-VIS / LV-VIS format JSON as detectron2 dataset dicts (one per video).

    Accepts compressed RLE (``counts`` str or bytes), uncompressed RLE, polygons, ``null`` on
    absent frames, missing ``bboxes`` / ``areas`` (boxes are then derived from the RLE with
    pycocotools), Windows backslashes in ``file_names``, LV-VIS ``partition`` on categories and
    images-only JSON (no ``annotations`` key: the dicts then have no ``"annotations"``).

    Args:
        json_file: path of the JSON.
        image_root: directory the ``file_names`` are relative to.
        dataset_name: if given, ``thing_classes``, ``thing_dataset_id_to_contiguous_id`` and
            (LV-VIS) ``thing_partitions`` are set in its metadata.
        extra_annotation_keys: annotation keys copied to every per-frame object (e.g. "score").

    Returns:
        list[dict] in the format of ``docs/CONTRACTS.md``; ``annotations[t]`` lists the objects
        present on frame t, with contiguous ``category_id`` and the track ``id``.

    Raises:
        FileNotFoundError: missing JSON or image root.
        KeyError: a record lacks a required key.
        ValueError: inconsistent lengths, sizes, ids or categories, or a corrupt mask (run
            lengths not summing to height x width, malformed RLE or polygon); the message names
            the JSON file, the video id, the annotation id and the frame.
    """
    timer = Timer()
    json_file = os.fspath(json_file)
    data = read_json(json_file, "YTVIS annotation file")
    if not isinstance(data, dict):
        raise ValueError(f"{json_file}: expected a JSON object with 'videos', got {type(data)}")
    _require(data, ("videos",), json_file, "the top-level object")
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"image root {image_root} of {json_file} does not exist")
    meta = load_ytvis_categories(json_file, data.get("categories", []))
    if dataset_name is not None and meta["thing_classes"]:
        _set_metadata(dataset_name, json_file, meta)
    id_map = meta["thing_dataset_id_to_contiguous_id"]

    records, by_id = [], {}
    for video in data["videos"]:
        rec = _video_record(video, image_root, json_file)
        if rec["video_id"] in by_id:
            raise ValueError(f"{json_file}: duplicate video id {rec['video_id']}")
        by_id[rec["video_id"]] = rec
        records.append(rec)
    if timer.seconds() > 1:
        logger.info(f"Parsed {json_file} in {timer.seconds():.2f} seconds.")

    if "annotations" not in data:
        logger.info(f"Loaded {len(records)} videos (images only) in YTVIS format from {json_file}")
        return records

    _check_compressed_rles(data["annotations"], by_id, json_file)
    for rec in records:
        rec["annotations"] = [[] for _ in range(rec["length"])]
    extra_keys = list(extra_annotation_keys or [])
    seen_ids = set()
    num_tracks = num_objs = 0
    for ann in data["annotations"]:
        _require(ann, _ANN_KEYS, json_file, f"annotation id {ann.get('id', '?')}")
        if ann["video_id"] not in by_id:
            raise ValueError(
                f"{json_file}: annotation id {ann['id']} refers to unknown video id "
                f"{ann['video_id']}"
            )
        if ann["id"] in seen_ids:
            raise ValueError(f"{json_file}: duplicate annotation id {ann['id']}")
        seen_ids.add(ann["id"])
        rec = by_id[ann["video_id"]]
        video = {"id": rec["video_id"], "height": rec["height"], "width": rec["width"],
                 "length": rec["length"]}
        objs = _frame_objects(ann, video, json_file, id_map, extra_keys)
        for t, obj in objs:
            rec["annotations"][t].append(obj)
        num_tracks += bool(objs)
        num_objs += len(objs)
    num_frames = sum(r["length"] for r in records)
    logger.info(
        f"Loaded {len(records)} videos ({num_frames} frames) with {num_tracks} instances "
        f"({num_objs} instance-frames) in YTVIS format from {json_file} "
        f"in {timer.seconds():.2f} s"
    )
    return records


def ensure_ytvis_metadata(dataset_name: str, categories: Optional[List[dict]] = None) -> None:
    """Fill the class metadata of a registered YTVIS dataset from its JSON if not set yet.

    Useful before evaluation when the dataset dicts themselves were never loaded.

    Args:
        dataset_name: a dataset registered with :func:`register_ytvis_instances`.
        categories: the ``categories`` list of its JSON if the caller has read it already (the
            evaluator reads it without decoding the masks); None reads the JSON.
    """
    meta = MetadataCatalog.get(dataset_name)
    if meta.get("thing_dataset_id_to_contiguous_id") is None:
        json_file = meta.get("json_file")
        if json_file is None:
            raise KeyError(f"dataset '{dataset_name}' has no json_file in its metadata")
        _set_metadata(dataset_name, json_file, load_ytvis_categories(json_file, categories))


def register_ytvis_instances(name: str, metadata: dict, json_file: str, image_root: str) -> None:
    """Register a YTVIS-format dataset with detectron2 (idempotent).

    The JSON is read only when the dataset is first requested from ``DatasetCatalog``; class
    names, the dataset-id mapping and LV-VIS partitions are then set in the metadata. Calling
    again with the same arguments is a no-op.

    Args:
        name: dataset name, e.g. "lvvis_val".
        metadata: extra metadata (may be empty).
        json_file: path of the YTVIS JSON.
        image_root: directory containing the frames.

    Raises:
        ValueError: ``name`` is already registered with different arguments.
    """
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    key = (json_file, image_root, dict(metadata))
    if name in _REGISTERED:
        if _REGISTERED[name] == key:
            return
        raise ValueError(
            f"Dataset '{name}' is already registered with json_file={_REGISTERED[name][0]}, "
            f"image_root={_REGISTERED[name][1]}, metadata={_REGISTERED[name][2]}; refusing to "
            f"re-register it with json_file={json_file}, image_root={image_root}, "
            f"metadata={dict(metadata)}"
        )
    if name in DatasetCatalog.list():
        raise ValueError(f"Dataset '{name}' is already registered (not by wsovvis)")
    DatasetCatalog.register(name, lambda: load_ytvis_json(json_file, image_root, name))
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="ytvis", **metadata
    )
    _REGISTERED[name] = key


def unregister_ytvis_instances(name: str) -> None:
    """Remove a dataset registered by :func:`register_ytvis_instances` (and its metadata)."""
    if _REGISTERED.pop(name, None) is not None:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
