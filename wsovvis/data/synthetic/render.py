"""Vectorised rendering of the synthetic videos: textured backgrounds and moving textured shapes.

Everything is drawn with numpy on a pixel grid, so the ground-truth masks are exactly the pixels
each object paints (after occlusion by objects in front of it).
"""

from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np

__all__ = ["CATEGORIES", "SHAPES", "SceneObject", "sample_objects", "render_video"]

# Category ids follow the LV-VIS convention: partition 0/1 are base classes, 2/3 novel ones.
CATEGORIES = [
    {"id": 1, "name": "disc", "partition": 0},
    {"id": 2, "name": "square", "partition": 1},
    {"id": 3, "name": "triangle", "partition": 2},
    {"id": 4, "name": "ring", "partition": 3},
    {"id": 5, "name": "cross", "partition": 1},
]
SHAPES = [c["name"] for c in CATEGORIES]
# Categories have a typical appearance, as real ones do ("bananas are yellow"): with probability
# TYPICAL_COLOUR_PROB an object's two texture colours lie near its category's hue (TYPICAL_HUES,
# one per CATEGORIES entry), otherwise they are random. With random colours only, the category is
# the silhouette alone, which a from-scratch CNN learns far too slowly for a CPU demo (the demo's
# tiny CLIP: 0.48 held-out object accuracy after 600 steps, 0.57 after 2,000).
TYPICAL_HUES = [0.0, 0.2, 0.4, 0.6, 0.8]
TYPICAL_COLOUR_PROB = 0.8
_SHAPE_TO_ID = {c["name"]: c["id"] for c in CATEGORIES}


@dataclass
class SceneObject:
    """One moving object: shape, trajectory, rotation, texture and depth."""

    shape: str
    radius: float  # circumradius in pixels
    center: Tuple[float, float]  # (x, y) at time ``t_ref``
    velocity: Tuple[float, float]  # pixels per frame
    t_ref: float
    angle: float  # radians at ``t_ref``
    omega: float  # radians per frame
    color_a: Tuple[int, int, int]  # RGB
    color_b: Tuple[int, int, int]  # RGB (second texture colour)
    texture: str  # "solid", "stripes" or "checker"
    period: float  # texture period in pixels
    depth: int  # larger = closer to the camera (painted later)

    @property
    def category_id(self) -> int:
        return _SHAPE_TO_ID[self.shape]

    def pose(self, t: int):
        dt = t - self.t_ref
        return (
            self.center[0] + self.velocity[0] * dt,
            self.center[1] + self.velocity[1] * dt,
            self.angle + self.omega * dt,
        )


def _local_coords(xx, yy, cx, cy, angle):
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = xx - cx, yy - cy
    return c * dx + s * dy, -s * dx + c * dy


def shape_mask(shape: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of a shape of circumradius ``r`` in object-local coordinates ``(u, v)``."""
    if shape == "disc":
        return u * u + v * v <= r * r
    if shape == "ring":
        d2 = u * u + v * v
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.75 * r
    if shape == "triangle":
        # Equilateral triangle: inside all three half-planes whose normals point away from a vertex.
        inside = np.ones(u.shape, dtype=bool)
        for theta in (np.pi / 2, np.pi / 2 + 2 * np.pi / 3, np.pi / 2 + 4 * np.pi / 3):
            inside &= u * np.cos(theta) + v * np.sin(theta) <= 0.5 * r
        return inside
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.3 * r) & (av <= r)) | ((av <= 0.3 * r) & (au <= r))
    raise ValueError(f"unknown synthetic shape {shape!r}; expected one of {SHAPES}")


def _texture(obj: SceneObject, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(H, W, 3) float colours of the object's texture at local coordinates (u, v)."""
    if obj.texture == "solid":
        sel = np.zeros(u.shape, dtype=bool)
    elif obj.texture == "stripes":
        sel = np.floor(u / obj.period).astype(np.int64) % 2 == 1
    else:  # checker
        sel = (np.floor(u / obj.period) + np.floor(v / obj.period)).astype(np.int64) % 2 == 1
    a = np.asarray(obj.color_a, dtype=np.float32)
    b = np.asarray(obj.color_b, dtype=np.float32)
    return np.where(sel[..., None], b, a)


def _random_color(rng: np.random.Generator, lo: int, hi: int) -> Tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, size=3))


def _object_colors(rng: np.random.Generator, category: int):
    """``(color_a, color_b)``: near the category's typical hue (probability TYPICAL_COLOUR_PROB;
    ``color_b`` darker) or random."""
    typical = rng.random() < TYPICAL_COLOUR_PROB
    jitter, sat, val, dark = (
        rng.uniform(-0.04, 0.04),
        rng.uniform(0.55, 1.0),
        rng.uniform(0.6, 1.0),
        rng.uniform(0.35, 0.7),
    )
    color_a, color_b = _random_color(rng, 40, 256), _random_color(rng, 0, 216)
    if not typical:
        return color_a, color_b
    hue = np.array([[[(TYPICAL_HUES[category] + jitter) % 1.0 * 180, sat * 255, val * 255]]])
    a = cv2.cvtColor(hue.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    hue[..., 2] *= dark
    b = cv2.cvtColor(hue.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(int(c) for c in a), tuple(int(c) for c in b)


def sample_objects(
    rng: np.random.Generator,
    num_objects: int,
    num_frames: int,
    height: int,
    width: int,
    enter_leave_prob: float = 0.35,
) -> List[SceneObject]:
    """Draw random objects whose trajectories cross the frame at least once.

    Args:
        rng: random generator (consumed deterministically).
        num_objects: how many objects to draw.
        num_frames: video length.
        height: frame height.
        width: frame width.
        enter_leave_prob: probability that an object moves fast enough to enter or leave the frame.

    Returns:
        The objects, with distinct depths.
    """
    size = min(height, width)
    depths = rng.permutation(num_objects)
    objects = []
    for k in range(num_objects):
        category = int(rng.integers(len(SHAPES)))
        shape = SHAPES[category]
        radius = float(rng.uniform(0.12, 0.24) * size)
        # Trajectory passes through a point inside the frame at a random time.
        center = (float(rng.uniform(0.1, 0.9) * width), float(rng.uniform(0.1, 0.9) * height))
        t_ref = float(rng.uniform(0, num_frames - 1))
        fast = rng.random() < enter_leave_prob
        speed = rng.uniform(0.25, 0.45) * size if fast else rng.uniform(0.01, 0.06) * size
        direction = rng.uniform(0, 2 * np.pi)
        angle, omega = float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(-0.15, 0.15))
        color_a, color_b = _object_colors(rng, category)
        objects.append(
            SceneObject(
                shape=shape,
                radius=radius,
                center=center,
                velocity=(float(speed * np.cos(direction)), float(speed * np.sin(direction))),
                t_ref=t_ref,
                angle=angle,
                omega=omega,
                color_a=color_a,
                color_b=color_b,
                texture=("solid", "stripes", "checker")[int(rng.integers(3))],
                period=float(rng.uniform(0.2, 0.45) * radius),
                depth=int(depths[k]),
            )
        )
    return objects


def _background(rng: np.random.Generator, height: int, width: int, pad: int) -> np.ndarray:
    """A textured (H + 2 pad, W + 2 pad, 3) float background: smooth noise plus soft stripes."""
    hh, ww = height + 2 * pad, width + 2 * pad
    coarse = rng.random((max(2, hh // 12), max(2, ww // 12), 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (ww, hh), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    theta, freq = rng.uniform(0, np.pi), rng.uniform(0.1, 0.4)
    stripes = 0.5 + 0.5 * np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy))
    base = np.asarray(_random_color(rng, 30, 140), dtype=np.float32)
    bg = base + 70.0 * (smooth - 0.5) + 25.0 * stripes[..., None]
    return np.clip(bg, 0, 255)


def render_video(
    rng: np.random.Generator,
    objects: List[SceneObject],
    num_frames: int,
    height: int,
    width: int,
) -> Tuple[np.ndarray, np.ndarray]:
    """Render frames and the exact visible mask of every object.

    Objects are painted back to front (by ``depth``), so a pixel belongs to the front-most object
    covering it; the background pans slowly and every frame gets a little sensor noise.

    Args:
        rng: random generator for the background, camera pan and noise.
        objects: the scene objects.
        num_frames: number of frames T.
        height: frame height H.
        width: frame width W.

    Returns:
        ``frames`` (T, H, W, 3) uint8 RGB and ``visible`` (K, T, H, W) bool, K = len(objects).
    """
    pad = max(4, min(height, width) // 8)
    bg = _background(rng, height, width, pad)
    pan = rng.uniform(-1.0, 1.0, size=2)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    order = sorted(range(len(objects)), key=lambda k: objects[k].depth)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    labels = np.zeros((num_frames, height, width), dtype=np.int16)
    for t in range(num_frames):
        ox = int(np.clip(round(pad + pan[0] * t), 0, 2 * pad))
        oy = int(np.clip(round(pad + pan[1] * t), 0, 2 * pad))
        img = bg[oy : oy + height, ox : ox + width].copy()
        label = labels[t]
        for k in order:
            obj = objects[k]
            cx, cy, angle = obj.pose(t)
            u, v = _local_coords(xx, yy, cx, cy, angle)
            m = shape_mask(obj.shape, u, v, obj.radius)
            if not m.any():
                continue
            img[m] = _texture(obj, u, v)[m]
            label[m] = k + 1
        img += rng.normal(0.0, 3.0, size=img.shape).astype(np.float32)
        frames[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    ids = np.arange(1, len(objects) + 1, dtype=np.int16)
    visible = labels[None] == ids[:, None, None, None]
    return frames, visible
