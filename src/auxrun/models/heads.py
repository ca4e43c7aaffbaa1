"""Task heads: small modules on top of the shared encoder's embeddings."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


class ClassifierHead(nn.Module):
    """Logits ``W h + b`` for node classification."""

    def __init__(self, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden, num_classes)

    def forward(self, h: Tensor) -> Tensor:
        return self.linear(h)


@dataclass(frozen=True)
class MLPHead:
    """SELAR's link decoder for :class:`PairHead`: a task's own two-layer MLP ``phi`` with
    ``hidden`` units applied to both ends."""

    hidden: int


def head_spec(kind: str, dim: int, mlp_hidden: int) -> int | MLPHead | None:
    """The :class:`PairHead` ``dim`` of config ``aux.pair_head`` / ``aux.target_head``:
    ``projected`` -> ``dim``, ``dot`` -> ``None``, ``mlp`` -> ``MLPHead(mlp_hidden)``."""
    return {"projected": int(dim), "dot": None, "mlp": MLPHead(int(mlp_hidden))}[str(kind)]


class PairHead(nn.Module):
    """Pair score of node embeddings ``h_u``, ``h_v``, by ``dim``:

    * an integer ``d``: ``s(u, v) = <P h_u, P h_v> / sqrt(d) + b`` with ``P`` a learned
      ``d x hidden`` projection;
    * ``None``: SELAR's plain dot product ``<h_u, h_v> / sqrt(hidden) + b`` (``P = I``, only the
      bias is learned);
    * :class:`MLPHead`: SELAR's decoder ``s(u, v) = <phi(h_u), phi(h_v)>`` with
      ``phi(h) = W_2 relu(W_1 h + b_1) + b_2`` (``W_1``: ``mlp.hidden x hidden``), no scale, no
      bias, each task its own ``phi``.

    One map for both ends keeps the score a positive semi-definite form of the (mapped)
    embeddings: a pair task can only be fitted by making the two embeddings alike or unlike,
    never by flipping the sign of similarity. With ``P = I`` the head cannot absorb a task
    either (a learned ``P`` can shrink to zero), so every pair label acts on the encoder itself.
    """

    def __init__(self, hidden: int, dim: int | MLPHead | None) -> None:
        super().__init__()
        self.bias: nn.Parameter | None = nn.Parameter(torch.zeros(()))
        if isinstance(dim, MLPHead):
            self.proj: nn.Module = nn.Sequential(nn.Linear(hidden, dim.hidden), nn.ReLU(), nn.Linear(dim.hidden, hidden))
            self.scale, self.bias = 1.0, None
        else:
            self.proj = nn.Identity() if dim is None else nn.Linear(hidden, dim, bias=False)
            self.scale = 1.0 / math.sqrt(hidden if dim is None else dim)

    def forward(self, h_src: Tensor, h_dst: Tensor) -> Tensor:
        score = (self.proj(h_src) * self.proj(h_dst)).sum(-1) * self.scale
        return score if self.bias is None else score + self.bias

    def score_matrix(self, h_src: Tensor, h_dst: Tensor) -> Tensor:
        """Scores of every (source, destination) combination, ``(n_src, n_dst)``."""
        score = self.proj(h_src) @ self.proj(h_dst).T * self.scale
        return score if self.bias is None else score + self.bias


class FeatureHead(nn.Module):
    """Reconstructs node features: ``W_2 relu(W_1 h)``."""

    def __init__(self, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, h: Tensor) -> Tensor:
        return self.mlp(h)

