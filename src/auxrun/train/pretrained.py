"""Encoder checkpoints: saving a pre-trained encoder and finding one to fine-tune.

``encoder.pt`` holds ``{"format": "auxrun-encoder", "version": 1, "backbone": {...},
"schema": {...}, "state_dict": {...}}``: enough to rebuild the encoder without the run's
config. ``pretrained=auto`` picks the newest completed pretrain run below the outputs folder
whose backbone config and data schema (feature sizes per node type, relations) match.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from ..errors import AuxrunError
from ..atomic import save_torch
from ..models import Encoder, build_encoder
from ..report.results import find_results
from ..run_folder import ENCODER
from .published_gin import is_published_gin, published_gin_state

FORMAT, VERSION = "auxrun-encoder", 1
FILENAME = ENCODER  # a run folder's encoder file (auxrun.run_folder)
log = logging.getLogger(__name__)


def _plain(cfg: Any) -> dict:
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)


def save_encoder(path: Path, encoder: Encoder, backbone_cfg: Any, schema: dict) -> Path:
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    return save_torch(path, {"format": FORMAT, "version": VERSION, "backbone": _plain(backbone_cfg),
                             "schema": schema, "state_dict": state})


def load_encoder(path: Path, backbone_cfg: Any, schema: dict, device: torch.device) -> Encoder:
    """Rebuild the encoder saved at ``path`` (a file or a pretrain run folder) and check that
    it fits this run's backbone and data. ``path`` may also be one of Hu et al.'s published
    GIN checkpoints (:mod:`auxrun.train.published_gin`)."""
    file = path / FILENAME if path.is_dir() else path
    if not file.exists():
        raise AuxrunError(
            f"pretrained checkpoint not found: {file}. Pass pretrained=PATH to a pretrain run folder "
            f"(or its {FILENAME}), or pretrained=auto to find or create one."
        )
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling/zip error means the same thing to the user
        raise AuxrunError(
            f"cannot read pretrained checkpoint {file}: not a PyTorch file written by `auxrun pretrain` or one of Hu "
            f"et al.'s GIN checkpoints "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if is_published_gin(ckpt):
        if schema.get("kind") != "molecules":
            raise AuxrunError(f"{file} is one of Hu et al.'s molecular GINs; this run's data is not molecules")
        state = published_gin_state(ckpt, backbone_cfg, file)
        encoder = build_encoder(backbone_cfg, schema)
        encoder.load_state_dict(state)
        return encoder.to(device)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise AuxrunError(f"{file} is not an auxrun encoder checkpoint (written by `auxrun pretrain`) nor one of Hu "
                          f"et al.'s published GIN checkpoints")
    wanted = _plain(backbone_cfg)
    if ckpt["backbone"] != wanted:
        raise AuxrunError(
            f"checkpoint {file} holds a {ckpt['backbone'].get('name')} encoder with {ckpt['backbone']}, "
            f"but this run asks for {wanted}; pick the matching backbone or another checkpoint"
        )
    if ckpt["schema"] != schema:
        raise AuxrunError(
            f"checkpoint {file} was pre-trained on data with schema {ckpt['schema']}, "
            f"this dataset has {schema}"
        )
    encoder = build_encoder(backbone_cfg, schema)
    encoder.load_state_dict(ckpt["state_dict"])
    return encoder.to(device)


def find_pretrained(outputs: Path, backbone_cfg: Any, schema: dict, seed: int | None = None,
                    aux: str | None = None, aux_config: Any = None) -> Path | None:
    """Newest completed pretrain run below ``outputs`` matching backbone and schema, and where
    given its seed, auxiliary set (``aux``, by name) and that set's whole resolved config
    (``aux_config``: tasks and their ``loss_scale``): the P&F cells of a comparison never share
    one seed's encoder, nor one pre-trained on other tasks or other loss scales (Table 4)."""
    aux_wanted = _plain(aux_config) if aux_config is not None else None
    if not outputs.exists():
        return None
    wanted = _plain(backbone_cfg)
    matches = []
    for run_dir, result in find_results(outputs):
        file = run_dir / FILENAME
        if (result["command"] == "pretrain" and result["status"] == "completed" and file.exists()
                and result.get("config", {}).get("backbone") == wanted and result.get("data_schema") == schema
                and (seed is None or result.get("seed") == seed) and (aux is None or result.get("aux") == aux)
                and (aux_wanted is None or result.get("config", {}).get("aux") == aux_wanted)):
            matches.append((file.stat().st_mtime, run_dir))
    return max(matches)[1] if matches else None
