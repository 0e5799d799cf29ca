"""VideoCutLER mask PNGs -> YTVIS pseudo-tube JSON (the driver behind
``tools/convert_videocutler_png_to_json.py``).

One video at a time (optionally in a process pool, output order fixed): list frames and
``mask_<frame>.png`` files, apply the skip policy (skip list, ``min_masks``, ``min_coverage``),
validate (frame sizes from the image headers, mask mode / size, orphan masks), then build one tube
per instance id with :class:`~wsovvis.pseudo.tubes.TubeBuilder`. Every video that is left out is
recorded with a reason code from :mod:`wsovvis.pseudo.skips`.

Video ids are the 1-based positions of the video folders of ``img_root`` in sorted order (or the
ids of a reference YTVIS JSON), so they do not depend on which videos get skipped and reruns give
byte-identical JSON.
"""
import dataclasses
import multiprocessing as mp
import os
from collections import Counter
from typing import Dict, List, Optional, Tuple

from tqdm import tqdm

from wsovvis.utils.io import atomic_write_json, read_json

from .png_io import list_frames, list_masks, read_frame_size, read_id_mask
from .skips import ERROR_REASONS, SKIP_REASONS, VideoSkipped
from .tubes import TubeBuilder

__all__ = [
    "ConvertOptions",
    "ConversionError",
    "ConversionResult",
    "convert_videocutler_pngs",
    "read_skip_list",
    "convert_video",
    "write_outputs",
]


class ConversionError(RuntimeError):
    """Fatal problem (bad arguments, or broken input under ``strict``); nothing is written."""


@dataclasses.dataclass
class ConvertOptions:
    """Options of :func:`convert_videocutler_pngs` (mirrors the CLI flags).

    Attributes:
        mask_root: folder with one ``<video>/mask_<frame>.png`` folder per video.
        img_root: folder with one ``<video>/<frame>.jpg`` folder per video.
        split_name: recorded in the JSON ``info`` and the skip report.
        skip_list: video names or ids to leave out.
        min_masks: skip videos with fewer mask PNGs.
        min_coverage: skip videos with ``#mask PNGs / #frames`` below this.
        num_workers: processes (>= 1); 1 converts in this process.
        category_id: the single category's id (every tube gets it).
        category_name: the single category's name.
        strict: broken input (codes in ``ERROR_REASONS``) raises instead of skipping the video.
        ref_json: optional YTVIS JSON whose video ids (matched by folder name) are reused.
        progress: show a tqdm progress bar.
    """

    mask_root: str
    img_root: str
    split_name: str = ""
    skip_list: Tuple[str, ...] = ()
    min_masks: int = 3
    min_coverage: float = 0.2
    num_workers: int = 1
    category_id: int = 1
    category_name: str = "object"
    strict: bool = False
    ref_json: Optional[str] = None
    progress: bool = True


@dataclasses.dataclass
class ConversionResult:
    """Output of :func:`convert_videocutler_pngs`.

    Attributes:
        dataset: the YTVIS JSON dict (``videos`` may be empty when nothing was converted).
        report: the skip report (summary, options, one record per skipped video).
    """

    dataset: dict
    report: dict

    @property
    def num_converted(self) -> int:
        """Number of videos in ``dataset``."""
        return len(self.dataset["videos"])

    def summary_line(self) -> str:
        """One line: converted / skipped videos (with reasons), instances and frames."""
        s = self.report["summary"]
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s["skipped_by_reason"].items()))
        return (
            f"converted {s['converted']} videos / skipped {s['skipped']}"
            + (f" ({reasons})" if reasons else "")
            + f"; {s['instances']} instances, {s['frames']} frames "
            f"({s['frames_with_masks']} with mask PNGs)"
        )


def read_skip_list(path: str) -> Tuple[str, ...]:
    """Read a skip list: one video name or id per line; blank lines and ``#`` comments ignored."""
    if not os.path.isfile(path):
        raise ConversionError(f"skip list not found: {path}")
    entries = []
    with open(path, "r") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                entries.append(line)
    return tuple(entries)


def convert_video(task: dict) -> dict:
    """Convert one video (runs in a worker process).

    Args:
        task: ``name``, ``video_id``, ``frame_dir`` (or None), ``mask_dir``, ``min_masks``,
            ``min_coverage``, ``ref_length`` and ``ref_size`` (or None).

    Returns:
        ``{"name", "video_id", "status": "ok", "video": {...}, "tubes": [...], "num_masks"}`` or
        ``{"name", "video_id", "status": "skipped", "reason", "detail", "path"}``.
    """
    try:
        return _convert_video(task)
    except VideoSkipped as e:
        rec = e.to_dict()
        if not rec["detail"].startswith("video "):  # errors raised by png_io name only the file
            rec["detail"] = f"video {task['name']!r}: {rec['detail']}"
        return {"name": task["name"], "video_id": task["video_id"], "status": "skipped", **rec}


def _convert_video(task: dict) -> dict:
    name, frame_dir, mask_dir = task["name"], task["frame_dir"], task["mask_dir"]
    if frame_dir is None:
        raise VideoSkipped("no_frames", f"video {name!r} has masks but no frame folder", mask_dir)
    frames = list_frames(frame_dir)
    if not frames:
        raise VideoSkipped("no_frames", f"video {name!r}: no .jpg/.jpeg/.png frames", frame_dir)
    masks = list_masks(mask_dir)
    if not masks:
        raise VideoSkipped("no_masks", f"video {name!r}: no mask_*.png", mask_dir)
    stems = {os.path.splitext(f)[0]: t for t, f in enumerate(frames)}
    orphans = sorted(s for s in masks if s not in stems)
    if orphans:
        raise VideoSkipped(
            "orphan_mask",
            f"video {name!r}: {len(orphans)} mask PNG(s) without a frame, "
            f"e.g. {masks[orphans[0]]!r}",
            os.path.join(mask_dir, masks[orphans[0]]),
        )
    n, num_frames = len(masks), len(frames)
    if task["ref_length"] is not None and task["ref_length"] != num_frames:
        raise VideoSkipped(
            "reference_mismatch",
            f"video {name!r}: {num_frames} frames on disk, {task['ref_length']} in --ref_json",
        )
    if n < task["min_masks"]:
        raise VideoSkipped("too_few_masks", f"video {name!r}: {n} mask PNGs < {task['min_masks']}")
    if n / num_frames < task["min_coverage"]:
        raise VideoSkipped(
            "low_coverage",
            f"video {name!r}: {n}/{num_frames} frames have masks "
            f"({n / num_frames:.3f} < {task['min_coverage']})",
        )
    size = None
    for f in frames:
        path = os.path.join(frame_dir, f)
        hw = read_frame_size(path)
        if size is None:
            size, first = hw, f
        elif hw != size:
            raise VideoSkipped(
                "frame_size_varies",
                f"video {name!r}: frame {f!r} is {hw[0]}x{hw[1]} (HxW) but {first!r} is "
                f"{size[0]}x{size[1]}",
                path,
            )
    height, width = size
    if task.get("ref_size") is not None and tuple(task["ref_size"]) != size:
        raise VideoSkipped(
            "reference_mismatch",
            f"video {name!r}: frames are {height}x{width} (HxW), --ref_json says "
            f"{task['ref_size'][0]}x{task['ref_size'][1]}",
            os.path.join(frame_dir, frames[0]),
        )
    builder = TubeBuilder(num_frames, height, width)
    for stem in sorted(masks, key=stems.__getitem__):
        path = os.path.join(mask_dir, masks[stem])
        id_map = read_id_mask(path)
        if id_map.shape != (height, width):
            raise VideoSkipped(
                "size_mismatch",
                f"video {name!r}: mask is {id_map.shape[0]}x{id_map.shape[1]} (HxW), frame "
                f"{frames[stems[stem]]!r} is {height}x{width}",
                path,
            )
        builder.add_frame(stems[stem], id_map)
    if builder.num_instances == 0:
        raise VideoSkipped("no_instances", f"video {name!r}: all {n} mask PNGs are background")
    video = {
        "file_names": [f"{name}/{f}" for f in frames],
        "length": num_frames,
        "height": height,
        "width": width,
    }
    return {"name": name, "video_id": task["video_id"], "status": "ok", "video": video,
            "tubes": builder.tubes(), "num_masks": n}


def _subdirs(root: str) -> List[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir())


def _reference_ids(ref_json: str) -> Dict[str, tuple]:
    """Video folder name -> (id, length, (height, width) or None) from a YTVIS JSON.

    The folder is the parent of the first file name; Windows backslashes (LV-VIS) are accepted.
    """
    ref = read_json(ref_json, "reference JSON")
    if not isinstance(ref, dict) or not isinstance(ref.get("videos"), list):
        raise ConversionError(f"--ref_json {ref_json}: not a YTVIS JSON (no 'videos' list)")
    out = {}
    for i, v in enumerate(ref["videos"]):
        try:
            parts = v["file_names"][0].replace("\\", "/").split("/")
            size = (int(v["height"]), int(v["width"])) if "height" in v and "width" in v else None
            entry = (int(v["id"]), int(v.get("length", len(v["file_names"]))), size)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise ConversionError(f"--ref_json {ref_json}: videos[{i}] is malformed: {e!r}") from e
        if len(parts) < 2:
            raise ConversionError(f"--ref_json {ref_json}: video {entry[0]} file_names have no "
                                  "folder")
        if parts[-2] in out:
            raise ConversionError(f"--ref_json {ref_json}: folder {parts[-2]!r} used by videos "
                                  f"{out[parts[-2]][0]} and {entry[0]}")
        out[parts[-2]] = entry
    return out


def _make_tasks(opts: ConvertOptions):
    """Split the videos into tasks to convert and skip records (skip list, not in reference)."""
    for root, flag in ((opts.mask_root, "--mask_root"), (opts.img_root, "--img_root")):
        if not os.path.isdir(root):
            raise ConversionError(f"{flag} is not a folder: {root}")
    frame_videos = _subdirs(opts.img_root)
    mask_videos = _subdirs(opts.mask_root)
    if not frame_videos:
        raise ConversionError(f"--img_root has no video folders: {opts.img_root}")
    if not set(frame_videos) & set(mask_videos) and "masks" in mask_videos:
        raise ConversionError(
            f"no video folder of --mask_root matches --img_root; did you mean "
            f"--mask_root {os.path.join(opts.mask_root, 'masks')}?"
        )
    ref = _reference_ids(opts.ref_json) if opts.ref_json else None
    ids = {n: i + 1 for i, n in enumerate(frame_videos)} if ref is None else {
        n: ref[n][0] for n in frame_videos if n in ref}
    skip = set(opts.skip_list)
    matched = set()
    tasks, skipped = [], []
    for name in sorted(set(frame_videos) | set(mask_videos)):
        vid = ids.get(name)
        hits = {name, str(vid)} & skip if vid is not None else {name} & skip
        if hits:
            matched |= hits
            skipped.append(_skip_record(name, vid, "in_skip_list", f"video {name!r} skipped"))
            continue
        in_frames = name in frame_videos
        if ref is not None and in_frames and name not in ref:
            skipped.append(_skip_record(name, None, "not_in_reference",
                                        f"video {name!r} is not in {opts.ref_json}"))
            continue
        tasks.append({
            "name": name,
            "video_id": vid,
            "frame_dir": os.path.join(opts.img_root, name) if in_frames else None,
            "mask_dir": os.path.join(opts.mask_root, name),
            "min_masks": opts.min_masks,
            "min_coverage": opts.min_coverage,
            "ref_length": ref[name][1] if ref is not None and name in ref else None,
            "ref_size": ref[name][2] if ref is not None and name in ref else None,
        })
    return tasks, skipped, sorted(skip - matched)


def _skip_record(name, video_id, reason, detail, path=None) -> dict:
    return {"name": name, "video_id": video_id, "status": "skipped", "reason": reason,
            "detail": detail, "path": path}


def _run_tasks(tasks: List[dict], opts: ConvertOptions):
    """Yield results of :func:`convert_video` in task order (pool when num_workers > 1)."""
    bar = dict(total=len(tasks), desc=f"videocutler->json {opts.split_name}".strip(),
               unit="video", disable=not opts.progress, dynamic_ncols=True)
    workers = min(max(int(opts.num_workers), 1), max(len(tasks), 1))
    if workers <= 1:
        yield from tqdm(map(convert_video, tasks), **bar)
        return
    with mp.get_context().Pool(workers) as pool:
        yield from tqdm(pool.imap(convert_video, tasks, chunksize=1), **bar)


def convert_videocutler_pngs(opts: ConvertOptions) -> ConversionResult:
    """Convert a VideoCutLER mask folder to a YTVIS pseudo-tube dataset dict and a skip report.

    Args:
        opts: see :class:`ConvertOptions`.

    Returns:
        A :class:`ConversionResult`; nothing is written to disk.

    Raises:
        ConversionError: bad folders / reference JSON, or (``strict``) the first broken file.
    """
    if opts.min_masks < 0 or not 0.0 <= opts.min_coverage <= 1.0:
        raise ConversionError("--min_masks must be >= 0 and --min_coverage in [0, 1]")
    if opts.category_id <= 0:
        raise ConversionError("--category_id must be > 0")
    if isinstance(opts.num_workers, bool) or int(opts.num_workers) < 1:
        raise ConversionError(f"--num_workers must be >= 1, got {opts.num_workers}")
    tasks, skipped, unmatched = _make_tasks(opts)
    done = []
    for res in _run_tasks(tasks, opts):
        if res["status"] == "ok":
            done.append(res)
            continue
        if opts.strict and res["reason"] in ERROR_REASONS:
            raise ConversionError(
                f"--strict: video {res['name']!r}: {res['reason']}: {res['detail']}"
                + (f" [file: {res['path']}]" if res["path"] else "")
            )
        skipped.append(res)
    done.sort(key=lambda r: r["video_id"])
    videos, annotations = [], []
    for res in done:
        v = res["video"]
        videos.append({"id": res["video_id"], **v})
        for tube in res["tubes"]:
            annotations.append({
                "id": len(annotations) + 1,
                "video_id": res["video_id"],
                "category_id": opts.category_id,
                "iscrowd": 0,
                "height": v["height"],
                "width": v["width"],
                "length": v["length"],
                "png_id": tube["png_id"],
                "segmentations": tube["segmentations"],
                "bboxes": tube["bboxes"],
                "areas": tube["areas"],
            })
    dataset = {
        "info": {
            "description": "VideoCutLER pseudo tubes (class-agnostic), wsovvis",
            "split": opts.split_name,
            "min_masks": opts.min_masks,
            "min_coverage": opts.min_coverage,
        },
        "videos": videos,
        "annotations": annotations,
        "categories": [{"id": opts.category_id, "name": opts.category_name,
                        "supercategory": opts.category_name}],
    }
    skipped.sort(key=lambda r: r["name"])
    report = _report(opts, done, skipped, unmatched)
    return ConversionResult(dataset=dataset, report=report)


def write_outputs(result: ConversionResult, out_json: str, skip_report: str) -> bool:
    """Write the skip report, and the tube JSON if at least one video was converted (atomically).

    Args:
        result: output of :func:`convert_videocutler_pngs`.
        out_json: destination of the tube JSON.
        skip_report: destination of the skip report (it records ``out_json`` or null).

    Returns:
        True when ``out_json`` was written; a pre-existing ``out_json`` is left untouched otherwise.
    """
    written = os.path.abspath(out_json) if result.num_converted else None
    if written:
        atomic_write_json(result.dataset, out_json, separators=(",", ":"))
    atomic_write_json(dict(result.report, out_json=written), skip_report, indent=1)
    return written is not None


def _report(opts, done, skipped, unmatched) -> dict:
    options = dataclasses.asdict(opts)
    options["skip_list"] = list(opts.skip_list)
    return {
        "summary": {
            "converted": len(done),
            "skipped": len(skipped),
            "instances": sum(len(r["tubes"]) for r in done),
            "frames": sum(r["video"]["length"] for r in done),
            "frames_with_masks": sum(r["num_masks"] for r in done),
            "skipped_by_reason": dict(Counter(r["reason"] for r in skipped)),
        },
        "options": options,
        "reasons": {k: SKIP_REASONS[k] for k in sorted({r["reason"] for r in skipped})},
        "skipped": [
            {k: r[k] for k in ("name", "video_id", "reason", "detail", "path")} for r in skipped
        ],
        "unmatched_skip_list": unmatched,
    }
