"""Pair-sampling helpers shared by loaders and tasks."""

from __future__ import annotations

import torch
from torch import Tensor


def pair_keys(pairs: Tensor, num_dst: int) -> Tensor:
    """Encode (2, n) pairs as sorted-able int64 keys ``src * num_dst + dst``."""
    return pairs[0].long() * num_dst + pairs[1].long()


def in_sorted(keys: Tensor, sorted_keys: Tensor) -> Tensor:
    """``keys[j] in sorted_keys`` for every ``j`` by binary search (``sorted_keys`` ascending):
    O(n log m), where ``torch.isin`` re-sorts the large set on every call."""
    if sorted_keys.numel() == 0:
        return torch.zeros(keys.shape, dtype=torch.bool)
    pos = torch.searchsorted(sorted_keys, keys).clamp_(max=sorted_keys.numel() - 1)
    return sorted_keys[pos] == keys


def sample_non_edges(
    num: int, num_src: int, num_dst: int, forbidden: Tensor, gen: torch.Generator, src: Tensor | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Sample ``num`` (src, dst) pairs that are not in ``forbidden`` (sorted key tensor).

    When ``src`` is given, those sources are kept and only destinations are corrupted (the
    usual negative sampling for link prediction). The pairs are returned on ``device`` (default:
    that of ``src``, else of ``forbidden``); sampling itself runs on the CPU generator. Rejected draws are redrawn (up to 50 rounds);
    on a dense graph a handful of positives may slip through, which is harmless for training.
    """
    if device is None:
        device = src.device if src is not None else forbidden.device
    if src is None:
        src = torch.randint(num_src, (num,), generator=gen)
    src = src.cpu()
    dst = torch.randint(num_dst, (num,), generator=gen)
    forbidden_cpu = forbidden.cpu()
    for _ in range(50):
        if forbidden_cpu.numel() == 0:
            break
        bad = in_sorted(src * num_dst + dst, forbidden_cpu)
        if not bool(bad.any()):
            break
        dst[bad] = torch.randint(num_dst, (int(bad.sum()),), generator=gen)
    return torch.stack([src, dst]).to(device)
