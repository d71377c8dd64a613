"""ERBUNetAdapter (601-bin net on 257-bin complex I/O): exact through the waveform, T frames in and out, gradients flow."""

from __future__ import annotations

import math

import pytest
import se_data
import torch
from torch import Tensor, nn

from bandsplit.erb_adapter import ERBUNetAdapter, _frame_support_inverse
from bandsplit.erb_unet import ERBUNet
from bandsplit.stft import SampleRateMismatchError, SpectrogramTransform

SMALL = dict(base_channels=4, depth=2, d_model=32, transformer_layers=1, num_heads=2)


class _Identity(nn.Module):
    """A 'net' at 1200/100 that returns its input."""

    n_fft, hop, sample_rate = 1200, 100, 16000

    def forward(self, x: Tensor) -> Tensor:
        return x


class _Gain(_Identity):
    def forward(self, x: Tensor) -> Tensor:
        return 0.5 * x


def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).abs().norm() / b.abs().norm())


def _signals(dtype: torch.dtype) -> list[Tensor]:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000, dtype=torch.float64) / 16000
    tone = (torch.sin(2 * math.pi * 220 * t) + 0.3 * torch.sin(2 * math.pi * 3000 * t))[None]
    noise = [torch.randn(2, n, generator=g, dtype=torch.float64).to(dtype) for n in (16000, 16127, 1000, 300)]
    return [*noise, tone.to(dtype)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identity_net_reproduces_consistent_spectrogram(dtype):
    stft = SpectrogramTransform(512, 128, 16000)
    adapter = ERBUNetAdapter(_Identity())
    for x in _signals(dtype):
        spec = stft.stft(x)
        out = adapter(spec)
        assert out.shape == spec.shape and out.dtype == spec.dtype
        assert _rel(out, spec) < 1e-5, (x.shape, _rel(out, spec))


def test_gain_net_scales_spectrogram():
    """A net that halves its input halves the 257-bin spectrogram (up to the tiny unseen edge part)."""
    stft = SpectrogramTransform(512, 128, 16000)
    spec = stft.stft(_signals(torch.float64)[0])
    out = ERBUNetAdapter(_Gain())(spec)
    edge = out[..., [0, -1]] - 0.5 * spec[..., [0, -1]]
    assert float(edge.abs().norm() / spec[..., [0, -1]].abs().norm()) < 1e-2  # the unseen part, x 0.5
    interior = slice(1, -1)  # only frames 0 and T-1 hold the outermost samples of the support
    assert _rel(out[..., interior], 0.5 * spec[..., interior]) < 1e-10


def test_support_inverse_recovers_padded_signal():
    """Inner samples of the frames' support come back exactly (the reflect padding included)."""
    stft = SpectrogramTransform(512, 128, 16000)
    x = torch.randn(1, 4000, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    spec = stft.stft(x)
    z = _frame_support_inverse(spec, 512, 128, stft.window.double(), floor=1e-3 * 1.5)
    padded = torch.nn.functional.pad(x[:, None], (256, 256), mode="reflect")[:, 0]
    assert z.shape[1] == 512 + 128 * (spec.shape[-1] - 1)
    assert torch.allclose(z[:, 64:4000], padded[:, 64:4000], atol=1e-10)


@pytest.mark.parametrize("t", [1, 2, 7, 64])
def test_any_T_with_real_net(t):
    torch.manual_seed(0)
    adapter = ERBUNetAdapter(ERBUNet(**SMALL))
    spec = torch.randn(2, 257, t, dtype=torch.complex64)
    out = adapter(spec)
    assert out.shape == (2, 257, t) and out.dtype == torch.complex64
    assert bool(torch.isfinite(out.abs()).all())
    # no blow-up even for a spectrogram that is no STFT of any signal
    assert out.abs().norm() < 3 * spec.abs().norm()


def test_identity_exact_even_for_inconsistent_input():
    spec = torch.randn(3, 257, 11, dtype=torch.complex128, generator=torch.Generator().manual_seed(4))
    assert _rel(ERBUNetAdapter(_Identity())(spec), spec) < 1e-10


def test_gradients_flow_to_net_and_input():
    torch.manual_seed(0)
    adapter = ERBUNetAdapter(ERBUNet(**SMALL))
    stft = SpectrogramTransform(512, 128, 16000)
    spec = stft.stft(torch.randn(2, 3000)).detach().requires_grad_(True)
    adapter(spec).abs().mean().backward()
    grads = [p.grad for p in adapter.parameters()]
    assert all(g is not None and bool(torch.isfinite(g).all()) for g in grads)
    nonzero = sum(bool(g.abs().sum() > 0) for g in grads)
    assert nonzero == len(grads)
    assert spec.grad is not None and bool(torch.isfinite(spec.grad.abs()).all())
    assert float(spec.grad.abs().sum()) > 0


def test_rejects_mismatched_rate_and_shape():
    with pytest.raises(se_data.SampleRateError) as info:   # the toolkit's one rate-error family
        ERBUNetAdapter(_Identity(), sample_rate=48000)
    assert isinstance(info.value, SampleRateMismatchError)
    assert "16000 Hz" in str(info.value) and "48000 Hz" in str(info.value)
    assert se_data.resample_hint(16000) in str(info.value)
    adapter = ERBUNetAdapter(_Identity())
    assert adapter.stft is adapter.io and adapter.stft.to_dict()["hop_length"] == 128 and adapter.num_freqs == 257
    with pytest.raises(ValueError, match="257"):
        adapter(torch.randn(1, 601, 5, dtype=torch.complex64))
    with pytest.raises(ValueError, match="complex"):
        adapter(torch.randn(1, 257, 5))
    with pytest.raises(TypeError, match="n_fft"):
        ERBUNetAdapter(nn.Identity())
