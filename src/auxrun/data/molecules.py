"""Molecules as graphs: featurisation from SMILES (Hu et al. 2020), storage, batching, splits.

Featurisation (``FEATURISER_VERSION``), as the molecular GIN of Hu et al.:

* atoms: ``[atom type, chirality tag]`` with atom type ``atomic number - 1`` for elements
  1..118 and ``118`` for anything else (dummy atoms ``*``); index ``MASK_ATOM`` = 119 is the
  mask token of attribute masking. Chirality: unspecified, tetrahedral CW, tetrahedral CCW,
  other.
* bonds, both directions: ``[bond type, bond direction]`` with types single, double, triple,
  aromatic (others count as single), ``SELF_LOOP`` = 4 for the self loops the GIN adds and
  ``MASK_BOND`` = 5; directions none, end-up-right, end-down-right (others none).

A :class:`MolSet` keeps every molecule's atoms and bonds in concatenated tensors with offsets
(``atom_ptr``, ``edge_ptr``), so a batch is gathered without Python loops per molecule.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

log = logging.getLogger(__name__)

FEATURISER_VERSION = 1
NUM_ATOM_TYPES, MASK_ATOM = 120, 119
NUM_CHIRALITY = 4
NUM_BOND_TYPES, SELF_LOOP, MASK_BOND = 6, 4, 5
NUM_BOND_DIRS = 3


def _rdkit():
    try:
        from rdkit import Chem, RDLogger
    except ImportError:  # pragma: no cover - rdkit is a dependency
        from ..errors import AuxrunError

        raise AuxrunError("molecular datasets need RDKit: run `make setup` (or `pip install rdkit`)") from None
    RDLogger.DisableLog("rdApp.*")
    return Chem


def atom_features(atom) -> tuple[int, int]:
    """``(atom type, chirality)`` indices of an RDKit atom (module docstring)."""
    Chem = _rdkit()
    z = atom.GetAtomicNum()
    kind = z - 1 if 1 <= z <= 118 else 118
    tags = (Chem.ChiralType.CHI_UNSPECIFIED, Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW)
    tag = atom.GetChiralTag()
    return kind, tags.index(tag) if tag in tags else 3


def bond_features(bond) -> tuple[int, int]:
    """``(bond type, bond direction)`` indices of an RDKit bond (module docstring)."""
    Chem = _rdkit()
    types = (Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC)
    dirs = (Chem.BondDir.NONE, Chem.BondDir.ENDUPRIGHT, Chem.BondDir.ENDDOWNRIGHT)
    t, d = bond.GetBondType(), bond.GetBondDir()
    return (types.index(t) if t in types else 0), (dirs.index(d) if d in dirs else 0)


def featurise(smiles: str) -> tuple[Tensor, Tensor, Tensor] | None:
    """``(x (n, 2), edge_index (2, 2b), edge_attr (2b, 2))`` of a SMILES string, or ``None``
    when RDKit cannot parse it or it has no atoms."""
    Chem = _rdkit()
    mol = Chem.MolFromSmiles(str(smiles)) if isinstance(smiles, str) and smiles.strip() else None
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    x = torch.tensor([atom_features(a) for a in mol.GetAtoms()], dtype=torch.long)
    src, dst, attr = [], [], []
    for b in mol.GetBonds():
        i, j, f = b.GetBeginAtomIdx(), b.GetEndAtomIdx(), bond_features(b)
        src += [i, j]
        dst += [j, i]
        attr += [f, f]
    edge_index = torch.tensor([src, dst], dtype=torch.long).reshape(2, -1)
    edge_attr = torch.tensor(attr, dtype=torch.long).reshape(-1, 2)
    return x, edge_index, edge_attr


def scaffold(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES (with chirality, as Hu et al.); ``""`` for acyclic ones."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    _rdkit()
    return MurckoScaffold.MurckoScaffoldSmiles(smiles=smiles, includeChirality=True)


@dataclass
class MolBatch:
    """A batch of molecules as one disconnected graph: atoms ``x`` (n, 2), bonds
    ``edge_index`` (2, e) and ``edge_attr`` (e, 2), ``batch[a]`` = the molecule (0..B-1) of
    atom ``a``, ``mols`` = the molecules' indices in their :class:`MolSet`."""

    x: Tensor
    edge_index: Tensor
    edge_attr: Tensor
    batch: Tensor
    mols: Tensor
    atom_start: Tensor  # first atom of each molecule within the batch

    @property
    def num_graphs(self) -> int:
        return int(self.mols.numel())

    def atom_counts(self) -> Tensor:
        """Atoms per molecule of the batch, on the CPU."""
        return torch.bincount(self.batch.cpu(), minlength=self.num_graphs)

    def to(self, device: torch.device) -> "MolBatch":
        return MolBatch(*(t.to(device) for t in (self.x, self.edge_index, self.edge_attr, self.batch, self.mols,
                                                  self.atom_start)))


@dataclass
class MolSet:
    """Featurised molecules in concatenated tensors (see the module docstring).

    ``y`` (molecules, tasks) holds labels with ``nan`` where a label is missing; ``smiles``
    the valid SMILES in order; ``skipped`` how many input rows were invalid.
    """

    x: Tensor
    edge_index: Tensor  # local atom indices of each molecule
    edge_attr: Tensor
    atom_ptr: Tensor
    edge_ptr: Tensor
    smiles: list[str]
    y: Tensor
    task_names: list[str] = field(default_factory=list)
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.smiles)

    def num_atoms(self) -> Tensor:
        return self.atom_ptr[1:] - self.atom_ptr[:-1]

    def collate(self, idx: Tensor) -> MolBatch:
        """The molecules ``idx`` as one batch, gathered with vectorised index arithmetic."""
        idx = idx.long().cpu()
        a0, a1 = self.atom_ptr[idx], self.atom_ptr[idx + 1]
        e0, e1 = self.edge_ptr[idx], self.edge_ptr[idx + 1]
        n_atoms, n_edges = a1 - a0, e1 - e0
        new_start = torch.cumsum(n_atoms, 0) - n_atoms
        atoms = _ranges(a0, n_atoms)
        edges = _ranges(e0, n_edges)
        shift = torch.repeat_interleave(new_start, n_edges)
        return MolBatch(
            x=self.x[atoms],
            edge_index=self.edge_index[:, edges] + shift,
            edge_attr=self.edge_attr[edges],
            batch=torch.repeat_interleave(torch.arange(len(idx)), n_atoms),
            mols=idx,
            atom_start=new_start,
        )

    @classmethod
    def build(cls, smiles: list[str], labels: Tensor, task_names: list[str], progress=None) -> "MolSet":
        """Featurise ``smiles``; invalid ones are skipped (and counted) with their labels."""
        xs, eis, eas, kept, rows = [], [], [], [], []
        for i, s in enumerate(smiles):
            f = featurise(s)
            if progress is not None and (i % 1000 == 999 or i == len(smiles) - 1):
                progress(i % 1000 + 1)
            if f is None:
                continue
            xs.append(f[0])
            eis.append(f[1])
            eas.append(f[2])
            kept.append(str(s))
            rows.append(i)
        atom_counts = torch.tensor([len(x) for x in xs], dtype=torch.long)
        edge_counts = torch.tensor([e.shape[1] for e in eis], dtype=torch.long)
        zero = torch.zeros(1, dtype=torch.long)
        return cls(
            x=torch.cat(xs) if xs else torch.zeros(0, 2, dtype=torch.long),
            edge_index=torch.cat(eis, 1) if eis else torch.zeros(2, 0, dtype=torch.long),
            edge_attr=torch.cat(eas) if eas else torch.zeros(0, 2, dtype=torch.long),
            atom_ptr=torch.cat([zero, torch.cumsum(atom_counts, 0)]),
            edge_ptr=torch.cat([zero, torch.cumsum(edge_counts, 0)]),
            smiles=kept,
            y=labels[torch.tensor(rows, dtype=torch.long)] if rows else labels[:0],
            task_names=list(task_names),
            skipped=len(smiles) - len(kept),
        )


def _ranges(starts: Tensor, counts: Tensor) -> Tensor:
    """``cat([arange(s, s + c) for s, c in zip(starts, counts)])`` without a Python loop."""
    total = int(counts.sum())
    if total == 0:
        return torch.zeros(0, dtype=torch.long)
    offsets = torch.cumsum(counts, 0) - counts
    return torch.repeat_interleave(starts - offsets, counts) + torch.arange(total)


def scaffold_split(smiles: list[str], fractions: tuple[float, float] = (0.8, 0.1)) -> dict[str, Tensor]:
    """Deterministic Murcko-scaffold split, Hu et al.'s rule: molecules grouped by scaffold,
    groups ordered by (size, first row) descending, and each group goes whole to train while
    train stays within ``fractions[0]`` of the molecules, else to validation while train +
    validation stay within ``sum(fractions)``, else to test. No scaffold is in two splits;
    the rarest scaffolds of the earliest rows end up in test."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        groups[scaffold(s)].append(i)
    ordered = sorted(groups.values(), key=lambda g: (len(g), g[0]), reverse=True)
    n = len(smiles)
    train_cut, valid_cut = fractions[0] * n, (fractions[0] + fractions[1]) * n
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for g in ordered:
        if len(out["train"]) + len(g) > train_cut:
            if len(out["train"]) + len(out["val"]) + len(g) > valid_cut:
                out["test"] += g
            else:
                out["val"] += g
        else:
            out["train"] += g
    return {k: torch.tensor(sorted(v), dtype=torch.long) for k, v in out.items()}


@dataclass
class MolData:
    """A molecular dataset: the featurised molecules, the target (``task_type`` and
    molecule-index ``split``; empty for a pre-training corpus) and provenance.

    The encoder's shape depends only on the featuriser, so every molecular dataset has the
    same :meth:`schema` and an encoder pre-trained on one fine-tunes on any other.
    """

    kind: ClassVar[str] = "molecules"  # what a dataset holds (GraphData: "graph")
    name: str
    mols: MolSet
    split: dict[str, Tensor]
    task_type: str  # classification | regression | none
    info: dict = field(default_factory=dict)
    fingerprint: str = ""
    cache_dir: str | None = None

    def schema(self) -> dict:
        return {"kind": "molecules", "featuriser": FEATURISER_VERSION, "atom_types": NUM_ATOM_TYPES,
                "chirality": NUM_CHIRALITY, "bond_types": NUM_BOND_TYPES, "bond_dirs": NUM_BOND_DIRS}

    @property
    def num_tasks(self) -> int:
        return int(self.mols.y.shape[1])

    def to(self, device: torch.device) -> "MolData":
        """Molecules stay on the CPU; each step's batch moves to the device."""
        return self
