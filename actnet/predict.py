"""``actnet predict``: a trained checkpoint on raw video files, no shards needed.

Each file is decoded by ffmpeg the way ``prepare`` stored the training videos (the checkpoint records that
encode: frame rate cap and short side), then gets evaluation's views: K clips evenly spaced over the video at
the evaluation stride (or the time-based rate) x 1 or 3 crops, short side resized to the crop size, normalised
with the run's mean/std. A model's prediction is its mean softmax over the views, the ensemble's the mean of
the two models' (as ``actnet evaluate``). A file that cannot be read is reported by name; the rest go on.

    results = predict_files("runs/demo/actnetformer-seed0", ["clip.mp4"], clips=2, crops=1)
    results[0]["top"]["ensemble"]     # [("move_left", 0.91), ...]
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch

from actnet.checkpoint import encode_of, load_checkpoint, trained_models
from actnet.config import ClipConfig, LoaderConfig
from actnet.data.media import MediaError, RgbStream, open_rgb
from actnet.data.sampling import clip_indices, clip_span, crop_positions, uniform_starts
from actnet.data.sources import VIDEO_EXTENSIONS
from actnet.data.views import eval_views
from actnet.errors import ActnetError
from actnet.evaluate import ensemble_name
from actnet.files import atomic_write
from actnet.runtime import autocast_for, model_device


def video_files(paths: list[str | Path]) -> list[Path]:
    """Files as given, and the video files under folders (recursively, sorted); a missing path is an error."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix[1:].lower() in VIDEO_EXTENSIONS)
        elif path.exists():
            found.append(path)
        else:
            raise ActnetError(f"{path}: no such file or folder")
    return found


def plan_clips(n: int, fps: float, clip: ClipConfig, k: int) -> list[int]:
    """The frame indices of ``k`` evaluation clips evenly spaced over ``n`` frames (as evaluation plans them)."""
    stride = clip.stride_for(fps)
    starts = uniform_starts(n, clip_span(clip.frames, stride), k)
    return [f for s in starts for f in clip_indices(s, clip.frames, stride, n)]


def views_of(picked: np.ndarray, clip: ClipConfig, loader: LoaderConfig, k: int, crops: int) -> torch.Tensor:
    """uint8 (K*T, H, W, 3) planned frames -> (K*crops, C, T, S, S) views, made as evaluation makes them."""
    height, width = picked.shape[1:3]
    x = torch.from_numpy(np.ascontiguousarray(picked)).permute(0, 3, 1, 2)  # (K*T, C, H, W)
    return eval_views(x, k, clip.size, crop_positions(width, height, crops), loader.mean, loader.std, clip.test_scale)


def clip_views(frames: np.ndarray, fps: float, clip: ClipConfig, loader: LoaderConfig, k: int, crops: int):
    """uint8 (N, H, W, 3) frames -> (K*crops, C, T, S, S) views, chosen and made as evaluation does."""
    return views_of(frames[plan_clips(len(frames), fps, clip, k)], clip, loader, k, crops)


def _plans(n: int, fps: float, clips: dict[str, ClipConfig], k: int) -> dict[str, list[int]]:
    return {role: plan_clips(n, fps, clip, k) for role, clip in clips.items()}


def _keep(stream: RgbStream, wanted: set[int]) -> tuple[dict[int, np.ndarray], int]:
    """One decoding pass keeping only frames ``wanted``; also the number of frames."""
    kept, n = {}, 0
    for n, frame in enumerate(stream.frames(), start=1):
        if n - 1 in wanted:
            kept[n - 1] = frame
    return kept, n


def planned_frames(stream: RgbStream, plans_for) -> tuple[dict[str, np.ndarray], int]:
    """The frames ``plans_for(n)`` (role -> indices) names, decoded as a stream: memory holds the planned frames
    only, whatever the video's length. The plan needs the frame count: the container's estimate is used and
    checked at the end of the pass; when it was wrong (or missing), a second pass takes the right frames."""
    estimate = stream.estimated_frames
    n = None
    if estimate:
        plans = plans_for(estimate)
        kept, n = _keep(stream, {i for p in plans.values() for i in p})
        if n != estimate:
            kept = None
    else:
        n = sum(1 for _ in stream.frames())
        kept = None
    if not n:
        raise MediaError("no frames decoded")
    if kept is None:
        plans = plans_for(n)
        kept, _ = _keep(stream, {i for p in plans.values() for i in p})
    return {role: np.stack([kept[i] for i in plan]) for role, plan in plans.items()}, n


class Predictor:
    """A checkpoint's models, ready to turn planned frames into class probabilities as evaluation does."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", use_ema: bool = True):
        ckpt = load_checkpoint(checkpoint)
        self.cfg = ckpt["run_config"]
        self.device = model_device(device)
        self.models, _ = trained_models(ckpt, self.device, use_ema)
        self.autocast = autocast_for(self.cfg.train.precision, self.device)
        self.encode, self.names = encode_of(ckpt), ckpt["class_names"]
        self.clips = {r: getattr(self.cfg.loader, r) for r in self.models}
        self.roles = ensemble_name(list(self.models))

    @torch.no_grad()
    def probs(self, picked: dict[str, np.ndarray], k: int, crops: int) -> dict[str, torch.Tensor]:
        """Each model's mean softmax over its ``k`` clips x ``crops`` views, and the ensemble's (their mean)."""
        out = {}
        for role, model in self.models.items():
            views = views_of(picked[role], self.clips[role], self.cfg.loader, k, crops).to(self.device)
            with self.autocast():
                out[role] = model(views).float().softmax(-1).mean(0).cpu()
        if len(self.models) > 1:
            out["ensemble"] = torch.stack([out[r] for r in self.models]).mean(0)
        return out


def _check_crops(crops: int) -> None:
    if crops not in (1, 3):
        raise ActnetError(f"--crops must be 1 or 3, not {crops}")


def predict_files(
    checkpoint: str | Path,
    paths: list[str | Path],
    *,
    clips: int | None = None,
    crops: int | None = None,
    top_k: int = 5,
    device: str = "cpu",
    use_ema: bool = True,
    on_file=None,
) -> list[dict]:
    """One result per file: {"file", "top": {role: [(class, probability), ...]}, "probs"} or {"file", "error"}."""
    predictor = Predictor(checkpoint, device, use_ema)
    cfg, names = predictor.cfg, predictor.names
    clips, crops = clips or cfg.eval.clips, crops or cfg.eval.crops
    _check_crops(crops)
    results = []
    for path in video_files(paths):
        try:
            stream = open_rgb(path, predictor.encode)
            picked, num_frames = planned_frames(stream, partial(_plans, fps=stream.fps, clips=predictor.clips, k=clips))
        except MediaError as err:
            results.append({"file": str(path), "error": str(err)})
        else:
            probs = predictor.probs(picked, clips, crops)
            top = {}
            for role in predictor.roles:
                p, i = probs[role].topk(min(top_k, len(names)))
                top[role] = [(names[j], float(q)) for q, j in zip(p.tolist(), i.tolist())]
            results.append({"file": str(path), "frames": num_frames, "fps": stream.fps, "top": top, "probs": probs})
        if on_file:
            on_file(results[-1])
    return results


# ------------------------------------------------------------------------------------------- timelines


def windows(frames: Iterator[np.ndarray], size: int, hop: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(first frame, (n, H, W, 3) frames)`` of consecutive windows of ``size`` frames, every ``hop`` frames, from
    a stream: memory holds two windows at most. When no full window covered the video's last frames, one more
    window of the last ``size`` frames ends at the last frame (overlapping the one before; a video shorter than
    ``size`` is one shorter window)."""
    buffer: deque = deque(maxlen=size)  # the window being filled
    recent: deque = deque(maxlen=size)  # the last frames seen, for the final window
    first, covered, skip, n = 0, 0, 0, 0  # covered: frames [0, covered) are in some window; n: frames seen
    for frame in frames:
        n += 1
        recent.append(frame)
        if skip:  # hop > size: frames between windows
            skip -= 1
            first += 1
            continue
        buffer.append(frame)
        if len(buffer) == size:
            yield first, np.stack(buffer)
            covered = first + size
            for _ in range(min(hop, size)):
                buffer.popleft()
            first += min(hop, size)
            skip = max(0, hop - size)
    if n > covered:
        yield n - len(recent), np.stack(recent)


def segments(rows: list[dict], role: str) -> list[dict]:
    """Consecutive windows with the same top class of ``role``, merged: class, start, end, mean confidence."""
    out: list[dict] = []
    for row in rows:
        name, confidence = row["top"][role]
        if out and out[-1]["class"] == name:
            seg = out[-1]
            seg["end_s"], seg["windows"] = row["end_s"], seg["windows"] + 1
            seg["confidence"] += (confidence - seg["confidence"]) / seg["windows"]
        else:
            out.append(
                {
                    "class": name,
                    "start_s": row["start_s"],
                    "end_s": row["end_s"],
                    "confidence": confidence,
                    "windows": 1,
                }
            )
    return out


def predict_timeline(
    checkpoint: str | Path,
    path: str | Path,
    *,
    window_s: float = 0.0,
    hop_s: float = 0.0,
    crops: int = 1,
    device: str = "cpu",
    use_ema: bool = True,
    predictor: Predictor | None = None,
    on_start=None,
    on_window=None,
) -> dict:
    """A prediction per window of ``window_s`` seconds every ``hop_s`` (0: one window, no overlap) over a video of
    any length, decoded as a stream: memory holds one window, whatever the length. Each window gets one clip per
    model, placed in it as evaluation places one clip in a video, x ``crops``. ``window_s`` 0 takes the primary
    model's clip span at its evaluation stride (the least time a clip sees). Returns the windows (start, end,
    top class and confidence per model and the ensemble) and, per model, the segments of one top class."""
    predictor = predictor or Predictor(checkpoint, device, use_ema)
    _check_crops(crops)
    stream = open_rgb(path, predictor.encode)
    fps = stream.fps
    primary = predictor.clips["primary"]
    span = clip_span(primary.frames, primary.stride_for(fps))
    size = max(1, round(window_s * fps)) if window_s > 0 else span
    hop = max(1, round(hop_s * fps)) if hop_s > 0 else size
    if on_start:  # how many windows to expect, from the container's frame count (or 1 when it does not say)
        estimate = stream.estimated_frames or size
        on_start(1 + max(0, -(-(estimate - size) // hop)))
    rows = []
    for first, frames in windows(stream.frames(), size, hop):
        picked = {r: frames[plan_clips(len(frames), fps, c, 1)] for r, c in predictor.clips.items()}
        probs = predictor.probs(picked, 1, crops)
        top = {}
        for role in predictor.roles:
            p, i = probs[role].max(0)
            top[role] = (predictor.names[int(i)], float(p))
        row = {"start_s": first / fps, "end_s": (first + len(frames)) / fps, "frames": [first, first + len(frames)]}
        row |= {"top": top, "probs": {r: [round(float(x), 6) for x in v] for r, v in probs.items()}}
        rows.append(row)
        if on_window:
            on_window(row)
    if not rows:
        raise MediaError("no frames decoded")
    return {
        "file": str(path),
        "fps": fps,
        "window_s": size / fps,
        "hop_s": hop / fps,
        "classes": list(predictor.names),
        "windows": rows,
        "segments": {role: segments(rows, role) for role in predictor.roles},
    }


def write_timeline(timeline: dict, out_dir: Path) -> list[Path]:
    """``<stem>.timeline.json`` (everything), ``.csv`` (a row per window: span, top class and confidence per model)
    and ``.png`` (a strip of the top class over time, with its confidence) in ``out_dir``."""
    from actnet.plots import plot_timeline

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{Path(timeline['file']).name}.timeline"
    roles = list(timeline["segments"])
    lines = ["start_s,end_s," + ",".join(f"{r}_class,{r}_confidence" for r in roles)]
    for row in timeline["windows"]:
        cells = [f"{row['start_s']:.3f}", f"{row['end_s']:.3f}"]
        for role in roles:
            name, confidence = row["top"][role]
            cells += [name, f"{confidence:.4f}"]
        lines.append(",".join(cells))
    written = [Path(f"{stem}.json"), Path(f"{stem}.csv"), Path(f"{stem}.png")]
    atomic_write(written[0], json.dumps(timeline, indent=1) + "\n")
    atomic_write(written[1], "\n".join(lines) + "\n")
    plot_timeline(timeline, written[2])
    return written
