"""Evaluation on molecular data: the target over every molecule of a split (in chunks), the
auxiliary tasks on a fixed sample of validation molecules."""

from __future__ import annotations

import torch
from torch import nn

from ..data.molecules import MolData
from ..tasks import Task, TargetTask

EVAL_CHUNK = 512     # molecules per forward pass when scoring a split
AUX_EVAL_MOLS = 256  # molecules the auxiliary metrics are measured on
AUX_EVAL_SEED = 12345


def evaluate_molecules(model: nn.Module, data: MolData, target: TargetTask | None, aux: dict[str, Task],
                       splits: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Metrics per split: the target's (``roc_auc`` or ``rmse``, ``loss``) and each
    auxiliary task's as ``<task>_<metric>`` (the same fixed sample for every split)."""
    model.eval()
    device = next(model.parameters()).device
    out: dict[str, dict[str, float]] = {s: {} for s in splits}
    with torch.no_grad():
        if target is not None:
            for s in splits:
                ids = data.split[s]
                preds = []
                for chunk in ids.split(EVAL_CHUNK):
                    g = data.mols.collate(chunk).to(device)
                    preds.append(target.head(model.encoder({"atom": g.x}, g)["graph"]))
                out[s].update(target.metrics(torch.cat(preds), data.mols.y[ids]))
        if aux:
            pool = data.split.get("val")
            pool = pool if pool is not None and len(pool) else data.split["train"]
            g = data.mols.collate(pool[:AUX_EVAL_MOLS]).to(device)
            x = {"atom": g.x}
            gen = torch.Generator().manual_seed(AUX_EVAL_SEED)
            for name, task in aux.items():
                batch = task.sample_for(g, 4 * AUX_EVAL_MOLS, gen)
                emb = model.encoder(task.corrupt(x, batch) or x, g)
                metrics = task.evaluate(emb, "val", x, batch)
                for s in splits:
                    out[s].update({f"{name}_{k}": v for k, v in metrics.items()})
    return out
