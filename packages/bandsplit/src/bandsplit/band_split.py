"""BandSplit: complex spectrum -> one N-dimensional feature per band and frame, all bands at once."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ._packed import PackedPerBandModule
from .bands import check_band_widths


def _gather(flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``pad(flat, (0, 1))[index]`` (index ``len(flat)`` reads 0) as one ``index_select``.

    Its backward is an ``index_add`` (one add per gathered value) rather than advanced
    indexing's accumulating ``index_put``, which sorts the indices first: about 0.8 ms per
    parameter on an H100, five of them per BSRNN step.
    """
    return nn.functional.pad(flat, (0, 1)).index_select(0, index.reshape(-1)).view(index.shape)


class BandSplit(PackedPerBandModule):
    """Per band: normalisation + linear projection of the band's real/imag values to N features.

    For band k of width w the band's values at frame t are the 2w reals
    ``[re(f0), im(f0), re(f0+1), im(f0+1), ...]``; they are normalised with the band's own
    statistics (``GroupNorm(1, 2w)`` over the band x time patch of each utterance, as BSRNN
    does; or over the band at each frame when ``causal=True``), scaled/shifted per value, and
    projected by the band's ``Linear(2w, N)``.

    All bands are computed together (padded to the widest band and batched), with no Python
    loop over bands. The state dict keeps the per-band layout ``norm{k}.weight [2w]``,
    ``norm{k}.bias [2w]``, ``fc{k}.weight [N, 2w]``, ``fc{k}.bias [N]`` (k from 1), i.e. the keys
    of the widely used BSRNN reimplementation's ``band_split``.

    Args:
        band_widths: widths of the contiguous bands in bins; they must sum to the input's
            number of bins (checked at construction when ``n_freq`` is given, always in forward).
        num_channel: N, the feature size per band.
        causal: per-frame statistics instead of statistics over the whole utterance.
        n_freq: optional number of bins the widths must sum to.
        eps: normalisation epsilon (GroupNorm's default 1e-5).

    Shapes: input complex ``[B, F, T]`` (or real ``[B, F, T, 2]``); output ``[B, T, K, N]``
    (K = number of bands). Note the reference module returns ``[B, T, N, K]``; the band-major,
    channels-last layout here is what the sequence models consume.
    """

    def __init__(self, band_widths: Sequence[int], num_channel: int, *, causal: bool = False,
                 n_freq: int | None = None, eps: float = 1e-5) -> None:
        super().__init__()
        widths = check_band_widths(band_widths, n_freq)
        self.band_widths = widths
        self.num_channel = int(num_channel)
        self.num_bands = len(widths)
        self.n_freq = sum(widths)
        self.causal = bool(causal)
        self.eps = float(eps)
        n = self.num_channel
        self._add_ragged("norm_weight", "norm{}.weight", [(2 * w,) for w in widths])
        self._add_ragged("norm_bias", "norm{}.bias", [(2 * w,) for w in widths])
        self._add_ragged("fc_weight", "fc{}.weight", [(n, 2 * w) for w in widths])
        self._add_ragged("fc_bias", "fc{}.bias", [(n,) for _ in widths])

        # Index maps for the padded layout [K, J] with J = 2 * max width; padding points at
        # one extra zero slot appended to the flattened input / parameters.
        k, jmax = self.num_bands, 2 * max(widths)
        starts = torch.tensor([0] + list(widths[:-1])).cumsum(0)                  # first bin
        j = torch.arange(jmax)
        width2 = torch.tensor(widths)[:, None] * 2                                 # [K, 1]
        valid = j[None, :] < width2                                                # [K, J]
        pad_in = 2 * self.n_freq
        in_idx = torch.where(valid, 2 * starts[:, None] + j[None, :], pad_in)
        self.register_buffer("_in_idx", in_idx, persistent=False)                  # [K, J]
        self.register_buffer("_valid", valid, persistent=False)
        # fc weight: flat chunks [N, 2w] row-major at each band's offset
        _, _, offs = self._ragged["fc_weight"]
        off = torch.tensor(offs[:-1])
        out_row = torch.arange(n)
        w_idx = off[:, None, None] + out_row[None, :, None] * width2[:, :, None] + j[None, None, :]
        w_idx = torch.where(valid[:, None, :], w_idx, offs[-1])                      # [K, N, J]
        self.register_buffer("_w_idx", w_idx, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BSRNN's init: norms weight 1 / bias 0; Linear weights xavier-uniform (gain 1), bias 0."""
        with torch.no_grad():
            self.norm_weight.fill_(1.0)
            self.norm_bias.zero_()
            self.fc_bias.zero_()
        n = self.num_channel
        self._uniform_per_band_("fc_weight", [math.sqrt(6.0 / (2 * w + n)) for w in self.band_widths])

    def extra_repr(self) -> str:
        return (f"num_bands={self.num_bands}, n_freq={self.n_freq}, num_channel={self.num_channel}, "
                f"causal={self.causal}")

    def padded_weight(self) -> torch.Tensor:
        """All bands' ``fc`` weights as ``[K, N, J]`` (J = 2 * widest band), zero-padded."""
        return _gather(self.fc_weight, self._w_idx)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: complex ``[B, F, T]`` or real ``[B, F, T, 2]`` -> features ``[B, T, K, N]``.

        ``mask``: optional bool ``[B, T]`` (``True`` = valid frame) for a padded batch: the
        whole-utterance statistics count each item's valid frames only (per-frame statistics
        need no mask)."""
        if x.is_complex():
            x = torch.view_as_real(x)
        if x.dim() != 4 or x.shape[-1] != 2:
            raise ValueError(f"BandSplit expects a complex [B, F, T] spectrum (or real [B, F, T, 2]), "
                             f"got shape {tuple(x.shape)}")
        b, f, t, _ = x.shape
        if f != self.n_freq:
            raise ValueError(f"input has {f} frequency bins but the band widths sum to {self.n_freq} "
                             f"(widths = {list(self.band_widths)})")
        flat = x.transpose(1, 2).reshape(b, t, 2 * f)                           # [B, T, 2F]
        flat = nn.functional.pad(flat, (0, 1))
        xb = flat[:, :, self._in_idx]                                            # [B, T, K, J]
        valid = self._valid.to(xb.dtype)                                         # [K, J]
        count = valid.sum(-1)                                                    # [K] = 2w
        if self.causal:   # statistics of each band at each frame
            mean = xb.sum(-1, keepdim=True) / count[:, None]
            cen = (xb - mean) * valid
            var = cen.square().sum(-1, keepdim=True) / count[:, None]
        elif mask is None:  # statistics of each band over the whole utterance
            mean = xb.sum((1, 3), keepdim=True) / (count[:, None] * t)
            cen = (xb - mean) * valid
            var = cen.square().sum((1, 3), keepdim=True) / (count[:, None] * t)
        else:             # ... over each item's valid frames
            m = mask.to(xb.dtype)[:, :, None, None]                             # [B, T, 1, 1]
            frames = m.sum(1, keepdim=True)                                      # [B, 1, 1, 1]
            mean = (xb * m).sum((1, 3), keepdim=True) / (count[:, None] * frames)
            cen = (xb - mean) * valid
            var = (cen * m).square().sum((1, 3), keepdim=True) / (count[:, None] * frames)
        # the norm's weight/bias are flat in (bin, re/im) order, like the input: same index map
        gamma = _gather(self.norm_weight, self._in_idx)                         # [K, J], 0 at pad
        beta = _gather(self.norm_bias, self._in_idx)
        xn = cen * torch.rsqrt(var + self.eps) * gamma + beta                    # [B, T, K, J]
        k, n = self.num_bands, self.num_channel
        out = torch.baddbmm(self.fc_bias.view(k, 1, n), xn.view(b * t, k, -1).transpose(0, 1),
                            self.padded_weight().transpose(1, 2))                   # [K, BT, N]
        return out.transpose(0, 1).contiguous().view(b, t, k, n)
