"""Strategies that combine per-task gradients: the shared update is ``sum_i a_i g_i`` with
coefficients ``a_i`` computed from the task-gradient matrix ``G`` (row ``i`` = ``g_i``) and the
cosines ``c_i = cos(g_0, g_i)``; ``a_0 = 1`` (the target gradient passes unchanged).

* ``cosine`` (Du et al. 2018, "Adapting auxiliary losses using gradient similarity",
  unweighted variant): ``a_i = 1`` if ``c_i > 0`` else ``0``, i.e. ``g_0 + sum_{c_i > 0} g_i``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import Diagnostics, Step, Weighting, diagnostics


class GradientCombination(Weighting):
    """Base: subclasses give the auxiliary coefficients; ``G`` comes from the step's cache."""

    needs_target = True

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()

    def aux_coefficients(self, G: Tensor, cos: Tensor) -> Tensor:
        """``(a_1, ..., a_K)`` for the auxiliary rows of ``G``."""
        raise NotImplementedError

    def backward(self, step: Step) -> Diagnostics:
        G = step.task_grads()
        coef = torch.cat([G.new_ones(1), self.aux_coefficients(G, step.cosines())])
        step.set_shared_grad(coef @ G)
        step.backward_heads()
        return diagnostics(step, dict(zip(step.tasks, coef)))


class Cosine(GradientCombination):
    name = "cosine"

    def aux_coefficients(self, G: Tensor, cos: Tensor) -> Tensor:
        return (cos > 0).to(G.dtype)
