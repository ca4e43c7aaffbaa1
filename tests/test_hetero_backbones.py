"""The KTN paper's MPNN, H-MPNN and MAGNN against independent re-computations: walks enumerated
by brute force, and each layer's formula evaluated node by node in numpy from the papers'
equations (Gilmer et al.'s GRU written out, MAGNN's complex rotation with numpy's complex type)."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from auxrun.data.graph import relation_chains
from auxrun.models.hetero import HMPNNConv, MAGNNConv, MPNNConv, instances

TYPES = ["a", "b"]
RELATIONS = [("a", "x", "b"), ("b", "y", "a"), ("b", "z", "b")]


@st.composite
def graphs(draw):
    counts = {"a": draw(st.integers(1, 5)), "b": draw(st.integers(1, 5))}
    edges = {}
    for r in RELATIONS:
        pairs = draw(st.lists(st.tuples(st.integers(0, counts[r[0]] - 1), st.integers(0, counts[r[2]] - 1)),
                              max_size=10))
        edges[r] = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T.contiguous()
    return counts, edges


def walks(path, edges, counts) -> Counter:
    """Every walk along the relations of ``path`` by brute force: the multiset of node tuples
    ``(p_0, ..., p_n)`` (parallel edges give repeated walks)."""
    rels = [RELATIONS[i] for i in path]
    found = Counter()
    for chosen in itertools.product(*(edges[r].T.tolist() for r in rels)):
        if all(chosen[i][1] == chosen[i + 1][0] for i in range(len(chosen) - 1)):
            found[(chosen[0][0], *(e[1] for e in chosen))] += 1
    return found


def test_metapaths_are_the_relation_chains_ending_at_a_type():
    assert relation_chains(RELATIONS, "a", 2) == [(1,), (0, 1), (2, 1)]
    assert relation_chains(RELATIONS, "b", 2) == [(0,), (2,), (1, 0), (0, 2), (2, 2)]
    assert relation_chains(RELATIONS, "b", 2, start="a") == [(0,), (0, 2)]
    # each of the 5 two-hop chains extends by the relations into its first source type: 2 + 1 + 2
    assert len(relation_chains(RELATIONS, "b", 3)) == 10


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("xyz"), st.sampled_from("abc")),
                unique=True, max_size=6),
       st.sampled_from("abc"), st.sampled_from([None, "a", "b", "c"]), st.integers(0, 3))
def test_relation_chains_are_every_chaining_index_tuple_once_in_their_order(relations, end, start, hops):
    """Against brute force over every tuple of relation indices: the same chains, each once,
    shortest first and within a length ordered by the last relation, then the one before."""
    brute = [c for k in range(1, hops + 1) for c in itertools.product(range(len(relations)), repeat=k)
             if relations[c[-1]][2] == end and (start is None or relations[c[0]][0] == start)
             and all(relations[c[i]][2] == relations[c[i + 1]][0] for i in range(k - 1))]
    assert relation_chains(relations, end, hops, start) == sorted(brute, key=lambda c: (len(c), c[::-1]))


@settings(max_examples=60, deadline=None)
@given(graphs(), st.sampled_from([(1,), (0, 1), (2, 2), (1, 0, 2)]))
def test_instances_are_every_walk_exactly_once_below_the_cap(graph, path):
    counts, edges = graph
    inst = instances(path, RELATIONS, edges, counts, max_instances=10 ** 6)
    got = Counter(tuple(int(n[j]) for n in inst.nodes) for j in range(len(inst.at)))
    assert got == walks(path, edges, counts)
    assert torch.equal(inst.at, inst.nodes[-1])


@settings(max_examples=60, deadline=None)
@given(graphs(), st.sampled_from([(0, 1), (2, 2), (1, 0, 2)]), st.integers(1, 3))
def test_instances_above_the_cap_are_that_many_real_walks_and_reproducible(graph, path, cap):
    counts, edges = graph
    every = walks(path, edges, counts)
    inst = instances(path, RELATIONS, edges, counts, max_instances=cap)
    again = instances(path, RELATIONS, edges, counts, max_instances=cap)
    assert all(torch.equal(x, y) for x, y in zip(inst.nodes, again.nodes))
    per_node = Counter(w[-1] for w in every.elements())
    drawn = Counter(inst.at.tolist())
    assert drawn == Counter({v: min(n, cap) for v, n in per_node.items()})
    assert all(tuple(int(n[j]) for n in inst.nodes) in every for j in range(len(inst.at)))


def test_instances_above_the_cap_are_drawn_uniformly():
    """One node reached by 3 walks of different middle-node degree: each walk is drawn with
    probability 1/3 (not 1/2 per middle node, as choosing a neighbour per hop would)."""
    edges = {RELATIONS[0]: torch.tensor([[0, 1, 2], [0, 0, 1]]), RELATIONS[1]: torch.tensor([[0, 1], [0, 0]]),
             RELATIONS[2]: torch.zeros(2, 0, dtype=torch.long)}
    inst = instances((0, 1), RELATIONS, edges, {"a": 3, "b": 2}, max_instances=1)
    assert len(inst.at) == 1
    draws = Counter()
    for seed in range(3000):
        inst = instances((0, 1), RELATIONS, edges, {"a": 3, "b": 2}, max_instances=2, seed=seed)
        draws.update(int(n) for n in inst.nodes[0])
    share = np.array([draws[u] for u in range(3)]) / 6000
    assert np.allclose(share, 1 / 3, atol=0.02), share


def hand_graph():
    torch.manual_seed(0)
    counts = {"a": 3, "b": 4}
    edges = {RELATIONS[0]: torch.tensor([[0, 1, 2, 2], [0, 0, 1, 3]]),
             RELATIONS[1]: torch.tensor([[0, 1, 3, 3], [0, 0, 1, 2]]),
             RELATIONS[2]: torch.tensor([[0, 1, 2], [1, 2, 2]])}
    h = {t: torch.randn(n, 6, dtype=torch.float64) for t, n in counts.items()}
    return counts, edges, h


def test_hmpnn_layer_is_the_ktn_papers_formula_node_by_node():
    counts, edges, h = hand_graph()
    conv = HMPNNConv(6, (TYPES, RELATIONS)).double()
    out = conv(h, edges)
    hn = {t: v.detach().numpy() for t, v in h.items()}
    for t in TYPES:
        into = [r for r in RELATIONS if r[2] == t]
        W = conv.update[t].weight.detach().numpy()
        for v in range(counts[t]):
            parts = []
            for r in into:
                M = conv.message["__".join(r)].weight.detach().numpy()
                msgs = [M @ np.concatenate([hn[r[0]][u], hn[t][v]]) for u, w in edges[r].T.tolist() if w == v]
                parts.append(np.mean(msgs, 0) if msgs else np.zeros(6))
            want = W @ np.concatenate([*parts, hn[t][v]]) + hn[t][v]
            assert np.allclose(out[t][v].detach().numpy(), want)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("aggr", ["sum", "mean"])
def test_mpnn_layer_is_gilmers_edge_network_and_gru_node_by_node(aggr):
    counts, edges, h = hand_graph()
    offsets = {"a": 0, "b": 3}
    ei = torch.cat([edges[r] + torch.tensor([[offsets[r[0]]], [offsets[r[2]]]]) for r in RELATIONS], 1)
    et = torch.cat([torch.full((edges[r].shape[1],), i) for i, r in enumerate(RELATIONS)])
    x = torch.cat([h["a"], h["b"]])
    conv = MPNNConv(6, len(RELATIONS), aggr).double()
    with torch.no_grad():
        conv.shared.normal_()
    out = conv(x, ei, et).detach().numpy()
    xn = x.numpy()
    theta, shared = conv.theta.detach().numpy(), conv.shared.detach().numpy()
    g = {k: v.detach().numpy() for k, v in conv.gru.named_parameters()}
    for v in range(7):
        msgs = [xn[u] @ (theta[r] + shared) for (u, w), r in zip(ei.T.tolist(), et.tolist()) if w == v]
        m = (np.sum if aggr == "sum" else np.mean)(msgs, 0) if msgs else np.zeros(6)
        gi, gh = g["weight_ih"] @ m + g["bias_ih"], g["weight_hh"] @ xn[v] + g["bias_hh"]
        reset, update = sigmoid(gi[:6] + gh[:6]), sigmoid(gi[6:12] + gh[6:12])
        new = np.tanh(gi[12:] + reset * gh[12:])
        assert np.allclose(out[v], (1 - update) * new + update * xn[v])


@pytest.mark.parametrize("empty", [None, RELATIONS[2]])
def test_magnn_layer_is_the_papers_rotation_encoder_and_two_attentions_node_by_node(empty):
    """Also with a relation without edges: its metapaths have no instance anywhere."""
    counts, edges, h = hand_graph()
    if empty is not None:
        edges[empty] = torch.zeros(2, 0, dtype=torch.long)
    conv = MAGNNConv(6, (TYPES, RELATIONS), heads=2, metapath_hops=2, max_instances=100).double()
    out = conv(h, edges)
    hn = {t: v.detach().numpy() for t, v in h.items()}
    rho = np.exp(1j * conv.angle.detach().numpy())

    def leaky(z):
        return np.where(z > 0, z, 0.2 * z)

    def elu(z):
        return np.where(z > 0, z, np.exp(z) - 1)

    for t in TYPES:
        per_path = []
        for path in conv.paths[t]:
            rels = [RELATIONS[i] for i in path]
            a = conv.attend[conv._key(path)].detach().numpy()
            hp = np.zeros((counts[t], 2 * 6))
            for v in range(counts[t]):
                encoded = []
                for walk in walks(path, edges, counts).elements():
                    if walk[-1] != v:
                        continue
                    o = hn[rels[0][0]][walk[0]].view(np.complex128)
                    for i, (ri, r) in enumerate(zip(path, rels), start=1):
                        o = hn[r[2]][walk[i]].view(np.complex128) + o * rho[ri]
                    encoded.append((o / (len(path) + 1)).view(np.float64))
                if not encoded:
                    continue
                enc = np.array(encoded)
                heads = []
                for k in range(2):
                    e = leaky(a[k, :6] @ hn[t][v] + enc @ a[k, 6:])
                    alpha = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
                    heads.append(elu(alpha @ enc))
                hp[v] = np.concatenate(heads)
            per_path.append(hp)
        M, b = conv.semantic[t].weight.detach().numpy(), conv.semantic[t].bias.detach().numpy()
        q = conv.query[t].detach().numpy()
        score = np.array([np.tanh(p @ M.T + b).mean(0) @ q for p in per_path])
        beta = np.exp(score - score.max()) / np.exp(score - score.max()).sum()
        want = sum(bp * p for bp, p in zip(beta, per_path)) @ conv.out[t].weight.detach().numpy().T
        assert np.allclose(out[t].detach().numpy(), want), t


@settings(max_examples=10, deadline=None)
@given(st.lists(graphs(), min_size=2, max_size=3), st.data())
def test_magnn_reuses_instances_only_on_the_graph_it_computed_them_for(sequence, data):
    """A layer that keeps the last graph's instances computes, over any sequence of graphs (new
    ones, repeats of the same tensors, new tensors of another graph in memory the old ones held),
    what a fresh layer with the same weights computes on each; the same edge tensors are reused."""
    conv = MAGNNConv(6, (TYPES, RELATIONS), heads=2, metapath_hops=2, max_instances=3).double()
    fresh = MAGNNConv(6, (TYPES, RELATIONS), heads=2, metapath_hops=2, max_instances=3).double()
    fresh.load_state_dict(conv.state_dict())
    shifted = [(c, {r: torch.stack([(e[0] + 1) % c[r[0]], (e[1] + 1) % c[r[2]]]) for r, e in edges.items()})
               for c, edges in sequence]  # new tensors of the same shapes, another graph
    for i, (counts, edges) in enumerate(x for pair in zip(sequence, shifted) for x in pair):
        g = torch.Generator().manual_seed(i)
        h = {t: torch.randn(n, 6, generator=g, dtype=torch.double) for t, n in counts.items()}
        for _ in range(data.draw(st.integers(1, 2))):  # the same graph again: reused
            fresh._last = None
            assert all(torch.equal(conv(h, edges)[t], fresh(h, edges)[t]) for t in TYPES)
        assert all(a is b for a, b in zip(conv._last[0], (edges[r] for r in RELATIONS)))
