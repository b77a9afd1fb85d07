"""Weights from local files: 2D ImageNet checkpoints into the video models.

Nothing downloads: every function takes a path. Reports name every key that did not load and why.

- ``load_vit_2d``: a timm ViT checkpoint (``vit_small_patch16_224``-style keys) into a
  :class:`~actnet.models.timesformer.TimeSformer`. Patch embedding, class token, blocks (norm1, attn, norm2,
  mlp) and the final norm load directly; the position embedding is resampled to the model's grid; each
  temporal attention starts as a copy of its block's spatial attention, and ``temporal_fc`` stays at zero,
  so the loaded model computes what the 2D ViT computes on every frame. (A hybrid's convolutional stem,
  ``conv_stem``, has no 2D ViT counterpart: it is reported missing and starts from its own init.) The head
  loads only when the class counts agree.
- ``inflate_resnet_2d``: a torchvision/timm ResNet checkpoint (``conv1``, ``layer1.0.conv1`` ...) into a
  :class:`~actnet.models.r3d.ResNet3d`: each 2D kernel is repeated over the temporal kernel and divided by
  its length (I3D inflation), so a clip of identical frames gives the 2D network's features.

Trained models travel in training checkpoints (:mod:`actnet.checkpoint`), which rebuild them from their presets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from actnet.errors import ActnetError


@dataclass
class LoadReport:
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # model parameters the file did not provide
    unexpected: list[str] = field(default_factory=list)  # file entries the model has no place for
    mismatched: list[str] = field(default_factory=list)  # "name: file shape -> model shape"
    skipped: list[str] = field(default_factory=list)  # left out on purpose (a classifier for other classes)

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} tensors loaded"]
        kinds = (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("mismatched", self.mismatched),
            ("skipped", self.skipped),
        )
        for label, names in kinds:
            if names:
                shown = ", ".join(names[:8]) + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")
                parts.append(f"{label}: {shown}")
        return "; ".join(parts)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file (.pt/.pth/.bin or .safetensors), unwrapped from common containers."""
    path = Path(path)
    if not path.is_file():
        raise ActnetError(f"{path}: no such checkpoint file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ActnetError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    for container in ("state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(container), dict):
            state = state[container]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ActnetError(f"{path}: holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _assign(model: nn.Module, tensors: dict[str, torch.Tensor], report: LoadReport, optional: tuple[str, ...]):
    """Copy ``tensors`` into ``model`` by name; model keys starting with an ``optional`` prefix may stay unset."""
    own = model.state_dict()
    with torch.no_grad():
        for name, value in tensors.items():
            if name not in own:
                report.unexpected.append(name)
            elif own[name].shape != value.shape:
                report.mismatched.append(f"{name}: {tuple(value.shape)} -> {tuple(own[name].shape)}")
            else:
                own[name].copy_(value.to(own[name].dtype))
                report.loaded.append(name)
    report.missing += [k for k in own if k not in tensors and not k.startswith(optional)]
    return report


def _check(report: LoadReport, path: str | Path, strict: bool) -> LoadReport:
    if not report.loaded:
        raise ActnetError(f"{path}: no tensor matched the model ({report.summary()})")
    if strict and (report.missing or report.unexpected or report.mismatched):
        raise ActnetError(f"{path}: does not fit the model: {report.summary()}")
    return report


def load_vit_2d(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    from timm.layers import resample_abs_pos_embed

    state = read_state_dict(path)
    report, tensors = LoadReport(), {}
    num_blocks = len(model.blocks)
    for name, value in state.items():
        if name == "pos_embed":
            old = int(round((value.shape[1] - 1) ** 0.5))
            value = resample_abs_pos_embed(value, list(model.grid), [old, old], num_prefix_tokens=1)
        if name.startswith("head.") and value.shape[0] != model.head.out_features:
            report.skipped.append(f"{name} (a {value.shape[0]}-class head; ours has {model.head.out_features})")
            continue
        tensors[name] = value
        if name.startswith("blocks.") and ".attn." in name and int(name.split(".")[1]) < num_blocks:
            tensors[name.replace(".attn.", ".temporal_attn.")] = value.clone()  # temporal attention starts as spatial
    optional = ("time_embed", "head.") + tuple(f"blocks.{i}.temporal_" for i in range(num_blocks))
    return _check(_assign(model, tensors, report, optional), path, strict)


def inflate_resnet_2d(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    state = read_state_dict(path)
    own = model.state_dict()
    report, tensors = LoadReport(), {}
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        if name.startswith("fc.") and name in own and value.shape[0] != own[name].shape[0]:
            report.skipped.append(f"{name} (a {value.shape[0]}-class head; ours has {own[name].shape[0]})")
            continue
        if value.ndim == 4 and name in own and own[name].ndim == 5:  # (O, I, kh, kw) -> (O, I, kt, kh, kw)
            kt = own[name].shape[2]
            value = value.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt
        tensors[name] = value
    return _check(_assign(model, tensors, report, ("fc.",) + tuple(k for k in own if "num_batches" in k)), path, strict)


def load_pretrained(model: nn.Module, path: str | Path, strict: bool = True) -> LoadReport:
    """2D ImageNet weights into a video model of either family (ViT -> TimeSformer, ResNet -> ResNet3d)."""
    from actnet.models.r3d import ResNet3d
    from actnet.models.timesformer import TimeSformer

    if isinstance(model, TimeSformer):
        return load_vit_2d(model, path, strict)
    if isinstance(model, ResNet3d):
        return inflate_resnet_2d(model, path, strict)
    raise ActnetError(f"{path}: no 2D weight mapping for a {type(model).__name__}")
