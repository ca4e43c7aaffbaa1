"""Seeding: one integer fixes Python, NumPy and torch (and, through them, data splits).

On one machine's CPU a run also repeats bit for bit for a given seed and thread count: :func:`start`
selects torch's deterministic kernels there. Without them, the backward of advanced indexing
(``w[idx]``, an ``index_put_`` that accumulates) adds a row's gradients in whatever order two
or more threads reach it, and float addition is not associative: a 2-thread pre-training of the
MOSES GIN gave three different encoders in three runs of one config. The deterministic kernel
is no slower here. Different thread counts still give (slightly) different numbers, which is
why a record keeps ``threads``. CUDA runs keep torch's default kernels: PyG's scatter
aggregations use atomic adds there, so a GPU run repeats only up to float rounding."""

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


def start(seed: int, device: str) -> tuple[torch.Generator, torch.device]:
    """A run's start: every RNG seeded (:func:`seed_everything`, whose generator it returns),
    ``device`` resolved (:func:`resolve_device`) and, on the CPU, torch's deterministic kernels
    selected (module docstring); on CUDA the default kernels, as before the first CPU run."""
    gen = seed_everything(seed)
    resolved = resolve_device(device)
    torch.use_deterministic_algorithms(resolved.type == "cpu", warn_only=True)
    return gen, resolved


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
