"""Straightforward per-band-loop forms of the band-split layers and of BSRNN (private).

These follow the widely used BSRNN reimplementation step by step: one ``GroupNorm`` +
``Linear`` module per band registered as ``norm{k}``/``fc{k}`` (``fc1{k}``/``fc2{k}`` in the
mask decoder), a Python loop over the bands, ``[B, N, T, K]`` layout in the sequence blocks
and the reference's explicit edge handling of the 3-tap mask. They exist to check the
vectorised modules (tests) and to time them against the loop form (``bench/``); the loop
BSRNN reproduces the reference parity fixture. Not for use in models.

Two loop forms: the lean one (``reference_ops=False``) collects the bands' outputs in a list
and joins them once; with ``reference_ops=True`` the modules also follow the reference's
memory traffic step by step: the band outputs are concatenated one band at a time (each
``cat`` copies everything so far), the band features travel as ``[B, T, N, K]`` /
``[B, N, T, K]`` with the reference's transposes, and the band blocks make their output
contiguous. Both give the same numbers; the second is the reference's cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ._complex import as_complex
from .bands import BSRNN_BAND_WIDTHS


class LoopBandSplit(nn.Module):
    """Per band: GroupNorm(1, 2w) over (2w x T) (or LayerNorm per frame) -> Linear(2w, N)."""

    def __init__(self, widths, n, causal=False, reference_ops=False):
        super().__init__()
        self.widths, self.causal, self.reference_ops = list(widths), causal, reference_ops
        for i, w in enumerate(widths, 1):
            setattr(self, f"norm{i}", nn.GroupNorm(1, 2 * w))
            setattr(self, f"fc{i}", nn.Linear(2 * w, n))

    def forward(self, x):  # complex [B, F, T] -> [B, T, K, N] ([B, T, N, K] with reference_ops)
        xr = torch.view_as_real(x).transpose(1, 2)  # [B, T, F, 2]
        outs, f0, z = [], 0, None
        for i, w in enumerate(self.widths, 1):
            band = xr[:, :, f0:f0 + w, :].reshape(xr.shape[0], xr.shape[1], 2 * w)  # [B, T, 2w]
            norm = getattr(self, f"norm{i}")
            if self.causal:
                band = nn.functional.layer_norm(band, (2 * w,), norm.weight, norm.bias, norm.eps)
            else:
                band = norm(band.transpose(1, 2)).transpose(1, 2)
            out = getattr(self, f"fc{i}")(band)
            if self.reference_ops:  # grow [B, T, N, k] one band at a time
                z = out.unsqueeze(3) if z is None else torch.cat((z, out.unsqueeze(3)), dim=3)
            else:
                outs.append(out)
            f0 += w
        return z if self.reference_ops else torch.stack(outs, dim=2)


class LoopMaskDecoder(nn.Module):
    """Per band: GroupNorm(1, N) -> Linear(N, 4N) -> Tanh -> Linear(4N, 12w) -> GLU -> [w, 3, 2]."""

    def __init__(self, widths, n, causal=False, reference_ops=False):
        super().__init__()
        self.widths, self.causal, self.reference_ops = list(widths), causal, reference_ops
        for i, w in enumerate(widths, 1):
            setattr(self, f"norm{i}", nn.GroupNorm(1, n))
            setattr(self, f"fc1{i}", nn.Linear(n, 4 * n))
            setattr(self, f"fc2{i}", nn.Linear(4 * n, 12 * w))

    def forward(self, h):  # [B, T, K, N] ([B, N, T, K] with reference_ops) -> complex [B, F, T, 3]
        outs, m = [], None
        for i, w in enumerate(self.widths, 1):
            hb = h[:, :, :, i - 1].transpose(1, 2) if self.reference_ops else h[:, :, i - 1, :]  # [B, T, N]
            norm = getattr(self, f"norm{i}")
            if self.causal:
                hb = nn.functional.layer_norm(hb, (hb.shape[-1],), norm.weight, norm.bias, norm.eps)
            else:
                hb = norm(hb.transpose(1, 2)).transpose(1, 2)
            out = torch.tanh(getattr(self, f"fc1{i}")(hb))
            out = nn.functional.glu(getattr(self, f"fc2{i}")(out), dim=-1)
            out = out.reshape(out.shape[0], out.shape[1], w, 3, 2)
            if self.reference_ops:  # grow [B, T, f, 3, 2] one band at a time
                m = out if m is None else torch.cat((m, out), dim=2)
            else:
                outs.append(out)
        if self.reference_ops:
            return as_complex(m.transpose(1, 2))
        m = torch.cat(outs, dim=2).transpose(1, 2).contiguous()
        return as_complex(m)


def reference_fir(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The reference's own edge handling, written out frame by frame (needs T >= 2)."""
    mid = m[:, :, 1:-1, 0] * x[:, :, :-2] + m[:, :, 1:-1, 1] * x[:, :, 1:-1] + m[:, :, 1:-1, 2] * x[:, :, 2:]
    first = m[:, :, 0, 1] * x[:, :, 0] + m[:, :, 0, 2] * x[:, :, 1]
    last = m[:, :, -1, 0] * x[:, :, -2] + m[:, :, -1, 1] * x[:, :, -1]
    return torch.cat([first[:, :, None], mid, last[:, :, None]], dim=2)


class LoopBSRNN(nn.Module):
    """BSRNN computed the reference's way (per-band loops); same state dict as ``bandsplit.BSRNN``."""

    def __init__(self, num_channel: int = 128, num_layer: int = 6, band_widths: Sequence[int] | None = None,
                 *, interleaved: bool = False, causal: bool = False, reference_ops: bool = False):
        super().__init__()
        n = num_channel
        widths = list(BSRNN_BAND_WIDTHS if band_widths is None else band_widths)
        self.num_layer, self.interleaved, self.causal = num_layer, interleaved, causal
        self.reference_ops = reference_ops
        self.band_split = LoopBandSplit(widths, n, causal=causal, reference_ops=reference_ops)
        for i in range(1, num_layer + 1):
            setattr(self, f"norm_t{i}", nn.GroupNorm(1, n))
            setattr(self, f"lstm_t{i}", nn.LSTM(n, 2 * n, batch_first=True))
            setattr(self, f"fc_t{i}", nn.Linear(2 * n, n))
        for i in range(1, num_layer + 1):
            setattr(self, f"norm_k{i}", nn.GroupNorm(1, n))
            setattr(self, f"lstm_k{i}", nn.LSTM(n, 2 * n, batch_first=True, bidirectional=True))
            setattr(self, f"fc_k{i}", nn.Linear(4 * n, n))
        self.mask_decoder = LoopMaskDecoder(widths, n, causal=causal, reference_ops=reference_ops)

    def _norm(self, skip, norm):  # skip [B, N, T, K]
        if not self.causal:
            return norm(skip)
        per_frame = nn.functional.layer_norm(skip.permute(0, 2, 1, 3), skip.shape[1:2] + skip.shape[3:4],
                                             eps=norm.eps).permute(0, 2, 1, 3)
        return per_frame * norm.weight[:, None, None] + norm.bias[:, None, None]

    def _time(self, skip, i):
        b, n, t, k = skip.shape
        out = self._norm(skip, getattr(self, f"norm_t{i}")).transpose(1, 3).reshape(b * k, t, n)
        out, _ = getattr(self, f"lstm_t{i}")(out)
        out = getattr(self, f"fc_t{i}")(out)
        return skip + out.reshape(b, k, t, n).transpose(1, 3)

    def _band(self, skip, i):
        b, n, t, k = skip.shape
        out = self._norm(skip, getattr(self, f"norm_k{i}")).permute(0, 2, 3, 1).reshape(b * t, k, n)
        out, _ = getattr(self, f"lstm_k{i}")(out)
        out = getattr(self, f"fc_k{i}")(out).reshape(b, t, k, n).permute(0, 3, 1, 2)
        return skip + (out.contiguous() if self.reference_ops else out)

    def forward(self, x):  # complex [B, F, T] -> complex [B, F, T]
        z = self.band_split(x)
        skip = z.transpose(1, 2) if self.reference_ops else z.permute(0, 3, 1, 2)  # -> [B, N, T, K]
        layers = range(1, self.num_layer + 1)
        if self.interleaved:
            for i in layers:
                skip = self._band(self._time(skip, i), i)
        else:
            for i in layers:
                skip = self._time(skip, i)
            for i in layers:
                skip = self._band(skip, i)
        m = self.mask_decoder(skip if self.reference_ops else skip.permute(0, 2, 3, 1))  # [B, F, T, 3]
        if x.shape[-1] == 1:  # the reference cannot run T = 1; zero padding gives M1 * X
            return m[..., 1] * x
        return reference_fir(m, x)
