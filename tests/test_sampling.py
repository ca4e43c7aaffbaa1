"""Neighbour sampling and the data views: the sampler against its definition and PyG's
k-hop subgraph, subgraph embeddings against whole-graph ones, localised batches against the
graph-wide examples they stand for, and training of every strategy on sampled subgraphs."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.sampler import NodeSamplerInput
from torch_geometric.utils import k_hop_subgraph

from auxrun.data import load
from auxrun.data.encoder_graph import GraphView
from auxrun.data.neighbors import NeighborSubgraphs, TorchNeighborSampler
from auxrun.data.step_inputs import FullGraph, SampledGraph
from auxrun.models import Encoder
from auxrun.tasks import build_aux, build_target

SMALL = ["dataset.num_users=120", "dataset.num_items=80", "dataset.num_tags=10"]


def random_graph(n: int = 200, e: int = 1500, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(n, (2, e), generator=g)
    return torch.unique(ei, dim=1)


def test_each_node_keeps_min_degree_fanout_distinct_incoming_edges_of_the_graph():
    ei = random_graph()
    sampler = TorchNeighborSampler(ei, 200, [4, 3], torch.Generator().manual_seed(1))
    seeds = torch.tensor([3, 17, 42])
    out = sampler.sample_from_nodes(NodeSamplerInput(None, seeds))
    assert torch.equal(out.node, torch.unique(out.node)) and bool(torch.isin(seeds, out.node).all())
    # every sampled edge is a graph edge, and row/col name its endpoints
    assert torch.equal(out.node[out.row], ei[0, out.edge]) and torch.equal(out.node[out.col], ei[1, out.edge])
    assert len(torch.unique(out.edge)) == len(out.edge)  # without replacement
    in_deg = torch.bincount(ei[1], minlength=200)
    kept = torch.bincount(ei[1, out.edge], minlength=200)
    for s in seeds.tolist():
        assert kept[s] == min(int(in_deg[s]), 4)
    hop1 = torch.unique(ei[0, out.edge][torch.isin(ei[1, out.edge], seeds)])
    for v in hop1[~torch.isin(hop1, seeds)].tolist():
        assert kept[v] == min(int(in_deg[v]), 3)


def test_all_neighbours_reach_exactly_the_k_hop_subgraph_of_pyg():
    ei = random_graph(e=600)
    seeds = torch.tensor([5, 9])
    sampler = TorchNeighborSampler(ei, 200, [-1, -1], torch.Generator())
    out = sampler.sample_from_nodes(NodeSamplerInput(None, seeds))
    subset, _, _, _ = k_hop_subgraph(seeds, 2, ei, num_nodes=200, flow="source_to_target")
    assert torch.equal(out.node, torch.sort(subset).values)


@pytest.mark.parametrize("backbone", ["gcn", "sage", "gin", "rgcn", "hgt"])
def test_seed_embeddings_on_a_full_fanout_subgraph_equal_the_whole_graph_ones(make_cfg, backbone):
    """Every layer computes a seed's embedding exactly from its full 2-hop computation tree;
    GCN too, because it normalises by whole-graph degrees (the tree's boundary nodes keep
    none of their own incoming edges)."""
    cfg = make_cfg("mtl", f"backbone={backbone}", "backbone.num_layers=2", "backbone.hidden=16", *SMALL)
    data = load(cfg.dataset, 0)
    enc = Encoder(cfg.backbone, data.schema()).eval()
    whole = GraphView.from_data(data)
    full = enc(data.x, whole)
    sub = NeighborSubgraphs(whole, [-1, -1], torch.Generator()).around(
        torch.cat([whole.stacked("user", torch.tensor([0, 7, 33])), whole.stacked("item", torch.tensor([2, 5]))]))
    assert sub.num_nodes < whole.num_nodes
    emb = enc({t: v[sub.n_id[t]] for t, v in data.x.items()}, sub)
    for t, ids in (("user", torch.tensor([0, 7, 33])), ("item", torch.tensor([2, 5]))):
        assert torch.allclose(emb[t][sub.localize(t, ids)], full[t][ids], atol=1e-5)


def test_gcn_weights_on_the_whole_graph_are_pygs_gcn_norm():
    from torch_geometric.nn.conv.gcn_conv import gcn_norm

    from auxrun.models.encoders import gcn_edge_weights

    ei = random_graph()
    ei = ei[:, ei[0] != ei[1]]
    view = GraphView(["n"], {"n": 200}, {"n": 0}, ei, torch.zeros(ei.shape[1], dtype=torch.long), {},
                     degree=torch.bincount(ei[1], minlength=200))
    ours = torch.sparse_coo_tensor(*gcn_edge_weights(view), (200, 200)).to_dense()
    theirs = torch.sparse_coo_tensor(*gcn_norm(ei, num_nodes=200), (200, 200)).to_dense()
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_a_sampled_gcn_layer_is_an_unbiased_estimate_of_the_whole_graph_layer():
    """Averaged over many sampled subgraphs (fanout 3 of in-degrees ~7), a seed's one-layer GCN
    aggregate ``sum_j A_hat_ij h_j`` approaches the whole-graph one; normalising by the
    subgraph's own degrees (a plain ``GCNConv``) stays far from it."""
    from torch_geometric.nn import GCNConv

    from auxrun.models.encoders import gcn_edge_weights

    ei = random_graph()
    ei = ei[:, ei[0] != ei[1]]
    degree = torch.bincount(ei[1], minlength=200)
    whole = GraphView(["n"], {"n": 200}, {"n": 0}, ei, torch.zeros(ei.shape[1], dtype=torch.long),
                      {("n", "to", "n"): ei}, degree=degree)
    h = torch.randn(200, 4, generator=torch.Generator().manual_seed(0)) + 1.0
    conv = GCNConv(4, 4, normalize=False, bias=False)
    conv.lin.weight.data = torch.eye(4)
    plain = GCNConv(4, 4, bias=False)
    plain.lin.weight.data = torch.eye(4)
    seeds = torch.tensor([3, 17, 42, 99])
    exact = conv(h, *gcn_edge_weights(whole))[seeds]
    sampler = NeighborSubgraphs(whole, [3], torch.Generator().manual_seed(1))
    ours, subgraph_norm, n = torch.zeros_like(exact), torch.zeros_like(exact), 800
    for _ in range(n):
        sub = sampler.around(seeds)
        local = sub.localize("n", seeds)
        ours += conv(h[sub.n_id["n"]], *gcn_edge_weights(sub))[local] / n
        subgraph_norm += plain(h[sub.n_id["n"]], sub.edge_index)[local] / n
    assert torch.allclose(ours, exact, atol=0.05), (ours - exact).abs().max()
    assert (subgraph_norm - exact).abs().max() > 0.5


def test_a_sampled_step_shares_one_subgraph_and_localises_every_batch(make_cfg):
    cfg = make_cfg("mtl", "dataset.target=link", "aux=ssl", "+aux.tasks.helpful={kind: planted, relation: helpful}",
                   *SMALL, "trainer.fanout=[3,2]")
    data = load(cfg.dataset, 0)
    target = build_target(data, 16, int(cfg.aux.head_dim))
    aux = build_aux(cfg.aux, data, 16, 0)
    tasks = {"target": target, **aux}
    gen = torch.Generator().manual_seed(0)
    view = SampledGraph(data, tasks, 32, [3, 2], [3, 2], 64, gen)
    batch = next(target.train_batches(16, gen))
    state = gen.get_state()
    inputs = view.step(batch, gen)
    gen.set_state(state)
    graph_wide = FullGraph(data, tasks, 32).step(batch, gen).batches
    sub = inputs.graph
    assert sub.num_nodes < GraphView.from_data(data).num_nodes
    for name, task in tasks.items():
        for key, types in task.node_refs().items():
            local, wide = inputs.batches[name][key], graph_wide[name][key]
            rows = zip(types, [local] if local.dim() == 1 else local, [wide] if wide.dim() == 1 else wide)
            for t, lo, wi in rows:
                assert torch.equal(sub.n_id[t][lo], wi), (name, key)
    assert torch.equal(inputs.x["user"], data.x["user"][sub.n_id["user"]])


def test_sampled_evaluation_with_all_neighbours_matches_the_whole_graph(make_cfg):
    from auxrun.train.multitask import TaskModel, evaluate

    cfg = make_cfg("mtl", "dataset.target=link", "backbone=sage", "backbone.num_layers=2", *SMALL)
    data = load(cfg.dataset, 0)
    target = build_target(data, int(cfg.backbone.hidden), int(cfg.aux.head_dim))
    model = TaskModel(Encoder(cfg.backbone, data.schema()), {"target": target})
    tasks = dict(model.tasks)
    full = evaluate(model, FullGraph(data, tasks, 8), target, {}, ("val", "test"))
    sampled = evaluate(model, SampledGraph(data, tasks, 8, [-1, -1], [-1, -1], 50, torch.Generator()), target, {},
                       ("val", "test"))
    for s in ("val", "test"):
        for k in ("auc", "mrr", "ndcg"):
            assert sampled[s][k] == pytest.approx(full[s][k], abs=1e-5), (s, k)


STRATEGIES = ["none", "fixed", "cosine", "gcs", "gns", "gcs_gns", "pcgrad", "rcgrad", "selar", "auxts", "blo",
              "blo_rcgrad", "jd"]


@pytest.mark.parametrize("sampling", ["full", "neighbor"])
@pytest.mark.parametrize("weighting", STRATEGIES)
def test_every_strategy_trains_under_each_sampling(make_cfg, tmp_path, weighting, sampling):
    """A few steps of every strategy, with a look-ahead meta batch on its own subgraph where
    the strategy needs one: finite losses, the encoder moves, metrics come out."""
    from auxrun.train.multitask import evaluate, setup, train_step
    from auxrun.train.commands import task_parts

    extra = ["weighting.adapt_every=1"] if weighting.startswith("blo") else []
    cfg = make_cfg("mtl", f"weighting={weighting}", "aux=mixed", f"trainer.sampling={sampling}", *SMALL,
                   "dataset.train_frac=0.5", "trainer.batch_size=16", "trainer.aux_batch_size=16",
                   "trainer.fanout=[4,3]",
                   f"paths.outputs={tmp_path}", *extra)
    p = task_parts(cfg)
    model, ctx, opt = setup(p.data, p.encoder, p.target, p.aux, p.strategy, cfg.trainer, p.gen)
    assert type(ctx.view).__name__ == {"full": "FullGraph", "neighbor": "SampledGraph"}[sampling]
    before = [q.detach().clone() for q in model.encoder.parameters()]
    batches = p.target.train_batches(16, p.gen)
    for i in range(3):
        step, _ = train_step(ctx, opt, next(batches), p.gen, i)
        assert all(bool(torch.isfinite(v).all()) for v in step.losses.values())
        if sampling == "neighbor":
            assert step.lookahead is None or ctx.strategy.needs_lookahead
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))
    metrics = evaluate(model, ctx.view, p.target, ctx.aux, ("val", "test"))
    assert 0.0 <= metrics["test"]["f1_micro"] <= 1.0


@pytest.mark.parametrize("degree", [5, 40])  # 5: k < deg <= 2k (random keys); 40: deg > 2k (distinct offsets)
def test_uniform_k_subsets_on_both_draw_paths(degree):
    """Every pair of a node's neighbours is kept together equally often: P = k(k-1) / (d(d-1))."""
    ei = torch.stack([torch.arange(1, degree + 1), torch.zeros(degree, dtype=torch.long)])
    sampler = TorchNeighborSampler(ei, degree + 1, [3], torch.Generator().manual_seed(3))
    single, pair = torch.zeros(degree + 1), torch.zeros(degree + 1, degree + 1)
    draws = 3000
    for _ in range(draws):
        kept = ei[0, sampler.sample_from_nodes(NodeSamplerInput(None, torch.tensor([0]))).edge]
        assert len(kept) == 3 and len(torch.unique(kept)) == 3
        single[kept] += 1
        pair[kept[:, None], kept[None, :]] += 1
    p1 = 3 / degree
    assert float((single[1:] / draws - p1).abs().max()) < 4.5 * (p1 * (1 - p1) / draws) ** 0.5
    off = pair[1:, 1:][~torch.eye(degree, dtype=torch.bool)] / draws
    p2 = 6 / (degree * (degree - 1))
    assert float((off - p2).abs().max()) < 5 * (p2 / draws) ** 0.5
