"""Random numbers for one rank's share of a data-parallel global batch (private)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: one generator for the batch, or one per batch item (each item's noise then comes from its
#: own generator, exactly as in a batch of one: a file's output does not depend on its batch)
Generators = torch.Generator | Sequence[torch.Generator] | None


def randn_items(size: tuple[int, ...], generator: Generators, *, dtype: torch.dtype,
                device: torch.device) -> Tensor:
    """``torch.randn(size)``; with a sequence of generators (one per item, ``size[0]`` of them)
    item ``b``'s numbers are what ``torch.randn((1, *size[1:]))`` draws from generator ``b``."""
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(size, dtype=dtype, device=device, generator=generator)
    if len(generator) != size[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {size[0]} items: give one per item")
    # one draw per item: a generator's stream cannot be shared out across generators
    return torch.cat([torch.randn((1, *size[1:]), dtype=dtype, device=device, generator=g) for g in generator])


def share_draw(draw, size: int | tuple[int, ...], share: tuple[int, int] | None = None, **kw) -> Tensor:
    """``draw(size, **kw)`` (``torch.rand`` / ``torch.randn``), ``size[0]`` = items; with
    ``share=(rank, world)`` drawn for the global batch of ``size[0] · world`` items and this
    rank's items ``rank::world`` taken, so the ranks together draw what one process draws."""
    size = (size,) if isinstance(size, int) else tuple(size)
    gen = kw.get("generator")
    if gen is not None and not isinstance(gen, torch.Generator):  # one generator per item
        if share is not None or draw is not torch.randn:
            raise ValueError("one generator per item is for inference draws (torch.randn, no share)")
        return randn_items(size, gen, dtype=kw["dtype"], device=kw["device"])
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
