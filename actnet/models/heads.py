"""Projection heads for the cross-architecture contrastive loss (METHOD.md section 2.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ProjectionHead(nn.Module):
    """m(.): a 2-layer MLP from a model's features to ``out_dim`` (128), L2-normalised.

    No batch norm, so it behaves the same at any per-rank batch size and needs no SyncBN under DDP.
    """

    def __init__(self, in_dim: int, out_dim: int = 128, hidden_dim: int = 512):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc2(F.relu(self.fc1(features))), dim=-1)
