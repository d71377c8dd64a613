"""ERB groups and HarmonicAwareGroupedConv: edges against an independent computation and known values,
odd 'same' kernels, soft masks in (0, 1) and learnable."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bandsplit.erb_conv import (
    HarmonicAwareGroupedConv,
    erb_group_bin_edges,
    erb_group_edges_hz,
    erb_group_mask_logits,
    erb_rate,
    erb_rate_to_hz,
)


def _reference_groups(num_bins: int, sr: int, n_fft: int, groups: int, stride: int = 1) -> list[int]:
    """Group index of each bin, computed bin by bin in the ERB domain (independent of the module)."""
    top = 9.265 * math.log(1 + (sr / 2) / 228.8455)
    out = []
    for k in range(num_bins):
        e = 9.265 * math.log(1 + k * stride * sr / n_fft / 228.8455)
        out.append(min(int(math.floor(e / (top / groups) + 1e-12)), groups - 1))
    return out


def test_erb_rate_known_values():
    assert float(erb_rate(0.0)) == 0.0
    # slope at 0 Hz is 1 / 24.7 ERB per Hz (one ERB = 24.7 Hz at DC)
    assert float(erb_rate(1e-6)) / 1e-6 == pytest.approx(1 / 24.7, rel=1e-6)
    assert float(erb_rate(1000.0)) == pytest.approx(15.5725, abs=1e-4)
    # Glasberg & Moore's log10 form 21.4 log10(1 + 0.00437 f) agrees within 0.5 % on 50 Hz..8 kHz
    f = torch.linspace(50, 8000, 50, dtype=torch.float64)
    gm = 21.4 * torch.log10(1 + 0.00437 * f)
    assert torch.allclose(erb_rate(f), gm, rtol=5e-3)
    assert torch.allclose(erb_rate_to_hz(erb_rate(f)), f, rtol=1e-12)


def test_group_edges_hz_16k():
    e = erb_group_edges_hz(16000, 4)
    assert e.tolist() == pytest.approx([0.0, 331.5460, 1143.4279, 3131.5452, 8000.0], abs=1e-3)
    d = torch.diff(erb_rate(e))
    assert torch.allclose(d, d[0].expand(4), rtol=1e-12)  # equal ERB widths


@pytest.mark.parametrize("n_fft,sr,expected", [(1200, 16000, (0, 25, 86, 235, 601)),
                                               (512, 16000, (0, 11, 37, 101, 257))])
def test_group_bin_edges_known(n_fft, sr, expected):
    edges = erb_group_bin_edges(n_fft // 2 + 1, sr, n_fft)
    assert edges == expected
    # the first bin of groups 1..3 is the first bin at or above the Hz edge
    hz = erb_group_edges_hz(sr, 4)
    for b, f in zip(edges[1:-1], hz[1:-1].tolist(), strict=True):
        assert (b - 1) * sr / n_fft < f <= b * sr / n_fft


@pytest.mark.parametrize("num_bins,sr,n_fft,stride", [(601, 16000, 1200, 1), (257, 16000, 512, 1),
                                                      (301, 16000, 1200, 2), (38, 16000, 1200, 16),
                                                      (17, 16000, 512, 16), (513, 48000, 1024, 1),
                                                      (201, 8000, 400, 1), (257, 16000, 512, 1)])
def test_group_bin_edges_match_reference(num_bins, sr, n_fft, stride):
    edges = erb_group_bin_edges(num_bins, sr, n_fft, 4, bin_stride=stride)
    assert edges[0] == 0 and edges[-1] == num_bins  # all bins covered
    assert all(a <= b for a, b in zip(edges, edges[1:]))  # monotone
    groups = np.repeat(np.arange(4), np.diff(edges))
    assert groups.tolist() == _reference_groups(num_bins, sr, n_fft, 4, stride)


def test_group_bin_edges_rejects_bins_beyond_nyquist():
    with pytest.raises(ValueError, match="beyond Nyquist"):
        erb_group_bin_edges(602, 16000, 1200)
    with pytest.raises(ValueError, match="beyond Nyquist"):
        erb_group_bin_edges(302, 16000, 1200, bin_stride=2)


def test_mask_init_core_overlap_and_outside():
    sr, n_fft = 16000, 1200
    m = torch.sigmoid(erb_group_mask_logits(601, sr, n_fft))
    assert m.shape == (4, 601)
    assert bool(((m > 0) & (m < 1)).all())
    e = erb_rate(torch.arange(601, dtype=torch.float64) * sr / n_fft)
    d = float(erb_rate(sr / 2)) / 4
    edges = erb_group_bin_edges(601, sr, n_fft)
    for g in range(4):
        core = m[g, edges[g]:edges[g + 1]]
        assert bool((core > 0.95).all()), g
        ext = (e >= (g - 0.5) * d) & (e < (g + 1.5) * d)
        assert bool((m[g][ext] > 0.95).all()) and bool((m[g][~ext] < 0.05).all())
        # the overlap reaches half a group (in ERB-rate) into each neighbour
        if g < 3:
            assert bool((m[g, edges[g + 1]:][e[edges[g + 1]:] < (g + 1.5) * d] > 0.95).all())
    # every bin is covered by its own group and at most by the two half-overlaps: 1..2 masks ~1
    on = (m > 0.5).sum(0)
    assert int(on.min()) >= 1 and int(on.max()) <= 2
    assert int((on == 2).sum()) > 300  # the overlaps are real


def test_conv_shapes_any_T_and_grid():
    torch.manual_seed(0)
    for num_bins, n_fft, stride in [(601, 1200, 1), (257, 512, 1), (38, 1200, 16)]:
        conv = HarmonicAwareGroupedConv(3, 5, num_bins, 16000, n_fft, bin_stride=stride)
        for b, t in [(1, 1), (2, 2), (3, 7)]:
            y = conv(torch.randn(b, 3, num_bins, t))
            assert y.shape == (b, 5, num_bins, t)


@pytest.mark.parametrize("kernels", [((7, 3), (5, 3), (3, 3), (3, 3)), ((9, 5), (5, 7), (3, 1), (1, 3))])
def test_conv_same_padding_no_shift(kernels):
    """Centre-tap kernels: the output equals sum_g mask_g * x exactly, i.e. 'same' and unshifted."""
    conv = HarmonicAwareGroupedConv(1, 1, 257, 16000, 512, kernels=kernels).double()
    with torch.no_grad():
        for c, (kf, kt) in zip(conv.convs, kernels, strict=True):
            c.weight.zero_()
            c.weight[0, 0, kf // 2, kt // 2] = 1.0
            c.bias.zero_()
    for t in (1, 4, 9):
        x = torch.randn(2, 1, 257, t, dtype=torch.float64)
        y = conv(x)
        assert y.shape == x.shape
        assert torch.allclose(y, x * conv.masks().sum(0)[:, None], atol=1e-12)


def test_conv_matches_per_group_reference():
    torch.manual_seed(1)
    conv = HarmonicAwareGroupedConv(2, 4, 601, 16000, 1200).double()
    with torch.no_grad():
        conv.mask_logits.normal_()
    x = torch.randn(2, 2, 601, 6, dtype=torch.float64)
    ref = torch.zeros(2, 4, 601, 6, dtype=torch.float64)
    for g, c in enumerate(conv.convs):
        kf, kt = c.kernel_size
        xm = x * torch.sigmoid(conv.mask_logits[g])[:, None]
        ref += F.conv2d(F.pad(xm, (kt // 2, kt // 2, kf // 2, kf // 2)), c.weight, c.bias)
    assert torch.allclose(conv(x), ref, atol=1e-12)


def test_even_kernel_rejected():
    with pytest.raises(ValueError, match="odd"):
        HarmonicAwareGroupedConv(1, 1, 257, 16000, 512, kernels=((4, 3), (3, 3), (3, 3), (3, 3)))
    with pytest.raises(ValueError, match="one .* kernel per group"):
        HarmonicAwareGroupedConv(1, 1, 257, 16000, 512, kernels=((3, 3),))


def test_masks_are_learnable():
    torch.manual_seed(2)
    conv = HarmonicAwareGroupedConv(2, 3, 257, 16000, 512)
    conv(torch.randn(2, 2, 257, 5)).square().mean().backward()
    g = conv.mask_logits.grad
    assert g is not None and g.shape == (4, 257)
    assert bool((g.abs().sum(1) > 0).all())  # every group's mask receives gradient
    opt = torch.optim.SGD(conv.parameters(), lr=10.0)
    before = conv.mask_logits.detach().clone()
    opt.step()
    assert not torch.equal(before, conv.mask_logits.detach())
