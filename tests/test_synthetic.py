"""The planted generator builds what its docstring promises."""

from __future__ import annotations

import torch

from auxrun.data import load
from auxrun.data.sampling import pair_keys


def _classes(data):
    return data.target.labels


def test_same_seed_same_graph_and_split(make_cfg):
    cfg = make_cfg("mtl").dataset
    a, b = load(cfg, 3), load(cfg, 3)
    for t in a.x:
        assert torch.equal(a.x[t], b.x[t])
    for e in a.edge_index:
        assert torch.equal(a.edge_index[e], b.edge_index[e])
    for s in ("train", "val", "test"):
        assert torch.equal(a.target.split[s], b.target.split[s])
    c = load(cfg, 4)  # the run seed changes the split, not the graph
    assert torch.equal(a.x["user"], c.x["user"])
    assert not torch.equal(a.target.split["train"], c.target.split["train"])


def test_node_split_is_a_partition(make_cfg):
    cfg = make_cfg("mtl").dataset
    data = load(cfg, 0)
    parts = [data.target.split[s] for s in ("train", "val", "test")]
    everything = torch.cat(parts)
    assert len(everything) == cfg.num_users == len(torch.unique(everything))
    assert len(parts[0]) == round(cfg.train_frac * cfg.num_users)
    assert len(parts[1]) == round(cfg.val_frac * cfg.num_users)


def test_planted_labels_encode_their_relation(make_cfg):
    data = load(make_cfg("mtl").dataset, 0)
    y = _classes(data)
    for kind in ("helpful", "harmful", "noise"):
        p = data.pair_labels[kind]
        same = (y[p.pairs[0]] == y[p.pairs[1]]).float()
        assert 0.45 < same.mean() < 0.55, "half same-class pairs, half cross-class"
        if kind == "helpful":
            assert torch.equal(p.labels, same)
        elif kind == "harmful":
            assert torch.equal(p.labels, 1 - same)
        else:  # coin flips, unrelated to the classes
            assert 0.45 < p.labels.mean() < 0.55
            agreement = (p.labels == same).float().mean()
            assert 0.45 < agreement < 0.55


def test_edges_are_homophilous_as_configured(make_cfg):
    cfg = make_cfg("mtl", "dataset.homophily=0.8").dataset
    data = load(cfg, 0)
    # recover item classes from the generator's seed-fixed draw: same-class share of edges
    # must match homophily + (1 - homophily) / C (a random endpoint is same-class 1/C of the time)
    g = torch.Generator().manual_seed(cfg.graph_seed)
    y_user = torch.randint(cfg.num_classes, (cfg.num_users,), generator=g)
    y_item = torch.randint(cfg.num_classes, (cfg.num_items,), generator=g)
    assert torch.equal(y_user, data.target.labels)
    ei = torch.cat([data.edge_index[("user", "rates", "item")], data.heldout[("user", "rates", "item")]], 1)
    share = (y_user[ei[0]] == y_item[ei[1]]).float().mean()
    expected = 0.8 + 0.2 / cfg.num_classes
    assert abs(share - expected) < 0.03


def test_every_relation_has_its_reverse_and_heldout_edges_are_hidden(make_cfg):
    data = load(make_cfg("mtl").dataset, 0)
    for (s, r, d), ei in list(data.edge_index.items()):
        if not r.startswith("rev_"):
            assert torch.equal(data.edge_index[(d, f"rev_{r}", s)], ei.flip(0))
            n_dst = data.num_nodes(d)
            held = pair_keys(data.heldout[(s, r, d)], n_dst)
            assert len(held) > 0
            assert not torch.isin(held, pair_keys(ei, n_dst)).any()


def test_link_target_hides_val_and_test_edges(make_cfg):
    data = load(make_cfg("mtl", "dataset.target=link").dataset, 0)
    spec = data.target
    n_items = data.num_nodes("item")
    graph = pair_keys(data.edge_index[spec.edge_type], n_items)
    for s in ("val", "test"):
        keys = pair_keys(spec.split[s], n_items)
        assert not torch.isin(keys, graph).any(), f"{s} edges leak into message passing"
        neg = pair_keys(spec.negatives[s], n_items)
        everything = torch.cat([pair_keys(v, n_items) for v in spec.split.values()])
        assert not torch.isin(neg, everything).any(), "an evaluation negative is a real edge"
        assert spec.negatives[s].shape == spec.split[s].shape
    assert torch.equal(spec.split["train"], data.edge_index[spec.edge_type])
