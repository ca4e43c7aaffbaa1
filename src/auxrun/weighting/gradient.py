"""Strategies that combine per-task gradients on the shared parameters.

``G`` is the task-gradient matrix of the step (row 0 = target gradient ``g_0``, row ``i`` =
auxiliary gradient ``g_i``), ``c_i = cos(g_0, g_i)``, ``r_i = ||g_0|| / ||g_i||``. A strategy
first applies *surgery* to the auxiliary rows (``g_i -> g~_i``, identity by default), then
weights them: the shared update is ``g_0 + sum_i a_i g~_i``; the target gradient always
passes unchanged. These strategies act on the shared gradient only: head ``i`` gets its own
task's gradient ``grad L_i`` (:meth:`~.base.Step.backward_heads`).

====================  =============================================  ===========================
``weighting=``        update                                         source
====================  =============================================  ===========================
``cosine``            ``a_i = 1[c_i > 0]``                           Du et al. 2018 (unweighted)
``gcs``               ``a_i = max(0, c_i)``                          Dey & Ning 2024 (GCS)
``gns``               ``a_i = min(1, r_i)``                          Dey & Ning 2024 (GNS)
``gcs_gns``           ``a_i = max(0, c_i r_i)``                      Dey & Ning 2024 (GCS+GNS)
``pcgrad``            ``g~_i = g_i - (g_i.g_0 / ||g_0||^2) g_0`` if  PCGrad (Yu et al. 2020),
                      ``c_i < 0``, else ``g_i``; ``a_i = 1``         auxiliary-only as in Dey & Ning
``jd``                ``A(G)`` for a torchjd aggregator ``A``        torchjd
====================  =============================================  ===========================
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import torchjd_options
from .base import Diagnostics, Step, Weighting, diagnostics

EPS = 1e-12


def norm_ratio(g0: Tensor, A: Tensor) -> Tensor:
    """``r_i = ||g_0|| / ||A_i||`` (0 where ``A_i`` vanishes)."""
    norms = A.norm(dim=1)
    return torch.where(norms > EPS, g0.norm() / norms.clamp_min(EPS), torch.zeros_like(norms))


def project_conflicts(g0: Tensor, A: Tensor) -> Tensor:
    """PCGrad on auxiliary rows only: remove from every ``A_i`` with ``A_i . g_0 < 0`` its
    component along ``g_0``, so no projected row conflicts with the target gradient."""
    dots = A @ g0
    coef = torch.where(dots < 0, dots / (g0 @ g0).clamp_min(EPS), torch.zeros_like(dots))
    return A - coef[:, None] * g0[None, :]


class GradientCombination(Weighting):
    """Base: ``surgery`` then ``aux_coefficients``; ``G`` comes from the step's cache."""

    needs_target = True

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()

    def surgery(self, g0: Tensor, A: Tensor, cos: Tensor) -> Tensor:
        """The auxiliary rows after surgery (identity unless overridden)."""
        return A

    def aux_coefficients(self, g0: Tensor, A: Tensor, cos: Tensor) -> Tensor:
        """``(a_1, ..., a_K)`` for the auxiliary rows ``A`` (after surgery)."""
        return torch.ones(len(A), dtype=A.dtype, device=A.device)

    def before_update(self, step: Step, g0: Tensor, A: Tensor, cos: Tensor) -> None:
        """Hook for strategies that adapt parameters of their own before the update."""

    def after_update(self, step: Step) -> None:
        """Hook for strategies that adapt parameters of their own after the update."""

    def combine(self, step: Step, G: Tensor) -> tuple[Tensor, Tensor]:
        """The update ``G_0 + sum_i a_i G~_i`` for task-gradient rows ``G`` (the step's own,
        or rescaled ones) and the coefficients ``a``; cosines are the step's (invariant to
        positive rescaling of the rows)."""
        cos = step.cosines()
        g0 = G[0]
        A = self.surgery(g0, G[1:], cos)
        self.before_update(step, g0, A, cos)
        coef = self.aux_coefficients(g0, A, cos)
        return g0 + coef @ A, coef

    def backward(self, step: Step) -> Diagnostics:
        update, coef = self.combine(step, step.task_grads())
        step.set_shared_grad(update)
        step.backward_heads()
        self.after_update(step)
        return diagnostics(step, dict(zip(step.tasks, torch.cat([coef.new_ones(1), coef]))))


class Cosine(GradientCombination):
    name = "cosine"
    family = "gradient"
    order = 20

    def aux_coefficients(self, g0: Tensor, A: Tensor, cos: Tensor) -> Tensor:
        return (cos > 0).to(A.dtype)


class GCS(GradientCombination):
    name = "gcs"
    family = "gradient"
    order = 50

    def aux_coefficients(self, g0: Tensor, A: Tensor, cos: Tensor) -> Tensor:
        return cos.clamp_min(0)


class GNS(GradientCombination):
    name = "gns"
    family = "gradient"
    order = 60

    def aux_coefficients(self, g0: Tensor, A: Tensor, cos: Tensor) -> Tensor:
        return norm_ratio(g0, A).clamp_max(1)


class GCSGNS(GradientCombination):
    name = "gcs_gns"
    family = "gradient"
    order = 70

    def aux_coefficients(self, g0: Tensor, A: Tensor, cos: Tensor) -> Tensor:
        return (cos * norm_ratio(g0, A)).clamp_min(0)


class PCGrad(GradientCombination):
    name = "pcgrad"
    family = "gradient"
    order = 80

    def surgery(self, g0: Tensor, A: Tensor, cos: Tensor) -> Tensor:
        return project_conflicts(g0, A)


AGGREGATORS = {
    "upgrad": "UPGrad", "pcgrad": "PCGrad", "cagrad": "CAGrad", "nashmtl": "NashMTL", "mgda": "MGDA",
    "imtlg": "IMTLG", "gradvac": "GradVac", "aligned_mtl": "AlignedMTL", "dualproj": "DualProj",
}


class Jd(Weighting):
    """A torchjd aggregator over the task-gradient matrix: the shared update is ``A(G)``
    (the target is one row among equals, as these methods treat every task as an objective).
    torchjd does not expose the weights it uses, so the trace records cosines only."""

    name = "jd"
    family = "gradient"
    order = 120
    needs_target = True

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        """``options``: keyword arguments that the chosen torchjd class takes."""
        torchjd_options.check(settings, "aggregator", AGGREGATORS, "torchjd.aggregation")

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()
        key = str(cfg.aggregator)  # one of AGGREGATORS: checked by the schema, options by check()
        from torchjd import aggregation

        options = dict(cfg.get("options") or {})
        if key == "cagrad":
            options.setdefault("c", 0.4)
        if key == "nashmtl":
            options.setdefault("n_tasks", len(tasks))
        self.aggregator = torchjd_options.build(getattr(aggregation, AGGREGATORS[key]), (), options,
                                                lambda a: a(torch.eye(len(tasks), len(tasks) + 1)))

    def backward(self, step: Step) -> Diagnostics:
        G = step.task_grads()
        step.set_shared_grad(self.aggregator(G).to(G.dtype))
        step.backward_heads()
        cos = dict(zip(step.aux_tasks, step.cosines().tolist()))
        return {t: {"weight": None, "weight_std": None, "cos": cos.get(t)} for t in step.tasks}
