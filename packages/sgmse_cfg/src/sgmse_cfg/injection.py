"""Turning a noise embedding into a :class:`BackboneCond` (how it reaches the backbone).

Three modes (``INJECTIONS``):

* ``"input_add"`` -- NASE's input addition: ``pooled [B, D]`` -> ``Linear(D, F)`` -> PReLU ->
  ``Linear(F, F)`` -> a real ``[B, 1, F, 1]`` added to the backbone's complex input (it
  shifts the real parts of x_t and y, one value per frequency bin, the same for every frame).
  NASE's ``post_cnn`` (1x1 conv, PReLU, 3-tap conv over frames, then the time mean) acting on
  a single pooled vector reduces to this.
* ``"film"`` -- FiLM on the time embedding: ``pooled`` -> ``Linear(D, E)`` -> SiLU ->
  ``Linear(E, 2E)`` -> ``(temb_scale, temb_shift)``, ``temb <- temb (1 + scale) + shift``.
* ``"xattn"`` -- cross-attention: ``tokens [B, L, D]`` passed as ``context`` to a backbone
  built with ``context_dim = D`` (``NCSNpp(context_dim=D)``; its blocks project them).

The last layer of the ``input_add`` and ``film`` maps is zero-initialised, so a fresh
injector leaves the backbone's behaviour unchanged (an SGMSE+ checkpoint fine-tuned with a
new conditioner starts from its own score).
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from .conditioning import BackboneCond

__all__ = ["NoiseInjector", "INJECTIONS"]

INJECTIONS = ("input_add", "film", "xattn")


class NoiseInjector(nn.Module):
    """Map a noise embedding to a :class:`BackboneCond`.

    Args:
        mode: ``"input_add"``, ``"film"`` or ``"xattn"``.
        dim: embedding width ``D``.
        freq_bins: ``F`` of the backbone input (``input_add``; 256 for SGMSE+).
        temb_dim: the backbone's time-embedding width (``film``).
    """

    def __init__(self, mode: str, dim: int, *, freq_bins: int = 256, temb_dim: int | None = None) -> None:
        super().__init__()
        if mode not in INJECTIONS:
            raise ValueError(f"injection mode must be one of {INJECTIONS}, got {mode!r}")
        self.mode = mode
        self.net: nn.Module | None = None
        if mode == "input_add":
            last = nn.Linear(freq_bins, freq_bins)
            self.net = nn.Sequential(nn.Linear(dim, freq_bins), nn.PReLU(), last)
        elif mode == "film":
            if temb_dim is None:
                raise ValueError("film injection needs the backbone's temb_dim")
            last = nn.Linear(temb_dim, 2 * temb_dim)
            self.net = nn.Sequential(nn.Linear(dim, temb_dim), nn.SiLU(), last)
        if self.net is not None:
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, pooled: Tensor, tokens: Tensor) -> BackboneCond:
        """``pooled [B, D]``, ``tokens [B, L, D]`` -> :class:`BackboneCond` with batch ``B``."""
        if self.mode == "xattn":
            return BackboneCond(context=tokens)
        assert self.net is not None
        h = self.net(pooled)
        if self.mode == "input_add":
            return BackboneCond(input_add=h.float()[:, None, :, None])
        scale, shift = h.chunk(2, dim=-1)
        return BackboneCond(temb_scale=scale, temb_shift=shift)
