"""ERB-spaced frequency groups and the harmonic-aware grouped convolution of the "Net2" ERB-UNet.

The ERB-rate scale (Glasberg & Moore 1990, natural-log form)::

    erb_rate(f) = 9.265 * ln(1 + f / 228.8455)        # f in Hz, result in ERB units ("Cams")

(228.8455 = 24.7 * 9.265, so one ERB at 0 Hz is 24.7 Hz; erb_rate(1 kHz) = 15.57.)
The frequency axis 0 .. Nyquist is cut into ``num_groups`` groups whose edges are equally spaced
in ERB-rate. At 16 kHz with 4 groups the edges are 0, 331.5, 1143.4, 3131.5, 8000 Hz, i.e.
bins ``[0, 25, 86, 235, 601]`` of a 1200-point STFT and ``[0, 11, 37, 101, 257]`` of a
512-point one. Group membership is decided from the *real* bin frequencies
``k * bin_stride * sample_rate / n_fft`` (so a frequency-downsampled grid inside a U-Net gets its
own, correct groups), never from bin indices scaled by a guessed ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_ERB_SCALE = 9.265
_ERB_BREAK_HZ = 228.8455  # = 24.7 * 9.265

#: Default (frequency, time) kernel per ERB group, lowest group first; see HarmonicAwareGroupedConv.
#: where a grid's soft masks come from: its own bins' frequencies ("none"), or the input grid's
#: masks resized by nearest-neighbour or (bi)linear interpolation
MaskResize = Literal["none", "nearest", "bilinear"]

DEFAULT_GROUP_KERNELS: tuple[tuple[int, int], ...] = ((7, 3), (5, 3), (3, 3), (3, 3))


def erb_rate(f_hz: Tensor | float) -> Tensor:
    """ERB-rate (ERB units) of frequencies in Hz: ``9.265 * ln(1 + f / 228.8455)``."""
    f = torch.as_tensor(f_hz, dtype=torch.float64)
    return _ERB_SCALE * torch.log1p(f / _ERB_BREAK_HZ)


def erb_rate_to_hz(erb: Tensor | float) -> Tensor:
    """Inverse of :func:`erb_rate`: Hz of an ERB-rate value."""
    e = torch.as_tensor(erb, dtype=torch.float64)
    return _ERB_BREAK_HZ * torch.expm1(e / _ERB_SCALE)


def _check_grid(num_freq_bins: int, sample_rate: int, n_fft: int, bin_stride: int) -> None:
    if sample_rate <= 0 or n_fft <= 0 or bin_stride <= 0 or num_freq_bins <= 0:
        raise ValueError(f"need positive num_freq_bins, sample_rate (Hz), n_fft and bin_stride; got "
                         f"num_freq_bins={num_freq_bins}, sample_rate={sample_rate}, n_fft={n_fft}, "
                         f"bin_stride={bin_stride}")
    if (num_freq_bins - 1) * bin_stride > n_fft // 2:
        raise ValueError(
            f"{num_freq_bins} bins with bin_stride {bin_stride} reach bin {(num_freq_bins - 1) * bin_stride} "
            f"of an n_fft={n_fft} STFT, beyond Nyquist (bin {n_fft // 2}); a one-sided spectrum has "
            f"n_fft // 2 + 1 = {n_fft // 2 + 1} bins (at bin_stride 1).")


def bin_frequencies_hz(num_freq_bins: int, sample_rate: int, n_fft: int, bin_stride: int = 1) -> Tensor:
    """Centre frequency (Hz, float64 ``[F]``) of each bin: ``k * bin_stride * sample_rate / n_fft``.

    ``bin_stride`` = 2**l for a grid downsampled l times by stride-2 convolutions (output bin j sits
    on input bin 2j).
    """
    _check_grid(num_freq_bins, sample_rate, n_fft, bin_stride)
    return torch.arange(num_freq_bins, dtype=torch.float64) * (bin_stride * sample_rate / n_fft)


def erb_group_edges_hz(sample_rate: int, num_groups: int = 4) -> Tensor:
    """``num_groups + 1`` group edges in Hz (float64), equally spaced in ERB-rate from 0 to Nyquist."""
    if num_groups < 1:
        raise ValueError(f"num_groups must be >= 1, got {num_groups}")
    top = erb_rate(sample_rate / 2.0)
    return erb_rate_to_hz(torch.linspace(0.0, 1.0, num_groups + 1, dtype=torch.float64) * top)


def erb_group_bin_edges(num_freq_bins: int, sample_rate: int, n_fft: int, num_groups: int = 4,
                        bin_stride: int = 1) -> tuple[int, ...]:
    """Bin boundaries ``(0, b1, ..., num_freq_bins)`` of the ERB groups (group g = bins ``[b_g, b_g+1)``).

    A bin belongs to the group whose Hz interval ``[edge_g, edge_g+1)`` holds its frequency; the last
    group also takes Nyquist. On coarse grids a group can be empty (``b_g == b_g+1``).
    """
    freqs = bin_frequencies_hz(num_freq_bins, sample_rate, n_fft, bin_stride)
    edges = erb_group_edges_hz(sample_rate, num_groups)
    inner = torch.searchsorted(freqs, edges[1:-1], side="left").tolist()
    return (0, *[int(b) for b in inner], num_freq_bins)


def erb_group_mask_logits(num_freq_bins: int, sample_rate: int, n_fft: int, num_groups: int = 4,
                          bin_stride: int = 1, overlap: float = 0.5, logit: float = 4.0) -> Tensor:
    """Initial per-bin mask logits ``[G, F]`` (float32) for the soft ERB groups.

    Group g is ``+logit`` (sigmoid ~ 0.98 at 4.0) for bins whose ERB-rate lies in
    ``[(g - overlap) * d, (g + 1 + overlap) * d)`` with ``d`` the ERB width of one group, i.e. its own
    group plus ``overlap`` (50 %) of a group width into each neighbour (equal widths in ERB-rate, so
    the overlap is symmetric on the auditory scale); ``-logit`` (~ 0.02) elsewhere.
    """
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1) (fraction of a group width), got {overlap}")
    e = erb_rate(bin_frequencies_hz(num_freq_bins, sample_rate, n_fft, bin_stride))
    d = erb_rate(sample_rate / 2.0) / num_groups
    g = torch.arange(num_groups, dtype=torch.float64)[:, None]
    lo, hi = (g - overlap) * d, (g + 1 + overlap) * d
    inside = (e[None, :] >= lo) & (e[None, :] < hi)
    inside[-1] |= e >= lo[-1]  # everything above the top group's start (incl. Nyquist) is in it
    return torch.where(inside, logit, -logit).to(torch.float32)


class HarmonicAwareGroupedConv(nn.Module):
    """Sum over ERB groups of ``Conv2d_g(sigmoid(mask_g) * x)``: ``[B, C_in, F, T] -> [B, C_out, F, T]``.

    The frequency axis (F bins at ``bin_stride * sample_rate / n_fft`` Hz spacing) is split into
    ``num_groups`` ERB-spaced groups (see :func:`erb_group_bin_edges`). Each group has

    * a learnable soft frequency mask ``sigmoid(logit_g[f])`` (one logit per bin and group,
      initialised ~1 on the group's bins and 50 % of a group width (in ERB-rate) into each
      neighbour, ~0 elsewhere: :func:`erb_group_mask_logits`), and
    * its own ``Conv2d(C_in, C_out, kernel_g)`` with 'same' padding (odd kernels only, stride 1, so
      the output keeps F bins and T frames for any T >= 1).

    Kernel choice (default :data:`DEFAULT_GROUP_KERNELS` = (7,3), (5,3), (3,3), (3,3) as
    (frequency, time)): below ~1.1 kHz harmonics of voiced speech are resolved, spaced by F0
    (80-250 Hz, i.e. 6-19 bins of a 1200-point STFT at 16 kHz), so the two low groups get wider
    frequency kernels that see neighbouring partials; above, harmonics are unresolved within an ERB
    and the envelope is smooth, so 3x3 suffices. Time context is 3 frames everywhere (the U-Net
    and the bottleneck supply longer context).

    Compute: the four convolutions run in a loop over the 4 groups (not bins or frames); each covers
    the full band because its mask is learnable everywhere, so the cost is
    ``C_in * C_out * sum(kf * kt)`` MACs per time-frequency bin (54 taps for the defaults).
    """

    def __init__(self, in_ch: int, out_ch: int, num_freq_bins: int, sample_rate: int, n_fft: int,
                 num_groups: int = 4, kernels: Sequence[tuple[int, int]] = DEFAULT_GROUP_KERNELS,
                 bin_stride: int = 1, bias: bool = True, mask_init_logit: float = 4.0,
                 overlap: float = 0.5, mask_resize: MaskResize = "none") -> None:
        super().__init__()
        if mask_resize not in ("none", "nearest", "bilinear"):
            raise ValueError(f"mask_resize must be 'none', 'nearest' or 'bilinear', got {mask_resize!r}")
        kernels = [tuple(int(v) for v in k) for k in kernels]
        if len(kernels) != num_groups:
            raise ValueError(f"need one (freq, time) kernel per group: {num_groups} groups, "
                             f"{len(kernels)} kernels {kernels}")
        for k in kernels:
            if len(k) != 2 or min(k) < 1 or k[0] % 2 == 0 or k[1] % 2 == 0:
                raise ValueError(
                    f"kernel {k} must be (freq, time) with odd positive sizes: 'same' padding of an even "
                    f"kernel shifts the output by half a bin/frame (even kernels return T+1 "
                    f"frames); use e.g. (3, 3), (5, 3), (7, 3)")
        self.in_ch, self.out_ch, self.num_groups = int(in_ch), int(out_ch), int(num_groups)
        self.num_freq_bins, self.sample_rate, self.n_fft = int(num_freq_bins), int(sample_rate), int(n_fft)
        self.bin_stride = int(bin_stride)
        self.kernels = tuple(kernels)
        self.group_bin_edges = erb_group_bin_edges(num_freq_bins, sample_rate, n_fft, num_groups, bin_stride)
        self.mask_resize = mask_resize
        # "none": one logit per bin of this grid, placed at the bins' real frequencies; otherwise
        # the logits live on the full-resolution input grid (n_fft // 2 + 1 bins) and the masks are
        # resized to this grid, as the ERB-UNet research code did inside its U-Net
        grid_bins, grid_stride = (num_freq_bins, bin_stride) if mask_resize == "none" else (n_fft // 2 + 1, 1)
        self.mask_logits = nn.Parameter(erb_group_mask_logits(
            grid_bins, sample_rate, n_fft, num_groups, grid_stride, overlap, mask_init_logit))
        self.convs = nn.ModuleList(
            nn.Conv2d(in_ch, out_ch, k, padding=(k[0] // 2, k[1] // 2), bias=bias) for k in kernels)

    def masks(self) -> Tensor:
        """Soft group masks ``[G, F]`` in (0, 1) (resized from the input grid with ``mask_resize``:
        ``F.interpolate`` nearest, or linear with ``align_corners=False``, what a bilinear resize of
        a ``[G, F_in, 1]`` map does along frequency)."""
        m = torch.sigmoid(self.mask_logits)
        if self.mask_resize == "none" or m.shape[-1] == self.num_freq_bins:
            return m
        mode = "nearest" if self.mask_resize == "nearest" else "linear"
        kw = {} if mode == "nearest" else {"align_corners": False}
        return F.interpolate(m[None], size=self.num_freq_bins, mode=mode, **kw)[0]

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_ch or x.shape[2] != self.num_freq_bins:
            raise ValueError(f"expected [B, {self.in_ch}, {self.num_freq_bins}, T] (channels, bins), "
                             f"got {list(x.shape)}")
        m = self.masks().to(x.dtype)  # [G, F]
        out = None
        for g, conv in enumerate(self.convs):  # 4 groups: one conv each (different kernel sizes)
            y = conv(x * m[g, :, None])
            out = y if out is None else out + y
        assert out is not None
        return out

    def extra_repr(self) -> str:
        hz = self.bin_stride * self.sample_rate / self.n_fft
        edges_hz = [round(b * hz) for b in self.group_bin_edges[:-1]]
        return (f"in_ch={self.in_ch}, out_ch={self.out_ch}, bins={self.num_freq_bins} "
                f"(stride {self.bin_stride}, "
                f"{self.sample_rate} Hz, n_fft {self.n_fft}), group_bins={self.group_bin_edges} "
                + (f"masks resized ({self.mask_resize}) from {self.n_fft // 2 + 1} bins, "
                   if self.mask_resize != "none" else "") +
                f"(starting at {edges_hz} Hz), kernels={self.kernels}")
