"""A bi-level problem whose answers are known: quadratic task losses
``L_i(theta) = 1/2 (theta - c_i)^T A_i (theta - c_i)`` and outer loss
``1/2 (theta - v)^T B (theta - v)``, with random symmetric positive definite ``A_i``, ``B``
(shared by the BLO and AuxiLearn tests)."""

from __future__ import annotations

import torch


def spd(seed: int, low: float, high: float, dim: int) -> torch.Tensor:
    """A random symmetric matrix with eigenvalues in [low, high]."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.linspace(low, high, dim, dtype=torch.float64)) @ q.T


class Quadratic:
    """``A_i`` with eigenvalues in [0.5, 1.5], ``B`` in [1, 2]; fixed seeds per task position."""

    def __init__(self, tasks: list[str], dim: int = 4) -> None:
        self.tasks = list(tasks)
        self.A = {t: spd(i + 1, 0.5, 1.5, dim) for i, t in enumerate(tasks)}
        self.C = {t: torch.randn(dim, generator=torch.Generator().manual_seed(10 + i), dtype=torch.float64)
                  for i, t in enumerate(tasks)}
        self.B = spd(len(tasks) + 1, 1.0, 2.0, dim)
        self.v = torch.randn(dim, generator=torch.Generator().manual_seed(20), dtype=torch.float64)

    def inner(self, theta: torch.Tensor, t: str) -> torch.Tensor:
        d = theta - self.C[t]
        return 0.5 * d @ self.A[t] @ d

    def outer(self, theta: torch.Tensor) -> torch.Tensor:
        d = theta - self.v
        return 0.5 * d @ self.B @ d
