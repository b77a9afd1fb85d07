"""Evaluation's views in plain PyTorch, for frames that do not come through DALI (``actnet predict`` on raw files,
the DALI-free baseline loader of the benchmarks).

They match the DALI evaluation graph (:func:`actnet.data.dali.eval_views`): the short side resized (antialiased) to
the clip's test scale (the crop size unless ``test_short_side`` is set), then 1 centre crop or 3 along the long side
of each of the K clips, normalised with the run's mean and std (the tests compare the two on the same stored video).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def resize_short(frames: torch.Tensor, short: int, antialias: bool = False) -> torch.Tensor:
    """uint8 (T, C, H, W) -> float (T, C, h, w) with min(h, w) == short."""
    h, w = frames.shape[-2:]
    scale = short / min(h, w)
    size = (max(short, round(h * scale)), max(short, round(w * scale)))
    return F.interpolate(frames.float(), size=size, mode="bilinear", align_corners=False, antialias=antialias)


def crop(frames: torch.Tensor, size: int, px: float, py: float) -> torch.Tensor:
    """A ``size`` square at relative position (``px``, ``py``): 0 is the left/top edge, 1 the right/bottom."""
    h, w = frames.shape[-2:]
    # DALI's crop anchor is roundf(pos * (extent - size)): halves round up, where Python's round() goes to even
    y, x = math.floor(py * (h - size) + 0.5), math.floor(px * (w - size) + 0.5)
    return frames[..., y : y + size, x : x + size]


def normalize(frames: torch.Tensor, mean, std) -> torch.Tensor:
    """float 0..255 (T, C, H, W) -> normalised (C, T, H, W)."""
    m = torch.tensor(mean).view(1, 3, 1, 1) * 255
    s = torch.tensor(std).view(1, 3, 1, 1) * 255
    return ((frames - m) / s).permute(1, 0, 2, 3).contiguous()


def eval_views(clip: torch.Tensor, k: int, size: int, crops, mean, std, short: int = 0) -> torch.Tensor:
    """uint8 (K*T, C, H, W) frames of K clips -> (K*crops, C, T, S, S) evaluation views: the short side resized to
    ``short`` (0: ``size``), then crops of ``size``."""
    x = resize_short(clip, short or size, antialias=True)
    views = [normalize(crop(x, size, px, py), mean, std) for px, py in crops]
    v = torch.stack(views)  # (crops, C, K*T, S, S)
    c, kt = v.shape[1], v.shape[2]
    return v.view(len(crops), c, k, kt // k, size, size).permute(2, 0, 1, 3, 4, 5).reshape(-1, c, kt // k, size, size)
