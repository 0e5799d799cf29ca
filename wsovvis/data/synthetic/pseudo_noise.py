"""VideoCutLER-like pseudo masks from exact synthetic ground truth.

The corruptions mimic what ``videocutler/demo_video/demo.py`` output looks like in practice:
missed objects, masks that are a bit too large / small / shifted, two objects merged under one
id, a spurious blob, at most 10 ids in an arbitrary order painted so that later ids overwrite
earlier ones, whole videos without output (the demo crashes when nothing is kept) and frames
without a PNG.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

__all__ = ["PseudoNoiseConfig", "make_pseudo_label_maps", "MAX_PSEUDO_INSTANCES"]

MAX_PSEUDO_INSTANCES = 10  # VideoCutLER's demo keeps the top-10 predictions per video


@dataclass
class PseudoNoiseConfig:
    """Probabilities of the pseudo-mask corruptions (per video unless stated)."""

    empty_video: float = 0.12  # VideoCutLER keeps nothing -> no PNG at all for the video
    miss_object: float = 0.15  # per GT object: not detected
    merge_pair: float = 0.25  # two objects come out as one id
    spurious_blob: float = 0.35  # an extra blob on the background
    morph: float = 0.5  # per track: eroded or dilated masks
    jitter_px: int = 1  # per frame shift of each pseudo mask in [-jitter, jitter] pixels
    missing_frame: float = 0.2  # one frame of the video has no PNG


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = mask[ys, xs]
    return out


def _blob_track(rng: np.random.Generator, t: int, h: int, w: int) -> np.ndarray:
    """An elliptical blob drifting over a run of consecutive frames."""
    track = np.zeros((t, h, w), dtype=bool)
    start = int(rng.integers(t))
    stop = int(rng.integers(start + 1, t + 1))
    cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
    ax, ay = rng.uniform(0.05, 0.12) * w, rng.uniform(0.05, 0.12) * h
    vx, vy = rng.uniform(-1.5, 1.5, size=2)
    yy, xx = np.mgrid[0:h, 0:w]
    for f in range(start, stop):
        px, py = cx + vx * (f - start), cy + vy * (f - start)
        track[f] = ((xx - px) / ax) ** 2 + ((yy - py) / ay) ** 2 <= 1.0
    return track


def make_pseudo_label_maps(
    rng: np.random.Generator,
    visible: np.ndarray,
    cfg: PseudoNoiseConfig,
    force: Sequence[str] = (),
) -> Tuple[np.ndarray, List[bool], Dict[str, object]]:
    """Turn exact visible masks into noisy VideoCutLER-style per-frame id maps.

    Args:
        rng: random generator (consumed deterministically).
        visible: (K, T, H, W) bool GT visible masks of the K objects.
        cfg: corruption probabilities.
        force: corruptions applied regardless of their probability, among "empty", "miss",
            "merge", "spurious", "missing_frame" (so small datasets show every case).

    Returns:
        ``label_maps`` (T, H, W) uint8 with ids 1..n (0 = background), ``write_frame`` (T bools,
        False where no PNG is written; all False for an empty video) and a log dict describing
        the injected noise (``gt_index_of_id`` maps each id to the indices, along K, of the GT
        objects it covers; [] for a spurious blob).
    """
    k, t, h, w = visible.shape
    log: Dict[str, object] = {"empty": False, "missed": [], "merged": [], "spurious_ids": []}
    force = set(force)
    empty_draw = rng.random()
    if "empty" in force or (empty_draw < cfg.empty_video and not force):
        log["empty"] = True
        return np.zeros((t, h, w), dtype=np.uint8), [False] * t, log

    kept = [i for i in range(k) if rng.random() >= cfg.miss_object or "merge" in force]
    if "miss" in force and len(kept) == k and k >= 2:
        kept.remove(int(rng.integers(k)))
    log["missed"] = [i for i in range(k) if i not in kept]
    tracks = [(visible[i].copy(), [i]) for i in kept]
    if len(tracks) >= 2 and (rng.random() < cfg.merge_pair or "merge" in force):
        a, b = sorted(rng.choice(len(tracks), size=2, replace=False).tolist())
        merged = (tracks[a][0] | tracks[b][0], tracks[a][1] + tracks[b][1])
        log["merged"] = merged[1]
        tracks = [tr for j, tr in enumerate(tracks) if j not in (a, b)] + [merged]
    if rng.random() < cfg.spurious_blob or "spurious" in force:
        tracks.append((_blob_track(rng, t, h, w), []))

    noisy = []
    kernel = np.ones((3, 3), np.uint8)
    for masks, src in tracks:
        op = rng.choice(["erode", "dilate"]) if rng.random() < cfg.morph else "none"
        out = np.zeros_like(masks)
        for f in range(t):
            m = masks[f].astype(np.uint8)
            if op == "erode":
                m = cv2.erode(m, kernel)
            elif op == "dilate":
                m = cv2.dilate(m, kernel)
            dx, dy = rng.integers(-cfg.jitter_px, cfg.jitter_px + 1, size=2)
            out[f] = _shift(m, int(dx), int(dy)).astype(bool)
        if out.any():
            noisy.append((out, src))
    # The demo's top-k uses sorted=False: ids carry no ranking. Keep at most 10.
    order = rng.permutation(len(noisy))[:MAX_PSEUDO_INSTANCES]
    noisy = [noisy[j] for j in order]
    if not noisy:
        log["empty"] = True
        return np.zeros((t, h, w), dtype=np.uint8), [False] * t, log

    label_maps = np.zeros((t, h, w), dtype=np.uint8)
    for new_id, (masks, _) in enumerate(noisy, start=1):
        label_maps[masks] = new_id  # later ids overwrite earlier ones, as in the demo
    log["gt_index_of_id"] = {str(i): src for i, (_, src) in enumerate(noisy, start=1)}
    log["spurious_ids"] = [i for i, (_, src) in enumerate(noisy, start=1) if not src]
    write = [True] * t
    if t > 1 and (rng.random() < cfg.missing_frame or "missing_frame" in force):
        missing = int(rng.integers(t))
        write[missing] = False
        log["missing_frame"] = missing
    return label_maps, write, log
