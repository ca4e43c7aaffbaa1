"""The anchors' routes for ``make bench``: how the released code of each reference method
computes one training step, written in our own code on our models, so the time of an
auxrun step can be set against the route the method's authors take (same model, same
batches, same process). They are references for timing only; training uses the strategies
in :mod:`auxrun.weighting`.

* ``anchor_auxts`` / ``anchor_selar``: the route of the AUX-TS and SELAR code. A second copy
  of the model is reloaded with the current weights every step (``load_state_dict``) and
  runs the step's forward pass again; AUX-TS's cosines come from one backward pass per task
  on it; the look-ahead ``theta' = theta - alpha grad_theta L_w`` is built with
  ``create_graph=True`` on the copy (the look-ahead the AUX-TS paper describes; its released
  code comments it out, so its weighting network never learns) and the weighting network
  takes its Adam step from the target loss at ``theta'``; then the real update on the model.
* ``anchor_pcgrad``: LibMTL's PCGrad, one backward per task, then every task's gradient
  (target included) projected against every other in random order, and the sum.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from .weighting.base import Step
from .weighting.meta import MetaWeighting

ANCHORS = {"anchor_auxts": ["weighting=auxts"], "anchor_selar": ["weighting=selar"], "anchor_pcgrad": ["weighting=pcgrad"]}


def meta_copy_step(ctx: Any, step: Step, replica: torch.nn.Module) -> None:
    """SELAR's / AUX-TS's released route for one step (module docstring); fills ``.grad``."""
    strategy: MetaWeighting = ctx.strategy
    la = step.lookahead
    assert la is not None
    replica.load_state_dict(ctx.model.state_dict())
    named = dict(replica.named_parameters())
    theta = [named[n] for n in ctx.theta_names]
    losses = la.losses_at(theta)  # the step's forward pass again, on the copy
    # the copy's step: AUX-TS's cosines come from its per-task backward passes (one per task)
    on_copy = Step(losses=losses, shared=[named[n] for n in ctx.theta_names if n.startswith("encoder.")],
                   heads={}, batches=step.batches)
    w = strategy.net(strategy.features(on_copy))
    flat = torch.cat([losses[t] for t in step.tasks])
    scale = torch.cat([flat.new_full((len(losses[t]),), 1.0 / len(losses[t])) for t in step.tasks])
    g = torch.autograd.grad((w * scale * flat).sum(), theta, create_graph=True, allow_unused=True)
    theta1 = [p - strategy.step_size * (gi if gi is not None else 0) for p, gi in zip(theta, g)]
    params = list(strategy.net.parameters())
    grads = torch.autograd.grad(la.meta_loss_at(theta1), params, allow_unused=True)
    strategy.optimizer.zero_grad(set_to_none=True)
    for p, gp in zip(params, grads):
        p.grad = gp
    strategy.optimizer.step()
    with torch.no_grad():
        w = strategy.net(strategy.features(on_copy))  # the copy's cosines: its weights equal the model's
    step.backward_weighted(dict(zip(step.tasks, w.split([len(step.losses[t]) for t in step.tasks]))))


def libmtl_pcgrad_step(step: Step, gen: torch.Generator) -> None:
    """LibMTL's PCGrad for one step: every row projected off every conflicting other row."""
    G = step.task_grads()  # one backward pass per task, as LibMTL's loop
    projected = G.clone()
    n = len(G)
    for i in range(n):
        for j in torch.randperm(n, generator=gen).tolist():
            if j == i:
                continue
            dot = projected[i] @ G[j]
            if dot < 0:
                projected[i] -= dot / (G[j] @ G[j]).clamp_min(1e-12) * G[j]
    step.set_shared_grad(projected.sum(0))
    step.backward_heads()


class AnchorStep:
    """``train_step`` with an anchor's route in place of the strategy's ``backward``."""

    def __init__(self, name: str, ctx: Any) -> None:
        self.name, self.ctx = name, ctx
        self.replica = copy.deepcopy(ctx.model) if name != "anchor_pcgrad" else None
        self.gen = torch.Generator().manual_seed(0)

    def __call__(self, optimizer: torch.optim.Optimizer, batch: dict | None, gen: torch.Generator, index: int) -> None:
        step = self.ctx.step(batch, gen, index)
        optimizer.zero_grad(set_to_none=True)
        if self.replica is not None:
            meta_copy_step(self.ctx, step, self.replica)
        else:
            libmtl_pcgrad_step(step, self.gen)
        optimizer.step()
