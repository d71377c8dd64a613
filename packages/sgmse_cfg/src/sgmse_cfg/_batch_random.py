"""Random numbers for one rank's share of a data-parallel global batch (private)."""

from __future__ import annotations

import torch
from torch import Tensor


def share_draw(draw, size: int | tuple[int, ...], share: tuple[int, int] | None = None, **kw) -> Tensor:
    """``draw(size, **kw)`` (``torch.rand`` / ``torch.randn``), ``size[0]`` = items; with
    ``share=(rank, world)`` drawn for the global batch of ``size[0] · world`` items and this
    rank's items ``rank::world`` taken, so the ranks together draw what one process draws."""
    size = (size,) if isinstance(size, int) else tuple(size)
    if share is None:
        return draw(size, **kw)
    rank, world = share
    if not (world >= 1 and 0 <= rank < world):
        raise ValueError(f"share must be (rank, world) with 0 <= rank < world, got {share}")
    return draw((size[0] * world, *size[1:]), **kw)[rank::world]


def share_rand(size: int | tuple[int, ...], generator: torch.Generator | None, device: torch.device,
               dtype: torch.dtype, share: tuple[int, int] | None = None) -> Tensor:
    """``U[0, 1)`` numbers of shape ``size`` for this rank's share (see :func:`share_draw`)."""
    return share_draw(torch.rand, size, share, device=device, dtype=dtype, generator=generator)
