"""Optimizers and learning-rate schedules, one per model: SGD or AdamW over two parameter groups, a linear
warm-up then a cosine, as pure functions of the step."""

from __future__ import annotations

import math

import torch
from torch import nn

from actnet.config import OptimConfig


def no_weight_decay_names(module: nn.Module) -> set[str]:
    """Full names of the parameters the module's parts exempt from weight decay by their ``no_weight_decay()``
    (timm's convention: position and time embeddings, class tokens)."""
    names = set()
    for prefix, sub in module.named_modules():
        if callable(getattr(sub, "no_weight_decay", None)):
            names |= {f"{prefix}.{n}" if prefix else n for n in sub.no_weight_decay()}
    return names


def param_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weights only: not on norms and biases (1-D) nor on what ``no_weight_decay()`` names."""
    exempt = no_weight_decay_names(module)
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name in exempt else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(cfg: OptimConfig, module: nn.Module, global_batch: int | None = None) -> torch.optim.Optimizer:
    """SGD or AdamW over ``param_groups``, built after the module is on its device (fused kernels need that).

    The peak learning rate is ``cfg.scaled_lr(global_batch)``: linear in the labeled clips per step over all ranks
    when ``cfg.lr_batch`` is set (``None``: ``cfg.lr`` as given)."""
    lr = cfg.lr if global_batch is None else cfg.scaled_lr(global_batch)
    groups = param_groups(module, cfg.weight_decay)
    on_fused_device = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in module.parameters())
    impl = {"fused": True} if cfg.fused and on_fused_device else {"foreach": True}
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(cfg.momentum, cfg.betas2), **impl)
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, **impl)


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Linear warm-up from 1/warmup to 1, then a cosine to ``min_ratio`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float):
    """:func:`lr_factor` per step as a LambdaLR (its state is the step count, saved with every checkpoint)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps, min_ratio)
    )
