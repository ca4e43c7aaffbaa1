"""Auxiliary-task labels on a hand-built graph, and the per-example loss definitions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from auxrun.data.graph import GraphData, PairLabels, TargetSpec, add_reverse
from auxrun.errors import AuxrunError
from auxrun.models.heads import PairHead
from auxrun.tasks import build_aux
from auxrun.tasks.node import AttributeGeneration
from auxrun.tasks.pairs import metapath_pairs


def tiny_graph() -> GraphData:
    """users u0 u1 u2, items i0 i1, tag t0:  u0-i0, u1-i0, u2-i1;  i0-t0, i1-t0."""
    edges = {
        ("user", "rates", "item"): torch.tensor([[0, 1, 2], [0, 0, 1]]),
        ("item", "tagged", "tag"): torch.tensor([[0, 1], [0, 0]]),
    }
    x = {"user": torch.randn(3, 4), "item": torch.randn(2, 4), "tag": torch.randn(1, 4)}
    target = TargetSpec(kind="node_cls", node_type="user", labels=torch.tensor([0, 0, 1]), num_classes=2,
                        split={"train": torch.tensor([0]), "val": torch.tensor([1]), "test": torch.tensor([2])})
    pairs = PairLabels("user", "user", torch.tensor([[0, 1], [1, 2]]), torch.tensor([1.0, 0.0]))
    return GraphData(name="tiny", x=x, edge_index=add_reverse(edges), target=target,
                     heldout={("user", "rates", "item"): torch.tensor([[0], [1]])}, pair_labels={"helpful": pairs})


def as_set(pairs: torch.Tensor) -> set[tuple[int, int]]:
    return {(int(a), int(b)) for a, b in pairs.t()}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("user-item-user", {(0, 1), (1, 0)}),  # u2 reaches only itself, dropped
        ("item-tag-item", {(0, 1), (1, 0)}),
        ("user-item-tag-item", {(u, i) for u in range(3) for i in range(2)}),
        ("item-user", {(0, 0), (0, 1), (1, 2)}),
    ],
)
def test_metapath_positives_by_hand(path, expected):
    assert as_set(metapath_pairs(tiny_graph(), path, 10_000, torch.Generator())) == expected


def test_metapath_cap_and_errors():
    pairs = metapath_pairs(tiny_graph(), "user-item-tag-item", 4, torch.Generator().manual_seed(0))
    assert pairs.shape[1] == 4 and len(as_set(pairs)) == 4
    with pytest.raises(AuxrunError, match="no relation"):
        metapath_pairs(tiny_graph(), "user-tag", 10, torch.Generator())
    with pytest.raises(AuxrunError, match="neither a node type"):
        metapath_pairs(tiny_graph(), "user-movie-user", 10, torch.Generator())


def aux_cfg(tasks: dict, **extra):
    return OmegaConf.create({"name": "t", "pair_head": "projected", "head_dim": 4, "max_metapath_pairs": 100,
                             "eval_size": 10, "tasks": tasks, **extra})


def test_metapath_batches_are_half_positive_and_negatives_are_not_connected():
    task = build_aux(aux_cfg({"uitI": {"kind": "metapath", "path": "user-item-tag-item"},
                              "uiu": {"kind": "metapath", "path": "user-item-user"}}), tiny_graph(), 8, 0)["uiu"]
    batch = task.sample(8, torch.Generator().manual_seed(1))
    assert batch["labels"].tolist() == [1.0] * 4 + [0.0] * 4
    positives = {(0, 1), (1, 0)}
    assert all(p in positives for p in as_set(batch["pairs"][:, :4]))
    assert not any(p in positives for p in as_set(batch["pairs"][:, 4:]))


def test_pair_loss_is_per_example_logistic_loss():
    task = build_aux(aux_cfg({"helpful": {"kind": "planted", "relation": "helpful"}}, pair_head="dot"),
                     tiny_graph(), 4, 0)["helpful"]
    emb = {"user": torch.tensor([[1.0, 0, 0, 0], [2.0, 0, 0, 0], [0, 1.0, 0, 0]])}
    batch = {"pairs": torch.tensor([[0, 1], [1, 2]]), "labels": torch.tensor([1.0, 0.0])}
    losses = task.losses(emb, batch, {})
    scores = torch.tensor([2.0 / 2, 0.0])  # dot / sqrt(hidden=4), bias 0
    assert torch.allclose(losses, F.binary_cross_entropy_with_logits(scores, batch["labels"], reduction="none"))


def test_dot_pair_head_has_no_projection_to_absorb_a_task():
    head = PairHead(4, None)
    assert [n for n, _ in head.named_parameters()] == ["bias"]
    assert len(list(PairHead(4, 3).parameters())) == 2


def test_mlp_pair_head_is_selars_decoder():
    """<phi(h_u), phi(h_v)> with phi = W2 relu(W1 h + b1) + b2, no scale, no bias; the score
    matrix holds the same scores."""
    from auxrun.models.heads import MLPHead, head_spec

    torch.manual_seed(0)
    head = PairHead(4, MLPHead(7))
    w1, b1, w2, b2 = (p.detach() for p in head.parameters())
    assert (w1.shape, w2.shape) == ((7, 4), (4, 7)) and head.bias is None
    hu, hv = torch.randn(5, 4), torch.randn(5, 4)
    phi = lambda h: torch.clamp(h @ w1.T + b1, min=0) @ w2.T + b2  # noqa: E731
    assert torch.allclose(head(hu, hv), (phi(hu) * phi(hv)).sum(-1), atol=1e-6)
    assert torch.allclose(head.score_matrix(hu, hv).diagonal(), head(hu, hv), atol=1e-6)
    assert head_spec("mlp", 32, 100) == MLPHead(100) and head_spec("dot", 32, 100) is None
    assert head_spec("projected", 32, 100) == 32


def test_attribute_generation_masks_its_batch_and_reconstructs_clean_features():
    data = tiny_graph()
    task = AttributeGeneration("attr", "user", data.x["user"], 4, 2, 0)
    batch = {"nodes": torch.tensor([1])}
    original = data.x["user"].clone()
    x = task.corrupt(data.x, batch)
    assert torch.equal(x["user"][1], torch.zeros(4))
    assert torch.equal(x["user"][[0, 2]], data.x["user"][[0, 2]])
    assert torch.equal(data.x["user"], original)  # the caller's features are untouched
    emb = {"user": torch.randn(3, 4)}
    expected = (task.head(emb["user"][[1]]) - data.x["user"][[1]]).pow(2).mean(-1)
    assert torch.allclose(task.losses(emb, batch, data.x), expected)


def test_edge_generation_uses_heldout_edges_and_unknown_kinds_fail():
    tasks = build_aux(aux_cfg({"eg": {"kind": "edge_gen", "relation": "user-rates-item"}}), tiny_graph(), 4, 0)
    batch = tasks["eg"].sample(2, torch.Generator().manual_seed(0))
    assert as_set(batch["pairs"][:, :1]) == {(0, 1)}
    from auxrun.schema import spec_of

    assert spec_of("aux.tasks.x.kind").problem("telepathy") == "not allowed"  # refused when the config is composed
    assert spec_of("aux.tasks.x.kind").problem("edge_gen") is None
    with pytest.raises(AuxrunError, match="unknown relation"):
        build_aux(aux_cfg({"x": {"kind": "edge_gen", "relation": "user-likes-item"}}), tiny_graph(), 4, 0)
    with pytest.raises(AuxrunError, match="no planted relation"):
        build_aux(aux_cfg({"x": {"kind": "planted", "relation": "harmful"}}), tiny_graph(), 4, 0)


def test_the_table_of_task_keys_holds_every_key_the_builders_read():
    """``SPEC_KEYS`` (checked when a config is composed) and the builders cannot drift apart: every
    key the builders read from a spec (``spec.get("k")``, ``spec.k``) is in the table, and every
    key of the table is read."""
    import inspect
    import re

    import auxrun.tasks as tasks

    source = inspect.getsource(tasks)
    read = set(re.findall(r"spec\.get\(\"(\w+)\"", source)) | set(re.findall(r"spec\.(\w+)\b(?!\()", source))
    table = set(tasks.COMMON_SPEC_KEYS).union(*(needed | optional for needed, optional in tasks.SPEC_KEYS.values()))
    assert read == table
    assert tasks.AUX_KINDS == tuple(tasks.SPEC_KEYS) and set(tasks.MOL_KINDS) <= set(tasks.SPEC_KEYS)
