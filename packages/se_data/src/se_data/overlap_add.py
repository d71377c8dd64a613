"""Chunked processing with a linear cross-fade: the one overlap-add of the toolkit.

Long signals are cut along their last axis into chunks of ``chunk`` samples (or frames) that
overlap by ``overlap``; a function processes batches of chunks; the results are cross-faded
back with linear ramps and normalised by the summed weights, so a function that is the
identity returns its input exactly. ``bandsplit.enhance`` (waveform samples) and
``sgmse_cfg.enhance`` (spectrogram frames) both use it, so files of any length are enhanced in
bounded memory the same way.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

__all__ = ["chunk_starts", "chunked_apply", "crossfade_weights"]


def chunk_starts(total: int, chunk: int, overlap: int) -> list[int]:
    """Start indices of chunks of ``chunk`` covering ``[0, total)`` with hop ``chunk - overlap``.

    The last chunk is shifted back to end at ``total`` (so every chunk has full length, and it
    may overlap its neighbour by more than ``overlap``). One chunk when ``total <= chunk``.
    """
    if chunk < 1 or not 0 <= overlap < chunk:
        raise ValueError(f"need chunk >= 1 and 0 <= overlap < chunk, got chunk={chunk}, overlap={overlap}")
    if total <= chunk:
        return [0]
    return list(range(0, total - chunk, chunk - overlap)) + [total - chunk]


def crossfade_weights(n_chunks: int, chunk: int, overlap: int, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> Tensor:
    """Weights ``[n_chunks, chunk]``: 1, with linear ramps ``(k + 0.5) / overlap`` over the first
    ``overlap`` samples of every chunk but the first and the last ``overlap`` of every chunk but
    the last. A ramp and its mirror sum to exactly 1."""
    w = torch.ones(n_chunks, chunk, dtype=dtype, device=device)
    if overlap > 0 and n_chunks > 1:
        ramp = (torch.arange(overlap, dtype=dtype, device=device) + 0.5) / overlap
        w[1:, :overlap] = ramp
        w[:-1, -overlap:] = ramp.flip(0)
    return w


def chunked_apply(fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int, overlap: int, *,
                  max_batch: int = 1) -> Tensor:
    """Apply ``fn`` to ``x`` [..., T] in overlapping chunks and cross-fade the results back.

    ``fn`` maps a batch of chunks ``[n, ..., chunk]`` (``n <= max_batch``, stacked on a new
    leading axis) to ``[n, ..., chunk]`` of any dtype (complex included) and device. With
    ``T <= chunk`` it is called once on ``x[None]``. Returns ``[..., T]`` in ``fn``'s dtype.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    total = x.shape[-1]
    starts = chunk_starts(total, chunk, overlap)
    if len(starts) == 1:
        return fn(x[None])[0]
    acc = wsum = weights = None
    for g0 in range(0, len(starts), max_batch):
        group = starts[g0:g0 + max_batch]
        y = fn(torch.stack([x[..., s:s + chunk] for s in group]))
        if acc is None:
            real = y.real.dtype if y.is_complex() else y.dtype
            acc = y.new_zeros(*y.shape[1:-1], total)
            wsum = torch.zeros(total, dtype=real, device=y.device)
            weights = crossfade_weights(len(starts), chunk, overlap, dtype=real, device=y.device)
        for j, s in enumerate(group):
            w = weights[g0 + j]
            acc[..., s:s + chunk] += y[j] * w
            wsum[s:s + chunk] += w
    return acc / wsum
