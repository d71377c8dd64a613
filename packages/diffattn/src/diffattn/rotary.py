"""Rotary position embedding (RoPE, Su et al. 2021) in the interleaved-pair convention.

Deterministic (no parameters, no random buffer): the rotation angles are computed on the fly
from the positions, so any sequence length works. The Differential Transformer reference applies
it with ``interleaved=True`` to every q/k sub-head of size ``head_dim``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def rotary_angles(length: int, head_dim: int, base: float = 10000.0, *,
                  device: torch.device | None = None, dtype: torch.dtype = torch.float64) -> Tensor:
    """Angles ``pos · base^(-2i/head_dim)`` as ``[length, head_dim // 2]`` (radians).

    Computed in float64 by default: in float32 the angle of position 7,500 is off by ~1e-3 rad.
    """
    if head_dim % 2:
        raise ValueError(f"rotary embeddings need an even head_dim, got {head_dim}")
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float64) / head_dim)
    pos = torch.arange(length, device=device, dtype=torch.float64)
    return torch.outer(pos, inv_freq).to(dtype)


def apply_rotary(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate adjacent pairs ``(x[2i], x[2i+1])`` of the last dim by ``angles[pos, i]``.

    Args:
        x: ``[..., L, H, D]`` (positions on dim -3, heads on dim -2, as q/k before the head
            transpose).
        angles: ``[L, D // 2]`` from :func:`rotary_angles`.
    Returns:
        tensor of the same shape and dtype as ``x``.
    """
    cos = angles.cos().to(device=x.device, dtype=x.dtype)[:, None, :]  # [L, 1, D/2]
    sin = angles.sin().to(device=x.device, dtype=x.dtype)[:, None, :]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class RotaryEmbedding(nn.Module):
    """Module wrapper: ``forward(x [..., L, H, D]) -> x rotated`` with position = index along L.

    Memory: ``O(L · D)`` for the angle table, recomputed per call.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head_dim, got {head_dim}")
        self.head_dim = head_dim
        self.base = base

    def forward(self, x: Tensor) -> Tensor:
        # float64 angles (MPS has no float64: fall back to float32 there)
        dt = torch.float32 if x.device.type == "mps" else torch.float64
        angles = rotary_angles(x.shape[-3], self.head_dim, self.base, device=x.device, dtype=dt)
        return apply_rotary(x, angles)

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, base={self.base}"
