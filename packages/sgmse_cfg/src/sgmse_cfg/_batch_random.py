"""Random numbers for one rank's share of a data-parallel global batch (private)."""

from __future__ import annotations

import torch
from torch import Tensor


def share_rand(size: int | tuple[int, ...], generator: torch.Generator | None, device: torch.device,
               dtype: torch.dtype, share: tuple[int, int] | None = None) -> Tensor:
    """``U[0, 1)`` numbers of shape ``size`` (``size[0]`` = items); with ``share=(rank, world)``
    drawn for the global batch of ``size[0] · world`` items and this rank's items
    ``rank::world`` taken."""
    size = (size,) if isinstance(size, int) else tuple(size)
    if share is None:
        return torch.rand(size, device=device, dtype=dtype, generator=generator)
    rank, world = share
    if not (world >= 1 and 0 <= rank < world):
        raise ValueError(f"share must be (rank, world) with 0 <= rank < world, got {share}")
    return torch.rand((size[0] * world, *size[1:]), device=device, dtype=dtype, generator=generator)[rank::world]
