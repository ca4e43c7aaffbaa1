"""Encoder checkpoints: saving a pre-trained encoder and finding one to fine-tune.

``encoder.pt`` holds ``{"format": "auxrun-encoder", "version": 1, "backbone": {...},
"schema": {...}, "state_dict": {...}}``: enough to rebuild the encoder without the run's
config. ``pretrained=auto`` picks the newest completed pretrain run below the outputs folder
that was pre-trained exactly as the run would pre-train (every key that changes numbers, the
seed included) on data of the same schema (feature sizes per node type, relations).
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
from ..report.groups import result_view
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


def encoder_file(path: Path) -> Path:
    """The checkpoint file ``pretrained=PATH`` names: ``PATH`` itself, or a run folder's
    :data:`FILENAME`."""
    return path / FILENAME if path.is_dir() else path


def load_encoder(path: Path, backbone_cfg: Any, schema: dict, device: torch.device) -> Encoder:
    """Rebuild the encoder saved at ``path`` (a file or a pretrain run folder) and check that
    it fits this run's backbone and data. ``path`` may also be one of Hu et al.'s published
    GIN checkpoints (:mod:`auxrun.train.published_gin`)."""
    file = encoder_file(path)
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
        _check_tensors(ckpt, file)  # by the names the file uses
        state = published_gin_state(ckpt, backbone_cfg, file)
    else:
        _check_auxrun_parts(ckpt, backbone_cfg, schema, file)
        state = ckpt["state_dict"]
        _check_tensors(state, file)
    encoder = build_encoder(backbone_cfg, schema)
    try:
        encoder.load_state_dict(state)
    except RuntimeError as exc:  # missing or unexpected keys, shapes that differ
        first = next(line.strip() for line in str(exc).splitlines()[1:] + [str(exc)] if line.strip())
        raise AuxrunError(f"{file} does not fit this run's {type(encoder).__name__}: {first}") from None
    return encoder.to(device)


def _check_auxrun_parts(ckpt: Any, backbone_cfg: Any, schema: dict, file: Path) -> None:
    """``ckpt`` is an auxrun encoder checkpoint (module docstring) of this run's backbone and
    data schema; one line naming the file and what differs otherwise."""
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise AuxrunError(f"{file} is not an auxrun encoder checkpoint (written by `auxrun pretrain`) nor one of Hu "
                          f"et al.'s published GIN checkpoints")
    broken = [key for key in ("backbone", "schema", "state_dict") if not isinstance(ckpt.get(key), dict)]
    if broken:
        raise AuxrunError(f"{file} is a damaged auxrun encoder checkpoint: no valid {', '.join(broken)}; pre-train "
                          "it again (`auxrun pretrain`)")
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


def _check_tensors(state: dict, file: Path) -> None:
    """Every value of a checkpoint's state is a tensor, and a finite one; one line naming the
    file and the first key that is not otherwise."""
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise AuxrunError(f"{file}: {key} is not a tensor; the checkpoint is damaged")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise AuxrunError(f"{file}: {key} holds NaN or infinite values; the checkpoint is damaged or its "
                              "pre-training diverged")


def find_pretrained(outputs: Path, pretrain_cfg: Any, schema: dict) -> Path | None:
    """Newest completed pretrain run below ``outputs`` whose config has the same
    :func:`~auxrun.report.groups.result_view` as ``pretrain_cfg`` (the pretrain config this
    run would compose: backbone, corpus, seed, auxiliary set with its loss scales, trainer
    settings such as Table 2's pre-training learning rate) and whose data has ``schema``.
    Keys that never change numbers (paths, threads, logging) may differ. So the P&F cells of a
    comparison never share one seed's encoder, nor reuse one pre-trained otherwise."""
    return exact(closest_pretrained(outputs, pretrain_cfg, schema))


def exact(closest: tuple[Path, list[str]] | None) -> Path | None:
    """The run of a :func:`closest_pretrained` answer when it differs in no key, else ``None``."""
    return closest[0] if closest is not None and not closest[1] else None


def closest_pretrained(outputs: Path, pretrain_cfg: Any, schema: dict) -> tuple[Path, list[str]] | None:
    """The completed pretrain run below ``outputs`` on data of ``schema`` whose config differs
    from ``pretrain_cfg`` in the fewest keys that change numbers (the newest of those), and
    those keys: none when it is the one :func:`find_pretrained` picks; ``None`` when there is
    no such run. One scan of ``outputs`` answers both questions."""
    found = [(len(differ), -stamp, str(run_dir), differ) for stamp, run_dir, differ in
             _candidates(outputs, pretrain_cfg, schema)]
    if not found:
        return None
    _, _, run_dir, differ = min(found)
    return Path(run_dir), differ


def _candidates(outputs: Path, pretrain_cfg: Any, schema: dict) -> list[tuple[float, Path, list[str]]]:
    """Every completed pretrain run below ``outputs`` with an encoder file and data of
    ``schema``: its encoder's modification time, its folder and the result-view keys in which
    its config differs from ``pretrain_cfg``."""
    if not outputs.exists():
        return []
    wanted = result_view(_plain(pretrain_cfg))
    out = []
    for run_dir, result in find_results(outputs):
        file = run_dir / FILENAME
        if (result["command"] == "pretrain" and result["status"] == "completed" and file.exists()
                and result.get("data_schema") == schema):
            view = result_view(result.get("config", {}))
            differ = sorted(k for k in view.keys() | wanted.keys() if view.get(k) != wanted.get(k))
            out.append((file.stat().st_mtime, run_dir, differ))
    return out
