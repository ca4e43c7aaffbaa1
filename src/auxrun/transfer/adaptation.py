"""Domain-adaptation baselines of the KTN paper, on the shared encoder and classifier.

Source domain: the step's labelled source nodes ``B_S``; target domain: a random batch ``B_T``
of target nodes of the same size (their labels are never read). ``h`` are final-layer
embeddings, ``p = softmax(f(h))`` the classifier's predictions. Each loss enters as
``L_cls + lambda * L``.

* ``dan`` (Long et al. 2015): multi-kernel MMD, ``MMD^2 = mean k(h_s, h_s') + mean k(h_t, h_t')
  - 2 mean k(h_s, h_t)``, with the paper's family of Gaussian kernels: ``k = mean_u k_u``,
  ``k_u(x, y) = exp(-||x - y||^2 / gamma_u)``, 33 bandwidths ``gamma_u = 2^{(u - 16) / 2} gamma``
  from ``2^-8 gamma`` to ``2^8 gamma`` by factors of ``2^{1/2}``, ``gamma`` the median squared
  distance between the batch's source embeddings, held fixed (no gradient flows through it).
  Two simplifications, as in most reproductions: the kernel weights are uniform (the paper
  learns them by a quadratic program that maximises the test power) and the estimator is the
  biased quadratic one over the batch (the paper's is the linear-time unbiased one).
  skada's ``dan_loss`` is not used: it sums Laplacian kernels ``exp(-||x - y|| / sigma_u)`` and
  lets the gradient flow through the median bandwidth, which moves the embeddings' gradient
  far from DAN's (tested).
* ``jan`` (Long et al. 2017): joint MMD over features and predictions, the same estimator with
  the product kernel ``k_h(h, h') * k_p(p, p')``, each layer's kernel the Gaussian family above
  with its own median bandwidth.
* ``dann`` (Ganin et al. 2016): a domain discriminator ``D`` behind a gradient reversal layer,
  ``L = BCE(D(R(h_s)), 1) + BCE(D(R(h_t)), 0)`` (means over each domain); ``D`` learns to tell
  the domains apart while the reversed gradient trains the encoder to confuse it. ``R`` is the
  identity forward and multiplies the gradient by ``-c`` backward, with the paper's warm-up
  ``c = 2 / (1 + exp(-10 q)) - 1``, ``q`` the training progress from 0 to 1 (step over
  ``transfer.schedule_steps``; null: the run's total steps; 0: ``c = 1`` throughout).
* ``cdan`` (Long et al. 2018): the discriminator sees the multilinear map ``h (x) p`` (outer
  product, flattened); ``p`` is detached there as in the authors' code, so the adversarial
  gradient reaches the encoder through ``h``; the same reversal and warm-up. ``cdan_e``: each
  example's BCE is weighted by ``w = 1 + exp(-H(p))``, ``H(p) = -sum p log(p + 1e-5)``,
  normalised by the detached sum within each domain; as in the authors' code the entropy keeps
  its gradient, reversed and scaled by ``c`` as the features' (``H`` passes through ``R``), so
  the encoder and classifier are also pushed towards confident predictions on the examples the
  discriminator finds hard.
* ``wdgrl`` (Shen et al. 2018): a critic ``c`` estimates the Wasserstein-1 distance
  ``W = mean c(h_s) - mean c(h_t)``; before each model step it takes ``transfer.critic_steps``
  Adam steps maximising ``W - gamma * GP`` on the step's detached embeddings, with
  ``GP = mean (||grad c(h^)|| - 1)^2`` at random interpolates ``h^ = e h_s + (1 - e) h_t``;
  the model then minimises ``L_cls + lambda * W``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Embeddings, StepBatch, Transfer
from .data import ZeroShotData

BANDWIDTHS = torch.tensor([2 ** ((u - 16) / 2) for u in range(33)])  # DAN's: 2^-8 .. 2^8 by 2^(1/2), times gamma


def squared_distances(x: Tensor, y: Tensor) -> Tensor:
    """``||x_i - y_j||^2`` for every pair of rows."""
    return (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)


def multi_kernel(x: Tensor, y: Tensor, gamma: Tensor) -> Tensor:
    """``k(x_i, y_j) = mean_u exp(-||x_i - y_j||^2 / (b_u gamma))``, DAN's Gaussian family."""
    gammas = BANDWIDTHS.to(x) * gamma
    return torch.exp(-squared_distances(x, y)[None] / gammas[:, None, None]).mean(0)


def median_bandwidth(x: Tensor, eps: float = 1e-7) -> Tensor:
    """``gamma``: the median squared distance over the pairs of distinct rows of ``x`` (the lower
    of the two middle values for an even count), without gradient."""
    i, j = torch.triu_indices(len(x), len(x), 1, device=x.device)
    pairs = (x[i] - x[j]).detach().pow(2).sum(-1)
    return (torch.median(pairs) if pairs.numel() else x.new_ones(())) + eps


def joint_mmd(layers_s: list[Tensor], layers_t: list[Tensor]) -> Tensor:
    """Biased (J)MMD estimate with the product over layers of :func:`multi_kernel`, each layer
    with its own bandwidth (the median squared source distance); one layer is DAN's MK-MMD."""
    kss = kst = ktt = None
    for s, t in zip(layers_s, layers_t):
        gamma = median_bandwidth(s)
        k = (multi_kernel(s, s, gamma), multi_kernel(s, t, gamma), multi_kernel(t, t, gamma))
        kss, kst, ktt = k if kss is None else (kss * k[0], kst * k[1], ktt * k[2])
    assert kss is not None and kst is not None and ktt is not None
    return kss.mean() + ktt.mean() - 2 * kst.mean()


class _Reverse(torch.autograd.Function):
    """Gradient reversal: identity forward, ``-coefficient * grad`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, coefficient: float) -> Tensor:  # type: ignore[override]
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return -ctx.coefficient * grad, None


def reverse_gradient(x: Tensor, coefficient: float = 1.0) -> Tensor:
    return _Reverse.apply(x, coefficient)


def warm_up(progress: float) -> float:
    """DANN's reversal coefficient ``2 / (1 + exp(-10 q)) - 1`` at progress ``q`` (clamped to [0, 1])."""
    q = min(max(progress, 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-10.0 * q)) - 1.0


def _mlp(inp: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))


class DAN(Transfer):
    name = "dan"

    def loss(self, emb: Embeddings, batch: StepBatch, classifier: nn.Module) -> Tensor:
        h_s, h_t = self.domains(emb, batch)
        return joint_mmd([h_s], [h_t])


class JAN(Transfer):
    name = "jan"

    def loss(self, emb: Embeddings, batch: StepBatch, classifier: nn.Module) -> Tensor:
        h_s, h_t = self.domains(emb, batch)
        p_s, p_t = classifier(h_s).softmax(1), classifier(h_t).softmax(1)
        return joint_mmd([h_s, p_s], [h_t, p_t])


def domain_bce(d_s: Tensor, d_t: Tensor, w_s: Tensor | None = None, w_t: Tensor | None = None) -> Tensor:
    """``BCE(d_s, 1) + BCE(d_t, 0)`` on logits, each a mean over its domain (or a weighted sum
    with weights that sum to 1)."""
    l_s = F.binary_cross_entropy_with_logits(d_s, torch.ones_like(d_s), reduction="none")
    l_t = F.binary_cross_entropy_with_logits(d_t, torch.zeros_like(d_t), reduction="none")
    if w_s is None or w_t is None:
        return l_s.mean() + l_t.mean()
    return (w_s * l_s).sum() + (w_t * l_t).sum()


class DANN(Transfer):
    name = "dann"
    counters = ("steps",)  # the warm-up's position, restored with a checkpoint

    def __init__(self, zs: ZeroShotData, hidden: int, cfg) -> None:
        super().__init__(zs, hidden, cfg)
        self.discriminator = _mlp(self.input_dim(hidden, zs.num_classes), int(cfg.get("disc_hidden", hidden)))
        given = cfg.get("schedule_steps")
        self.schedule_steps: int | None = None if given is None else int(given)  # None: the run's (plan)
        self.steps = 0
        self.current = self.coefficient()  # this step's coefficient, set by before_step

    def plan(self, total_steps: int) -> None:
        """The run's number of training steps: the warm-up's length unless ``schedule_steps`` is set."""
        if self.schedule_steps is None:
            self.schedule_steps = max(1, int(total_steps))
            self.current = self.coefficient()

    def coefficient(self) -> float:
        """The reversal coefficient ``c`` of this step (module docstring)."""
        if not self.schedule_steps:
            return 1.0
        return warm_up(self.steps / self.schedule_steps)

    def before_step(self, emb: Embeddings, batch: StepBatch, classifier: nn.Module) -> None:
        self.current = self.coefficient()
        self.steps += 1

    def input_dim(self, hidden: int, num_classes: int) -> int:
        return hidden

    def predictions(self, h: Tensor, classifier: nn.Module) -> Tensor | None:
        """What the discriminator is conditioned on besides ``h`` (DANN: nothing)."""
        return None

    def features(self, h: Tensor, p: Tensor | None) -> Tensor:
        return h

    def weights(self, p_s: Tensor | None, p_t: Tensor | None, c: float) -> tuple[Tensor | None, Tensor | None]:
        return None, None

    def loss(self, emb: Embeddings, batch: StepBatch, classifier: nn.Module) -> Tensor:
        c = self.current
        h_s, h_t = self.domains(emb, batch)
        p_s, p_t = self.predictions(h_s, classifier), self.predictions(h_t, classifier)
        d_s = self.discriminator(reverse_gradient(self.features(h_s, p_s), c)).squeeze(1)
        d_t = self.discriminator(reverse_gradient(self.features(h_t, p_t), c)).squeeze(1)
        return domain_bce(d_s, d_t, *self.weights(p_s, p_t, c))


def multilinear(h: Tensor, p: Tensor) -> Tensor:
    """``vec(p h^T)``: the outer product of predictions and features, flattened, ``(n, C * d)``."""
    return (p[:, :, None] * h[:, None, :]).flatten(1)


def entropy_weights(p: Tensor, coefficient: float = 1.0) -> Tensor:
    """``w = 1 + exp(-H(p))`` per row, ``H(p) = -sum p log(p + 1e-5)``, divided by the detached sum
    of the rows; ``H`` passes through the gradient reversal (``coefficient``), as in the authors'
    code, so ``w`` carries a reversed gradient into ``p``."""
    h = reverse_gradient(-(p * torch.log(p + 1e-5)).sum(1), coefficient)
    w = 1 + torch.exp(-h)
    return w / w.sum().detach()


class CDAN(DANN):
    name = "cdan"
    entropy = False

    def input_dim(self, hidden: int, num_classes: int) -> int:
        return hidden * num_classes

    def predictions(self, h: Tensor, classifier: nn.Module) -> Tensor:
        """``softmax(f(h))`` (computed once per domain and step)."""
        return classifier(h).softmax(1)

    def features(self, h: Tensor, p: Tensor | None) -> Tensor:
        assert p is not None
        return multilinear(h, p.detach())  # the multilinear map sees p without its gradient

    def weights(self, p_s: Tensor | None, p_t: Tensor | None, c: float) -> tuple[Tensor | None, Tensor | None]:
        if not self.entropy or p_s is None or p_t is None:
            return None, None
        return entropy_weights(p_s, c), entropy_weights(p_t, c)


class CDANE(CDAN):
    name = "cdan_e"
    entropy = True


def gradient_penalty(critic: nn.Module, h_s: Tensor, h_t: Tensor) -> Tensor:
    """``mean (||grad_h c(h^)||_2 - 1)^2`` at ``h^ = e h_s + (1 - e) h_t``, ``e ~ U(0, 1)`` per row."""
    n = min(len(h_s), len(h_t))
    e = torch.rand(n, 1, device="cpu").to(h_s)
    mix = (e * h_s[:n] + (1 - e) * h_t[:n]).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mix).sum(), mix, create_graph=True)
    return (grad.norm(dim=1) - 1).pow(2).mean()


class WDGRL(Transfer):
    name = "wdgrl"

    def __init__(self, zs: ZeroShotData, hidden: int, cfg) -> None:
        super().__init__(zs, hidden, cfg)
        self.critic = _mlp(hidden, int(cfg.get("disc_hidden", hidden)))
        self.critic_steps, self.gamma = int(cfg.critic_steps), float(cfg.gamma)
        self.optimizer = torch.optim.Adam(self.critic.parameters(), lr=float(cfg.critic_lr))

    def own_parameters(self) -> list[nn.Parameter]:
        return list(self.critic.parameters())

    def wasserstein(self, h_s: Tensor, h_t: Tensor) -> Tensor:
        return self.critic(h_s).mean() - self.critic(h_t).mean()

    def before_step(self, emb: Embeddings, batch: StepBatch, classifier: nn.Module) -> None:
        h_s, h_t = (h.detach() for h in self.domains(emb, batch))
        for _ in range(self.critic_steps):
            self.optimizer.zero_grad(set_to_none=True)
            objective = self.wasserstein(h_s, h_t) - self.gamma * gradient_penalty(self.critic, h_s, h_t)
            (-objective).backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def loss(self, emb: Embeddings, batch: StepBatch, classifier: nn.Module) -> Tensor:
        return self.wasserstein(*self.domains(emb, batch))
