"""GPT-GNN's generative tasks and the multi-label ranking target against hand computations,
and the edges and attributes they hide against what the encoder actually sees."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from auxrun.data import load
from auxrun.data.graph import TargetSpec
from auxrun.data.encoder_graph import GraphView
from auxrun.data.step_inputs import FullGraph, SampledGraph
from auxrun.models import Encoder
from auxrun.tasks import build_aux, build_target
from auxrun.tasks.generative import TEMPERATURE
from auxrun.tasks.node import MultiLabelRanking

SMALL = ["dataset.num_users=120", "dataset.num_items=80", "dataset.num_tags=10", "aux=gpt"]


@pytest.fixture
def setup(make_cfg):
    cfg = make_cfg("mtl", *SMALL, "aux.tasks.edge.negatives=7")
    data = load(cfg.dataset, 0)
    tasks = {"target": build_target(data, 16, 16), **build_aux(cfg.aux, data, 16, 0)}
    return cfg, data, tasks


def _pairs_of(view: GraphView, positions: torch.Tensor) -> set[frozenset]:
    ei = view.edge_index[:, positions]
    return {frozenset(p) for p in ei.T.tolist()}


@pytest.mark.parametrize("sampling", ["full", "neighbor"])
def test_edge_generation_hides_every_edge_between_its_pairs_and_nothing_else(setup, sampling):
    cfg, data, tasks = setup
    gen = torch.Generator().manual_seed(0)
    view = FullGraph(data, tasks, 32) if sampling == "full" else SampledGraph(data, tasks, 32, [5, 3], [5, 3], 64, gen)
    whole = GraphView.from_data(data)
    wide = tasks["edge"].sample(32, torch.Generator().manual_seed(1))
    u = wide["pairs"][0] + whole.offsets["user"]
    v = wide["pairs"][1] + whole.offsets["item"]
    asked = {frozenset(p) for p in zip(u.tolist(), v.tolist())}
    hidden = wide["hide"]
    assert _pairs_of(whole, hidden) == asked  # both directions of every asked pair, no other edge
    keys = set(zip(whole.edge_index[0].tolist(), whole.edge_index[1].tolist()))
    assert len(hidden) == sum((a, b) in keys for a, b in zip(u.tolist(), v.tolist())) * 2
    inputs = view._inputs({"edge": wide}, gen)
    graph = inputs.graph
    nodes = graph.nodes if graph.nodes is not None else torch.arange(whole.num_nodes)
    seen = {frozenset((int(nodes[a]), int(nodes[b]))) for a, b in graph.edge_index.T.tolist()}
    assert not (seen & asked)
    # degrees no longer count the hidden edges: on the whole graph they are the visible in-degrees
    if sampling == "full":
        assert torch.equal(graph.degree, torch.bincount(graph.edge_index[1], minlength=whole.num_nodes))
        assert graph.edge_index.shape[1] == whole.edge_index.shape[1] - len(torch.unique(hidden))
    else:
        assert torch.equal(graph.degree, whole.degree[nodes] - torch.bincount(
            whole.edge_index[1, torch.unique(hidden)], minlength=whole.num_nodes)[nodes])


def test_edge_generation_loss_is_infonce_over_the_unjoined_candidates(setup):
    _, _, tasks = setup
    task = tasks["edge"].eval()
    lin = task.head[0]
    torch.nn.init.eye_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    e = torch.eye(16)
    emb = {"user": torch.zeros(120, 16), "item": torch.zeros(80, 16)}
    batch = {"pairs": torch.tensor([[0, 1], [0, 1]]), "negatives": torch.tensor([2, 3, 4]),
             "joined": torch.tensor([[False, False, False], [False, True, False]])}
    emb["item"][0], emb["user"][0] = e[0], e[0]          # query 0: its source at cos 1
    emb["item"][1], emb["user"][1] = e[1], -e[1]         # query 1: its source at cos -1
    emb["user"][2], emb["user"][3], emb["user"][4] = e[2], e[1], e[0]  # cos 0, then 1 with query 1 / 0
    losses = task.losses(emb, batch, {})
    t = 1 / TEMPERATURE
    l0 = -math.log(math.exp(t) / (math.exp(t) + 1 + 1 + math.exp(t)))
    l1 = -math.log(math.exp(-t) / (math.exp(-t) + 1 + 1))  # candidate 3 (cos 1) is joined: masked out
    assert losses.tolist() == pytest.approx([l0, l1], rel=1e-5)
    metrics = task.evaluate(emb, "val", None, batch)
    assert metrics["mrr"] == pytest.approx(((1 + 1 / 2) / 2 + 1 / 3) / 2)  # query 0 ties one candidate


def test_attribute_generation_masks_its_nodes_and_scores_the_cosine(setup):
    cfg, data, tasks = setup
    task = tasks["attr"].eval()
    batch = task.sample(10, torch.Generator().manual_seed(0))
    x = task.corrupt(data.x, batch)
    assert torch.allclose(x["user"][batch["nodes"]], data.x["user"].mean(0).expand(len(batch["nodes"]), -1))
    others = torch.ones(120, dtype=torch.bool)
    others[batch["nodes"]] = False
    assert torch.equal(x["user"][others], data.x["user"][others])
    # the loss on a hand-made embedding: W = identity on the first 16 features
    lin = task.head[0]
    w = torch.zeros_like(lin.weight)
    w[:, :] = torch.eye(16)[: w.shape[0], : w.shape[1]]
    lin.weight.data, lin.bias.data = w, torch.zeros_like(lin.bias)
    nodes = batch["nodes"][:2]
    emb = {"user": torch.zeros(120, 16)}
    emb["user"][nodes[0]] = data.x["user"][nodes[0]]
    emb["user"][nodes[1]] = -data.x["user"][nodes[1]]
    losses = task.losses(emb, {"nodes": nodes}, data.x)
    assert losses.tolist() == pytest.approx([0.0, 2 / TEMPERATURE], abs=1e-5)


def test_a_masked_nodes_embedding_does_not_see_its_own_attributes(setup):
    """Two layers: a node's own features reach it back through every 2-hop cycle unless the
    step's input hides them everywhere, which corrupt() does."""
    cfg, data, tasks = setup
    enc = Encoder(cfg.backbone, data.schema()).eval()
    task = tasks["attr"]
    batch = {"nodes": torch.tensor([3, 9])}
    graph = GraphView.from_data(data)
    before = enc(task.corrupt(data.x, batch), graph)["user"][batch["nodes"]]
    changed = {**data.x, "user": data.x["user"].clone()}
    changed["user"][batch["nodes"]] += 5.0
    after = enc(task.corrupt(changed, batch), graph)["user"][batch["nodes"]]
    assert torch.allclose(before, after)
    plain = enc(changed, graph)["user"][batch["nodes"]]
    assert not torch.allclose(plain, before)


def _ndcg_mrr(scores: np.ndarray, relevant: np.ndarray) -> tuple[float, float]:
    """GPT-GNN's ndcg_at_k over the whole ranking and reciprocal rank of the first relevant."""
    order = np.argsort(-scores)
    r = relevant[order].astype(float)
    disc = 1 / np.log2(np.arange(2, len(r) + 2))
    ideal = np.sort(r)[::-1]
    return float((r * disc).sum() / (ideal * disc).sum()), float(1 / (np.flatnonzero(r)[0] + 1))


def test_multilabel_ranking_loss_and_metrics_by_hand():
    gen = torch.Generator().manual_seed(0)
    labels = torch.zeros(6, 5, dtype=torch.bool)
    labels[0, [1, 3]] = labels[1, 0] = labels[2, [2, 3, 4]] = labels[3, 4] = True
    spec = TargetSpec(kind="node_rank", split={"train": torch.tensor([0, 1]), "val": torch.tensor([2, 3]),
                                               "test": torch.tensor([0, 1])},
                      node_type="paper", labels=labels, num_classes=5)
    task = MultiLabelRanking(spec, 4)
    emb = {"paper": torch.randn(6, 4, generator=gen)}
    logits = task.head(emb["paper"])
    loss = task.losses(emb, {"nodes": torch.tensor([0]), "y": labels[[0]]}, {})
    logp = torch.log_softmax(logits[0], -1)
    assert float(loss) == pytest.approx(float(-(logp[1] + logp[3]) / 2), rel=1e-6)
    metrics = task.evaluate(emb, "val")
    expected = [_ndcg_mrr(logits[i].detach().numpy(), labels[i].numpy()) for i in (2, 3)]
    assert metrics["ndcg"] == pytest.approx(np.mean([e[0] for e in expected]), rel=1e-6)
    assert metrics["mrr"] == pytest.approx(np.mean([e[1] for e in expected]), rel=1e-6)


def test_loss_scale_multiplies_a_tasks_losses_and_is_checked_at_composition(make_cfg, tmp_path):
    from auxrun.errors import AuxrunError
    from auxrun.train.multitask import TaskModel
    from auxrun.train.commands import run

    cfg = make_cfg("mtl", *SMALL, "aux.tasks.attr.loss_scale=5")
    data = load(cfg.dataset, 0)
    tasks = {"target": build_target(data, 32, 32), **build_aux(cfg.aux, data, 32, 0)}
    assert tasks["attr"].loss_scale == 5.0 and tasks["edge"].loss_scale == 1.0
    model = TaskModel(Encoder(cfg.backbone, data.schema()), tasks).eval()
    batch = {"attr": tasks["attr"].sample(8, torch.Generator().manual_seed(0))}
    graph = GraphView.from_data(data)
    scaled = model(data.x, data.x, graph, batch)["attr"]
    tasks["attr"].loss_scale = 1.0
    assert torch.allclose(scaled, 5 * model(data.x, data.x, graph, batch)["attr"])
    with pytest.raises(AuxrunError, match="aux.tasks.attr.loss_scale=-1: out of range; expected a number > 0"):
        run(make_cfg("mtl", *SMALL, "aux.tasks.attr.loss_scale=-1"), tmp_path / "bad")


def test_gpt_tasks_on_a_dataset_that_names_no_node_type_or_relation_is_one_message(make_cfg, tmp_path):
    from auxrun.errors import AuxrunError
    from auxrun.train.commands import run

    with pytest.raises(AuxrunError, match="aux.tasks.edge.relation.*dataset.gpt"):
        run(make_cfg("mtl", "dataset=movielens", "aux=gpt"), tmp_path / "run")
