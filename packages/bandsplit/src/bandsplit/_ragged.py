"""STFT pieces for padded batches of signals of different lengths (private).

Row ``b`` of a padded batch holds a signal of its own length; what it gets alone depends on its
own ends: the centred STFT's reflect padding reflects at the row's end, and the inverse divides by
the window envelope of the row's own frames. :func:`reflect_index` and :func:`ragged_overlap_add`
give those per row, vectorised over the batch (one gather, one ``fold``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def reflect_index(i: Tensor, n: Tensor) -> Tensor:
    """Index ``i`` reflected into ``0 .. n - 1`` once (``F.pad(mode="reflect")``'s map, exact for
    ``-n < i < 2n - 1``; further out it leaves ``0 .. n - 1``, so callers can mask it)."""
    return torch.where(i < 0, -i, torch.where(i >= n, 2 * (n - 1) - i, i))


def ragged_overlap_add(spec: Tensor, valid: Tensor, n_fft: int, hop: int, window: Tensor,
                       floor: float) -> Tensor:
    """Least-squares inverse of un-centred frames, each row over its own valid frames.

    Args:
        spec: complex ``[B, n_fft // 2 + 1, T]``; valid: float 0/1 ``[B, T]`` (row ``b``'s frames).
        window: ``[n_fft]`` analysis/synthesis window; floor: the envelope's lower clamp.
    Returns:
        ``[B, n_fft + hop (T - 1)]``: overlap-add of ``window * irfft(frame)`` over row ``b``'s valid
        frames divided by the overlap-added ``window²`` of those frames (clamped at ``floor``),
        as the row alone gets it; exactly 0 past the row's last valid frame.
    """
    b, _, t = spec.shape
    length = n_fft + hop * (t - 1)
    win = window[None, :, None]                                                    # [1, n_fft, 1]
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * win * valid[:, None, :]        # [B, n_fft, T]

    def ola(x: Tensor) -> Tensor:
        return F.fold(x, (1, length), (1, n_fft), stride=(1, hop)).reshape(x.shape[0], length)

    env = ola((win.square() * valid[:, None, :]).expand(b, n_fft, t))
    return ola(frames) / env.clamp_min(floor)
