"""``weighting=scalarize``: torchjd's scalarizers, which combine the task losses into one
scalar ``S(L_0, ..., L_K)`` (the target is one task among equals, as in multi-task
learning); every parameter moves along ``grad S = sum_i (dS/dL_i) g_i``
(:class:`~.base.ObjectiveWeighting`). ``weighting.scalarizer`` picks the method; the
formulas are torchjd's, not re-implemented here:

==============  ===========================================================  =====================
``scalarizer``  ``S(L)`` and how it adapts                                  source
==============  ===========================================================  =====================
``uw``          ``sum_i (exp(-s_i) L_i + s_i) / 2``, log-variances ``s``     Kendall et al. 2018
                learned by Adam on ``dS/ds`` (``weighting.lr``)
``imtll``       ``sum_i (exp(s_i) L_i - s_i)``, ``s`` learned as ``uw``'s    Liu et al. 2021
``dwa``         ``sum_i lambda_i L_i``, ``lambda = N softmax(r / T)``,       Liu et al. 2019
                ``r_i`` = ratio of task ``i``'s mean loss over the last two
                epochs (uniform for the first two)
``famo``        ``c sum_i z_i log(L_i - b_i + eps)``, ``z = softmax(w)``;    Liu et al. 2023
                after the optimiser step, one Adam step on ``w`` along the
                drop of ``log L`` on the same batch
``stch``        ``mu log sum_i exp(lambda_i (L_i - z_i) / mu)``, a smooth    Lin et al. 2024
                maximum (``lambda = 1/N``, ``z = 0`` unless set)
==============  ===========================================================  =====================

``weighting.options`` passes keyword arguments to the torchjd class (defaults here:
``dwa`` temperature 2, ``famo`` lr 0.025 and weight decay 1e-3, ``stch`` ``mu`` 0.1).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from . import torchjd_options
from .base import ObjectiveWeighting, Step

SCALARIZERS = {"uw": "UW", "imtll": "IMTLL", "dwa": "DWA", "famo": "FAMO", "stch": "STCH"}
SIZED = ("uw", "imtll", "famo")          # torchjd classes that take the number of values
LEARNED = ("uw", "imtll")                 # parameters learned by the backward of S (our Adam)
DEFAULTS = {"stch": {"mu": 0.1}}


class Scalarize(ObjectiveWeighting):
    name = "scalarize"
    family = "multitask"
    order = 180

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        """``options``: keyword arguments that the chosen torchjd class takes."""
        torchjd_options.check(settings, "scalarizer", SCALARIZERS, "torchjd.scalarization")

    def __init__(self, cfg: Any, tasks: list[str]) -> None:
        super().__init__()
        key = str(cfg.scalarizer)  # one of SCALARIZERS: the schema's weighting.scalarizer
        from torchjd import Stateful, scalarization

        self.kind = key
        options = {**DEFAULTS.get(key, {}), **dict(cfg.get("options") or {})}
        args = (len(tasks),) if key in SIZED else ()
        self.scalarizer = torchjd_options.build(getattr(scalarization, SCALARIZERS[key]), args, options,
                                                lambda s: s(torch.ones(len(tasks))))
        self.stateful = isinstance(self.scalarizer, Stateful)
        # FAMO steps its logits itself (update); S detaches them, so they get no gradient from it
        self.lr = float(cfg.lr)
        self.optimizer = (torch.optim.Adam(self.scalarizer.parameters(), lr=self.lr)
                          if key in LEARNED else None)

    def objective(self, losses: Tensor) -> Tensor:
        return self.scalarizer(losses)

    def learn(self, step: Step) -> None:
        if self.optimizer is not None:
            self.optimizer.step()

    def after_optimizer_step(self, step: Step) -> None:
        """FAMO: ``update`` with the step's losses recomputed after the model's update."""
        if self.kind == "famo":
            assert step.reevaluate is not None, "famo needs the engine's re-evaluation closure"
            after = step.reevaluate()
            self.scalarizer.update(torch.stack([after[t].mean() for t in step.tasks]))

    def end_epoch(self) -> None:
        if self.kind == "dwa":
            self.scalarizer.step()

    def get_extra_state(self) -> dict[str, Any]:
        """A stateful torchjd scalarizer (``torchjd.Stateful``: DWA's running loss averages,
        FAMO's previous losses and inner Adam) is kept whole: torchjd's public API has no way
        to read or set that state, so the checkpoint pickles the object itself (written at
        once, so it holds the state of this moment)."""
        state = super().get_extra_state()
        if self.stateful:
            state["scalarizer"] = self.scalarizer
        return state

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if "scalarizer" in state:  # torch loads the child module's parameters into it next
            self.scalarizer = copy.deepcopy(state["scalarizer"])
            if self.optimizer is not None:  # our Adam steps the new object's parameters (its state follows)
                self.optimizer = torch.optim.Adam(self.scalarizer.parameters(), lr=self.lr)
        super().set_extra_state(state)
