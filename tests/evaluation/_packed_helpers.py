"""Shared helpers of the packed-path tests (``test_ytvis_packed_*.py``): masks and their RLEs,
random scenes, file writing, the route spy and the file-vs-memory comparison.

Path 1 is the numpy/pycocotools scorer used for in-memory inputs (and for files when the kernels
are disabled with ``WSOVVIS_EVAL_KERNELS=0``). The packed path is taken when GT and results are
given as file paths: the raw JSON is packed into flat tables by ``_ytvis_kernels.pack_json`` and
the video IoU computed by ``_ytvis_kernels.video_iou`` (status per video: 0 scored, 1 left to
path 1, 2 a corrupt mask).
"""

import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
from pycocotools import _mask

from wsovvis.evaluation import evaluate_ytvis, ytvis_eval, ytvis_videos
from wsovvis.evaluation.ytvis_packed import kernels_available

requires_kernels = pytest.mark.skipif(
    not kernels_available(),
    reason="compiled extension wsovvis.evaluation._ytvis_kernels not built "
    "(or disabled with WSOVVIS_EVAL_KERNELS=0): the packed path does not exist",
)

ARRAYS = ("stats", "precision", "recall", "scores")


# ------------------------------------------------------------------------------------ masks


def runs_of(mask: np.ndarray) -> list:
    """Uncompressed RLE counts (column-major, starting with a background run) of a mask."""
    flat = np.asarray(mask, dtype=np.int8).flatten(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    return [0] + runs if flat[0] == 1 else runs


def compressed(mask: np.ndarray) -> dict:
    rle = mask_util.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def uncompressed(mask: np.ndarray) -> dict:
    return {"size": list(mask.shape), "counts": runs_of(mask)}


def str_from_counts(counts, h, w) -> str:
    """The pycocotools compressed string of given run lengths (kept as is, zeros included)."""
    rle = _mask.frUncompressedRLE([{"size": [h, w], "counts": counts}], h, w)[0]
    return rle["counts"].decode("ascii")


def rect(h, w, y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def random_mask(rng, h, w) -> np.ndarray:
    """Rectangles, speckle noise (many short runs, negative deltas), stripes, empty or full."""
    kind = int(rng.integers(0, 7))
    m = np.zeros((h, w), np.uint8)
    if kind <= 1:
        for _ in range(int(rng.integers(1, 4))):
            y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
            m[y0 : int(rng.integers(y0, h + 1)), x0 : int(rng.integers(x0, w + 1))] = 1
    elif kind == 2:
        m = (rng.random((h, w)) < rng.uniform(0.05, 0.95)).astype(np.uint8)
    elif kind == 3:  # horizontal stripes: a run per column, intervals not crossing columns
        m[int(rng.integers(0, h)) :: int(rng.integers(2, 5)), int(rng.integers(0, w)) :] = 1
    elif kind == 4:
        pass  # empty
    elif kind == 5:
        m[:] = 1
        m[rng.random((h, w)) < 0.1] = 0
    else:  # a vertical band: intervals spanning whole columns
        x0 = int(rng.integers(0, w))
        m[:, x0 : int(rng.integers(x0, w + 1))] = 1
    return m


def perturb(rng, m: np.ndarray) -> np.ndarray:
    """A detection near a GT mask (IoU values spread over the 0.5 .. 0.95 thresholds)."""
    r = rng.random()
    if r < 0.3:
        return m.copy()
    if r < 0.6:
        return m ^ (rng.random(m.shape) < rng.uniform(0.01, 0.2)).astype(np.uint8)
    if r < 0.8:
        return np.roll(m, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 2)))
    return random_mask(rng, *m.shape)


def swap_first_digit_char(s: str) -> str:
    """Replace a char in '0'..'?' by the same char + 64 ('p'..DEL): pycocotools (``c - 48``,
    then ``& 0x1f``, ``& 0x20``, ``& 0x10``) decodes both the same way; the kernel refuses it."""
    i = next(i for i, c in enumerate(s) if 48 <= ord(c) < 64)
    return s[:i] + chr(ord(s[i]) + 64) + s[i + 1 :]


def overlong_first_value(s: str, chars: int) -> str:
    """The string with its first value re-encoded on ``chars`` chars (zero continuation chunks:
    pycocotools reads the same value)."""
    k = next(i for i, c in enumerate(s) if not (ord(c) - 48) & 0x20) + 1
    v = sum(((ord(c) - 48) & 0x1F) << (5 * i) for i, c in enumerate(s[:k]))
    assert 0 <= v < 2 ** (5 * k - 1) and k < chars  # non-negative, sign bit of the last clear
    out = [(v >> (5 * i)) & 0x1F for i in range(chars)]
    return "".join(chr(48 + (c | 0x20 if i < chars - 1 else c)) for i, c in enumerate(out)) + s[k:]


# ------------------------------------------------------------------------------------ documents


def area_of(s):
    if not s:
        return None
    if isinstance(s["counts"], list):
        return int(sum(s["counts"][1::2]))
    return int(mask_util.area({"size": s["size"], "counts": s["counts"].encode()}))


def new_ann(gt, vid, segs, cat=None, areas=None) -> dict:
    """A new GT annotation of video ``vid`` (category: the first one)."""
    return {
        "id": max([a["id"] for a in gt["annotations"]], default=0) + 1,
        "video_id": vid,
        "category_id": gt["categories"][0]["id"] if cat is None else cat,
        "iscrowd": 0,
        "segmentations": segs,
        "areas": areas if areas is not None else [area_of(s) for s in segs],
    }


def new_result(vid, segs, cat=2, score=0.9) -> dict:
    return {"video_id": vid, "category_id": cat, "score": score, "segmentations": segs}


def video_of(gt, vid) -> dict:
    return next(v for v in gt["videos"] if v["id"] == vid)


def scene(seed: int, gt_counts: str = "string", num_videos: int = 4):
    """Random GT / results with plain RLE only (everything packable).

    ``gt_counts``: ``"string"`` (compressed), ``"list"`` (uncompressed) or ``"mixed"``.
    """
    rng = np.random.default_rng(seed)
    cats = [2, 5, 9]
    gt = {"videos": [], "categories": [{"id": c, "name": f"c{c}"} for c in cats], "annotations": []}
    res = []
    for vid in rng.permutation(np.arange(1, num_videos + 1) * 7).tolist():
        h, w = [(20, 30), (17, 23), (9, 12), (30, 20)][int(rng.integers(0, 4))]
        n = int(rng.integers(1, 9))
        gt["videos"].append({"id": vid, "height": h, "width": w, "length": n})
        tracks = []
        for _ in range(int(rng.integers(0, 4))):
            cat = int(rng.choice(cats))
            masks = [None if rng.random() < 0.15 else random_mask(rng, h, w) for _ in range(n)]
            mode = gt_counts if gt_counts != "mixed" else ("string", "list")[int(rng.integers(2))]
            enc = compressed if mode == "string" else uncompressed
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "video_id": vid,
                    "category_id": cat,
                    "iscrowd": int(rng.random() < 0.1),
                    "segmentations": [None if m is None else enc(m) for m in masks],
                    "areas": [None if m is None else int(m.sum()) for m in masks],
                }
            )
            tracks.append((cat, masks))
        for _ in range(int(rng.integers(0, 6))):
            if tracks and rng.random() < 0.75:
                cat, src = tracks[int(rng.integers(len(tracks)))]
                masks = [None if m is None else perturb(rng, m) for m in src]
                if rng.random() < 0.2:
                    cat = int(rng.choice(cats))
            else:
                cat, masks = int(rng.choice(cats)), [random_mask(rng, h, w) for _ in range(n)]
            masks = [None if (m is None or rng.random() < 0.1) else m for m in masks]
            res.append(
                {
                    "video_id": vid,
                    "category_id": cat,
                    "score": float(np.round(rng.random(), 1)),
                    "segmentations": [None if m is None else compressed(m) for m in masks],
                }
            )
    return gt, res


def base_scene(gt_counts="mixed"):
    """Three videos (4 and 12: 20x30, 8: 9x12), 4 frames, two GT tracks (categories 2 and 5)
    each, two detections per GT track (shifted copies) and one detection of category 2 only
    partly overlapping. GT track 0 / 1 use compressed strings / uncompressed lists ("mixed").

    Annotation ids 1..6 (video 4: 1, 2; video 8: 3, 4; video 12: 5, 6); results 0..4 are of
    video 4, 5..9 of video 8, 10..14 of video 12.
    """
    gt = {"videos": [], "categories": [{"id": 2}, {"id": 5}], "annotations": []}
    res = []
    for vid, (h, w) in zip((4, 8, 12), ((20, 30), (9, 12), (20, 30))):
        n = 4
        gt["videos"].append({"id": vid, "height": h, "width": w, "length": n})
        for k, cat in enumerate((2, 5)):
            masks = [
                rect(h, w, 1 + t % 3, h // 2 + k + t, 2 * k + 1, w // 2 + 2 * t) for t in range(n)
            ]
            mode = gt_counts if gt_counts != "mixed" else ("string", "list")[k]
            enc = compressed if mode == "string" else uncompressed
            gt["annotations"].append(new_ann(gt, vid, [enc(m) for m in masks], cat=cat))
            for j, score in enumerate((0.9 - 0.1 * k, 0.4)):
                dm = [np.roll(m, j + t % 2, axis=t % 2) for t, m in enumerate(masks)]
                res.append(new_result(vid, [compressed(m) for m in dm], cat=cat, score=score))
        masks = [rect(h, w, 0, h - 2, w // 3, w - t) for t in range(n)]
        res.append(new_result(vid, [compressed(m) for m in masks], cat=2, score=0.6))
    return gt, res


def write_files(tmp_path, gt, res, indent=None, gt_text=None, res_text=None):
    """GT / results files; ``*_text`` replaces the JSON text (for hand-edited documents)."""
    g, r = tmp_path / "gt.json", tmp_path / "res.json"
    g.write_text(gt_text if gt_text is not None else json.dumps(gt, indent=indent))
    r.write_text(res_text if res_text is not None else json.dumps(res, indent=indent))
    return str(g), str(r)


# ------------------------------------------------------------------------------------ outcomes


def outcome(gt, res, class_agnostic=False):
    """``("ok", result)`` or ``("error", exception type, message)``."""
    try:
        return ("ok", evaluate_ytvis(gt, res, class_agnostic=class_agnostic, with_scores=True))
    except Exception as e:  # noqa: BLE001 - both paths must fail the same way
        return ("error", type(e), str(e))


def assert_same_outcome(a, b):
    assert a[0] == b[0], (a, b)
    if a[0] == "error":
        assert a[1:] == b[1:]
        return
    for name in ARRAYS:
        x, y = getattr(a[1], name), getattr(b[1], name)
        assert x.shape == y.shape and np.array_equal(x, y), name
    assert a[1].per_category_ap.keys() == b[1].per_category_ap.keys()


class Spy:
    """Outputs of every packed kernel call and of every ``run_videos`` call (IoU blocks)."""

    def __init__(self):
        self.kernel = []  # (iou, mean_area, status, bad) per packed_video_iou call
        self.videos = []  # (det_k, det_v, det_avg, blocks) per run_videos call

    def clear(self):
        self.kernel.clear()
        self.videos.clear()


def install_spy(monkeypatch) -> Spy:
    """Record, until the monkeypatch is undone, the kernel and ``run_videos`` outputs (the
    ``spy`` fixture of ``conftest.py``)."""
    rec = Spy()
    real_kernel = ytvis_videos.packed_video_iou
    real_run = ytvis_eval.run_videos

    def kernel(*args, **kwargs):
        out = real_kernel(*args, **kwargs)
        rec.kernel.append(out)
        return out

    def run(*args, **kwargs):
        out = real_run(*args, **kwargs)
        rec.videos.append(out)
        return out

    monkeypatch.setattr(ytvis_videos, "packed_video_iou", kernel)
    monkeypatch.setattr(ytvis_eval, "run_videos", run)
    return rec


def assert_same_blocks(a, b):
    """Identical per-video phase outputs: categories, videos, mean areas and IoU matrices."""
    for x, y in zip(a[:3], b[:3]):
        assert np.array_equal(x, y)
    assert len(a[3]) == len(b[3])
    for (d0, nd, g_idx, iou), (e0, ne, h_idx, jou) in zip(a[3], b[3]):
        assert (d0, nd) == (e0, ne) and np.array_equal(g_idx, h_idx)
        assert iou.shape == jou.shape and np.array_equal(iou, jou), (iou, jou)


def compare(tmp_path, spy, monkeypatch, gt, res, class_agnostic=False, **write_kw):
    """Score in memory (path 1), from files (packed path) and from files with the kernels
    disabled (path 1 again): outcomes, and IoU matrices / mean areas, must be identical.

    Returns:
        ``(packed outcome, status)``: ``status`` is the kernel's int8 per-video status (0
        scored, 1 left to path 1, 2 corrupt mask), None when the kernel was not called.
    """
    paths = write_files(tmp_path, gt, res, **write_kw)
    runs = []
    for inputs, env in (((gt, res), "1"), (paths, "1"), (paths, "0")):
        spy.clear()
        with monkeypatch.context() as m:
            m.setenv("WSOVVIS_EVAL_KERNELS", env)
            assert kernels_available() == (env == "1")
            out = outcome(*inputs, class_agnostic)
        runs.append((out, list(spy.videos), list(spy.kernel)))
    (memory, v_mem, k_mem), (packed, v_pk, k_pk), (disabled, v_dis, k_dis) = runs
    assert not k_mem and not k_dis and len(k_pk) <= 1
    assert_same_outcome(memory, packed)
    assert_same_outcome(memory, disabled)
    assert len(v_mem) == len(v_pk) == len(v_dis)
    for x, y, z in zip(v_mem, v_pk, v_dis):
        assert_same_blocks(x, y)
        assert_same_blocks(x, z)
    status = k_pk[0][2] if k_pk else None
    if status is not None:
        assert status.dtype == np.int8 and set(status.tolist()) <= {0, 1, 2}
    return packed, status


def errors(tmp_path, gt, res, class_agnostic=False):
    """ValueError messages of path 1 (memory), of the packed path (files) and of path 1 on the
    files (kernels disabled); all three must raise. Only for inputs path 1 can score: never
    with overlapping compressed strings whose run lengths do not sum to h * w."""
    paths = write_files(tmp_path, gt, res)
    out = []
    for inputs, env in (((gt, res), "1"), (paths, "1"), (paths, "0")):
        with pytest.MonkeyPatch.context() as m:
            m.setenv("WSOVVIS_EVAL_KERNELS", env)
            with pytest.raises(ValueError) as e:
                evaluate_ytvis(*inputs, class_agnostic=class_agnostic)
        out.append(str(e.value))
    return out


def packed_error(tmp_path, gt, res, class_agnostic=False) -> str:
    """ValueError message of the packed path alone (files, kernels enabled)."""
    with pytest.raises(ValueError) as e:
        evaluate_ytvis(*write_files(tmp_path, gt, res), class_agnostic=class_agnostic)
    return str(e.value)


def corrupt_message(what: str, vid: int, t: int, h: int, w: int) -> str:
    """The error of a mask whose run lengths do not sum to h * w."""
    return (
        f"{what} (video_id={vid}) frame {t}: the RLE run lengths do not sum to height x width "
        f"= {h} x {w} (a corrupt mask)"
    )
