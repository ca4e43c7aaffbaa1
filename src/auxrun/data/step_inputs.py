"""A step's inputs: the data view, the one protocol through which the training step gets every input.

A step asks its view for :class:`StepInputs`: the clean input features, the graph the encoder
runs on, and each task's batch in that graph's local indices. Evaluation asks the same view
for the target's embeddings on the evaluation splits and for each auxiliary task's fixed
evaluation batch. Three implementations:

* :class:`FullGraph`: the whole graph every step (``trainer.sampling=full``).
* :class:`SampledGraph`: the target's and every auxiliary task's examples of a step share one
  neighbour-sampled subgraph around all their endpoints (GPT-GNN, AUX-TS), so one encoder
  pass serves every task; a meta batch gets its own subgraph; evaluation is mini-batched
  inference (``trainer.sampling=neighbor``, ``trainer.fanout``).
* :class:`MoleculeBatches`: the step's molecules (the target's batch, or a random draw from
  the corpus when pre-training) as one disconnected graph; auxiliary tasks draw their
  examples from those molecules.

Tasks tell a view what it needs to know through four methods: ``sample(batch_size, gen,
graph)`` (graph views sample graph-wide and pass no graph; the molecule view passes the
step's molecules), ``node_refs()`` (which batch entries hold node indices of which node type,
so a subgraph view can take them as seeds and localise them), ``hidden_edges(batch)`` (edges
the step's graph must not contain: edge generation's targets) and, for targets,
``eval_nodes(split)`` (whose embeddings evaluation needs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import AuxrunError
from .graph import GraphData
from .encoder_graph import GraphView
from .molecules import MolData
from .neighbors import NeighborSubgraphs, resolve_backend

if TYPE_CHECKING:  # tasks depend on data, never the other way round at run time
    from ..tasks.base import Batch, Task, TargetTask

TARGET = "target"
EVAL_SEED = 12345     # evaluation subgraphs and samples are the same every epoch
AUX_EVAL_MOLS = 256   # molecules the auxiliary metrics are measured on
SAMPLING = ("full", "neighbor")


@dataclass
class StepInputs:
    """What one forward pass needs: clean features ``x`` per node type (the graph's own rows,
    in local order), the ``graph`` the encoder runs on, and per task its batch in ``graph``'s
    local indices."""

    x: dict[str, Tensor]
    graph: Any
    batches: dict[str, "Batch"]


class DataView:
    """The protocol (see the module docstring); built by :func:`make_view`."""

    def __init__(self, tasks: Mapping[str, "Task"], aux_batch_size: int) -> None:
        self.tasks = dict(tasks)
        self.aux = {n: t for n, t in self.tasks.items() if n != TARGET}
        self.aux_batch_size = int(aux_batch_size)

    def step(self, target_batch: "Batch | None", gen: torch.Generator) -> StepInputs:
        """Inputs of one training step: ``target_batch`` plus a fresh batch of every auxiliary task."""
        raise NotImplementedError

    def meta_inputs(self, meta_batch: "Batch", gen: torch.Generator) -> StepInputs:
        """Inputs scoring a meta batch of target examples (on its own graph where the view samples)."""
        raise NotImplementedError

    def aux_eval_inputs(self, name: str) -> StepInputs:
        """Inputs holding auxiliary task ``name``'s fixed evaluation batch."""
        raise NotImplementedError

    def target_embeddings(self, encoder: torch.nn.Module, splits: tuple[str, ...]) -> dict[str, dict[str, Tensor]]:
        """Per split, the embeddings the target's ``evaluate`` scores (no gradients)."""
        raise NotImplementedError


class FullGraph(DataView):
    """The whole graph every step; batches are already in its (graph-wide) indices."""

    def __init__(self, data: GraphData, tasks: Mapping[str, "Task"], aux_batch_size: int) -> None:
        super().__init__(tasks, aux_batch_size)
        self.x = data.x
        self.graph = GraphView.of(data)

    def _sample_aux(self, gen: torch.Generator) -> dict[str, "Batch"]:
        return {n: t.sample(self.aux_batch_size, gen) for n, t in self.aux.items()}

    def _inputs(self, batches: dict[str, "Batch"], gen: torch.Generator | None) -> StepInputs:
        return StepInputs(self.x, self._hide(self.graph, batches), batches)

    def _hide(self, graph: GraphView, batches: dict[str, "Batch"]) -> GraphView:
        """``graph`` without the edges the batches' tasks hide (:meth:`Task.hidden_edges`)."""
        parts = [h for n, b in batches.items() if (h := self.tasks[n].hidden_edges(b)) is not None]
        if not parts:
            return graph
        hidden = torch.unique(torch.cat(parts))
        return graph.without(hidden, self.graph.edge_index[1, hidden])

    def step(self, target_batch: "Batch | None", gen: torch.Generator) -> StepInputs:
        batches = {TARGET: target_batch} if target_batch is not None else {}
        return self._inputs(batches | self._sample_aux(gen), gen)

    def meta_inputs(self, meta_batch: "Batch", gen: torch.Generator) -> StepInputs:
        return self._inputs({TARGET: meta_batch}, gen)

    def aux_eval_inputs(self, name: str) -> StepInputs:
        return self._inputs({name: self.aux[name].eval_batch()}, None)

    def embed(self, encoder: torch.nn.Module, needed: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Embeddings of the ``needed`` nodes per type (graph-wide indices; ``None``: all), in
        tables of the whole graph's size: here one encoder pass over the whole graph."""
        return encoder(self.x, self.graph)

    def around(self, seeds: Callable[[], dict[str, list[Tensor]]],
               gen: torch.Generator) -> tuple[dict[str, Tensor], GraphView]:
        """Features and graph of a training step that reads the embeddings of the nodes
        ``seeds()`` names (graph-wide indices per type; called only by views that sample):
        here the whole graph (``graph.localize`` is the identity)."""
        return self.x, self.graph

    def target_embeddings(self, encoder: torch.nn.Module, splits: tuple[str, ...]) -> dict[str, dict[str, Tensor]]:
        emb = self.embed(encoder)
        return {s: emb for s in splits}


class SampledGraph(FullGraph):
    """Neighbour-sampled subgraphs (module docstring). Training subgraphs draw from the
    run's generator; evaluation subgraphs from a generator reset to :data:`EVAL_SEED` at
    every evaluation, so every epoch is scored on the same subgraphs."""

    def __init__(self, data: GraphData, tasks: Mapping[str, "Task"], aux_batch_size: int, fanout: list[int],
                 eval_fanout: list[int], eval_batch_size: int, gen: torch.Generator, backend: str = "auto") -> None:
        super().__init__(data, tasks, aux_batch_size)
        self.train_subgraphs = NeighborSubgraphs(self.graph, fanout, gen, backend)
        self.eval_gen = torch.Generator()
        self.eval_subgraphs = NeighborSubgraphs(self.graph, eval_fanout, self.eval_gen, backend,
                                                share=self.train_subgraphs)
        self.eval_batch_size = int(eval_batch_size)

    def _refs(self, batches: dict[str, "Batch"]):
        for name, batch in batches.items():
            for key, types in self.tasks[name].node_refs().items():
                value = batch[key]
                rows = [value] if value.dim() == 1 else list(value)
                yield name, key, list(zip(types, rows))

    def _subgraph(self, seeds: list[tuple[str, Tensor]], train: bool) -> GraphView:
        stacked = torch.unique(torch.cat([self.graph.stacked(t, ids) for t, ids in seeds]))
        return (self.train_subgraphs if train else self.eval_subgraphs).around(stacked)

    def around(self, seeds: Callable[[], dict[str, list[Tensor]]],
               gen: torch.Generator) -> tuple[dict[str, Tensor], GraphView]:
        sub = self._subgraph([(t, ids) for t, parts in seeds().items() for ids in parts], train=True)
        return self.features(sub), sub

    def _inputs(self, batches: dict[str, "Batch"], gen: torch.Generator | None) -> StepInputs:
        refs = list(self._refs(batches))
        sub = self._subgraph([(t, ids) for _, _, rows in refs for t, ids in rows], gen is not None)
        local = {n: dict(b) for n, b in batches.items()}
        for name, key, rows in refs:
            parts = [sub.localize(t, ids) for t, ids in rows]
            local[name][key] = parts[0] if batches[name][key].dim() == 1 else torch.stack(parts)
        return StepInputs(self.features(sub), self._hide(sub, batches), local)

    def features(self, sub: GraphView) -> dict[str, Tensor]:
        assert sub.n_id is not None
        return {t: v[sub.n_id[t]] for t, v in self.x.items()}

    @contextmanager
    def _eval_rng(self) -> Iterator[None]:
        """Evaluation draws: the evaluation generator (ours) and, in a fork of the global RNG
        (PyG's sampler draws from it), the global one, both from :data:`EVAL_SEED`."""
        self.eval_gen.manual_seed(EVAL_SEED)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(EVAL_SEED)
            yield

    def aux_eval_inputs(self, name: str) -> StepInputs:
        with self._eval_rng():
            return super().aux_eval_inputs(name)

    def target_embeddings(self, encoder: torch.nn.Module, splits: tuple[str, ...]) -> dict[str, dict[str, Tensor]]:
        """The nodes the target's metrics need on ``splits`` (:meth:`embed`)."""
        target: TargetTask = self.tasks[TARGET]  # type: ignore[assignment]
        needed: dict[str, list[Tensor]] = {}
        for s in splits:
            for t, ids in target.eval_nodes(s).items():
                needed.setdefault(t, []).append(ids)
        emb = self.embed(encoder, {t: torch.cat(parts) for t, parts in needed.items()})
        return {s: emb for s in splits}

    def embed(self, encoder: torch.nn.Module, needed: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Mini-batched inference: the ``needed`` nodes (``None``: every node),
        ``eval_batch_size`` seeds at a time, each chunk on its own sampled subgraph from the
        evaluation generator; rows nobody needs stay 0."""
        if needed is None:
            needed = {t: torch.arange(n, device=self.graph.edge_index.device) for t, n in self.graph.counts.items()}
        emb: dict[str, Tensor] = {}
        with self._eval_rng():
            for t, ids in needed.items():
                for chunk in torch.unique(ids).split(self.eval_batch_size):
                    sub = self._subgraph([(t, chunk)], train=False)
                    h = encoder(self.features(sub), sub)[t][sub.localize(t, chunk)]
                    if t not in emb:
                        emb[t] = h.new_zeros(self.graph.counts[t], h.shape[1])
                    emb[t][chunk] = h
        return emb


class MoleculeBatches(DataView):
    """A batch of molecules per step (module docstring); molecules stay on the CPU until
    their batch is collated and moved to ``device``."""

    EVAL_CHUNK = 512  # molecules per forward pass when scoring a split

    def __init__(self, data: MolData, tasks: Mapping[str, "Task"], aux_batch_size: int,
                 device: torch.device) -> None:
        super().__init__(tasks, aux_batch_size)
        self.data, self.device = data, device

    def _collate(self, ids: Tensor) -> tuple[dict[str, Tensor], Any]:
        g = self.data.mols.collate(ids).to(self.device)
        return {"atom": g.x}, g

    def step(self, target_batch: "Batch | None", gen: torch.Generator) -> StepInputs:
        if target_batch is not None:
            ids = target_batch["mols"]
        else:
            pool = self.data.split["train"]
            ids = pool[torch.randint(len(pool), (self.aux_batch_size,), generator=gen)]
        x, g = self._collate(ids)
        batches = {TARGET: target_batch} if target_batch is not None else {}
        batches |= {n: t.sample(self.aux_batch_size, gen, g) for n, t in self.aux.items()}
        return StepInputs(x, g, batches)

    def meta_inputs(self, meta_batch: "Batch", gen: torch.Generator) -> StepInputs:
        x, g = self._collate(meta_batch["mols"])
        return StepInputs(x, g, {TARGET: meta_batch})

    def aux_eval_inputs(self, name: str) -> StepInputs:
        """A fixed sample of validation molecules (training ones for a corpus without)."""
        pool = self.data.split.get("val")
        pool = pool if pool is not None and len(pool) else self.data.split["train"]
        x, g = self._collate(pool[:AUX_EVAL_MOLS])
        batch = self.aux[name].sample(4 * AUX_EVAL_MOLS, torch.Generator().manual_seed(EVAL_SEED), g)
        return StepInputs(x, g, {name: batch})

    def target_embeddings(self, encoder: torch.nn.Module, splits: tuple[str, ...]) -> dict[str, dict[str, Tensor]]:
        """``{"graph": pooled embedding of every molecule of the split, in split order}``."""
        out = {}
        for s in splits:
            parts = [encoder(*self._collate(chunk))["graph"] for chunk in self.data.split[s].split(self.EVAL_CHUNK)]
            out[s] = {"graph": torch.cat(parts)}
        return out


def check_sampling(trainer: Any, molecular: bool = False, layers: int | None = None) -> None:
    """``sampling=neighbor`` is not asked of ``molecular`` data, samples one hop per GNN
    layer (``trainer.fanout`` and ``eval_fanout`` have ``layers`` entries, where given), and
    ``trainer.sampler`` can run here: checked when the config is composed, before any data
    loads (each value's type and range: the schema's)."""
    sampling = str(trainer.get("sampling", "full"))
    if molecular and sampling == "neighbor":
        raise AuxrunError("molecular datasets train on batches of whole molecules already; "
                          "trainer.sampling=neighbor applies to graph datasets")
    for key in ("fanout", "eval_fanout"):
        value = trainer.get(key)
        if value is None and key == "eval_fanout":
            continue
        hops = list(value)
        if sampling == "neighbor" and layers is not None and len(hops) != layers:
            raise AuxrunError(f"trainer.{key}={hops}: {len(hops)} hops for a {layers}-layer GNN; give one number "
                              f"of neighbours per layer (e.g. trainer.{key}={[10] * layers})")
    resolve_backend(str(trainer.get("sampler", "auto")))


def make_view(data: GraphData | MolData, tasks: Mapping[str, "Task"], trainer: Any, gen: torch.Generator,
              device: torch.device) -> DataView:
    """The view ``trainer.sampling`` asks for on ``data`` (molecules are always batched)."""
    check_sampling(trainer, molecular=data.kind == "molecules")
    if data.kind == "molecules":
        return MoleculeBatches(data, tasks, int(trainer.aux_batch_size), device)
    if str(trainer.get("sampling", "full")) == "full":
        return FullGraph(data, tasks, int(trainer.aux_batch_size))
    fanout = [int(k) for k in trainer.fanout]
    eval_fanout = [int(k) for k in trainer.eval_fanout] if trainer.get("eval_fanout") is not None else fanout
    return SampledGraph(data, tasks, int(trainer.aux_batch_size), fanout, eval_fanout,
                        int(trainer.get("eval_batch_size", 4096)), gen, str(trainer.get("sampler", "auto")))
