"""Seeding: one integer fixes Python, NumPy and torch (and, through them, data splits)."""

from __future__ import annotations

import random

import numpy as np
import torch

from .errors import AuxrunError


def seed_everything(seed: int) -> torch.Generator:
    """Seed every global RNG and return a CPU generator for the run's own sampling."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; otherwise the named device, which must exist
    (``device=cuda`` without a GPU is a user error, not a crash halfway through a run)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise AuxrunError(f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AuxrunError(f"device={name} asks for a CUDA GPU, but none is available here; "
                              f"use device=auto or device=cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise AuxrunError(f"device={name}: there are only {torch.cuda.device_count()} CUDA devices")
    elif device.type != "cpu":
        raise AuxrunError(f"device={name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device
