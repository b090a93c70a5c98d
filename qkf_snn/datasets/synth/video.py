"""Class-dependent frames: a moving shape whose form and colour encode the class, on a dark background,
with optional look-alike distractors, pixel noise (``video_noise``) and faintness (``video_contrast``)."""

from __future__ import annotations

import numpy as np

from qkf_snn.datasets.synth.knobs import SynthKnobs

SHAPES = ("disc", "square", "triangle", "cross", "ring", "diamond", "bar")
PALETTE = np.array(
    [
        [230, 40, 40],
        [40, 200, 60],
        [50, 90, 240],
        [240, 220, 40],
        [220, 60, 220],
        [40, 220, 230],
        [250, 140, 30],
        [245, 245, 245],
    ],
    dtype=np.float32,
)


def class_look(label: int) -> tuple[str, np.ndarray]:
    """(shape, colour) of a class: unique for up to 56 classes."""
    return SHAPES[label % len(SHAPES)], PALETTE[(label + label // len(SHAPES)) % len(PALETTE)]


def shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of ``shape`` of radius ``r`` given offsets from its centre."""
    ax, ay = np.abs(dx), np.abs(dy)
    masks = {
        "disc": lambda: dx**2 + dy**2 <= r**2,
        "square": lambda: np.maximum(ax, ay) <= 0.8 * r,
        "triangle": lambda: (dy <= 0.8 * r) & (ax <= (dy + 0.8 * r) * 0.6),
        "cross": lambda: ((ax <= 0.3 * r) & (ay <= r)) | ((ay <= 0.3 * r) & (ax <= r)),
        "ring": lambda: (dx**2 + dy**2 <= r**2) & (dx**2 + dy**2 >= (0.55 * r) ** 2),
        "diamond": lambda: ax + ay <= r,
        "bar": lambda: (ax <= r) & (ay <= 0.35 * r),
    }
    return masks[shape]()


def _track(n: int, h: int, w: int, r: float, rng: np.random.Generator) -> np.ndarray:
    """[n, 2] centres (y, x): a straight move across about a third of the frame, kept inside."""
    start = np.array([rng.uniform(r, h - r), rng.uniform(r, w - r)])
    angle = rng.uniform(0, 2 * np.pi)
    end = start + np.array([np.sin(angle), np.cos(angle)]) * 0.33 * min(h, w)
    end = np.clip(end, [r, r], [h - r, w - r])
    return start + (end - start) * np.linspace(0, 1, n)[:, None]


def render(
    label: int | None,
    n: int,
    knobs: SynthKnobs,
    rng: np.random.Generator,
    *,
    background: np.ndarray | None = None,
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 [n, H, W, 3] frames; ``label`` None draws no class shape; ``visible`` masks it per frame."""
    h, w = knobs.height, knobs.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = background if background is not None else rng.uniform(10, 70, 3).astype(np.float32)
    frames = np.empty((n, h, w, 3), np.float32)
    frames[:] = bg * (0.8 + 0.4 * yy[..., None] / h)  # a gentle gradient: not a flat field
    layers: list[tuple[str, np.ndarray, np.ndarray, float, float]] = []
    for _ in range(knobs.distractors):
        shape = SHAPES[rng.integers(len(SHAPES))]
        r = 0.18 * min(h, w)
        layers.append((shape, PALETTE[rng.integers(len(PALETTE))], _track(n, h, w, r, rng), r, 0.8))
    if label is not None:
        shape, colour = class_look(label)
        r = 0.26 * min(h, w)
        layers.append((shape, colour, _track(n, h, w, r, rng), r, knobs.video_contrast))
    for k in range(n):
        for i, (shape, colour, track, r, alpha) in enumerate(layers):
            is_class = label is not None and i == len(layers) - 1
            if is_class and visible is not None and not visible[k]:
                continue
            mask = shape_mask(shape, xx - track[k, 1], yy - track[k, 0], r)
            frames[k][mask] = (1 - alpha) * frames[k][mask] + alpha * colour
    if knobs.video_noise > 0:
        frames += rng.standard_normal(frames.shape).astype(np.float32) * (knobs.video_noise * 255)
    return np.clip(frames, 0, 255).astype(np.uint8)


def clip_video(
    label: int,
    n: int,
    knobs: SynthKnobs,
    rng: np.random.Generator,
    *,
    background: np.ndarray | None = None,
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """Frames of one clip of class ``label``; with probability ``video_missing`` the class shape is absent."""
    shown = None if rng.random() < knobs.video_missing else label
    return render(shown, n, knobs, rng, background=background, visible=visible)
