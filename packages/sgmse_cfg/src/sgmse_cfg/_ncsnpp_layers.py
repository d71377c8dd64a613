"""Building blocks of NCSN++ (Song et al. 2021) with the parameter names SGMSE+ uses, so that
its state dicts load unchanged. A re-implementation: FIR resampling is a depthwise
(transposed) convolution instead of ``upfirdn2d``, self-attention uses fused scaled-dot-
product attention, and the three query/key/value projections run as one matmul.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

SQRT2 = math.sqrt(2.0)


def variance_scaling_(w: Tensor, scale: float = 1.0, in_axis: int = 1, out_axis: int = 0) -> Tensor:
    """score_sde's ``default_init``: uniform variance scaling, ``fan_avg`` mode
    (``scale == 0`` means 1e-10, i.e. a near-zero init)."""
    scale = 1e-10 if scale == 0 else scale
    shape = w.shape
    receptive = math.prod(shape) // (shape[in_axis] * shape[out_axis])
    fan_in, fan_out = shape[in_axis] * receptive, shape[out_axis] * receptive
    bound = math.sqrt(3.0 * scale / ((fan_in + fan_out) / 2.0))
    with torch.no_grad():
        return w.uniform_(-bound, bound)


def conv3x3(in_ch: int, out_ch: int, init_scale: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
    variance_scaling_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def conv1x1(in_ch: int, out_ch: int, init_scale: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, 1)
    variance_scaling_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def dense(in_dim: int, out_dim: int) -> nn.Linear:
    lin = nn.Linear(in_dim, out_dim)
    variance_scaling_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


def group_norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(ch // 4, 32), num_channels=ch, eps=1e-6)


# ---- FIR resampling (StyleGAN2 / score_sde upfirdn2d with kernel [1, 3, 3, 1]) ---------------
#: (taps, gain, device, dtype) -> 2-D kernel. Built once per device: building it in every
#: forward meant a host-to-device copy per resampling layer, a host synchronisation inside
#: every sampler step on CUDA (found by ``bench/sampler_speed.py --check-sync``).
_FIR_KERNELS: dict[tuple, Tensor] = {}


def _fir_kernel(taps: Sequence[float], x: Tensor, gain: float) -> Tensor:
    dtype = x.dtype if x.dtype.is_floating_point else torch.float32
    key = (tuple(float(v) for v in taps), float(gain), x.device, dtype)
    k2 = _FIR_KERNELS.get(key)
    if k2 is None:
        k = torch.tensor(list(taps), dtype=torch.float64)
        k2 = torch.outer(k, k)
        k2 = (k2 / k2.sum() * gain).to(device=x.device, dtype=dtype)
        _FIR_KERNELS[key] = k2
    return k2[None, None].expand(x.shape[1], 1, *k2.shape)


def fir_downsample(x: Tensor, taps: Sequence[float]) -> Tensor:
    """``downsample_2d(x, k, factor=2)``: FIR lowpass, then every other sample
    (``[B, C, H, W] -> [B, C, H/2, W/2]``)."""
    k = _fir_kernel(taps, x, 1.0)
    p = len(taps) - 2
    if p % 2:
        x = F.pad(x, ((p + 1) // 2, p // 2, (p + 1) // 2, p // 2))
        return F.conv2d(x, k.flip(-1, -2), stride=2, groups=x.shape[1])
    return F.conv2d(x, k.flip(-1, -2), stride=2, padding=p // 2, groups=x.shape[1])


def fir_upsample(x: Tensor, taps: Sequence[float]) -> Tensor:
    """``upsample_2d(x, k, factor=2)``: zero insertion, then the FIR kernel times 4
    (``[B, C, H, W] -> [B, C, 2H, 2W]``), as one depthwise transposed convolution."""
    if (len(taps) - 2) % 2:
        raise ValueError("fir_upsample supports FIR kernels of even length")
    k = _fir_kernel(taps, x, 4.0)
    pad = (len(taps) - 2) // 2
    return F.conv_transpose2d(x, k, stride=2, padding=pad, groups=x.shape[1])


# ---- modules (names match score_sde / SGMSE+ for state-dict compatibility) ---------------------
class GaussianFourierProjection(nn.Module):
    """``[sin(2 pi x W), cos(2 pi x W)]`` with fixed ``W ~ N(0, scale^2)`` (``W`` is a
    parameter with ``requires_grad=False``, as in SGMSE+, so it is in the state dict and
    counted among the parameters)."""

    def __init__(self, embedding_size: int = 256, scale: float = 1.0) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(embedding_size), requires_grad=False)
        with torch.no_grad():
            self.W.normal_(0.0, scale)

    def forward(self, x: Tensor) -> Tensor:
        proj = x[:, None] * self.W[None, :] * (2.0 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class NIN(nn.Module):
    """1x1 "network in network" layer with weight ``W [in, out]`` and bias ``b [out]``."""

    def __init__(self, in_dim: int, num_units: int, init_scale: float = 0.1) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(in_dim, num_units))
        self.b = nn.Parameter(torch.zeros(num_units))
        variance_scaling_(self.W, init_scale, in_axis=1, out_axis=0)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.W.t()[:, :, None, None], self.b)


class Combine(nn.Module):
    """Input-skip combiner: ``Conv_0(pyramid)`` summed with (or concatenated to) ``h``."""

    def __init__(self, dim1: int, dim2: int, method: str = "sum") -> None:
        super().__init__()
        if method not in ("sum", "cat"):
            raise ValueError(f"combine method must be 'sum' or 'cat', got {method!r}")
        self.Conv_0 = conv1x1(dim1, dim2)
        self.method = method

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.Conv_0(x)
        return h + y if self.method == "sum" else torch.cat([h, y], dim=1)


class AttnBlockpp(nn.Module):
    """Single-head self-attention over all ``H x W`` positions (DDPM-style), scale
    ``C^-1/2``, with a residual (divided by sqrt 2 when ``skip_rescale``)."""

    def __init__(self, channels: int, skip_rescale: bool = True, init_scale: float = 0.0) -> None:
        super().__init__()
        self.GroupNorm_0 = group_norm(channels)
        self.NIN_0 = NIN(channels, channels)
        self.NIN_1 = NIN(channels, channels)
        self.NIN_2 = NIN(channels, channels)
        self.NIN_3 = NIN(channels, channels, init_scale=init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        h = self.GroupNorm_0(x)
        w_qkv = torch.cat([self.NIN_0.W, self.NIN_1.W, self.NIN_2.W], dim=1).t()
        b_qkv = torch.cat([self.NIN_0.b, self.NIN_1.b, self.NIN_2.b])
        qkv = F.conv2d(h, w_qkv[:, :, None, None], b_qkv)  # [B, 3C, H, W]
        q, k, v = qkv.reshape(B, 3, C, H * W).transpose(-1, -2).unsqueeze(2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, 1, HW, C], scale C^-1/2
        h = self.NIN_3(out.squeeze(1).transpose(1, 2).reshape(B, C, H, W))
        return (x + h) / SQRT2 if self.skip_rescale else x + h


class ResnetBlockBigGANpp(nn.Module):
    """BigGAN-style residual block with FIR up/down-sampling and a per-channel bias from the
    time embedding (``Dense_0(act(temb))``)."""

    def __init__(self, in_ch: int, out_ch: int | None = None, temb_dim: int | None = None,
                 up: bool = False, down: bool = False, dropout: float = 0.0,
                 fir_kernel: Sequence[float] = (1, 3, 3, 1), skip_rescale: bool = True,
                 init_scale: float = 0.0) -> None:
        super().__init__()
        out_ch = out_ch or in_ch
        self.GroupNorm_0 = group_norm(in_ch)
        self.Conv_0 = conv3x3(in_ch, out_ch)
        if temb_dim is not None:
            self.Dense_0 = dense(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv3x3(out_ch, out_ch, init_scale=init_scale)
        if in_ch != out_ch or up or down:
            self.Conv_2 = conv1x1(in_ch, out_ch)
        self.up, self.down = up, down
        self.fir_kernel = tuple(fir_kernel)
        self.skip_rescale = skip_rescale
        self.in_ch, self.out_ch = in_ch, out_ch

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        h = F.silu(self.GroupNorm_0(x))
        if self.up:
            h, x = fir_upsample(h, self.fir_kernel), fir_upsample(x, self.fir_kernel)
        elif self.down:
            h, x = fir_downsample(h, self.fir_kernel), fir_downsample(x, self.fir_kernel)
        h = self.Conv_0(h)
        if temb is not None:
            h = h + self.Dense_0(F.silu(temb))[:, :, None, None]
        h = self.Conv_1(self.Dropout_0(F.silu(self.GroupNorm_1(h))))
        if hasattr(self, "Conv_2"):
            x = self.Conv_2(x)
        return (x + h) / SQRT2 if self.skip_rescale else x + h


class CrossAttnBlock(nn.Module):
    """Cross-attention from feature positions (queries) to condition tokens (keys/values),
    residual, with a zero-initialised output projection so that a new block starts as the
    identity (an SGMSE+ checkpoint keeps its behaviour until the block is trained)."""

    def __init__(self, channels: int, context_dim: int, heads: int = 4) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        self.norm = group_norm(channels)
        self.to_q = nn.Conv2d(channels, channels, 1)
        self.to_kv = nn.Linear(context_dim, 2 * channels)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.heads = heads

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        B, C, H, W = x.shape
        nh = self.heads
        q = self.to_q(self.norm(x)).reshape(B, nh, C // nh, H * W).transpose(-1, -2)
        if context.shape[0] == 1 and B > 1:  # one condition shared by a batch of chunks
            context = context.expand(B, -1, -1)
        k, v = self.to_kv(context).reshape(B, -1, 2, nh, C // nh).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype))  # [B, nh, HW, d]
        return x + self.proj(out.transpose(-1, -2).reshape(B, C, H, W))
