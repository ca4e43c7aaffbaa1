"""What a zero-shot run trains and tests on: :class:`ZeroShotData`.

From a dataset's :class:`~auxrun.data.graph.GraphData` and ``zeroshot.source`` /
``zeroshot.target``:

* the whole graph: a link-prediction dataset's validation and test positives go back into
  its relation (zero-shot transfer predicts no links, so nothing is held out of the graph);
* the source type's labels (``node_labels[source]``), its labelled nodes split at random
  (``zeroshot.source_split``: train / val fractions, test the rest) with the run's seed;
* the target type's labels: its own ``node_labels`` when the dataset has them (planted data),
  else *derived from the source*: with ``R`` the relations from target to source, target
  node ``t`` gets the label distribution of its linked source nodes,

      q_t = sum_{s ~ t} y_s / sum_{s ~ t} |y_s|      (the share of each class among them),

  and its relevant set is ``{c : q_tc >= zeroshot.min_share}`` plus its most frequent class
  (MovieLens users: the genres of the movies they rated >= 4 that make up at least 10% of
  those movies' genre tags). Target nodes with no linked labelled source are not evaluated;
* feature columns that encode a type's labels (MovieLens's genre multi-hot of movies) are
  removed from the input (``zeroshot.label_features: drop``), so the source classifier has
  to learn from the graph and no target label can be read off a feature.

Target labels sit behind :meth:`ZeroShotData.target_labels`, which only the test evaluation
calls: training and model selection (source validation) never see them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from omegaconf import DictConfig
from torch import Tensor

from ..data.checks import check_nonempty
from ..data.graph import GraphData, NodeLabels, random_split
from ..errors import AuxrunError
from .paths import relation_adjacency


@dataclass
class ZeroShotData:
    """The graph, source labels and splits, and the (sealed) target labels of a zero-shot run."""

    graph: GraphData
    source: str
    target: str
    y_source: Tensor  # (n_source, C) 0/1 multi-hot; zero rows: unlabelled
    source_split: dict[str, Tensor]  # train / val / test: labelled source node indices
    class_names: list[str]
    label_rule: str
    _y_target: Tensor = field(repr=False)  # (n_target, C) 0/1 relevant sets; zero rows: not evaluated

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_target(self) -> int:
        """How many nodes the target type has (all unlabelled to training, which may use them)."""
        return self.graph.num_nodes(self.target)

    def target_labels(self) -> Tensor:
        """The target's relevant label sets: for test metrics only."""
        return self._y_target

    def info(self) -> dict:
        return {"source": self.source, "target": self.target, "classes": self.num_classes,
                "source_split": {k: len(v) for k, v in self.source_split.items()},
                "target_evaluated": int(self._y_target.any(1).sum()), "label_rule": self.label_rule}


def whole_graph(data: GraphData) -> GraphData:
    """``data`` with a link target's validation and test positives back in its relation (and
    its reverse); other graphs unchanged."""
    t = data.target
    if t.kind != "link_pred" or t.edge_type is None:
        return data
    s, r, d = t.edge_type
    edges = dict(data.edge_index)
    extra = [t.split[k] for k in ("val", "test") if k in t.split]
    edges[(s, r, d)] = torch.cat([edges[(s, r, d)], *extra], 1)
    if (d, f"rev_{r}", s) in edges:
        edges[(d, f"rev_{r}", s)] = edges[(s, r, d)].flip(0)
    return replace(data, edge_index=edges)


def _drop_columns(x: Tensor, columns: list[int]) -> Tensor:
    drop = set(columns)
    return x[:, [i for i in range(x.shape[1]) if i not in drop]]


def derive_labels(data: GraphData, source: str, target: str, y_source: Tensor,
                  min_share: float) -> tuple[Tensor, str]:
    """Relevant label sets of ``target`` nodes from their linked ``source`` nodes' labels (see
    the module docstring); returns them and a description of the rule."""
    relations = data.relations_between(target, source)
    if not relations:
        raise AuxrunError(f"node type {target!r} has no labels of its own and no relation to {source!r} "
                          f"to derive them from; choose zeroshot.target among the types linked to {source!r}")
    counts = None
    for rel in relations:
        a = relation_adjacency(data.edge_index[rel], data.num_nodes(target), data.num_nodes(source))
        counts = a if counts is None else (counts + a).coalesce()
    assert counts is not None
    per_class = torch.sparse.mm(counts, y_source)  # (n_target, C): labelled-neighbour counts per class
    tags = per_class.sum(1, keepdim=True)
    share = torch.where(tags > 0, per_class / tags.clamp_min(1e-12), torch.zeros_like(per_class))
    relevant = share >= float(min_share)
    top = torch.zeros_like(relevant)
    top[torch.arange(len(share)), share.argmax(1)] = True
    relevant = (relevant | top) & (tags > 0)
    names = ", ".join(r[1] for r in relations)
    rule = (f"{target} labels derived from linked {source} nodes ({names}): classes with a share >= "
            f"{float(min_share):g} of the linked nodes' labels, and the most frequent one")
    return relevant.float(), rule


def zeroshot_data(data: GraphData, cfg: DictConfig, seed: int) -> ZeroShotData:
    """Build the zero-shot view of ``data`` for ``cfg`` (``zeroshot.*``) and the run's seed."""
    source, target = str(cfg.source), str(cfg.target)
    types = data.node_types
    for role, t in (("source", source), ("target", target)):
        if t not in types:
            raise AuxrunError(f"zeroshot.{role}={t!r} is not a node type of {data.name} ({', '.join(types)})")
    if source == target:
        raise AuxrunError("zeroshot.source and zeroshot.target must be different node types")
    labelled = [t for t in types if t in data.node_labels]
    if source not in data.node_labels:
        raise AuxrunError(f"zeroshot.source={source!r} has no labels in {data.name}; labelled types: "
                          f"{', '.join(labelled) or 'none'}")
    graph = whole_graph(data)
    src_labels: NodeLabels = data.node_labels[source]
    y_source = src_labels.y.float()
    if target in data.node_labels:
        tgt_labels = data.node_labels[target]
        if tgt_labels.names != src_labels.names:
            raise AuxrunError(f"{source!r} and {target!r} are labelled with different classes")
        y_target, rule = tgt_labels.y.float(), f"{target} labels planted by the generator"
    else:
        y_target, rule = derive_labels(graph, source, target, y_source, float(cfg.min_share))
    if str(cfg.label_features) == "drop":
        x = dict(graph.x)
        for t, lab in data.node_labels.items():
            if lab.feature_columns:
                x[t] = _drop_columns(x[t], lab.feature_columns)
        graph = replace(graph, x=x)
    nodes = torch.nonzero(y_source.any(1)).squeeze(1)
    fractions = tuple(float(f) for f in cfg.source_split)
    part = random_split(len(nodes), fractions, torch.Generator().manual_seed(int(seed)))
    split = {k: nodes[v] for k, v in part.items()}
    check_nonempty(split, f"zeroshot.source={source}", "labelled source nodes (zeroshot.source_split)")
    if not bool(y_target.any()):
        raise AuxrunError(f"zeroshot.target={target}: no {target} node has a label ({rule}), so there is nothing "
                          "to score the transfer on")
    return ZeroShotData(graph=graph, source=source, target=target, y_source=y_source, source_split=split,
                        class_names=list(src_labels.names), label_rule=rule, _y_target=y_target)
