"""Name the tubes of a class-agnostic YTVIS results file (or a GT-style tube JSON) with CLIP.

Inputs are checked completely before any frame is encoded: every tube's video is known, its
number of frames matches the video, and every frame a tube is present on exists on disk.
"""
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from tqdm import tqdm

from wsovvis.data.video_utils import read_video_frame
from wsovvis.utils.rle import CorruptRLEError, check_rle, check_rles

from .tube_classifier import TubeClassifier

__all__ = ["TubeSet", "load_tubes", "videos_from_document", "check_frames", "name_tubes_in_results"]


@dataclass
class TubeSet:
    """Tubes grouped by video: ``{video_id: [(segmentations, score), ...]}`` in input order."""

    by_video: Dict[int, List[tuple]]
    kind: str  # "results" or "annotations"

    @property
    def num_tubes(self) -> int:
        return sum(len(v) for v in self.by_video.values())


def load_tubes(document, source: str = "tubes") -> TubeSet:
    """Tubes of a results list (``video_id``, ``score``, ``segmentations``) or a GT-style dict.

    A GT-style dict (e.g. converted VideoCutLER pseudo tubes) gives one tube per annotation with
    score ``annotation.get("score", 1.0)``.

    Every mask is checked (:func:`wsovvis.utils.rle.check_rles`) before any is decoded.

    Raises:
        ValueError: malformed entry or corrupt mask (names the source, the entry's index, its
            video / annotation id and the frame), no tubes.
    """
    if isinstance(document, dict):
        if not isinstance(document.get("annotations"), list):
            raise ValueError(f"{source}: a JSON object needs an 'annotations' list (GT-style tubes)")
        entries, kind = document["annotations"], "annotations"
    elif isinstance(document, list):
        entries, kind = document, "results"
    else:
        raise ValueError(f"{source}: expected a results list or a GT-style JSON object")
    by_video: Dict[int, List[tuple]] = {}
    for i, e in enumerate(entries):
        where = f"{source}: {kind}[{i}]"
        if not isinstance(e, dict) or "video_id" not in e or not isinstance(e.get("segmentations"), list):
            raise ValueError(f"{where} needs 'video_id' and a 'segmentations' list")
        score = e.get("score", 1.0)
        try:
            score = float(score)
        except (TypeError, ValueError):
            raise ValueError(f"{where} has a non-numeric score {score!r}") from None
        if not score == score:
            raise ValueError(f"{where} has a NaN score")
        try:
            vid = int(e["video_id"])
        except (TypeError, ValueError):
            raise ValueError(f"{where} has a non-integer video_id {e['video_id']!r}") from None
        frames = [t for t, s in enumerate(e["segmentations"]) if s is not None]
        for t in frames:
            s = e["segmentations"][t]
            if not (isinstance(s, dict) and "counts" in s and "size" in s):
                raise ValueError(f"{where}.segmentations[{t}] is neither null nor an RLE")
        try:  # every mask is checked before any is decoded: pycocotools reads corrupt RLEs OOB
            check_rles([e["segmentations"][t] for t in frames])
        except CorruptRLEError:
            for t in frames:  # the error path only: find the frame, one mask at a time
                try:
                    check_rle(e["segmentations"][t])
                except CorruptRLEError as err:
                    raise ValueError(f"{where} (video {e['video_id']}{_ann_id(e)}), frame {t}: "
                                     f"{err}") from None
        by_video.setdefault(vid, []).append((e["segmentations"], score))
    if not by_video:
        raise ValueError(f"{source}: no tubes")
    return TubeSet(by_video, kind)


def _ann_id(entry: dict) -> str:
    return f", annotation {entry['id']}" if "id" in entry else ""


def videos_from_document(document) -> Optional[Dict[int, dict]]:
    """``{video_id: video}`` of a YTVIS JSON's ``videos`` (None if it has none)."""
    if not isinstance(document, dict) or not isinstance(document.get("videos"), list):
        return None
    out = {}
    for i, v in enumerate(document["videos"]):
        if not isinstance(v, dict) or "id" not in v or not isinstance(v.get("file_names"), list):
            raise ValueError(f"videos[{i}] needs an 'id' and a 'file_names' list")
        out[int(v["id"])] = v
    return out


def check_frames(tubes: TubeSet, videos: Dict[int, dict], img_root: str) -> None:
    """Refuse, before any work, tubes whose video or frames are unknown or missing on disk.

    Raises:
        ValueError: a tube's video is not listed, its length differs from the video's, or a
            frame it is present on does not exist (names the video id and the file).
    """
    for vid, items in tubes.by_video.items():
        video = videos.get(vid)
        if video is None:
            raise ValueError(f"video {vid} of the tubes is not among the {len(videos)} listed videos")
        names = video["file_names"]
        needed = set()
        for segs, _ in items:
            if len(segs) != len(names):
                raise ValueError(f"video {vid}: a tube has {len(segs)} frames, the video {len(names)}")
            needed.update(t for t, s in enumerate(segs) if s is not None)
        for t in sorted(needed):
            path = os.path.join(img_root, names[t])
            if not os.path.isfile(path):
                raise ValueError(f"video {vid}: frame {t} of its tubes is not on disk: {path}")


def name_tubes_in_results(classifier: TubeClassifier, tubes: TubeSet, videos: Dict[int, dict],
                          img_root: str, progress: bool = True) -> List[dict]:
    """Name every tube; returns YTVIS results (top-k labels per tube, <= max_dets per video).

    Args:
        classifier: the CLIP tube classifier.
        tubes: from :func:`load_tubes` (checked with :func:`check_frames` first).
        videos: ``{video_id: video}`` with ``file_names`` (relative to ``img_root``), and
            ``height``/``width`` when known.
        img_root: frame folder.
        progress: tqdm bar over videos.
    """
    check_frames(tubes, videos, img_root)
    results = []
    for vid in tqdm(sorted(tubes.by_video), desc="naming tubes", disable=not progress, unit="video"):
        items = tubes.by_video[vid]
        video = videos[vid]
        segs = [s for s, _ in items]
        size = next((s["size"] for tube in segs for s in tube if s is not None), None)
        if size is None:
            continue
        height, width = int(size[0]), int(size[1])
        files = [os.path.join(img_root, f) for f in video["file_names"]]

        def read(t, files=files, height=height, width=width):
            return read_video_frame(files[t], height, width, "RGB")

        for i, cat, score in classifier.name_tubes(read, segs, [s for _, s in items], height, width):
            results.append({"video_id": vid, "score": float(score), "category_id": int(cat),
                            "segmentations": segs[i]})
    return results
