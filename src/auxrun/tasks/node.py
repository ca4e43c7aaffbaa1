"""Node-level tasks: target node classification, target multi-label ranking, and auxiliary
attribute generation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.graph import TargetSpec
from ..models.heads import ClassifierHead, FeatureHead
from .base import Batch, Embeddings, Task, TargetTask
from .metrics import f1_scores, label_ranking


class NodeClassification(TargetTask):
    """Target: ``l_j = CE(W h_j, y_j)`` for labelled nodes ``j``; metric micro/macro-F1."""

    primary_metric = "f1_micro"

    def __init__(self, spec: TargetSpec, hidden: int) -> None:
        super().__init__()
        self.name = "target"
        self.node_type = str(spec.node_type)
        self.labels = spec.labels
        self.split = spec.split
        self.num_classes = spec.num_classes
        self.head = ClassifierHead(hidden, spec.num_classes)

    def num_train(self) -> int:
        return len(self.split["train"])

    def batch(self, idx: Tensor, gen: torch.Generator) -> Batch:
        nodes = self.split["train"][idx.to(self.split["train"].device)]
        return {"nodes": nodes, "y": self.labels[nodes]}

    def node_refs(self) -> dict[str, tuple[str, ...]]:
        return {"nodes": (self.node_type,)}

    def eval_nodes(self, split: str) -> dict[str, Tensor]:
        return {self.node_type: self.split[split]}

    def strata(self) -> Tensor:
        return self.labels[self.split["train"]].cpu()

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(self.head(emb[self.node_type][batch["nodes"]]), batch["y"], reduction="none")

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        nodes = self.split[split]
        logits = self.head(emb[self.node_type][nodes])
        out = f1_scores(logits.argmax(-1), self.labels[nodes], self.num_classes)
        out["loss"] = float(F.cross_entropy(logits, self.labels[nodes]))
        return out


class MultiLabelRanking(NodeClassification):
    """Target (``node_rank``): rank a node's classes, e.g. an OAG paper's L2 fields (GPT-GNN's
    Paper-Field task). ``y_j`` is the node's 0/1 class row; the loss is the cross-entropy to
    the normalised labels, ``l_j = -sum_c (y_jc / |y_j|) log softmax(W h_j)_c`` (GPT-GNN's
    KL divergence up to the labels' constant entropy). Metrics over all ``C`` classes ranked
    by score (:func:`~.metrics.label_ranking`, as zero-shot transfer scores labels): ``ndcg``
    (NDCG@C, binary relevance), ``mrr`` (reciprocal rank of the best ranked true class), and
    ``f1_micro`` / ``f1_macro`` of each node's top ``|y_j|`` classes."""

    primary_metric = "ndcg"

    def strata(self) -> None:
        return None

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        y = batch["y"].float()
        logp = F.log_softmax(self.head(emb[self.node_type][batch["nodes"]]), -1)
        return -(y / y.sum(-1, keepdim=True).clamp(min=1) * logp).sum(-1)

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        nodes = self.split[split]
        y = self.labels[nodes].bool()
        metrics = label_ranking(self.head(emb[self.node_type][nodes]), y)
        loss = self.losses(emb, {"nodes": nodes, "y": y}, {}).mean()
        return {**metrics, "loss": float(loss)}


class AttributeGeneration(Task):
    """Auxiliary: hide the features of sampled nodes and reconstruct them.

    For a batch ``B`` of nodes of type ``t`` the step's input has ``x_j = 0`` for ``j in B``;
    ``l_j = mean_k (f(h_j)_k - x_jk)^2``. Metric: ``mse`` on a fixed evaluation sample.
    """

    primary_metric = "mse"
    higher_is_better = False

    def __init__(self, name: str, node_type: str, x: Tensor, hidden: int, eval_size: int, seed: int) -> None:
        super().__init__()
        self.name = name
        self.node_type = node_type
        self.num_nodes, feat_dim = x.shape
        self.head = FeatureHead(hidden, feat_dim)
        g = torch.Generator().manual_seed(seed)
        k = min(eval_size, self.num_nodes)
        self._eval = {"nodes": torch.randperm(self.num_nodes, generator=g)[:k].to(x.device)}

    def sample(self, batch_size: int, gen: torch.Generator, graph=None) -> Batch:
        k = min(batch_size, self.num_nodes)
        device = self._eval["nodes"].device
        return {"nodes": torch.randperm(self.num_nodes, generator=gen)[:k].to(device)}

    def corrupt(self, x: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        masked = x[self.node_type].clone()
        masked[batch["nodes"]] = 0.0
        return {**x, self.node_type: masked}

    def losses(self, emb: Embeddings, batch: Batch, x: dict[str, Tensor]) -> Tensor:
        nodes = batch["nodes"]
        return (self.head(emb[self.node_type][nodes]) - x[self.node_type][nodes]).pow(2).mean(-1)

    def node_refs(self) -> dict[str, tuple[str, ...]]:
        return {"nodes": (self.node_type,)}

    def eval_batch(self) -> Batch:
        return self._eval

    def evaluate(self, emb: Embeddings, split: str, x: dict[str, Tensor] | None = None,
                 batch: Batch | None = None) -> dict[str, float]:
        assert x is not None
        return {"mse": float(self.losses(emb, batch if batch is not None else self._eval, x).mean())}
