"""What every loader checks in what it reads, in one place.

Two layers, each ending in one :class:`~auxrun.errors.AuxrunError`:

* while a file is read: :func:`reading` turns whatever a parser raises on a damaged file
  (a truncated archive, flipped bytes, a wrong encoding) into one message naming the file, and
  :func:`check_matrix`, :func:`check_ids` and :func:`check_labels` check the arrays just read
  (shape, dtype, finiteness, id and label ranges), naming the file, the field and the first
  bad row;
* once a loader has built its dataset: :func:`check_dataset` (called by
  :func:`auxrun.data.load` for every loader) checks the whole: features finite, every edge
  and split index inside its node type, no empty split, labels inside their classes, and the
  classes a metric needs present where it is computed (ROC-AUC needs both classes of a task in
  a split; a classifier needs two classes to learn). A dataset that passes gives every metric
  a finite value.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import AuxrunError



@contextmanager
def reading(path: Path | str, what: str = "") -> Iterator[None]:
    """Parse ``path`` inside this block: any exception a parser raises on a damaged or foreign
    file becomes one error naming the file (and ``what`` it should hold)."""
    try:
        yield
    except (AuxrunError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file may make a parser raise anything
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise AuxrunError(f"cannot read {path}{f' ({what})' if what else ''}: {type(exc).__name__}"
                          f"{': ' + detail if detail else ''}") from None


def _first(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad.reshape(len(bad), -1).any(1))[0])


def _array(values: Any) -> np.ndarray:
    return np.asarray(values.numpy() if isinstance(values, Tensor) else values)


def _where(data: Any) -> str:
    """How a message names a loaded dataset: its name and, where known, the files it came from."""
    source = data.info.get("source")
    return f"dataset={data.name}" + (f" ({source})" if isinstance(source, str) else "")


def check_matrix(values: Any, where: str, what: str, rows: int | None = None) -> None:
    """``values`` is a 2-D array of finite numbers (with ``rows`` rows, if given)."""
    arr = _array(values)
    if arr.ndim != 2:
        raise AuxrunError(f"{where}: {what} must be a 2-D array (one row per node), found shape {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise AuxrunError(f"{where}: {what} has {arr.shape[0]} rows for {rows} nodes")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise AuxrunError(f"{where}: {what} must hold numbers, found {arr.dtype}")
    if arr.size and np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise AuxrunError(f"{where}: {what} row {_first(bad)} holds {arr[bad][0]} (every value must be finite)")


def check_ids(ids: Any, n: int, where: str, what: str) -> None:
    """Every entry of ``ids`` is an integer id in ``[0, n)``."""
    arr = _array(ids)
    if arr.size == 0:
        return
    if not np.issubdtype(arr.dtype, np.integer):
        raise AuxrunError(f"{where}: {what} must be integer ids, found {arr.dtype}")
    flat = arr.reshape(-1)
    bad = (flat < 0) | (flat >= n)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise AuxrunError(f"{where}: {what} id {flat[row]} (entry {row}) is outside [0, {n}), the {n} nodes there")


def check_labels(labels: Any, where: str, what: str = "label", rows: int | None = None) -> np.ndarray:
    """Class labels: a 1-D array (with ``rows`` entries, if given) of integers in ``[0, rows)``
    (integer-valued floats are taken; a class number beyond the number of rows leaves most
    classes without an example, and would size the classifier by it); returned as ``int64``."""
    arr = _array(labels)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise AuxrunError(f"{where}: {what}s must be one class per row, found shape {arr.shape}")
    if rows is not None and len(arr) != rows:
        raise AuxrunError(f"{where}: {len(arr)} {what}s for {rows} nodes")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise AuxrunError(f"{where}: {what}s must be integers, found {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (np.mod(arr, 1, where=np.isfinite(arr), out=np.zeros_like(arr)) != 0)
        if bad.any():
            raise AuxrunError(f"{where}: {what} of row {_first(bad)} is {arr[bad][0]}, not a class number")
    bad = arr < 0
    if bad.any():
        raise AuxrunError(f"{where}: {what} of row {_first(bad)} is {arr[bad][0]}; classes are numbered from 0")
    bad = arr >= max(len(arr), 2)
    if bad.any():
        raise AuxrunError(f"{where}: {what} of row {_first(bad)} is {arr[bad][0]}, more classes than the {len(arr)} "
                          f"rows; classes are numbered 0, 1, ... without gaps")
    return arr.astype(np.int64)


def check_nonempty(split: dict[str, Tensor], where: str, what: str, size=len) -> None:
    """Every part of ``split`` holds something (``size`` of it > 0)."""
    empty = [k for k, v in split.items() if size(v) == 0]
    if empty:
        raise AuxrunError(f"{where}: the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} of the {what} "
                          f"hold{'' if len(empty) > 1 else 's'} nothing ("
                          + ", ".join(f"{k} {size(v)}" for k, v in split.items())
                          + "); a metric on nothing is not a result")


def check_graph(data: Any) -> None:
    """A :class:`~auxrun.data.graph.GraphData` is whole (module docstring)."""
    where = _where(data)
    n = {t: data.num_nodes(t) for t in data.x}
    for t, x in data.x.items():
        check_matrix(x, where, f"the features of node type {t!r}")
    for group, edges in (("edges", data.edge_index), ("held-out edges", data.heldout)):
        for (s, r, d), ei in edges.items():
            if ei.dim() != 2 or ei.shape[0] != 2:
                raise AuxrunError(f"{where}: {group} of relation {r!r} must have shape (2, E), found {tuple(ei.shape)}")
            check_ids(ei[0], n[s], where, f"{group} of {r!r}: source {s}")
            check_ids(ei[1], n[d], where, f"{group} of {r!r}: destination {d}")
    for t, nodes in data.pretrain_nodes.items():
        check_ids(nodes, n[t], where, f"pre-training nodes of {t!r}")
    t = data.target
    if t.kind == "link_pred":
        s, _, d = t.edge_type
        pairs = {**{k: v for k, v in t.split.items()}, **{f"{k} negatives": v for k, v in t.negatives.items()}}
        check_nonempty(pairs, where, f"target pairs {s}-{d}", size=lambda v: v.shape[-1])
        for k, v in pairs.items():
            check_ids(v[0], n[s], where, f"{k} target pairs: {s}")
            check_ids(v[1], n[d], where, f"{k} target pairs: {d}")
    else:
        check_nonempty(t.split, where, f"{t.node_type} nodes")
        for k, v in t.split.items():
            check_ids(v, n[t.node_type], where, f"{k} {t.node_type} nodes")
        labelled = torch.cat(list(t.split.values()))
        if t.kind == "node_cls":
            if t.num_classes < 2:
                raise AuxrunError(f"{where}: {t.num_classes} class(es) of {t.node_type}; classification needs two")
            check_ids(t.labels[labelled], t.num_classes, where, f"labels of the split {t.node_type} nodes")
            if t.labels[t.split["train"]].unique().numel() < 2:
                raise AuxrunError(f"{where}: every training {t.node_type} node has the same label; nothing to learn")
        else:
            y = t.labels[labelled]
            if not bool(((y == 0) | (y == 1)).all()):
                raise AuxrunError(f"{where}: the labels of {t.node_type} must be a 0/1 matrix")
    for t_name, lab in data.node_labels.items():
        if lab.y.shape[0] != n[t_name]:
            raise AuxrunError(f"{where}: class labels of {t_name!r} have {lab.y.shape[0]} rows for {n[t_name]} nodes")
    for name, p in data.pair_labels.items():
        check_ids(p.pairs[0], n[p.src_type], where, f"planted pairs {name!r}: {p.src_type}")
        check_ids(p.pairs[1], n[p.dst_type], where, f"planted pairs {name!r}: {p.dst_type}")


def check_molecules(data: Any) -> None:
    """A :class:`~auxrun.data.molecules.MolData` can be scored: labels finite where present
    (``nan`` = missing), every split of a classification target with at least one task whose
    both classes are present there (ROC-AUC is averaged over such tasks), every split of a
    regression target with at least one label."""
    if data.task_type == "none":
        return
    where = _where(data)
    y = data.mols.y
    if torch.isinf(y).any():
        row = int(torch.isinf(y).any(1).nonzero()[0])
        raise AuxrunError(f"{where}: the label of molecule {row} ({data.mols.smiles[row]}) is infinite")
    for part, idx in data.split.items():
        sub = y[idx]
        present = ~torch.isnan(sub)
        if data.task_type == "classification":
            both = [(present[:, k] & (sub[:, k] == c)).any() for k in range(sub.shape[1]) for c in (0, 1)]
            ok = any(both[2 * k] and both[2 * k + 1] for k in range(sub.shape[1]))
            if not ok:
                counts = {c: int((sub[present] == c).sum()) for c in (0, 1)}
                raise AuxrunError(f"{where}: the {part} split ({len(idx)} molecules) has no task with both classes "
                                  f"(labels 0: {counts[0]}, 1: {counts[1]}), so its ROC-AUC is undefined; use "
                                  "more molecules, another dataset.split or other dataset.split_fractions")
        elif not present.any():
            raise AuxrunError(f"{where}: the {part} split ({len(idx)} molecules) holds no label to score")


def check_dataset(data: Any) -> Any:
    """:func:`check_graph` or :func:`check_molecules`, whichever fits; returns ``data``."""
    (check_molecules if data.kind == "molecules" else check_graph)(data)
    return data
