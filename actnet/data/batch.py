"""The contract every loader keeps: what one :class:`Batch` holds (the DALI loader and the benchmarks' DALI-free
loader both yield it; the training task and evaluation read nothing else)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Batch:
    """One batch: ``views[(model, view)]`` is float (B, C, T, H, W), or (B, V, C, T, H, W) for evaluation.

    Views are ``weak`` (labeled and unlabeled), ``strong`` (unlabeled) and ``eval`` (V = clips x crops).
    """

    views: dict[tuple[str, str], torch.Tensor]
    label: torch.Tensor  # long (B,)
    ids: torch.Tensor  # long (B,): positions in the shard set
    keys: list[str]
    strides: dict[str, list[int]] = field(default_factory=dict)  # model -> the stride each sample got
    frames: dict[str, list[list[int]]] = field(default_factory=dict)  # model -> each sample's frame indices

    def __getitem__(self, item: tuple[str, str]) -> torch.Tensor:
        return self.views[item]

    def __len__(self) -> int:
        return len(self.keys)


def view_names(kind: str, models: list[str]) -> list[tuple[str, str]]:
    """The ``(model, view)`` keys of a stream's batches, in order."""
    views = {"labeled": ["weak"], "unlabeled": ["weak", "strong"], "eval": ["eval"]}[kind]
    return [(m, v) for m in models for v in views]
