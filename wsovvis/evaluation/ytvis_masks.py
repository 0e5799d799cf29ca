"""Per-frame masks as run lengths, and the official video IoU of (detection, GT) pairs.

Every RLE ``counts`` value (compressed string or uncompressed list, still JSON text) is turned into
run lengths once (:func:`build_masks`); polygons are rasterised by pycocotools. The video IoU of a
pair is the official one (youtubevos/cocoapi ``YTVOSeval.computeIoU``): over ``zip(d, g)`` frames,
a frame where both are present adds the areas pycocotools' ``merge`` gives for the intersection
and the union (nothing when their sizes differ), a frame where one is present adds its area to the
union; ``IoU = I / U``, or 0 when ``U == 0``. Areas are integers, so the sums are exact and one
float64 division is made per pair, as the official code does.

The two loops over run lengths are compiled (``_ytvis_rle.c``, built by ``pip install -e .``);
without a compiler ``_ytvis_rle_py`` runs the same loops in Python (same numbers, much slower).
"""

from dataclasses import dataclass
from typing import List, Sequence

import msgspec
import numpy as np
import orjson

try:
    from . import _ytvis_rle as rle
except ImportError:  # pragma: no cover - no C compiler at install time
    from . import _ytvis_rle_py as rle

__all__ = ["Masks", "build_masks", "pair_ious", "corrupt_mask_message"]


@dataclass
class Masks:
    """The frames of N tracks.

    Attributes:
        track_start: int64 [N + 1], track ``i`` owns frame rows ``track_start[i]:[i + 1]``.
        present: bool [F], the frame has a mask (null, ``[]`` and ``{}`` are absent).
        h, w: int64 [F], the mask size (-1 when absent).
        area: int64 [F], pixels in the mask (0 when absent).
        box: int64 [F, 4], foreground box x0, x1, y0, y1 (end-exclusive; zeros when empty).
        exact: bool [F], absent, or no zero run after the first and fewer than 2**31 pixels:
            pycocotools' merge of two such frames gives the plain intersection and union.
        runs: uint32 run lengths; row ``f`` owns ``runs[run_start[f]:run_start[f + 1]]``.
    """

    track_start: np.ndarray
    present: np.ndarray
    h: np.ndarray
    w: np.ndarray
    area: np.ndarray
    box: np.ndarray
    exact: np.ndarray
    runs: np.ndarray
    run_start: np.ndarray

    def num_frames(self, tracks: np.ndarray) -> np.ndarray:
        """Number of frames of each track in ``tracks``."""
        return self.track_start[tracks + 1] - self.track_start[tracks]

    def mean_areas(self, tracks: np.ndarray) -> np.ndarray:
        """Mean non-zero frame area of each track (0 when none), as the official ``loadRes``."""
        nf = self.num_frames(tracks)
        rows = np.repeat(self.track_start[tracks], nf) + _ranges(nf)
        owner = np.repeat(np.arange(len(tracks)), nf)
        total = np.bincount(owner, weights=self.area[rows], minlength=len(tracks))
        count = np.bincount(owner, weights=self.area[rows] > 0, minlength=len(tracks))
        out = np.zeros(len(tracks))
        np.divide(total, count, out=out, where=count > 0)
        return out


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(n) for n in lengths])``."""
    return np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def corrupt_mask_message(what: str, video_id: int, t: int, h: int, w: int) -> str:
    """The error for a mask whose run lengths do not sum to ``h * w``."""
    return (
        f"{what} (video_id={video_id}) frame {t}: the RLE run lengths do not sum to "
        f"height x width = {h} x {w} (a corrupt mask)"
    )


def _decode(fragments: List[bytes], heights: np.ndarray, allow_lists: bool):
    """Run lengths of JSON ``counts`` fragments (``decode`` of ``_ytvis_rle.c``).

    Returns:
        ``(runs uint32, starts int64 [n + 1], status int8, stats int64 [n, 7])``: status 1 marks
        a fragment that is not a valid RLE, 3 a list while ``allow_lists`` is False; stats:
        total, area, foreground box x0, x1, y0, y1 (masks of ``heights`` rows), whether a run
        after the first is 0.
    """
    heights = np.ascontiguousarray(heights, dtype=np.int64)
    for attempt in range(2):
        out = rle.decode(fragments, heights, allow_lists)
        runs, starts, status, stats = (np.frombuffer(b, d) for b, d in zip(out, _DECODED))
        retry = np.nonzero(status == 2)[0]  # JSON escapes other than \\ and \/
        if len(retry) == 0 or attempt:
            return runs, starts, np.where(status == 2, 1, status), stats.reshape(-1, 7)
        fragments = list(fragments)
        for i in retry.tolist():  # re-serialised by orjson, which escapes only what it must
            try:
                fragments[i] = orjson.dumps(orjson.loads(bytes(fragments[i])))
            except orjson.JSONDecodeError:
                fragments[i] = b"!"


_DECODED = (np.uint32, np.int64, np.int8, np.int64)


def _polygon_fragment(polygons, h: int, w: int) -> bytes:
    """A polygon frame as the JSON text of its compressed RLE (``YTVOS.annToRLE``)."""
    import pycocotools.mask as mask_util  # only polygons need it (saves its import time)

    counts = mask_util.merge(mask_util.frPyObjects(polygons, h, w))["counts"]
    return b'"' + counts.replace(b"\\", b"\\\\") + b'"'


def build_masks(tracks: Sequence[Sequence], names: Sequence[str], video_ids: np.ndarray,
                video_hw: np.ndarray, gt: bool, source: str = "") -> Masks:
    """Decode the frames of all tracks.

    Args:
        tracks: per track, its ``segmentations`` as parsed by :mod:`.ytvis_data` (null, an RLE
            struct with ``size`` and raw ``counts``, or a polygon list).
        names: per track, the entry for error messages (``"results[3]"``).
        video_ids, video_hw: per track, its video id and ``(height, width)`` (-1: unknown).
        gt: ground truth (uncompressed lists and polygons allowed) or results (compressed RLE of
            the video's size or null only).
        source: prefix of error messages (the file).

    Returns:
        The :class:`Masks`.

    Raises:
        ValueError: an unsupported or corrupt frame, naming the entry, video and frame.
    """
    lengths = np.fromiter((len(s) for s in tracks), np.int64, len(tracks))
    track_start = np.concatenate([[0], np.cumsum(lengths)])
    frames = [f for seq in tracks for f in seq]
    rows = [j for j, f in enumerate(frames) if f is not None and f.__class__ is not list]
    polygon_rows = [j for j, f in enumerate(frames) if f.__class__ is list and f]
    track_of = np.repeat(np.arange(len(tracks)), lengths)

    def where(j):  # (file and entry, video id, frame) of frame row j
        i = int(track_of[j])
        return source + names[i], int(video_ids[i]), int(j - track_start[i])

    hws = np.full((len(frames), 2), -1, dtype=np.int64)

    def sizes(rows):  # two int lists (no tuple per frame for the garbage collector to track)
        h, w = [frames[j].size.h for j in rows], [frames[j].size.w for j in rows]
        return np.stack([np.array(h, np.int64), np.array(w, np.int64)], axis=1)

    try:
        hws[rows] = sizes(rows).reshape(-1, 2)
        sizes_ok = bool((hws[rows] >= 0).all())
    except AttributeError:  # a frame without "size"
        sizes_ok = False
    if not sizes_ok:  # find the first bad size; "{}" frames are absent (falsy), as officially
        rows = [j for j in rows if _check_size(frames[j], *where(j), gt)]
        hws[rows] = sizes(rows).reshape(-1, 2)
    fragments = [frames[j].counts for j in rows]
    if polygon_rows:
        if not gt:
            _bad_frame(*where(polygon_rows[0]), frames[polygon_rows[0]], gt, "")
        hws[polygon_rows] = video_hw[track_of[polygon_rows]]
        for j in polygon_rows:
            if hws[j, 0] < 0:
                _bad_frame(*where(j), frames[j], gt, "polygons need the video's height/width")
            fragments.append(_polygon_fragment(frames[j], int(hws[j, 0]), int(hws[j, 1])))
        rows = rows + polygon_rows
        order = np.argsort(rows, kind="stable")  # runs are laid out in frame-row order
        rows, fragments = [rows[k] for k in order], [fragments[k] for k in order]
    runs, starts, status, stats = _decode(fragments, hws[rows, 0], allow_lists=gt)
    total = stats[:, 0]
    rows = np.array(rows, dtype=np.int64)
    for j in np.nonzero(status != 0)[0][:1].tolist():
        if status[j] == 3 or not memoryview(fragments[j]):  # a list, or no "counts"
            _bad_frame(*where(rows[j]), frames[rows[j]], gt, "")
        name, vid, t = where(rows[j])
        raise ValueError(
            f"{name} (video_id={vid}) frame {t}: 'counts' is not a valid RLE: "
            f"{bytes(fragments[j])[:60]!r}"
        )
    h, w = hws[rows, 0], hws[rows, 1]
    if not gt:  # results must be at the video's size (officially their IoU silently becomes 0)
        vhw = video_hw[track_of[rows]]
        wrong = (vhw[:, 0] >= 0) & ((h != vhw[:, 0]) | (w != vhw[:, 1]))
        for j in np.nonzero(wrong)[0][:1].tolist():
            name, vid, t = where(rows[j])
            raise ValueError(
                f"{name} (video_id={vid}) frame {t}: RLE size {[int(h[j]), int(w[j])]} differs "
                f"from the video size {vhw[j].tolist()}"
            )
    for j in np.nonzero(total != h * w)[0][:1].tolist():
        raise ValueError(corrupt_mask_message(*where(rows[j]), int(h[j]), int(w[j])))
    nf = len(frames)
    present = np.zeros(nf, dtype=bool)
    present[rows] = True
    area = np.zeros(nf, dtype=np.int64)
    area[rows] = stats[:, 1] % 2**32  # rleArea sums in uint32
    box = np.zeros((nf, 4), dtype=np.int64)
    box[rows] = stats[:, 2:6]
    exact = np.ones(nf, dtype=bool)  # rleMerge gives the plain intersection / union here
    exact[rows] = (stats[:, 6] == 0) & (total < 2**31)
    run_start = np.zeros(nf + 1, dtype=np.int64)
    run_start[rows + 1] = np.diff(starts)
    return Masks(track_start, present, hws[:, 0], hws[:, 1], area, box, exact, runs,
                 np.cumsum(run_start))


def _check_size(frame, name, video_id, t, gt) -> bool:
    """False for an absent ``{}`` frame; raises for a frame without a valid ``size``."""
    size = frame.size
    if size is msgspec.UNSET and not memoryview(frame.counts):
        return False
    if size is msgspec.UNSET or size.h < 0 or size.w < 0:
        _bad_frame(name, video_id, t, frame, gt, "needs 'size' [h, w] and 'counts'")
    return True


def _bad_frame(name, video_id, t, frame, gt, why):
    kind = "a compressed RLE dict {'size', 'counts': str}"
    kind = "an RLE dict {'size', 'counts'}, polygons" if gt else kind
    if not isinstance(frame, list):
        size = None if frame.size is msgspec.UNSET else [frame.size.h, frame.size.w]
        frame = {"size": size, "counts": bytes(frame.counts)[:40].decode("ascii", "replace")}
    why = f" ({why})" if why else ""
    raise ValueError(f"{name} (video_id={video_id}) frame {t}: expected {kind} or null, got "
                     f"{frame!r:.80}{why}")


def pair_ious(dm: Masks, gm: Masks, d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Official video IoU of detection track ``d[k]`` and GT track ``g[k]``, where it can be
    >= 0.5 (the lowest IoU threshold); 0 where it is certainly below.

    Matching only compares IoUs with thresholds >= 0.5, so pairs whose IoU is certainly below
    need no more mask merges: with I <= bound (per frame: the smaller area and the overlap of
    the foreground boxes; exact for the frames merged so far) and U = |d| + |g| - I,
    3 * bound < |d| + |g| gives 2 * I < U, so the float64 I / U (integers < 2**53) is below 0.5.

    Args:
        dm, gm: detection and GT masks.
        d, g: int64 [P] track indices.

    Returns:
        float64 [P].
    """
    common = np.minimum(dm.num_frames(d), gm.num_frames(g))  # zip() truncation
    pair = np.repeat(np.arange(len(d)), common)
    t = _ranges(common)
    fd = dm.track_start[d][pair] + t
    fg = gm.track_start[g][pair] + t
    both = dm.present[fd] & gm.present[fg]
    same = both & (dm.h[fd] == gm.h[fg]) & (dm.w[fd] == gm.w[fg])
    area_d, area_g = dm.area[fd], gm.area[fg]
    # foreground box overlap; disjoint masks: |d & g| = 0 and |d | g| = |d| + |g|
    bd, bg = dm.box[fd], gm.box[fg]
    ov_x = np.minimum(bd[:, 1], bg[:, 1]) - np.maximum(bd[:, 0], bg[:, 0])
    ov_y = np.minimum(bd[:, 3], bg[:, 3]) - np.maximum(bd[:, 2], bg[:, 2])
    overlap = np.maximum(ov_x, 0) * np.maximum(ov_y, 0)
    exact = dm.exact[fd] & gm.exact[fg] & (same | ~both)
    apart = same & exact & (overlap == 0)
    bound = np.where(same, np.minimum(np.minimum(area_d, area_g), overlap), 0)
    n = len(d)

    def per_pair(values):  # sums of integers < 2**53: exact in float64
        return np.bincount(pair, weights=values, minlength=n).astype(np.float64)

    # the IoU is below 0.5 once 3 * (bound - slack) < |d| + |g|, slack = sum(bound - I) so far
    limit = (3 * per_pair(bound) - per_pair(area_d + area_g)).astype(np.int64)
    limit[per_pair(~exact) > 0] = np.iinfo(np.int64).max  # merge() may stop early: no bound
    skip = limit < 0
    merge = np.nonzero(same & ~apart & ~skip[pair])[0]
    merge = merge[np.lexsort((-bound[merge], pair[merge]))]  # per pair, largest bound first
    fdm, fgm, p = fd[merge], fg[merge], pair[merge]
    # exact frames: only the columns both foreground boxes span can hold common pixels
    h = dm.h[fdm]
    lo = np.where(exact[merge], np.maximum(bd[merge, 0], bg[merge, 0]) * h, -1)
    hi = np.minimum(bd[merge, 1], bg[merge, 1]) * h
    inter = np.zeros(len(pair), dtype=np.int64)
    union = np.where(both & ~same, 0, area_d + area_g)  # frames of one mask, or of disjoint masks
    as64 = lambda x: np.ascontiguousarray(x, np.int64)  # noqa: E731
    merged = rle.merge_areas(dm.runs, dm.run_start, gm.runs, gm.run_start, as64(fdm), as64(fgm),
                             as64(lo), as64(hi), as64(p), as64(bound[merge]), as64(limit[p]))
    inter[merge], merge_union = (np.frombuffer(x, np.int64) for x in merged)
    skip[p[inter[merge] == -2]] = True  # left by the kernel: certainly below 0.5
    # where lo >= 0 the kernel leaves the union to |d| + |g| - |d & g|
    union[merge] = np.where(merge_union == -1, area_d[merge] + area_g[merge] - inter[merge],
                            merge_union)
    i_sum, u_sum = per_pair(inter), per_pair(union)
    iou = np.zeros(n)
    np.divide(i_sum, u_sum, out=iou, where=(u_sum > 0) & ~skip)
    return iou
