"""The built-in synthetic action data set: classes that only time can tell apart.

Each video shows one textured square on a cluttered background that drifts in a random direction, with small
distractor blobs wandering around, global flicker and sensor noise. The class is the square's *motion*:

    move_left, move_right, move_up, move_down   translation in one direction (speed varies per video)
    rotate_cw, rotate_ccw                       rotation, slow enough not to alias at strides up to 8
    grow, shrink                                scale change (each the other played backwards)

Position, orientation and size are random, so no single frame tells the class; the background also moves,
so a model must separate the object's motion from the camera's. How far the object moves within a clip
depends on the temporal stride, so frame rate matters as it does for real actions.

Videos are rendered with numpy and written as near-lossless H.264 into a class-per-folder tree, which then
goes through ``prepare`` exactly like any user's folder data set.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from actnet.errors import ActnetError
from actnet.files import atomic_path
from actnet.progress import ProgressSink

CLASS_NAMES = ("move_left", "move_right", "move_up", "move_down", "rotate_cw", "rotate_ccw", "grow", "shrink")
# One colour per class, for SyntheticConfig.appearance > 0 (hues around the colour wheel).
CLASS_COLOURS = np.array(
    [
        [0.9, 0.1, 0.1],
        [0.1, 0.8, 0.1],
        [0.1, 0.2, 0.9],
        [0.9, 0.9, 0.1],
        [0.9, 0.1, 0.9],
        [0.1, 0.9, 0.9],
        [1.0, 0.55, 0.0],
        [0.5, 0.2, 0.8],
    ]
)


# Version of what ``render`` draws: part of every cache folder's name, so a change of the catalogue never reuses
# videos rendered by an older one. 2: rotation and scale change as fast as the translations move (version 1 turned
# 1.5-3 degrees and grew 1.6-2x per video, edges moving a few pixels per clip at 64 px: the tiny models learned the
# translations and nothing else, README "Motion").
RENDER_VERSION = 2
ROTATION_DEG_PER_FRAME = (4.0, 7.0)  # at stride 8 at most 56 degrees between sampled frames: no aliasing
SMALL_SIZE = (0.12, 0.16)  # grow starts (shrink ends) at this fraction of the short side ...
SCALE_FACTOR = (2.4, 3.0)  # ... and ends (starts) this many times larger


def _smooth_texture(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Random colour blobs at scale ``cell`` plus fine grain, values in [0, 1], shape (H, W, 3)."""
    coarse = rng.random((height // cell + 2, width // cell + 2, 3))
    up = np.repeat(np.repeat(coarse, cell, axis=0), cell, axis=1)[:height, :width]
    for axis in (0, 1):  # two box blurs soften the cell edges
        up = (up + np.roll(up, cell // 2, axis=axis) + np.roll(up, -(cell // 2), axis=axis)) / 3
    return 0.75 * up + 0.25 * rng.random((height, width, 3))


def render(
    class_index: int,
    rng: np.random.Generator,
    frames: int,
    width: int,
    height: int,
    clutter: float = 1.0,
    appearance: float = 0.0,
) -> np.ndarray:
    """One video of class ``class_index`` as uint8 (T, H, W, 3).

    ``clutter`` scales everything that is not the object (background drift and contrast, distractors,
    flicker, noise): 1 is the full set, 0 a still, plain background. ``appearance`` blends a colour fixed per
    class into the object's texture: 0 leaves motion as the only cue, 1 makes a single frame enough. The
    random draws do not depend on either: changing them changes how a video looks, never where its object goes.
    """
    name = CLASS_NAMES[class_index]
    size_ref = min(width, height)
    # Background: a large texture seen through a window that drifts at a random velocity.
    bg_speed = rng.uniform(0.0, 0.5) * clutter
    bg_angle = rng.uniform(0, 2 * np.pi)
    margin = int(np.ceil(bg_speed * frames)) + 2
    background = (
        0.55
        - 0.2 * clutter
        + 0.4 * clutter * _smooth_texture(rng, height + 2 * margin, width + 2 * margin, max(4, size_ref // 10))
    )
    # Distractors: small blobs with their own velocities.
    blobs = [
        (
            rng.uniform(0, width),
            rng.uniform(0, height),
            rng.uniform(-1, 1),
            rng.uniform(-1, 1),
            rng.uniform(2, 5),
            rng.random(3),
        )
        for _ in range(3)
    ]
    # The object: an asymmetric texture (a grid of colours plus a bright bar on one edge).
    tex = np.repeat(np.repeat(rng.random((4, 4, 3)), 8, axis=0), 8, axis=1)
    tex[:, :6] = rng.uniform(0.85, 1.0, 3)
    if appearance > 0:
        tex = (1 - appearance) * tex + appearance * CLASS_COLOURS[class_index]
    # Motion of the object, per class. Units: pixels, radians, per frame.
    t = np.arange(frames, dtype=np.float64)
    base = rng.uniform(0.22, 0.32) * size_ref
    scale = np.full(frames, base)
    angle = np.full(frames, rng.uniform(0, 2 * np.pi))
    drift = rng.uniform(-0.08, 0.08, 2) * size_ref / frames * 4
    if name.startswith("move_"):
        extent = rng.uniform(0.3, 0.55) * (width if name in ("move_left", "move_right") else height)
        direction = {"move_left": (-1, 0), "move_right": (1, 0), "move_up": (0, -1), "move_down": (0, 1)}[name]
        velocity = np.array(direction, dtype=np.float64) * extent / frames
    else:
        velocity = drift
        if name.startswith("rotate_"):
            omega = np.deg2rad(rng.uniform(*ROTATION_DEG_PER_FRAME)) * (1 if name == "rotate_cw" else -1)
            angle = angle + omega * t
        else:  # grow / shrink: one is the other played backwards, so a frame's size does not tell them apart
            small = rng.uniform(*SMALL_SIZE) * size_ref
            big = small * rng.uniform(*SCALE_FACTOR)
            start, end = (small, big) if name == "grow" else (big, small)
            scale = start + (end - start) * t / max(1, frames - 1)
    half = scale.max() * 0.75
    path = np.outer(t, velocity)
    lo = np.array([half, half]) - path.min(axis=0)
    hi = np.array([width - half, height - half]) - path.max(axis=0)
    start_xy = rng.uniform(np.minimum(lo, hi), np.maximum(lo, hi))
    centers = start_xy + path

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    flicker = 1 + 0.06 * clutter * np.sin(rng.uniform(0.1, 0.4) * t + rng.uniform(0, 2 * np.pi))
    video = np.empty((frames, height, width, 3), dtype=np.uint8)
    for i in range(frames):
        ox = int(round(margin + np.cos(bg_angle) * bg_speed * i))
        oy = int(round(margin + np.sin(bg_angle) * bg_speed * i))
        frame = background[oy : oy + height, ox : ox + width].copy()
        for bx, by, vx, vy, radius, colour in blobs if clutter > 0 else ():
            cx, cy = (bx + vx * i) % width, (by + vy * i) % height
            frame[(xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2] = colour
        # Inverse-map every pixel into the object's texture coordinates (rotation about its centre, then scale).
        dx, dy = xs - centers[i, 0], ys - centers[i, 1]
        cos, sin = np.cos(angle[i]), np.sin(angle[i])
        u = (cos * dx + sin * dy) / scale[i] + 0.5
        v = (-sin * dx + cos * dy) / scale[i] + 0.5
        inside = (u >= 0) & (u < 1) & (v >= 0) & (v < 1)
        frame[inside] = tex[(v[inside] * 32).astype(int), (u[inside] * 32).astype(int)]
        frame = frame * flicker[i] + rng.normal(0, 0.015, frame.shape) * clutter
        video[i] = np.clip(frame * 255, 0, 255).astype(np.uint8)
    return video


def write_video(frames: np.ndarray, path: str | Path, fps: int) -> None:
    """Write uint8 (T, H, W, 3) RGB frames as near-lossless H.264 in MP4 (atomically)."""
    import ffmpeg

    _, height, width, _ = frames.shape
    with atomic_path(path) as tmp:
        (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=fps)
            .output(
                str(tmp),
                format="mp4",
                vcodec="libx264",
                preset="ultrafast",
                crf=10,
                pix_fmt="yuv420p",
                g=fps,
                fflags="+bitexact",
                map_metadata=-1,
                **{"flags:v": "+bitexact"},
            )
            .global_args("-nostdin", "-v", "error", "-threads", "1")
            .overwrite_output()
            .run(input=np.ascontiguousarray(frames).tobytes(), capture_stdout=True, capture_stderr=True)
        )


def _generate_one(job: tuple) -> str:
    class_index, index, seed, frames, width, height, fps, clutter, appearance, path = job
    rng = np.random.default_rng([seed, class_index, index])
    write_video(render(class_index, rng, frames, width, height, clutter, appearance), path, fps)
    return path


def check(cfg) -> None:
    """The bounds of a SyntheticConfig that depend on this catalogue."""
    if cfg.num_classes > len(CLASS_NAMES):
        raise ActnetError(f"--classes must be between 2 and {len(CLASS_NAMES)}, not {cfg.num_classes}")


def synthetic_root(cfg, cache_dir: str | Path | None = None) -> Path:
    """Where the source videos of this configuration live (a folder per configuration, reused across runs)."""
    check(cfg)
    text = json.dumps({"render": RENDER_VERSION, **asdict(cfg)}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    base = Path(cache_dir or Path.home() / ".cache" / "actnet").expanduser()
    return base / f"synthetic-{digest}"


def generate(cfg, root: str | Path, workers: int = 1, on_video=None) -> Path:
    """Render every video of ``cfg`` (a SyntheticConfig) under ``root/<class>/``; existing files are kept."""
    check(cfg)
    root = Path(root)
    jobs = []
    for c in range(cfg.num_classes):
        (root / CLASS_NAMES[c]).mkdir(parents=True, exist_ok=True)
        for i in range(cfg.videos_per_class):
            path = root / CLASS_NAMES[c] / f"syn_{CLASS_NAMES[c]}_{i:04d}.mp4"
            if path.exists():
                if on_video:
                    on_video()
                continue
            jobs.append(
                (c, i, cfg.seed, cfg.frames, cfg.width, cfg.height, cfg.fps, cfg.clutter, cfg.appearance, str(path))
            )
    if jobs:
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            for _ in pool.map(_generate_one, jobs, chunksize=4):
                if on_video:
                    on_video()
    (root / "synthetic.json").write_text(json.dumps(asdict(cfg), indent=1, sort_keys=True) + "\n")
    return root


def synthetic_listing(cfg, cache_dir: str | Path | None = None, workers: int = 0, progress: ProgressSink | None = None):
    """Render the set of ``cfg`` once into the cache (``synthetic_root``) and list it like any class-per-folder set."""
    from actnet.data.sources import list_folder

    progress = progress or ProgressSink()
    progress.start("synthetic: rendering", cfg.num_classes * cfg.videos_per_class)
    root = generate(cfg, synthetic_root(cfg, cache_dir), workers or os.cpu_count() or 1, on_video=progress.advance)
    return list_folder(root, cfg.test_fraction, name="synthetic")
