"""The tiny models can learn what only the order of frames tells.

Every synthetic class has its time reverse among the classes (move_left / move_right, rotate_cw / rotate_ccw,
grow / shrink), so a model blind to the order of frames cannot tell half the classes apart. The sharpest check of
that: a few clips, each also played backwards under the other label. Forward and backward clips hold the same
frames, so only the order can fit them; a model whose order signal is missing or too weak to learn (the tiny ViT
before its tubelet patches: temporal attention is blind to order, and its time embedding starts at zero) stays at
50% on them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from actnet.data.synthetic import CLASS_NAMES, render
from actnet.models import create_model, preset

STEPS = 120


def forward_and_backward(videos: int = 4, stride: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """``2 * videos`` clips (8 frames, 64 px) of move_right: label 0 as rendered, label 1 played backwards."""
    right = CLASS_NAMES.index("move_right")
    clips = []
    for i in range(videos):
        video = render(right, np.random.default_rng([7, i]), 48, 128, 96, clutter=1.0)
        x = torch.from_numpy(video[8 : 8 + 7 * stride + 1 : stride]).float().div(255).permute(3, 0, 1, 2)
        x = F.interpolate(x, size=(64, 85), mode="bilinear", antialias=True)[..., 10:74]  # (C, T, 64, 64)
        clips.append((x - 0.45) / 0.225)
    forward = torch.stack(clips)
    return torch.cat([forward, forward.flip(2)]), torch.tensor([0] * videos + [1] * videos)


def fit(name: str, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.nn.Module, float]:
    torch.manual_seed(0)
    model = create_model(name, 2)
    if preset(name).family == "r3d":  # the demo recipe's optimizers, without weight decay
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)
    for _ in range(STEPS):
        model.train()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(-1) == y).float().mean().item()
    return model, accuracy


def test_clips_played_backwards_hold_the_same_frames():
    x, y = forward_and_backward(videos=2)
    forward, backward = x[y == 0], x[y == 1]
    assert torch.equal(forward.sort(dim=2).values, backward.sort(dim=2).values)  # the same frames ...
    assert not torch.equal(forward, backward)  # ... in another order


@pytest.mark.parametrize("name", ["r3d_tiny", "timesformer_tiny"])
def test_tiny_model_fits_clips_by_the_order_of_their_frames(name):
    x, y = forward_and_backward()
    model, accuracy = fit(name, x, y)
    assert accuracy == 1.0, f"{name} fits {accuracy:.0%} of clips that only the order of frames tells apart"
    with torch.no_grad():  # and it is the order that it reads: one clip, reversed, changes its answer
        assert model(x[:1]).argmax(-1) != model(x[:1].flip(2)).argmax(-1)
