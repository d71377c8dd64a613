"""A small, fast score UNet for CPU work (< 1 M parameters), with NCSN++'s interface.

Input complex ``x [B, 2, F, T]`` holding ``(x_t, y)`` and ``t [B]``; output complex
``[B, 1, F, T]``. Unlike SGMSE+'s NCSN++ it applies no 1/t scaling inside: use it with
``ScoreModel(output_scaling="sigma")`` (``score = -output / std(t)``, i.e. the network
predicts the normalised noise ``z``), which is its ``default_output_scaling``.

Architecture: 4 real input channels -> 3x3 conv -> per level one residual block (GroupNorm,
SiLU, 3x3 conv, time-embedding bias, GroupNorm, SiLU, 3x3 conv) and a stride-2 conv down;
a middle block; mirrored up path with nearest-neighbour upsampling, skip concatenation and a
residual block; GroupNorm, SiLU, 3x3 conv to 2 channels (Re, Im). Time embedding: Gaussian
Fourier features of ``log t`` through a two-layer MLP. Same conditioning hooks as NCSN++
(``BackboneCond.input_add``, ``temb_scale`` / ``temb_shift``); no cross-attention.
Complex conversions and the output layer run in float32 under autocast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ._ncsnpp_layers import GaussianFourierProjection
from .conditioning import BackboneCond

__all__ = ["SmallUNet"]


def _gn(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch // 4) or 1, ch, eps=1e-6)


class _ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, temb_dim: int) -> None:
        super().__init__()
        self.norm0 = _gn(in_ch)
        self.conv0 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.temb = nn.Linear(temb_dim, out_ch)
        self.norm1 = _gn(out_ch)
        self.conv1 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv1.weight)
        nn.init.zeros_(self.conv1.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv0(F.silu(self.norm0(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv1(F.silu(self.norm1(h)))
        return self.skip(x) + h


class SmallUNet(nn.Module):
    """Small score UNet (default 733,618 parameters; F and T multiples of 8).

    Args:
        channels: feature channels per resolution level; ``F`` and ``T`` must be multiples
            of ``2 ** (len(channels) - 1)``.
        temb_dim: time-embedding width.
        fourier_scale: std of the fixed Fourier frequencies applied to ``log t``.
    """

    default_output_scaling = "sigma"  # score = -output / std(t)

    def __init__(self, channels: Sequence[int] = (16, 32, 64, 64), temb_dim: int = 128,
                 fourier_scale: float = 16.0) -> None:
        super().__init__()
        if len(channels) < 1:
            raise ValueError("channels needs at least one level")
        self.config: dict[str, Any] = dict(channels=tuple(channels), temb_dim=temb_dim,
                                           fourier_scale=fourier_scale)
        self.temb_dim = temb_dim
        self.fourier = GaussianFourierProjection(temb_dim // 2, scale=fourier_scale)
        self.temb_mlp = nn.Sequential(nn.Linear(temb_dim, temb_dim), nn.SiLU(),
                                      nn.Linear(temb_dim, temb_dim))
        c = list(channels)
        self.conv_in = nn.Conv2d(4, c[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        for i, ch in enumerate(c):
            self.down_blocks.append(_ResBlock(c[i - 1] if i else c[0], ch, temb_dim))
            if i < len(c) - 1:
                self.downsamplers.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.mid = _ResBlock(c[-1], c[-1], temb_dim)
        self.up_blocks = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for i in reversed(range(len(c))):
            in_ch = (c[i + 1] if i < len(c) - 1 else c[-1]) + c[i]
            self.up_blocks.append(_ResBlock(in_ch, c[i], temb_dim))
            if i > 0:
                self.upsamplers.append(nn.Conv2d(c[i], c[i], 3, padding=1))
        self.norm_out = _gn(c[0])
        self.conv_out = nn.Conv2d(c[0], 2, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # score 0 at init: DSM loss starts at 0.5 per bin
        nn.init.zeros_(self.conv_out.bias)

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.config["channels"]) - 1)

    def forward(self, x: Tensor, t: Tensor, cond: BackboneCond | None = None) -> Tensor:
        """``x`` complex ``[B, 2, F, T]`` (x_t, y), ``t [B]`` in (0, 1] -> complex ``[B, 1, F, T]``."""
        if not x.is_complex() or x.ndim != 4 or x.shape[1] != 2:
            raise ValueError(f"SmallUNet expects complex x [B, 2, F, T] holding (x_t, y), got "
                             f"{tuple(x.shape)} {x.dtype}")
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must have shape [B] = [{x.shape[0]}], got {tuple(t.shape)}")
        B, _, Fq, T = x.shape
        f = self.downsampling_factor
        if Fq % f or T % f:
            raise ValueError(f"F={Fq} and T={T} must be multiples of {f}; pad the frames with "
                             f"SpecTransform.pad_frames(spec, multiple={f})")
        if cond is not None and cond.context is not None:
            raise ValueError("SmallUNet has no cross-attention: cond.context is not supported")
        dev = x.device.type
        real = self.conv_in.weight.dtype  # float32 (float64 for a model moved to double)
        with torch.autocast(device_type=dev, enabled=False):
            if cond is not None and cond.input_add is not None:
                x = x + cond.input_add
            cplx = torch.complex128 if real == torch.float64 else torch.complex64
            h = torch.view_as_real(x.to(cplx)).permute(0, 1, 4, 2, 3).reshape(B, 4, Fq, T)
            four = self.fourier(torch.log(t.to(real)))
        temb = self.temb_mlp(four)
        if cond is not None:
            temb = cond.apply_temb(temb)
        h = self.conv_in(h)
        skips = []
        for i, blk in enumerate(self.down_blocks):
            h = blk(h, temb)
            skips.append(h)
            if i < len(self.downsamplers):
                h = self.downsamplers[i](h)
        h = self.mid(h, temb)
        for j, blk in enumerate(self.up_blocks):
            h = blk(torch.cat([h, skips.pop()], dim=1), temb)
            if j < len(self.upsamplers):
                h = self.upsamplers[j](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = F.silu(self.norm_out(h))
        with torch.autocast(device_type=dev, enabled=False):
            h = self.conv_out(h.to(real))
            return torch.view_as_complex(h.permute(0, 2, 3, 1).contiguous())[:, None]
