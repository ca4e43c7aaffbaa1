"""The KTN paper's other heterogeneous GNNs: ``backbone=mpnn``, ``hmpnn`` and ``magnn``.

Notation: a relation ``r = (s, name, t)`` has edges ``u -> v`` from type-``s`` nodes to
type-``t`` nodes; ``N_r(v)`` are the ``u`` with an edge ``u -> v`` of ``r``; ``h`` are the
layer's input embeddings (``hidden`` wide) and ``h'`` its output. The encoder puts ReLU and
dropout between layers (only dropout after ``mpnn``, whose GRU is its own nonlinearity) and
none after the last, as for every backbone.

* :class:`MPNNConv` (Gilmer et al., 2017, "Neural Message Passing for Quantum Chemistry",
  edge-network message and GRU update) on the homogeneous view, the edge's feature being the
  one-hot of its relation: ``m_v = AGG_{u -> v} A(e_uv) h_u``, ``h'_v = GRU(m_v, h_v)``. The
  edge network ``A(e) = reshape(Theta e + B)`` of a one-hot ``e`` is one ``hidden x hidden``
  matrix per relation plus a shared one, ``A_r = Theta_r + B``, computed as such rather than
  as PyG's ``NNConv`` would (one matrix per *edge* in memory). ``AGG`` is the paper's sum by
  default (``backbone.aggr``). Gilmer et al. tie the weights of all message-passing steps;
  so does ``backbone=mpnn`` (one layer applied ``num_layers`` times).
* :class:`HMPNNConv`, the heterogeneous message passing network that the KTN paper writes
  its theory in (and that its authors' code trains): per relation ``r`` into type ``t``,
  ``m_r(v) = mean_{u in N_r(v)} M_r [h_u || h_v]`` (zero when ``N_r(v)`` is empty), then
  ``h'_v = W_t [m_r1(v) || ... || m_rk(v) || h_v] + h_v`` over the relations ``r1..rk`` into
  ``t`` (bias-free maps, a skip connection). A type no relation enters keeps ``h``.
* :class:`MAGNNConv` (Fu et al., 2020, "MAGNN: Metapath Aggregated Graph Neural Network").
  Metapaths ``P = (r_1, ..., r_n)`` are the chains of relations of ``1..metapath_hops`` hops
  that end at ``t``; an instance of ``P`` at ``v`` is a walk ``p_0 -> p_1 -> ... -> p_n = v``
  along them. Relational-rotation encoder (the paper's best): with ``hidden/2`` complex
  coordinates and a learned unit-modulus rotation ``rho_r`` per relation,
  ``o_0 = h_{p_0}``, ``o_i = h_{p_i} + o_{i-1} * rho_{r_i}``, ``h_P(v, p) = o_n / (n + 1)``.
  Intra-metapath attention, ``K`` heads: ``e^k = LeakyReLU(a_{P,k} . [h_v || h_P(v, p)])``,
  ``alpha^k = softmax`` over ``v``'s instances of ``P``,
  ``h_v^P = ||_k ELU(sum_p alpha^k_p h_P(v, p))`` (``K * hidden`` wide; zero without
  instances). Inter-metapath attention: ``s_P = mean_{v of type t} tanh(M_t h_v^P + b_t)``,
  ``beta_P = softmax_P(q_t . s_P)``, ``h'_v = W_t sum_P beta_P h_v^P``. A type no metapath
  reaches keeps ``h``. MAGNN's authors train on sampled metapath neighbours; here a node with
  more than ``max_instances`` instances of a metapath gets that many, drawn uniformly with
  replacement from all of them by a generator of fixed seed, so the draw is a function of
  the graph (a resumed run sees the same); a node with fewer gets every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter, softmax

from ..data.graph import EdgeType, relation_chains


class MPNNConv(nn.Module):
    """One step of Gilmer et al.'s MPNN with one-hot relation edge features (module docstring)."""

    def __init__(self, hidden: int, num_relations: int, aggr: str = "sum") -> None:
        super().__init__()
        self.aggr = aggr
        self.theta = nn.Parameter(torch.empty(num_relations, hidden, hidden))
        self.shared = nn.Parameter(torch.zeros(hidden, hidden))
        nn.init.xavier_uniform_(self.theta.view(num_relations * hidden, hidden))
        self.gru = nn.GRUCell(hidden, hidden)

    def forward(self, h: Tensor, edge_index: Tensor, edge_type: Tensor) -> Tensor:
        src, dst = edge_index
        msg = h.new_zeros(src.shape[0], h.shape[1])
        for r in range(self.theta.shape[0]):
            on = edge_type == r
            if on.any():
                msg[on] = h[src[on]] @ (self.theta[r] + self.shared)
        m = scatter(msg, dst, dim=0, dim_size=h.shape[0], reduce=self.aggr)
        return self.gru(m, h)


class HMPNNConv(nn.Module):
    """One layer of the KTN paper's heterogeneous message passing network (module docstring)."""

    def __init__(self, hidden: int, metadata: tuple[list[str], list[EdgeType]]) -> None:
        super().__init__()
        types, relations = metadata
        self.into = {t: [r for r in relations if r[2] == t] for t in types}
        self.message = nn.ModuleDict({"__".join(r): nn.Linear(2 * hidden, hidden, bias=False) for r in relations})
        self.update = nn.ModuleDict({t: nn.Linear(hidden * (len(rs) + 1), hidden, bias=False)
                                     for t, rs in self.into.items() if rs})
        for lin in [*self.message.values(), *self.update.values()]:
            nn.init.xavier_uniform_(lin.weight)

    def forward(self, h: dict[str, Tensor], edges: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        out = dict(h)
        for t, update in self.update.items():
            parts = []
            for r in self.into[t]:
                src, dst = edges[r]
                msg = self.message["__".join(r)](torch.cat([h[r[0]][src], h[t][dst]], 1))
                parts.append(scatter(msg, dst, dim=0, dim_size=h[t].shape[0], reduce="mean"))
            out[t] = update(torch.cat([*parts, h[t]], 1)) + h[t]
        return out


@dataclass
class Instances:
    """Metapath instances at type-``t`` nodes: ``at[j]`` is instance ``j``'s last node ``v``,
    ``nodes[i][j]`` its node ``p_i`` (``i = 0..n``, ``nodes[n] == at``)."""

    at: Tensor
    nodes: list[Tensor]


def instances(path: tuple[int, ...], relations: list[EdgeType], edges: dict[EdgeType, Tensor],
              counts: dict[str, int], max_instances: int, seed: int = 0) -> Instances:
    """The instances of ``path`` at every node of its last type (module docstring: all of
    them, or ``max_instances`` uniform draws where there are more).

    ``c_i(w)``, the number of walks along ``r_1..r_i`` ending at ``w``, is ``1`` for the first
    source type and ``sum_{x -> w in r_i} c_{i-1}(x)``. Walk ``k`` of ``c_i(w)`` is decoded one
    relation back: sort ``r_i``'s edges by destination, weigh each by ``c_{i-1}`` of its
    source; the edge whose cumulative-weight interval holds ``start_w + k`` is the walk's last
    edge and the remainder inside the interval is the walk's index at that edge's source."""
    rels = [relations[i] for i in path]
    c = [torch.ones(counts[rels[0][0]], dtype=torch.long)]  # c[i]: walks along r_1..r_i ending at each node
    sorted_edges = []  # per relation: sources sorted by destination, their weights, cumulative weights
    for r in rels:
        src, dst = edges[r].cpu()
        order = torch.argsort(dst, stable=True)
        src, dst = src[order], dst[order]
        weight = c[-1][src]
        sorted_edges.append((src, weight, torch.cumsum(weight, 0)))
        c.append(torch.zeros(counts[r[2]], dtype=torch.long).index_add_(0, dst, weight))
    total = c[-1]
    take = total.clamp(max=max_instances)
    at = torch.repeat_interleave(torch.arange(len(total)), take)
    k = torch.arange(len(at)) - (torch.cumsum(take, 0) - take)[at]
    many = total[at] > max_instances
    if many.any():
        draws = torch.rand(int(many.sum()), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        k[many] = torch.minimum((draws * total[at][many]).long(), total[at][many] - 1)
    nodes, node = [at], at
    for i in range(len(rels), 0, -1):
        src, weight, cum = sorted_edges[i - 1]
        g = (torch.cumsum(c[i], 0) - c[i])[node] + k
        edge = torch.searchsorted(cum, g, right=True)
        k = g - (cum[edge] - weight[edge])
        node = src[edge]
        nodes.insert(0, node)
    return Instances(at, nodes)


class MAGNNConv(nn.Module):
    """One MAGNN layer: rotation-encoded metapath instances, attention within each metapath,
    then across the metapaths of each node type (module docstring)."""

    def __init__(self, hidden: int, metadata: tuple[list[str], list[EdgeType]], heads: int = 4,
                 metapath_hops: int = 2, max_instances: int = 16, attention_dropout: float = 0.0) -> None:
        super().__init__()
        types, self.relations = metadata[0], list(metadata[1])
        self.hidden, self.heads, self.max_instances = hidden, heads, max_instances
        self.attention_dropout = attention_dropout
        self.paths = {t: relation_chains(self.relations, t, metapath_hops) for t in types}
        self.angle = nn.Parameter(torch.empty(len(self.relations), hidden // 2).uniform_(-torch.pi, torch.pi))
        self.attend = nn.ParameterDict({self._key(p): nn.Parameter(torch.empty(heads, 2 * hidden))
                                        for ps in self.paths.values() for p in ps})
        for a in self.attend.values():
            nn.init.xavier_normal_(a)
        reached = [t for t, ps in self.paths.items() if ps]
        self.semantic = nn.ModuleDict({t: nn.Linear(heads * hidden, hidden) for t in reached})
        self.query = nn.ParameterDict({t: nn.Parameter(torch.empty(hidden).uniform_(-hidden ** -0.5, hidden ** -0.5))
                                       for t in reached})
        self.out = nn.ModuleDict({t: nn.Linear(heads * hidden, hidden, bias=False) for t in reached})
        # The instances of the last graph seen, with that graph's edge tensors held (so no other
        # tensor can take their place): whole-graph training and evaluation reuse them every step.
        self._last: tuple[tuple[Tensor | None, ...], dict[str, int], dict[tuple[int, ...], Instances]] | None = None

    @staticmethod
    def _key(path: tuple[int, ...]) -> str:
        return "_".join(map(str, path))

    def instances_of(self, edges: dict[EdgeType, Tensor], counts: dict[str, int],
                     device: torch.device) -> dict[tuple[int, ...], Instances]:
        """Every path's :func:`instances` on the graph ``edges``, on ``device``; computed once per
        graph (the same edge tensors and node counts as the last call: the same graph)."""
        held = tuple(edges.get(r) for r in self.relations)
        last = self._last
        if last is not None and last[1] == counts and all(a is b for a, b in zip(last[0], held)):
            return last[2]
        found = {}
        for path in (p for ps in self.paths.values() for p in ps):
            inst = instances(path, self.relations, edges, counts, self.max_instances)
            found[path] = Instances(inst.at.to(device), [n.to(device) for n in inst.nodes])
        self._last = (held, dict(counts), found)
        return found

    def encode(self, h: dict[str, Tensor], path: tuple[int, ...], inst: Instances) -> Tensor:
        """``h_P(v, p) = o_n / (n + 1)``, ``o_i = h_{p_i} + o_{i-1} * rho_{r_i}`` in complex coordinates."""
        def cplx(t: str, ids: Tensor) -> Tensor:
            return torch.view_as_complex(h[t][ids].reshape(len(ids), self.hidden // 2, 2).contiguous())

        rels = [self.relations[i] for i in path]
        o = cplx(rels[0][0], inst.nodes[0])
        for step, (i, r) in enumerate(zip(path, rels), start=1):
            rho = torch.polar(torch.ones_like(self.angle[i]), self.angle[i])
            o = cplx(r[2], inst.nodes[step]) + o * rho
        return torch.view_as_real(o).reshape(len(inst.at), self.hidden) / (len(path) + 1)

    def forward(self, h: dict[str, Tensor], edges: dict[EdgeType, Tensor]) -> dict[str, Tensor]:
        counts = {t: v.shape[0] for t, v in h.items()}
        out = dict(h)
        found = self.instances_of(edges, counts, next(iter(h.values())).device)
        for t, paths in self.paths.items():
            if not paths:
                continue
            per_path = []
            for path in paths:
                inst = found[path]
                h_p = self.encode(h, path, inst)
                a = self.attend[self._key(path)]
                e = nn.functional.leaky_relu(h[t][inst.at] @ a[:, :self.hidden].T + h_p @ a[:, self.hidden:].T, 0.2)
                alpha = softmax(e, inst.at, num_nodes=counts[t])
                alpha = nn.functional.dropout(alpha, self.attention_dropout, self.training)
                agg = scatter(alpha.unsqueeze(-1) * h_p.unsqueeze(1), inst.at, dim=0, dim_size=counts[t], reduce="sum")
                per_path.append(nn.functional.elu(agg).reshape(counts[t], self.heads * self.hidden))
            stacked = torch.stack(per_path)  # (paths, nodes, heads * hidden)
            score = torch.tanh(self.semantic[t](stacked)).mean(1) @ self.query[t]
            beta = torch.softmax(score, 0)
            out[t] = self.out[t]((beta[:, None, None] * stacked).sum(0))
        return out
