"""Packed masks: the YTVIS JSON read once into flat tables, scored by compiled kernels.

The C extension ``_ytvis_kernels`` (built by ``pip install -e .`` when a compiler is present;
optional) scans the raw JSON bytes once. Each ``"segmentations"`` list of plain RLE frames
(``null`` or ``{"size": [h, w], "counts": "<compressed>" | [runs]}``) becomes the marker string
``"#<track>"`` and rows of :class:`PackedTracks`; each ``"areas"`` list of integers/nulls becomes
``"#<list>"``. ``orjson`` then parses only the small remaining document, and
:func:`packed_video_iou` computes the official video IoU of a batch of videos in one call,
decoding each mask once, frame by frame (memory stays that of one frame's masks).

Everything the kernels do not take (polygons, float ``areas``, unusual RLE sizes or strings) keeps
its original JSON value and goes through the numpy/pycocotools path (:mod:`.ytvis_iou`), which
gives the official numbers on any input; the kernel flags any video whose masks pycocotools would
read in an unusual way, and those videos also take that path. Set ``WSOVVIS_EVAL_KERNELS=0`` to
disable the kernels (the tests compare both paths).
"""

import os
from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import numpy as np

from .ytvis_rle_codec import MARK

try:
    from . import _ytvis_kernels as _kernels
except ImportError:  # pragma: no cover - built by `pip install -e .` when a C compiler exists
    _kernels = None

__all__ = [
    "PackedTracks",
    "accumulate_kernel",
    "kernels_available",
    "load_json_packed",
    "marker_index",
    "pack",
    "packed_video_iou",
]

def kernels_available() -> bool:
    """Whether the compiled kernels are built and not disabled by ``WSOVVIS_EVAL_KERNELS=0``."""
    return _kernels is not None and os.environ.get("WSOVVIS_EVAL_KERNELS", "1") != "0"


def accumulate_kernel():
    """The compiled ``accumulate`` (see ``_ytvis_accumulate.h``), or None when unavailable."""
    return _kernels.accumulate if kernels_available() else None


@dataclass
class PackedTracks:
    """Frames of every packed ``segmentations`` list and values of every packed ``areas`` list.

    Attributes:
        track_start: int64 [tracks + 1], frame rows of each track.
        kind: int8 [frames], ``kind & 3``: 0 null, 1 compressed string, 2 uncompressed run
            lengths; ``kind & 4``: ``counts`` was written before ``size``.
        h, w: int32 [frames], the RLE ``size``.
        off, length: int64 [frames], slice of ``strings`` (kind 1) or ``runs`` (kind 2).
        strings: uint8, unescaped compressed RLE strings; runs: uint32 run lengths.
        area_start: int64 [lists + 1]; area_values: int64 (null stored as 0).
    """

    track_start: np.ndarray
    kind: np.ndarray
    h: np.ndarray
    w: np.ndarray
    off: np.ndarray
    length: np.ndarray
    strings: np.ndarray
    runs: np.ndarray
    area_start: np.ndarray
    area_values: np.ndarray

    @property
    def tables(self) -> Tuple[np.ndarray, ...]:
        """The eight mask tables in the order the kernels take them."""
        return (
            self.track_start,
            self.kind,
            self.h,
            self.w,
            self.off,
            self.length,
            self.strings,
            self.runs,
        )

    def num_frames(self, tracks):
        """Number of frames of track ``tracks`` (an int, or an int array: one count each)."""
        return self.track_start[tracks + 1] - self.track_start[tracks]

    def frame(self, f: int) -> Optional[dict]:
        """Frame row ``f`` as the JSON object it was read from (None for null)."""
        kind = int(self.kind[f])
        if kind & 3 == 0:
            return None
        o, n = int(self.off[f]), int(self.length[f])
        if kind & 3 == 1:
            counts: Any = self.strings[o : o + n].tobytes().decode("ascii")
        else:
            counts = self.runs[o : o + n].tolist()
        size = [int(self.h[f]), int(self.w[f])]
        return {"counts": counts, "size": size} if kind & 4 else {"size": size, "counts": counts}

    def frame_row(self, track: int, t: int) -> int:
        """Row of frame ``t`` of track ``track`` in the frame tables."""
        return int(self.track_start[track]) + int(t)

    def segmentations(self, track: int) -> List[Optional[dict]]:
        """Track ``track`` as its original ``segmentations`` list."""
        f0, f1 = int(self.track_start[track]), int(self.track_start[track + 1])
        return [self.frame(f) for f in range(f0, f1)]

    def area_means(self, lists: np.ndarray) -> np.ndarray:
        """Mean of the non-zero values of each ``areas`` list (0 when none), as the official code.

        The official ``np.array(truthy).mean()`` of integers sums in float64 without rounding
        (|sum| < 2**53) and divides once, which is what this does for all lists at once.
        """
        vals = self.area_values
        nz = (vals != 0).astype(np.int64)
        csum = np.concatenate([[0], np.cumsum(vals)])
        ccnt = np.concatenate([[0], np.cumsum(nz)])
        lo, hi = self.area_start[lists], self.area_start[lists + 1]
        sums, cnts = csum[hi] - csum[lo], ccnt[hi] - ccnt[lo]
        out = np.zeros(len(lists), dtype=np.float64)
        np.divide(sums.astype(np.float64), cnts, out=out, where=cnts > 0)
        return out


def pack(data) -> Optional[Tuple[bytes, PackedTracks]]:
    """Run the packer on raw JSON bytes (the kernels must be built).

    Returns:
        ``(rewritten document, tables)``, or None when a ``segmentations`` / ``areas`` key
        already holds a string.
    """
    out = _kernels.pack_json(data)
    if out is None:
        return None
    text, *tabs = out
    dtypes = (np.int64, np.int8, np.int32, np.int32, np.int64, np.int64, np.uint8, np.uint32)
    dtypes += (np.int64, np.int64)
    return text, PackedTracks(*[np.frombuffer(t, dtype=d) for t, d in zip(tabs, dtypes)])


def load_json_packed(data, parse) -> Tuple[Any, Optional[PackedTracks]]:
    """Parse JSON bytes with their masks packed (when the kernels are available).

    Args:
        data: the raw JSON document (bytes or a memoryview of a mapped file; the tables are
            copies, so it may be released afterwards).
        parse: the JSON parser for the rewritten document (``orjson.loads``).

    Returns:
        ``(document, packed)``; ``packed`` is None (and the document parsed as is) without the
        kernels, when the document holds no packable list, or when a ``segmentations`` or
        ``areas`` key already holds a string (a marker would be ambiguous).
    """
    if not kernels_available():
        return parse(data), None
    out = pack(data)
    if out is None:
        return parse(data), None
    text, packed = out
    if len(packed.track_start) == 1 and len(packed.area_start) == 1:
        return parse(data), None
    try:
        return parse(text), packed
    except Exception:  # the rewrite never makes a valid document invalid; report the original
        return parse(data), None


def marker_index(value: Any, packed: Optional[PackedTracks]) -> int:
    """Index behind a ``"#<k>"`` marker, or -1 when ``value`` is not a marker."""
    if packed is None or type(value) is not str or value[:1] != MARK:
        return -1
    return int(value[1:])


def packed_video_iou(
    dets: PackedTracks,
    gts: PackedTracks,
    hw: np.ndarray,
    d_bounds: np.ndarray,
    d_tracks: np.ndarray,
    d_group: np.ndarray,
    g_bounds: np.ndarray,
    g_tracks: np.ndarray,
    g_group: np.ndarray,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Official video IoU of a batch of videos (see ``_ytvis_iou.h``).

    Args:
        dets, gts: the packed results and ground truth.
        hw: int64 [V, 2] video sizes.
        d_bounds: int64 [V + 1], detections of video ``v`` are ``d_tracks[d_bounds[v]:...]``
            (packed track indices, in score order) with groups ``d_group`` (category; 0 in
            class-agnostic mode). ``g_bounds`` / ``g_tracks`` / ``g_group`` likewise for GT.

    Returns:
        ``(iou, mean_area, status, bad)``: float64, the ``D_v x G_v`` matrices concatenated (0
        across groups); float64 mean non-zero area per detection; int8 [V] status, 0 scored, 1
        to score with pycocotools instead, 2 a corrupt mask (run lengths not summing to
        ``h * w``; entries of status != 0 are 0); int64 [V, 2] for status 2 the (item, frame) of
        that mask, item ``i >= 0`` the i-th detection of the video, ``-(j + 1)`` its j-th GT.
    """
    as64 = lambda a: np.ascontiguousarray(a, dtype=np.int64)  # noqa: E731
    iou, area, status, bad = _kernels.video_iou(
        dets.tables,
        gts.tables,
        as64(hw).ravel(),
        as64(d_bounds),
        as64(d_tracks),
        as64(d_group),
        as64(g_bounds),
        as64(g_tracks),
        as64(g_group),
    )
    return (
        np.frombuffer(iou, dtype=np.float64),
        np.frombuffer(area, dtype=np.float64),
        np.frombuffer(status, dtype=np.int8),
        np.frombuffer(bad, dtype=np.int64).reshape(-1, 2),
    )
