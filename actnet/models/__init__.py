"""The two architectures and their presets, by name.

=================  =======================================================================================
``r3d50``          3D-ResNet-50, SlowOnly-style (the primary model; 31.84 M parameters at 101 classes)
``r3d50_w4``       the same at 1/4 width (a light CMPL auxiliary)
``r3d18``          3D-ResNet-18, same inflation (CMPL's light auxiliary)
``timesformer_s``  ViT-S with divided space-time attention (the auxiliary; ~30.4 M at 101 classes)
``r3d_tiny``       a few hundred thousand parameters, 64 px, for tests and the CPU demo
``timesformer_tiny``
=================  =======================================================================================

Every model takes ``(B, 3, T, H, W)`` and has ``forward_features(x) -> (B, num_features)``,
``forward_head(features) -> logits`` and ``num_features``; ``default_input`` says what it was sized for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from actnet.errors import ActnetError
from actnet.models.heads import ProjectionHead
from actnet.models.r3d import ResNet3d
from actnet.models.timesformer import TimeSformer

__all__ = ["PRESETS", "ProjectionHead", "ResNet3d", "TimeSformer", "create_model", "preset"]


@dataclass(frozen=True)
class Preset:
    name: str
    family: str  # "r3d" or "timesformer"
    build: Callable[..., nn.Module]
    frames: int  # default input (T, size)
    size: int
    description: str


def _r3d(block: str, layers, width: int, temporal=(False, False, True, True), stem_frames: int = 1):
    def build(num_classes: int, *, drop_rate: float = 0.0, **_) -> nn.Module:
        return ResNet3d(
            block, tuple(layers), num_classes, width, tuple(temporal), drop_rate=drop_rate, stem_frames=stem_frames
        )

    return build


def _vit(size: int, frames: int, patch: int, dim: int, depth: int, heads: int, conv_stem: int = 0, pool="token"):
    def build(num_classes: int, *, drop_rate: float = 0.0, drop_path_rate: float = 0.0, **_) -> nn.Module:
        args = (num_classes, size, frames, patch, dim, depth, heads, 4.0, drop_rate, drop_path_rate)
        return TimeSformer(*args, conv_stem=conv_stem, global_pool=pool)

    return build


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("r3d50", "r3d", _r3d("bottleneck", (3, 4, 6, 3), 64), 8, 224, "3D-ResNet-50, SlowOnly inflation"),
        Preset("r3d50_w4", "r3d", _r3d("bottleneck", (3, 4, 6, 3), 16), 8, 224, "3D-ResNet-50 at 1/4 width"),
        Preset("r3d18", "r3d", _r3d("basic", (2, 2, 2, 2), 64), 8, 224, "3D-ResNet-18, SlowOnly inflation"),
        Preset("timesformer_s", "timesformer", _vit(224, 8, 16, 384, 12, 6), 8, 224, "ViT-S, divided attention"),
        Preset(
            "r3d_tiny",
            "r3d",
            _r3d("basic", (1, 1, 1, 1), 16, (True, True, True, True), stem_frames=5),
            8,
            64,
            "tiny 3D-ResNet for tests and demo (a 5x7x7 stem, temporal kernels in every stage: motion at 64 px)",
        ),
        Preset(
            "timesformer_tiny",
            "timesformer",
            _vit(64, 8, 8, 64, 4, 4, conv_stem=16, pool="avg"),
            8,
            64,
            "tiny TimeSformer for tests and demo (hybrid: a 5x7x7 conv stem, 2x2 patches; mean-pooled tokens)",
        ),
    ]
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ActnetError(f"unknown model {name!r}; one of {', '.join(PRESETS)}")
    return PRESETS[name]


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """A fresh model of preset ``name``; ``drop_rate`` and (transformers) ``drop_path_rate`` are optional."""
    model = preset(name).build(num_classes, **kwargs)
    model.preset = name
    return model
