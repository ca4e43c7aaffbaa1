"""Hu et al.'s published GIN checkpoints as auxrun's molecular GIN (``pretrained=PATH``).

The pretrain-gnns repository publishes its pre-trained GINs (``chem/model_gin/*.pth``:
``supervised``, ``contextpred``, ``supervised_contextpred``, ...) as the plain ``state_dict``
of its ``GNN`` module, saved with ``torch.save``. That module computes what
:class:`~auxrun.models.molecular.MolEncoder` computes (same featurisation, bond embeddings in
every layer, self loops of bond type 4, ``MLP = Linear(d, 2d) -> ReLU -> Linear(2d, d)``,
batch norm, ReLU except after the last layer, JK = last); only the names differ:

    x_embedding1.weight (120, d)                -> atom_type.weight
    x_embedding2.weight (3, d)                  -> chirality.weight (4, d), see below
    gnns.{l}.mlp.{0,2}.{weight,bias}            -> layers.{l}.mlp.{0,2}.{weight,bias}
    gnns.{l}.edge_embedding1.weight (6, d)      -> layers.{l}.bond_type.weight
    gnns.{l}.edge_embedding2.weight (3, d)      -> layers.{l}.bond_dir.weight
    batch_norms.{l}.{weight,bias,running_mean,running_var,num_batches_tracked} -> norms.{l}.*

A ``GNN_graphpred`` state dict (keys under ``gnn.``, plus its ``graph_pred_linear`` head) is
read for its ``gnn.`` part; the head, fitted to another dataset's tasks, is left out.
Chirality: Hu et al.'s model embeds three tags (unspecified, tetrahedral CW and CCW) and cannot
embed the fourth, "other", that both featurisers emit for it; auxrun gives that tag the
embedding of "unspecified". The checkpoint fixes the architecture: ``backbone.hidden`` must be
its ``d`` and ``backbone.num_layers`` its number of layers; anything else (a GCN, GAT or
GraphSAGE checkpoint of the same repository, other vocabulary sizes) is refused with one
message naming what differs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.molecules import NUM_ATOM_TYPES, NUM_BOND_DIRS, NUM_BOND_TYPES
from ..errors import AuxrunError

HU_CHIRALITY = 3  # tags Hu et al.'s model embeds
LAYER = re.compile(r"^gnns\.(\d+)\.(.+)$")
NORM = re.compile(r"^batch_norms\.(\d+)\.(.+)$")
GIN_LAYER = {"mlp.0.weight": "mlp.0.weight", "mlp.0.bias": "mlp.0.bias", "mlp.2.weight": "mlp.2.weight",
             "mlp.2.bias": "mlp.2.bias", "edge_embedding1.weight": "bond_type.weight",
             "edge_embedding2.weight": "bond_dir.weight"}
NORM_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
OTHER_LAYERS = {"linear.weight": "gcn or graphsage", "att": "gat"}  # what a non-GIN layer of that repository holds


def is_published_gin(obj: Any) -> bool:
    """Whether a loaded checkpoint is a plain state dict of Hu et al.'s ``GNN`` (or of the
    ``GNN_graphpred`` around it)."""
    return (isinstance(obj, dict) and bool(obj) and all(isinstance(v, Tensor) for v in obj.values())
            and ("x_embedding1.weight" in obj or "gnn.x_embedding1.weight" in obj))


def _shape(state: dict[str, Tensor], key: str, want: tuple[int, ...], file: Path, what: str) -> Tensor:
    """``state[key]``, checked to have shape ``want`` (``-1``: any size) and a floating-point
    dtype (an integer one for batch norm's counter); refused with one line otherwise."""
    value = state.get(key)
    if value is None:
        raise AuxrunError(f"{file}: no {key} ({what}); not one of Hu et al.'s GIN checkpoints")
    if len(value.shape) != len(want) or any(w not in (-1, n) for w, n in zip(want, value.shape)):
        shown = "(" + ", ".join("d" if w == -1 else str(w) for w in want) + ("," if len(want) == 1 else "") + ")"
        raise AuxrunError(f"{file}: {key} ({what}) has shape {tuple(value.shape)}, Hu et al.'s GIN with this run's "
                          f"backbone has {shown}")
    counter = key.endswith("num_batches_tracked")
    if value.is_floating_point() == counter or value.dtype == torch.bool:
        raise AuxrunError(f"{file}: {key} ({what}) is {str(value.dtype).removeprefix('torch.')}; Hu et al.'s GIN "
                          f"stores {'an integer count' if counter else 'floating-point weights'} there")
    return value


def published_gin_state(state: dict[str, Tensor], backbone_cfg: Any, file: Path) -> dict[str, Tensor]:
    """The :class:`~auxrun.models.molecular.MolEncoder` state dict of Hu et al.'s checkpoint
    ``state`` (module docstring), after checking that it is their GIN with this run's
    ``backbone.hidden`` and ``backbone.num_layers``."""
    if any(k.startswith("gnn.") for k in state):
        plain = sorted(k for k in state if not k.startswith(("gnn.", "graph_pred_linear.")))
        if plain:
            raise AuxrunError(f"{file} mixes GNN_graphpred keys (gnn.*) with plain GNN keys ({', '.join(plain[:4])}); "
                              "not one of Hu et al.'s GIN checkpoints")
        state = {k[4:]: v for k, v in state.items() if k.startswith("gnn.")}
    if str(backbone_cfg.name) != "gin":
        raise AuxrunError(f"{file} is one of Hu et al.'s GIN checkpoints; it needs backbone=gin, not "
                          f"backbone={backbone_cfg.name}")
    layers = sorted({int(m.group(1)) for k in state if (m := LAYER.match(k))})
    first = {m.group(2) for k in state if (m := LAYER.match(k)) and m.group(1) == "0"}
    other = sorted({kind for key, kind in OTHER_LAYERS.items() for f in first if f.startswith(key)})
    if other or (first and not first <= set(GIN_LAYER)):
        raise AuxrunError(f"{file} is not Hu et al.'s GIN: its layer 0 holds {', '.join(sorted(first))} where the GIN "
                          f"holds {', '.join(GIN_LAYER)}" + (f" (a {' / '.join(other)} checkpoint of that repository; "
                                                             "auxrun has only the GIN)" if other else ""))
    atom_types = _shape(state, "x_embedding1.weight", (NUM_ATOM_TYPES, -1), file, "atom types")  # fixes the width
    d = int(atom_types.shape[-1])
    wanted = (int(backbone_cfg.hidden), int(backbone_cfg.num_layers))
    if (d, len(layers)) != wanted or layers != list(range(len(layers))):
        raise AuxrunError(f"{file} holds Hu et al.'s GIN with {len(layers)} layers of width {d}; this run's backbone "
                          f"has backbone.num_layers={wanted[1]}, backbone.hidden={wanted[0]}: set "
                          f"backbone.num_layers={len(layers)} backbone.hidden={d}")
    out = {"atom_type.weight": atom_types}
    chir = _shape(state, "x_embedding2.weight", (HU_CHIRALITY, d), file, "chirality tags")
    out["chirality.weight"] = torch.cat([chir, chir[:1]])  # "other": as unspecified (module docstring)
    sizes = {"edge_embedding1.weight": (NUM_BOND_TYPES, d), "edge_embedding2.weight": (NUM_BOND_DIRS, d),
             "mlp.0.weight": (2 * d, d), "mlp.0.bias": (2 * d,), "mlp.2.weight": (d, 2 * d), "mlp.2.bias": (d,)}
    for layer in layers:
        for theirs, ours in GIN_LAYER.items():
            out[f"layers.{layer}.{ours}"] = _shape(state, f"gnns.{layer}.{theirs}", sizes[theirs], file,
                                                   f"layer {layer}")
        for key in NORM_KEYS:
            want = () if key == "num_batches_tracked" else (d,)
            out[f"norms.{layer}.{key}"] = _shape(state, f"batch_norms.{layer}.{key}", want, file,
                                                 f"batch norm {layer}")
    extra = sorted(k for k in state if not (LAYER.match(k) or NORM.match(k) or k.startswith("x_embedding")))
    if extra:
        raise AuxrunError(f"{file}: keys {', '.join(extra[:4])} are not part of Hu et al.'s GIN")
    return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}
