"""MaskDecoder (band features -> 3-tap complex mask per bin) and apply_fir_mask (taps over time)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ._complex import as_complex
from ._masking import masked_mean_var
from ._packed import PackedPerBandModule
from .bands import check_band_widths, width_groups


class MaskDecoder(PackedPerBandModule):
    """Per band k of width w: norm -> Linear(N, 4N) -> Tanh -> Linear(4N, 12w) -> GLU -> w x 3 taps.

    The GLU halves the 12w outputs to 6w = w bins x 3 taps x (re, im): a complex 3-tap
    filter per bin and frame (apply it with :func:`apply_fir_mask`). The norm is BSRNN's
    ``GroupNorm(1, N)`` over the band's N x T features of each utterance, or, with
    ``causal=True``, over the N features of each frame.

    The bands are computed as grouped batched matmuls, with no Python loop over bands: one
    pass per width class (bands zero-padded to the widest band of their class; at most 4
    classes, 3 for the BSRNN table: {2, 3}, {8}, {16, 17} bins). The state dict keeps the per-band keys of the
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

        # Grouped second layer: bands grouped by width class (at most 4 groups, 3 for the BSRNN
        # table), each group's weights zero-padded to its widest band, one batched matmul per
        # group. Inside the decoder the bands are ordered group by group (``_perm``).
        groups = width_groups(widths)
        self._groups = [(len(members), cap) for cap, members in groups]
        perm = [k for _, members in groups for k in members]
        self.register_buffer("_perm", torch.tensor(perm), persistent=False)             # [K]
        starts = [0]
        for w in widths[:-1]:
            starts.append(starts[-1] + w)
        rows, out_idx, base = [], [0] * self.n_freq, 0
        for cap, members in groups:
            for pos, kk in enumerate(members):
                w = widths[kk]
                for p in range(12 * cap):  # [GLU value half | gate half], each padded to 6 * cap
                    half, r = divmod(p, 6 * cap)
                    rows.append(12 * starts[kk] + half * 6 * w + r if r < 6 * w else 12 * self.n_freq)
                for j in range(w):
                    out_idx[starts[kk] + j] = base + pos * cap + j
            base += len(members) * cap
        self.register_buffer("_fc2_rows", torch.tensor(rows), persistent=False)        # [sum Kg * 12 cap]
        self.register_buffer("_out_idx", torch.tensor(out_idx), persistent=False)      # [F]
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

    def _norm(self, hg: torch.Tensor, stats_shape: tuple[int, ...], mask: torch.Tensor | None) -> torch.Tensor:
        if mask is None or self.causal:  # per-frame statistics need no mask
            return nn.functional.layer_norm(hg, stats_shape, eps=self.eps)
        return _masked_layer_norm(hg, mask, self.eps)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``h``: band features ``[B, T, K, N]`` -> complex mask ``[B, F, T, 3]``.

        ``mask``: optional bool ``[B, T]`` (``True`` = valid frame) for a padded batch: the
        whole-utterance norm takes each item's statistics over its valid frames."""
        if h.dim() != 4 or h.shape[2] != self.num_bands or h.shape[3] != self.num_channel:
            raise ValueError(f"MaskDecoder expects [B, T, K={self.num_bands}, N={self.num_channel}], "
                             f"got shape {tuple(h.shape)}")
        b, t, k, n = h.shape
        perm = self._perm
        hk = h.permute(2, 0, 1, 3).index_select(0, perm)                          # [K, B, T, N]
        stats_shape = (n,) if self.causal else (t, n)   # per (band, frame) or per (band, utterance)
        scale = self.norm_weight.view(k, n).index_select(0, perm)[:, None, None, :]
        shift = self.norm_bias.view(k, n).index_select(0, perm)[:, None, None, :]
        w1 = self.fc1_weight.view(k, 4 * n, n).index_select(0, perm)
        b1 = self.fc1_bias.view(k, 4 * n).index_select(0, perm)[:, None, :]
        rows = self._fc2_rows
        # index_select: its backward adds per row, advanced indexing's sorts the indices first
        w2 = nn.functional.pad(self.fc2_weight.view(12 * self.n_freq, 4 * n), (0, 0, 0, 1)).index_select(0, rows)
        b2 = nn.functional.pad(self.fc2_bias, (0, 1)).index_select(0, rows)
        kgs = [kg for kg, _ in self._groups]
        nrows = [kg * 12 * cap for kg, cap in self._groups]
        # One pass per width group (<= 4, independent of the band count): the group's bands go
        # through norm -> fc1 -> tanh -> fc2 -> GLU as batched matmuls. Working group by group
        # keeps the [Kg, BT, 4N] temporaries small (on CPU, large fresh buffers cost page
        # faults). ``split`` (not slicing): its backward concatenates instead of zero-filling.
        parts = zip(self._groups, hk.split(kgs), scale.split(kgs), shift.split(kgs), w1.split(kgs),
                    b1.split(kgs), w2.split(nrows), b2.split(nrows))
        outs = []
        for (kg, cap), hg, sg, tg, w1g, b1g, w2g, b2g in parts:
            hn = torch.addcmul(tg, self._norm(hg, stats_shape, mask), sg)
            y = torch.baddbmm(b1g, hn.view(kg, b * t, n), w1g.transpose(1, 2)).tanh_()  # [Kg, BT, 4N]
            z = torch.baddbmm(b2g.view(kg, 1, 12 * cap), y,
                              w2g.view(kg, 12 * cap, 4 * n).transpose(1, 2))      # [Kg, BT, 12 cap]
            g = nn.functional.glu(z, dim=-1)                                       # [Kg, BT, 6 cap]
            outs.append(g.view(kg, b * t, cap, 6).transpose(0, 1).reshape(b * t, kg * cap, 6))
        g = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]                  # [BT, sum Kg cap, 6]
        g = g.index_select(1, self._out_idx).view(b, t, self.n_freq, 3, 2)        # [B, T, F, 3, 2]
        return as_complex(g.transpose(1, 2))


def _masked_layer_norm(h: torch.Tensor, mask: torch.Tensor, eps: float) -> torch.Tensor:
    """``layer_norm`` of ``h [K, B, T, N]`` over (T, N) counting the valid frames of ``mask [B, T]``."""
    m = mask.to(h.dtype)[None, :, :, None]
    mean, var = masked_mean_var(h, m, (2, 3))
    return (h - mean) * torch.rsqrt(var + eps)


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
