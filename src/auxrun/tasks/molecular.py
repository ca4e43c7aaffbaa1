"""Molecular tasks: the graph-level target and the self-supervised auxiliary tasks.

Every task of a step works on the step's molecules (one :class:`MolBatch`; the target's
batch when there is a target, else a random sample of the corpus), so all losses share one
encoder pass. Auxiliary kinds:

==============  =====================================================================  ==========
kind            per-example loss                                                       metric
==============  =====================================================================  ==========
``attr_mask``   atoms (``mask_rate`` of the step's) get the mask token in the input;   ``acc``
                cross-entropy of their atom type from their representation
``edge_pred``   bonds vs. non-bonded atom pairs of the same molecule; logistic loss    ``auc``
                on the dot product of the two atoms' representations
``infograph``   InfoGraph's JSD estimator: atom vs. its own molecule (positive) and    ``auc``
                vs. another molecule of the batch (negative),
                ``softplus(-s(a, G_a)) + softplus(s(a, G'))``, ``s = <f(h_a), g(h_G)>``
``motif``       which RDKit functional-group fragments (``fr_*``) the molecule has:    ``auc``
                mean logistic loss over fragments, per molecule
``context``     Hu et al.'s context prediction: a center atom's representation vs. its  ``auc``
                context ring encoded by the task's own context GIN (positive) or
                another molecule's (negative); see :class:`ContextPrediction`
==============  =====================================================================  ==========
"""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch import Tensor, nn

from ..data.cache import cached, fingerprint, progress
from ..data.molecules import MASK_ATOM, MolBatch, MolData, MolSet
from ..data.sampling import in_sorted, pair_keys
from ..models.heads import PairHead
from ..models.molecular import MolEncoder, pool
from .base import Batch, Embeddings, Task, TargetTask
from .metrics import roc_auc
from .pairs import labelled_pairs

NUM_PREDICTED_ATOM_TYPES = MASK_ATOM  # 119 atom types; the mask token is never a label


def masked_task_mean(per_label: Tensor, mask: Tensor) -> Tensor:
    """Per-molecule mean over the labels present: ``sum_t m_t l_t / max(1, sum_t m_t)``."""
    return (per_label * mask).sum(1) / mask.sum(1).clamp(min=1)


def multitask_roc_auc(scores: Tensor, y: Tensor) -> float:
    """ROC-AUC averaged over the tasks whose present labels contain both classes."""
    aucs = []
    for t in range(y.shape[1]):
        present = ~torch.isnan(y[:, t])
        value = roc_auc(scores[present, t], y[present, t])
        if not math.isnan(value):
            aucs.append(value)
    return sum(aucs) / len(aucs) if aucs else float("nan")


class GraphPrediction(TargetTask):
    """Molecular property prediction: a linear head on the pooled molecule representation.

    Classification: per molecule the mean logistic loss over its present labels (a missing
    label contributes nothing); metric ``roc_auc``, averaged over tasks with both classes.
    Regression: per molecule the mean squared error over present labels; metric ``rmse``.
    """

    def __init__(self, data: MolData, hidden: int) -> None:
        super().__init__()
        self.name = "target"
        self.data = data
        self.task_type = data.task_type
        self.head = nn.Linear(hidden, data.num_tasks)
        self.primary_metric = "roc_auc" if self.task_type == "classification" else "rmse"
        self.higher_is_better = self.task_type == "classification"
        self.train_ids = data.split["train"]

    def num_train(self) -> int:
        return int(len(self.train_ids))

    def batch(self, idx: Tensor, gen: torch.Generator) -> Batch:
        mols = self.train_ids[idx.cpu()]
        return {"mols": mols, "y": self.data.mols.y[mols]}

    def strata(self) -> Tensor | None:
        """Classification: one stratum per label pattern over the tasks (a missing label is a
        value of its own); regression: none."""
        if self.task_type != "classification":
            return None
        y = torch.nan_to_num(self.data.mols.y[self.train_ids].cpu(), nan=-1.0)
        return torch.unique(y, dim=0, return_inverse=True)[1]

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        out = self.head(emb["graph"])
        y = batch["y"].to(out.device)
        mask = (~torch.isnan(y)).to(out.dtype)
        y0 = torch.nan_to_num(y, 0.0)
        if self.task_type == "classification":
            per = F.binary_cross_entropy_with_logits(out, y0, reduction="none")
        else:
            per = (out - y0) ** 2
        return masked_task_mean(per, mask)

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        """Metrics on ``split`` from ``emb["graph"]``, the split's molecules in split order."""
        return self.metrics(self.head(emb["graph"]), self.data.mols.y[self.data.split[split]])

    def metrics(self, out: Tensor, y: Tensor) -> dict[str, float]:
        """``roc_auc`` or ``rmse`` (plus ``loss``) of head outputs ``out`` against ``y``."""
        out, y = out.detach().cpu(), y.cpu()
        present = ~torch.isnan(y)
        if self.task_type == "classification":
            loss = F.binary_cross_entropy_with_logits(out[present], y[present]).item() if present.any() else math.nan
            return {"roc_auc": multitask_roc_auc(out, y), "loss": loss}
        mse = float(((out - torch.nan_to_num(y, 0.0)) ** 2)[present].mean()) if present.any() else math.nan
        return {"rmse": math.sqrt(mse), "loss": mse}


class MolAuxTask(Task):
    """An auxiliary task whose batch is derived from the step's molecules."""

    metric_name = "auc"

    def sample(self, batch_size: int, gen: torch.Generator, graph: MolBatch | None = None) -> Batch:
        """Examples drawn from the step's molecules ``graph`` (the molecule view passes them)."""
        raise NotImplementedError

    def score(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Scores and 0/1 labels for the AUC metric."""
        raise NotImplementedError

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        assert batch is not None
        s, y = self.score(emb, batch, x)
        return {self.metric_name: roc_auc(s, y)}


def _positives_then_negatives(pos: Tensor, neg: Tensor) -> tuple[Tensor, Tensor]:
    """Positive and negative scores as one score vector with 1 / 0 labels."""
    return torch.cat([pos, neg]), torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])


class AttributeMasking(MolAuxTask):
    """Hu et al.'s attribute masking: predict the type of masked atoms."""

    metric_name = "acc"

    def __init__(self, name: str, hidden: int, mask_rate: float) -> None:
        super().__init__()
        self.name, self.mask_rate = name, float(mask_rate)
        self.head = nn.Linear(hidden, NUM_PREDICTED_ATOM_TYPES)

    def sample(self, batch_size: int, gen: torch.Generator, graph: MolBatch | None = None) -> Batch:
        n = graph.x.shape[0]
        k = max(1, int(round(self.mask_rate * n)))
        atoms = torch.randperm(n, generator=gen)[:k].to(graph.x.device)
        return {"atoms": atoms, "labels": graph.x[atoms, 0]}

    def corrupt(self, x: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        atoms = x["atom"].clone()
        atoms[batch["atoms"]] = torch.tensor([MASK_ATOM, 0], device=atoms.device)
        return {**x, "atom": atoms}

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(self.head(emb["atom"][batch["atoms"]]), batch["labels"], reduction="none")

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        assert batch is not None
        pred = self.head(emb["atom"][batch["atoms"]]).argmax(1)
        return {"acc": float((pred == batch["labels"]).float().mean())}


class EdgePrediction(MolAuxTask):
    """Bonds vs. non-bonded atom pairs within the same molecule (dot-product scores)."""

    def __init__(self, name: str, hidden: int) -> None:
        super().__init__()
        self.name = name
        self.head = PairHead(hidden, None)

    def sample(self, batch_size: int, gen: torch.Generator, graph: MolBatch | None = None) -> Batch:
        ei = graph.edge_index.cpu()
        bonds = ei[:, ei[0] < ei[1]]
        pos = bonds[:, torch.randperm(bonds.shape[1], generator=gen)[: max(1, batch_size // 2)]]
        u = pos[0]
        mol = graph.batch.cpu()[u]
        start = graph.atom_start.cpu()[mol]
        size = graph.atom_counts()[mol]
        n = graph.x.shape[0]
        bonded = pair_keys(ei, n).sort().values
        w = start + (torch.rand(len(u), generator=gen) * size).long()
        for _ in range(20):  # redraw partners that are the atom itself or bonded to it
            bad = (w == u) | in_sorted(u * n + w, bonded)
            if not bool(bad.any()):
                break
            w[bad] = start[bad] + (torch.rand(int(bad.sum()), generator=gen) * size[bad]).long()
        ok = (w != u) & ~in_sorted(u * n + w, bonded)
        dev = graph.x.device
        return labelled_pairs(pos.to(dev), torch.stack([u[ok], w[ok]]).to(dev))

    def score(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        h = emb["atom"]
        return self.head(h[batch["pairs"][0]], h[batch["pairs"][1]]), batch["labels"]

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        s, y = self.score(emb, batch, x)
        return F.binary_cross_entropy_with_logits(s, y, reduction="none")


class InfoGraph(MolAuxTask):
    """InfoGraph (Sun et al. 2020): local-global mutual information with the JSD estimator."""

    def __init__(self, name: str, hidden: int) -> None:
        super().__init__()
        self.name = name

        def mlp() -> nn.Module:
            return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))

        self.head = nn.ModuleDict({"local": mlp(), "global": mlp()})
        self.scale = 1.0 / math.sqrt(hidden)

    def sample(self, batch_size: int, gen: torch.Generator, graph: MolBatch | None = None) -> Batch:
        n, b = graph.x.shape[0], graph.num_graphs
        atoms = torch.randperm(n, generator=gen)[:batch_size]
        own = graph.batch.cpu()[atoms]
        other = (own + torch.randint(1, max(2, b), (len(atoms),), generator=gen)) % max(1, b)
        dev = graph.x.device
        return {"atoms": atoms.to(dev), "pos": own.to(dev), "neg": other.to(dev)}

    def _scores(self, emb: Embeddings, batch: Batch) -> tuple[Tensor, Tensor]:
        local = self.head["local"](emb["atom"][batch["atoms"]])
        glob = self.head["global"](emb["graph"])
        pos = (local * glob[batch["pos"]]).sum(1) * self.scale
        neg = (local * glob[batch["neg"]]).sum(1) * self.scale
        return pos, neg

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        pos, neg = self._scores(emb, batch)
        return F.softplus(-pos) + F.softplus(neg)

    def score(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return _positives_then_negatives(*self._scores(emb, batch))


def fragment_names() -> list[str]:
    """RDKit's functional-group fragment counters (``rdkit.Chem.Fragments.fr_*``)."""
    from rdkit.Chem import Fragments

    return sorted(n for n in dir(Fragments) if n.startswith("fr_"))


def motif_labels(smiles: list[str]) -> Tensor:
    """``(molecules, fragments)`` 0/1: does the molecule contain the fragment at least once."""
    from rdkit import Chem
    from rdkit.Chem import Fragments

    names = fragment_names()
    funcs = [getattr(Fragments, n) for n in names]
    out = torch.zeros(len(smiles), len(names))
    with progress("motif labels (RDKit fragments)", len(smiles), enabled=len(smiles) > 2000) as advance:
        for i, s in enumerate(smiles):
            mol = Chem.MolFromSmiles(s)
            if mol is not None:
                out[i] = torch.tensor([f(mol) > 0 for f in funcs], dtype=torch.float)
            if i % 1000 == 999 or i == len(smiles) - 1:
                advance("", i % 1000 + 1)
    return out


class MotifPrediction(MolAuxTask):
    """Which functional-group fragments each molecule contains (multi-label, RDKit ``fr_*``)."""

    def __init__(self, name: str, hidden: int, mols: MolSet, cache_dir: str | None) -> None:
        super().__init__()
        self.name = name
        key = fingerprint("motifs", hashlib.sha256("\n".join(mols.smiles).encode()).hexdigest())
        self.labels = cached(cache_dir, "motifs", key, lambda: motif_labels(mols.smiles))
        self.head = nn.Linear(hidden, self.labels.shape[1])

    def sample(self, batch_size: int, gen: torch.Generator, graph: MolBatch | None = None) -> Batch:
        return {"labels": self.labels[graph.mols.cpu()].to(graph.x.device)}

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        return F.binary_cross_entropy_with_logits(self.head(emb["graph"]), batch["labels"], reduction="none").mean(1)

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        assert batch is not None
        return {"auc": multitask_roc_auc(self.head(emb["graph"]), batch["labels"])}


def hop_distances(graph: MolBatch, centers: Tensor, max_hops: int) -> Tensor:
    """Shortest-path distance (in bonds) of every atom from its molecule's center (one center
    per molecule), up to ``max_hops``; farther or unreachable atoms get ``max_hops + 1``."""
    n = graph.x.shape[0]
    far = max_hops + 1
    dist = torch.full((n,), far, dtype=torch.long, device=graph.x.device)
    dist[centers] = 0
    src, dst = graph.edge_index
    for hop in range(1, max_hops + 1):
        frontier = dist == hop - 1
        reached = torch.zeros(n, dtype=torch.bool, device=dist.device)
        reached[dst[frontier[src]]] = True
        dist[reached & (dist == far)] = hop
    return dist


class ContextPrediction(MolAuxTask):
    """Hu et al.'s context prediction. For a center atom ``v`` of each molecule, the
    *substructure* is its ``K``-hop neighbourhood, represented by the shared encoder's ``h_v``
    (a ``K``-layer GNN sees exactly that), and the *context* is the subgraph of atoms at
    distance ``r1..r2`` from ``v`` (``r1 = K - 1``, ``r2 = r1 + 3``), encoded by the task's own
    context GIN (its head) on that subgraph alone, then averaged over the *anchor* atoms
    (distance ``r1..K``, in both). The logistic loss scores ``<h_v, c_v>`` as 1 and
    ``<h_v, c_w>`` (the context of another molecule's center) as 0; molecules without anchor
    atoms (too small) are skipped."""

    def __init__(self, name: str, hidden: int, num_layers: int, context_layers: int, dropout: float) -> None:
        super().__init__()
        self.name = name
        self.k = int(num_layers)
        self.r1, self.r2 = self.k - 1, self.k + 2
        cfg = OmegaConf.create({"name": "gin", "hidden": hidden, "num_layers": context_layers, "dropout": dropout})
        self.head = MolEncoder(cfg, {})
        self.scale = 1.0 / math.sqrt(hidden)

    def sample(self, batch_size: int, gen: torch.Generator, graph: MolBatch | None = None) -> Batch:
        dev = graph.x.device
        sizes = graph.atom_counts()
        centers = (graph.atom_start.cpu() + (torch.rand(graph.num_graphs, generator=gen) * sizes).long()).to(dev)
        dist = hop_distances(graph, centers, self.r2)
        ctx = (dist >= self.r1) & (dist <= self.r2)
        anchor = (dist >= self.r1) & (dist <= self.k)
        mol = graph.batch
        has_anchor = torch.zeros(graph.num_graphs, dtype=torch.bool, device=dev)
        has_anchor[mol[anchor]] = True
        valid = torch.nonzero(has_anchor).flatten()
        ctx &= has_anchor[mol]
        ctx_atoms = torch.nonzero(ctx).flatten()
        local = torch.full((graph.x.shape[0],), -1, dtype=torch.long, device=dev)
        local[ctx_atoms] = torch.arange(len(ctx_atoms), device=dev)
        keep = ctx[graph.edge_index[0]] & ctx[graph.edge_index[1]]
        slot = torch.full((graph.num_graphs,), -1, dtype=torch.long, device=dev)
        slot[valid] = torch.arange(len(valid), device=dev)
        anchors = torch.nonzero(anchor & has_anchor[mol]).flatten()
        shift = torch.roll(torch.arange(len(valid), device=dev), 1) if len(valid) > 1 else torch.arange(len(valid), device=dev)
        return {"centers": centers[valid], "ctx_atoms": ctx_atoms, "ctx_edges": local[graph.edge_index[:, keep]],
                "ctx_attr": graph.edge_attr[keep], "anchors": local[anchors], "anchor_slot": slot[mol[anchors]],
                "negative": shift}

    def _scores(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        n_valid = len(batch["centers"])
        atoms = batch["ctx_atoms"]
        sub = MolBatch(x=x["atom"][atoms], edge_index=batch["ctx_edges"], edge_attr=batch["ctx_attr"],
                       batch=torch.zeros(len(atoms), dtype=torch.long, device=atoms.device), mols=atoms[:1],
                       atom_start=atoms[:1])
        h_ctx = self.head({"atom": sub.x}, sub)["atom"]
        context = pool(h_ctx[batch["anchors"]], batch["anchor_slot"], n_valid)
        center = emb["atom"][batch["centers"]]
        pos = (center * context).sum(1) * self.scale
        neg = (center * context[batch["negative"]]).sum(1) * self.scale
        return pos, neg

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        if len(batch["centers"]) == 0:  # no molecule of the step is large enough: a zero loss
            return emb["atom"][:1].sum(1) * 0.0
        pos, neg = self._scores(emb, batch, x)
        return torch.cat([F.softplus(-pos), F.softplus(neg)])  # logistic loss, labels 1 / 0

    def score(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        if len(batch["centers"]) == 0:  # nothing to score: the AUC is undefined (nan)
            empty = emb["atom"].new_zeros(0)
            return empty, empty
        return _positives_then_negatives(*self._scores(emb, batch, x))
