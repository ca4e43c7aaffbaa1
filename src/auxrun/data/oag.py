"""``dataset=oag_cs``: OAG's computer-science graph as GPT-GNN and HGT publish it, under GPT-GNN's
Paper-Field (L2) protocol, which the AUX-TS paper's Table 2 uses.

The file ``graph_CS.pk`` (GPT-GNN's README links it with the other preprocessed OAG graphs) is
a ``Graph`` object of their ``pyHGT`` code (``pyHGT.data.Graph``; GPT-GNN renames the module
``GPT_GNN.data``) pickled with dill. It loads here without their code: the unpickler maps that
class onto a plain stand-in that keeps its attributes. Unpickling runs whatever the file asks
for, so it happens only with ``dataset.trust_pickle=true``.

What is read from the object:

* ``node_feature[type]``: a DataFrame per node type indexed by node id; a node's input is
  GPT-GNN's ``feature_OAG``: ``node_emb`` (400 floats, zeros where a type has none), ``emb``
  (the text embedding), ``log10(citation + 0.01)``.
* ``edge_list[target_type][source_type][relation][target_id][source_id] = year``: every
  relation (their ``rev_`` relations included) becomes the edges ``source -> target``
  (``paper-PF_in_L2-field``: a paper in an L2 field; ``field-rev_PF_in_L2-paper`` back).
* the target: each paper's L2 fields, from ``edge_list['paper']['field']['rev_PF_in_L2']``;
  the classes are the L2 fields (``edge_list['field']['paper']['PF_in_L2']``'s keys). A paper's
  year is that of its L2 edges, as in GPT-GNN's ``finetune_OAG_PF.py``: train 2014-2016, valid
  2017, test after 2017, and only ``dataset.label_fraction`` (their 10%) of the train and valid
  papers, drawn with ``dataset.split_seed`` (their 43), are used. Papers before 2014 are the
  pre-training part (``pretrain_nodes``). Their script's test set also collects every paper
  before 2014 (its ``else`` branch); here test is after 2017 only, as their test sampler's
  time range and the paper say.

The L2 edges of every paper from 2014 on are removed from the message-passing graph (they are
the labels); GPT-GNN removes them only for the papers of a batch, inside its sampler, so
other labelled papers keep theirs. The built graph is cached under ``paths.cache``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from ..errors import AuxrunError
from .registry import loader
from .checks import reading
from .cache import cached, file_stamp, fingerprint
from .download import dataset_folder, fetch_missing
from .graph import EdgeType, GraphData, TargetSpec

VERSION = 1
HGT_MODULES = ("pyHGT.data", "GPT_GNN.data", "data")
SOURCE = "the preprocessed OAG graphs linked from GPT-GNN's README (github.com/acbull/GPT-GNN)"
OFFLINE = "dataset=synthetic_xl (offline, sampled, the same generative tasks)"
NODE_EMB = 400  # width of GPT-GNN's node_emb column (zeros for types without it)


class PickledGraph:
    """Stand-in for ``pyHGT.data.Graph``: unpickling fills its ``__dict__``."""


def _unpickler(file) -> pickle.Unpickler:
    try:
        import dill
    except ImportError:  # pragma: no cover - dill is a dependency
        raise AuxrunError("dataset=oag_cs needs the dill package to read graph_CS.pk") from None

    class Unpickler(dill.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if module in HGT_MODULES and name == "Graph":
                return PickledGraph
            return super().find_class(module, name)

    return Unpickler(file)


def require_trust(path: Path, trust: bool) -> None:
    """Unpickling can run code from the file: refuse unless ``dataset.trust_pickle`` is set."""
    if not trust:
        raise AuxrunError(f"dataset=oag_cs unpickles {path.name}, and unpickling can run any code the file "
                          f"contains: set dataset.trust_pickle=true only for a file from a source you trust "
                          f"({SOURCE})")


WHAT = "GPT-GNN's pickled OAG graph"


def read_graph(path: Path, trust: bool) -> Any:
    """The unpickled graph object (only with ``trust``, :func:`require_trust`)."""
    require_trust(path, trust)
    with reading(path, WHAT), open(path, "rb") as f:
        graph = _unpickler(f).load()
    if not hasattr(graph, "edge_list") or not hasattr(graph, "node_feature"):
        raise AuxrunError(f"{path} does not hold GPT-GNN's Graph object (no edge_list / node_feature)")
    return graph


def graph_file(cfg: DictConfig) -> Path:
    root = dataset_folder(cfg, "oag_cs")
    name = str(cfg.get("file", "graph_CS.pk"))
    path = root / name
    fetch_missing(cfg, "oag_cs", root, [path])  # one message: GPT-GNN publishes it behind a Google Drive page
    if not path.is_file():
        raise AuxrunError(f"dataset=oag_cs: {name} not found in {root}; download it from {SOURCE} into that folder "
                          f"(dataset.data_dir=FOLDER; `auxrun data list` says how), or use {OFFLINE}")
    return path


@loader("oag", layouts=("table2",))
def load_oag(cfg: DictConfig, seed: int, cache_dir: str | None = None) -> GraphData:
    """Build (or load from the cache) OAG-CS with the Paper-Field (L2) target (module docstring)."""
    path = graph_file(cfg)
    trust = bool(cfg.get("trust_pickle", False))
    fraction = float(cfg.get("label_fraction", 0.1))  # in (0, 1]: the schema's dataset.label_fraction
    split_seed = int(cfg.get("split_seed", 43))
    key = fingerprint("oag", VERSION, fraction, split_seed, file_stamp(path))
    require_trust(path, trust)  # even when a cached build exists

    def built() -> GraphData:
        graph = read_graph(path, trust)
        with reading(path, WHAT):  # a graph object whose tables do not hold what GPT-GNN's do
            return build(graph, fraction, split_seed)

    return cached(cache_dir, "graphs", key, built)


def _features(frame: Any) -> torch.Tensor:
    n = len(frame)
    frame = frame.reindex(range(n)) if list(frame.index[:1]) != [0] else frame
    if "emb" not in frame:
        raise AuxrunError("OAG node features need an 'emb' column")
    parts = [np.stack(frame["node_emb"].to_numpy()) if "node_emb" in frame else np.zeros((n, NODE_EMB)),
             np.stack(frame["emb"].to_numpy())]
    citation = frame["citation"].to_numpy(dtype=np.float64) if "citation" in frame else np.zeros(n)
    parts.append(np.log10(citation + 0.01)[:, None])
    return torch.from_numpy(np.concatenate(parts, 1).astype(np.float32))


def _relation(adj: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``target_id -> {source_id: year}`` as arrays (source, target, year; year -1 where none)."""
    counts = np.fromiter((len(v) for v in adj.values()), np.int64, len(adj))
    dst = np.repeat(np.fromiter(adj.keys(), np.int64, len(adj)), counts)
    total = int(counts.sum())
    src = np.fromiter((s for v in adj.values() for s in v), np.int64, total)
    year = np.fromiter((-1 if y is None else y for v in adj.values() for y in v.values()), np.int64, total)
    return src, dst, year


def build(graph: Any, fraction: float, split_seed: int) -> GraphData:
    """GraphData of the unpickled ``graph`` (module docstring)."""
    x = {t: _features(frame) for t, frame in graph.node_feature.items() if len(frame)}
    edges: dict[EdgeType, torch.Tensor] = {}
    l2_year: dict[int, int] = {}
    l2_pairs: tuple[np.ndarray, np.ndarray] | None = None
    for target_type, by_source in graph.edge_list.items():
        for source_type, by_relation in by_source.items():
            for relation, adj in by_relation.items():
                if relation == "self" or not len(adj) or target_type not in x or source_type not in x:
                    continue
                src, dst, year = _relation(adj)
                edges[(source_type, relation, target_type)] = torch.from_numpy(np.stack([src, dst]))
                if (target_type, source_type, relation) == ("paper", "field", "rev_PF_in_L2"):
                    l2_pairs = (dst, src)
                    l2_year = dict(zip(dst.tolist(), year.tolist()))
    if l2_pairs is None or ("paper", "PF_in_L2", "field") not in edges:
        raise AuxrunError("the OAG graph has no paper-field L2 edges (PF_in_L2 / rev_PF_in_L2)")
    papers, fields = l2_pairs
    classes = np.array(sorted(graph.edge_list["field"]["paper"]["PF_in_L2"].keys()), dtype=np.int64)
    n_papers = x["paper"].shape[0]
    labels = torch.zeros(n_papers, len(classes), dtype=torch.bool)
    labels[torch.from_numpy(papers), torch.from_numpy(np.searchsorted(classes, fields))] = True
    years = np.full(n_papers, -1, dtype=np.int64)
    years[list(l2_year)] = list(l2_year.values())
    frame = graph.node_feature["paper"]
    if "time" in frame:  # the paper's own year where the graph has it (pre-training pool)
        own = frame["time"].reindex(range(n_papers)).fillna(-1).to_numpy(dtype=np.int64)
    else:
        own = years
    pools = {"train": np.flatnonzero((years >= 2014) & (years <= 2016)),
             "val": np.flatnonzero(years == 2017), "test": np.flatnonzero(years > 2017)}
    if any(len(p) == 0 for p in pools.values()):
        raise AuxrunError("the OAG graph leaves a split empty: " + ", ".join(f"{k} {len(v)} papers"
                                                                             for k, v in pools.items()))
    rng = np.random.RandomState(split_seed)
    split = {}
    for name, pool in pools.items():
        keep = pool if name == "test" else np.sort(rng.choice(pool, max(1, int(len(pool) * fraction)), replace=False))
        split[name] = torch.from_numpy(keep)
    labelled = torch.zeros(n_papers, dtype=torch.bool)
    labelled[torch.from_numpy(np.flatnonzero(years >= 2014))] = True
    for rel, paper_row in ((("paper", "PF_in_L2", "field"), 0), (("field", "rev_PF_in_L2", "paper"), 1)):
        ei = edges[rel]
        edges[rel] = ei[:, ~labelled[ei[paper_row]]]
    return GraphData(
        name="oag_cs",
        x=x,
        edge_index=edges,
        target=TargetSpec(kind="node_rank", split=split, node_type="paper", labels=labels,
                          num_classes=len(classes)),
        info={"nodes": {t: v.shape[0] for t, v in x.items()}, "edges": sum(e.shape[1] for e in edges.values()),
              "l2_fields": len(classes), **{f"{k}_papers": len(v) for k, v in split.items()}},
        pretrain_nodes={"paper": torch.from_numpy(np.flatnonzero((own >= 0) & (own < 2014)))},
    )
