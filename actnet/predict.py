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

from pathlib import Path

import numpy as np
import torch

from actnet.checkpoint import encode_of, load_checkpoint, trained_models
from actnet.config import ClipConfig, LoaderConfig
from actnet.data.media import MediaError, decode_rgb
from actnet.data.sampling import clip_indices, clip_span, crop_positions, uniform_starts
from actnet.data.sources import VIDEO_EXTENSIONS
from actnet.data.views import eval_views
from actnet.errors import ActnetError
from actnet.evaluate import ensemble_name
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


def clip_views(frames: np.ndarray, fps: float, clip: ClipConfig, loader: LoaderConfig, k: int, crops: int):
    """uint8 (N, H, W, 3) frames -> (K*crops, C, T, S, S) views, chosen and made as evaluation does."""
    n, height, width = frames.shape[:3]
    stride = clip.stride_for(fps)
    starts = uniform_starts(n, clip_span(clip.frames, stride), k)
    index = [f for s in starts for f in clip_indices(s, clip.frames, stride, n)]
    x = torch.from_numpy(frames[index]).permute(0, 3, 1, 2)  # (K*T, C, H, W)
    return eval_views(x, k, clip.size, crop_positions(width, height, crops), loader.mean, loader.std, clip.test_scale)


@torch.no_grad()
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
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt["run_config"]
    clips, crops = clips or cfg.eval.clips, crops or cfg.eval.crops
    if crops not in (1, 3):
        raise ActnetError(f"--crops must be 1 or 3, not {crops}")
    dev = model_device(device)
    models, _ = trained_models(ckpt, dev, use_ema)
    autocast = autocast_for(cfg.train.precision, dev)
    encode, names = encode_of(ckpt), ckpt["class_names"]
    clip_cfgs = {"primary": cfg.loader.primary, "auxiliary": cfg.loader.auxiliary}
    results = []
    for path in video_files(paths):
        try:
            frames, fps = decode_rgb(path, encode)
        except MediaError as err:
            results.append({"file": str(path), "error": str(err)})
        else:
            probs = {}
            for role, model in models.items():
                views = clip_views(frames, fps, clip_cfgs[role], cfg.loader, clips, crops).to(dev)
                with autocast():
                    probs[role] = model(views).float().softmax(-1).mean(0).cpu()
            if len(models) > 1:
                probs["ensemble"] = torch.stack([probs[r] for r in models]).mean(0)
            top = {}
            for role in ensemble_name(list(models)):
                p, i = probs[role].topk(min(top_k, len(names)))
                top[role] = [(names[j], float(q)) for q, j in zip(p.tolist(), i.tolist())]
            results.append({"file": str(path), "frames": len(frames), "fps": fps, "top": top, "probs": probs})
        if on_file:
            on_file(results[-1])
    return results
