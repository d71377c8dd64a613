"""Per-item frame masks for padded batches of utterances of different lengths (private).

A batch of spectrograms padded to the longest one gives each item the output it gets alone
only if no op lets the padded frames into the valid ones. The ops that mix information across
time are handled with a bool frame mask ``[B, T]`` (``True`` = valid): whole-utterance norms
take their statistics over the valid frames (:func:`masked_mean_var`), attention gets a
key-padding mask (:func:`key_padding_mask`), and convolutions over time see zeros past each
item's end, as the single item's zero padding does (callers multiply by the mask).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def frame_mask(lengths: Tensor | Sequence[int] | None, batch: int, frames: int,
               device: torch.device) -> Tensor | None:
    """``lengths`` (valid frames per item, ``[B]``) -> bool ``[B, T]`` (``True`` = valid), or None.

    ``None`` (every item fills the ``T`` frames) stays None, so the unpadded path is unchanged.
    Raises ``ValueError`` unless there are ``B`` lengths in ``1 .. T``.
    """
    if lengths is None:
        return None
    n = torch.as_tensor(lengths, device=device)
    if n.dim() != 1 or n.shape[0] != batch or n.dtype.is_floating_point or n.dtype == torch.bool:
        raise ValueError(f"lengths must be {batch} integer frame counts (one per batch item), got "
                         f"{tuple(n.shape)} {n.dtype}")
    if bool((n < 1).any()) or bool((n > frames).any()):
        raise ValueError(f"lengths must lie in 1 .. {frames} (the input's frames), got "
                         f"{n.min().item()} .. {n.max().item()}")
    return torch.arange(frames, device=device)[None, :] < n[:, None]


def masked_mean_var(x: Tensor, m: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Mean and (biased) variance of ``x`` over ``dims`` counting only where ``m`` (a float 0/1
    mask broadcastable to ``x``) is 1; both keep ``dims`` as size 1."""
    count = m.expand(x.shape).sum(dims, keepdim=True)
    mean = (x * m).sum(dims, keepdim=True) / count
    var = ((x - mean) * m).square().sum(dims, keepdim=True) / count
    return mean, var


def key_padding_mask(mask: Tensor, groups: int) -> Tensor:
    """Bool ``[B, T]`` -> ``[B·groups, 1, 1, T]``: the key-padding mask of ``B·groups``
    sequences flattened item-major (``[B, groups, T, D]`` -> ``[B·groups, T, D]``)."""
    b, t = mask.shape
    return mask[:, None].expand(b, groups, t).reshape(b * groups, 1, 1, t)
