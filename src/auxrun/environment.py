"""What a run ran on: the machine and the releases of the libraries that decide its numbers.

A CPU run repeats bit for bit for one config, seed and thread count only on one machine with
one set of library releases: another processor (torch dispatches its kernels by the vector
instructions it finds, AVX2 or AVX-512) or other releases (``pip`` takes the newest within
``pyproject.toml``'s ranges) can round differently. Each result record keeps
:func:`environment`, so that two records that differ can be told apart by where they ran.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch

PACKAGES = ("auxrun", "torch", "torch_geometric", "torchjd", "numpy", "scipy", "rdkit")
"""The distributions whose release a record keeps (those installed)."""


def device_name(device: str) -> str:
    """The accelerator's name (``torch.cuda.get_device_name``), or the CPU's from /proc."""
    if device != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as fh:
            return next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "cpu")
    except OSError:
        return platform.processor() or "cpu"


def releases() -> dict[str, str]:
    """The installed release of each of :data:`PACKAGES`."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def environment(device: str) -> dict[str, Any]:
    """The device's name, the CPU's architecture and the vector instructions torch's CPU
    kernels use (``torch.backends.cpu.get_cpu_capability``), Python's version and
    :func:`releases`."""
    return {"device_name": device_name(device), "machine": platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "python": platform.python_version(),
            "packages": releases()}
