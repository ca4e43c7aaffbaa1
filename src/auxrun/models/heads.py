"""Task heads: small modules on top of the shared encoder's embeddings."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ClassifierHead(nn.Module):
    """Logits ``W h + b`` for node classification."""

    def __init__(self, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, num_classes)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(h)


class PairHead(nn.Module):
    """Pair score ``s(u, v) = <P h_u, P h_v> / sqrt(d) + b``.

    ``dim=None`` gives SELAR's plain dot product of the node embeddings (``P = I``, only the
    bias ``b`` is learned); otherwise ``P`` is a learned ``dim x hidden`` projection. One ``P``
    for both ends keeps the score a positive semi-definite form of the embeddings: a pair
    task can only be fitted by making the two embeddings alike or unlike, never by flipping
    the sign of similarity. With ``P = I`` the head cannot absorb a task either (a learned
    ``P`` can shrink to zero), so every pair label acts on the encoder itself.
    """

    def __init__(self, hidden: int, dim: int | None) -> None:
        super().__init__()
        self.proj: nn.Module = nn.Identity() if dim is None else nn.Linear(hidden, dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(()))
        self.scale = 1.0 / math.sqrt(hidden if dim is None else dim)

    def forward(self, h_src: Tensor, h_dst: Tensor) -> Tensor:
        return (self.proj(h_src) * self.proj(h_dst)).sum(-1) * self.scale + self.bias

    def score_matrix(self, h_src: Tensor, h_dst: Tensor) -> Tensor:
        """Scores of every (source, destination) combination, ``(n_src, n_dst)``."""
        return self.proj(h_src) @ self.proj(h_dst).T * self.scale + self.bias


class FeatureHead(nn.Module):
    """Reconstructs node features: ``W_2 relu(W_1 h)``."""

    def __init__(self, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, h: Tensor) -> Tensor:
        return self.mlp(h)

