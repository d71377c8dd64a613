"""MaskDecoder (band features -> 3-tap complex mask per bin) and apply_fir_mask (taps over time)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ._packed import PackedPerBandModule
from .bands import check_band_widths


class MaskDecoder(PackedPerBandModule):
    """Per band k of width w: norm -> Linear(N, 4N) -> Tanh -> Linear(4N, 12w) -> GLU -> w x 3 taps.

    The GLU halves the 12w outputs to 6w = w bins x 3 taps x (re, im): a complex 3-tap
    filter per bin and frame (apply it with :func:`apply_fir_mask`). The norm is BSRNN's
    ``GroupNorm(1, N)`` over the band's N x T features of each utterance, or, with
    ``causal=True``, over the N features of each frame.

    All bands are computed together (stacked first layer, zero-padded second layer, batched
    matmuls), with no Python loop over bands. The state dict keeps the per-band keys of the
    widely used BSRNN reimplementation's ``mask_decoder``: ``norm{k}.weight/bias [N]``,
    ``fc1{k}.weight [4N, N]``, ``fc1{k}.bias [4N]``, ``fc2{k}.weight [12w, 4N]``,
    ``fc2{k}.bias [12w]`` (k from 1).

    Shapes: input ``[B, T, K, N]``; output complex mask ``[B, F, T, 3]`` (F = sum of widths).
    """

    def __init__(self, band_widths: Sequence[int], num_channel: int, *, causal: bool = False,
                 n_freq: int | None = None, eps: float = 1e-5) -> None:
        super().__init__()
        widths = check_band_widths(band_widths, n_freq)
        self.band_widths = widths
        self.num_channel = n = int(num_channel)
        self.num_bands = k = len(widths)
        self.n_freq = sum(widths)
        self.causal = bool(causal)
        self.eps = float(eps)
        self._add_ragged("norm_weight", "norm{}.weight", [(n,)] * k)
        self._add_ragged("norm_bias", "norm{}.bias", [(n,)] * k)
        self._add_ragged("fc1_weight", "fc1{}.weight", [(4 * n, n)] * k)
        self._add_ragged("fc1_bias", "fc1{}.bias", [(4 * n,)] * k)
        self._add_ragged("fc2_weight", "fc2{}.weight", [(12 * w, 4 * n) for w in widths])
        self._add_ragged("fc2_bias", "fc2{}.bias", [(12 * w,) for w in widths])

        # fc2 rows in the padded layout [K, 2, 6 * wmax]: GLU's value half, then its gate half.
        wmax = max(widths)
        starts = torch.tensor([0] + list(widths[:-1])).cumsum(0)
        wt = torch.tensor(widths)
        p = torch.arange(12 * wmax)
        half, r = p // (6 * wmax), p % (6 * wmax)
        rows = 12 * starts[:, None] + half[None, :] * 6 * wt[:, None] + r[None, :]
        rows = torch.where(r[None, :] < 6 * wt[:, None], rows, 12 * self.n_freq)  # pad -> zero row
        self.register_buffer("_fc2_rows", rows, persistent=False)                 # [K, 12 wmax]
        out_idx = torch.cat([torch.arange(w) + b * wmax for b, w in enumerate(widths)])  # built once
        self.register_buffer("_out_idx", out_idx, persistent=False)               # [F]
        self._wmax = wmax
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BSRNN's init: norms weight 1 / bias 0; Linear weights xavier-uniform (gain 1), bias 0."""
        n = self.num_channel
        with torch.no_grad():
            self.norm_weight.fill_(1.0)
            self.norm_bias.zero_()
            self.fc1_bias.zero_()
            self.fc2_bias.zero_()
        self._uniform_per_band_("fc1_weight", [math.sqrt(6.0 / (5 * n))] * self.num_bands)
        self._uniform_per_band_("fc2_weight", [math.sqrt(6.0 / (4 * n + 12 * w)) for w in self.band_widths])

    def extra_repr(self) -> str:
        return (f"num_bands={self.num_bands}, n_freq={self.n_freq}, num_channel={self.num_channel}, "
                f"causal={self.causal}")

    def padded_fc2(self) -> tuple[torch.Tensor, torch.Tensor]:
        """fc2 weights ``[K, 12 wmax, 4N]`` and biases ``[K, 12 wmax]``, zero-padded per GLU half."""
        w = nn.functional.pad(self.fc2_weight.view(12 * self.n_freq, 4 * self.num_channel), (0, 0, 0, 1))
        b = nn.functional.pad(self.fc2_bias, (0, 1))
        return w[self._fc2_rows], b[self._fc2_rows]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``h``: band features ``[B, T, K, N]`` -> complex mask ``[B, F, T, 3]``."""
        if h.dim() != 4 or h.shape[2] != self.num_bands or h.shape[3] != self.num_channel:
            raise ValueError(f"MaskDecoder expects [B, T, K={self.num_bands}, N={self.num_channel}], "
                             f"got shape {tuple(h.shape)}")
        b, t, k, n = h.shape
        dims = (3,) if self.causal else (1, 3)
        var, mean = torch.var_mean(h, dim=dims, unbiased=False, keepdim=True)
        hn = (h - mean) * torch.rsqrt(var + self.eps)
        hn = hn * self.norm_weight.view(k, n) + self.norm_bias.view(k, n)
        y = torch.einsum("btkn,kmn->btkm", hn, self.fc1_weight.view(k, 4 * n, n))
        y = torch.tanh(y + self.fc1_bias.view(k, 4 * n))
        w2, b2 = self.padded_fc2()
        z = torch.einsum("btkm,kpm->btkp", y, w2) + b2                          # [B, T, K, 12 wmax]
        g = nn.functional.glu(z, dim=-1)                                        # [B, T, K, 6 wmax]
        g = g.reshape(b, t, k * self._wmax, 3, 2).index_select(2, self._out_idx)  # [B, T, F, 3, 2]
        return torch.view_as_complex(g.permute(0, 2, 1, 3, 4))


def apply_fir_mask(mask: torch.Tensor, x: torch.Tensor, lookahead: int | None = None) -> torch.Tensor:
    """Filter each bin's complex STFT over time with a per-bin, per-frame complex FIR mask.

    For a 3-tap mask (the BSRNN mask) and the default ``lookahead=1``:
    ``S(f, t) = M0(f, t) X(f, t-1) + M1(f, t) X(f, t) + M2(f, t) X(f, t+1)`` with X = 0 outside
    the signal (so the first frame uses M1, M2 only and the last M0, M1 only), exactly the
    reference's edge handling. In general tap i multiplies X(f, t + i - (L - 1 - lookahead)).

    Args:
        mask: complex ``[B, F, T, L]`` (L taps).
        x: complex ``[B, F, T]``.
        lookahead: frames of look-ahead, 0 .. L-1 (default ``(L - 1) // 2``; 1 for 3 taps).
    Returns:
        complex ``[B, F, T]``.
    """
    if not (mask.is_complex() and x.is_complex()):
        raise ValueError("apply_fir_mask expects complex mask [B, F, T, L] and complex x [B, F, T]")
    if mask.shape[:-1] != x.shape:
        raise ValueError(f"mask {tuple(mask.shape)} does not match x {tuple(x.shape)} + (taps,)")
    taps = mask.shape[-1]
    if lookahead is None:
        lookahead = (taps - 1) // 2
    if not 0 <= lookahead < taps:
        raise ValueError(f"lookahead must be in 0..{taps - 1} for a {taps}-tap mask, got {lookahead}")
    xr = nn.functional.pad(torch.view_as_real(x), (0, 0, taps - 1 - lookahead, lookahead))  # [B,F,T+L-1,2]
    xs = torch.view_as_complex(xr.unfold(-2, taps, 1).transpose(-1, -2).contiguous())       # [B,F,T,L]
    return (mask * xs).sum(-1)
