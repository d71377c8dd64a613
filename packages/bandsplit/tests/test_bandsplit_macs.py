"""MAC counting: hand-computed counts for small layers, the recurrent and attention formulas the
flop counter lacks, and per-second counts of whole models."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bandsplit
from bandsplit import BSRNN, BSRNN_BAND_WIDTHS, SpectrogramTransform, count_macs, op_macs

K = len(BSRNN_BAND_WIDTHS)


def test_linear_and_conv_by_hand() -> None:
    model = nn.Sequential(nn.Conv2d(2, 4, (3, 5), padding=(1, 2)), nn.Flatten(), nn.Linear(4 * 8 * 6, 10))
    macs = op_macs(model, torch.randn(3, 2, 8, 6))
    conv = 3 * (8 * 6) * 4 * 2 * (3 * 5)        # batch · output positions · C_out · C_in · taps
    linear = 3 * (4 * 8 * 6) * 10
    assert macs == {"aten.convolution": conv, "aten.addmm": linear}
    # a transposed convolution: every input position scatters C_out · C_in · taps products
    up = op_macs(nn.ConvTranspose1d(3, 5, 4, stride=2), torch.randn(2, 3, 7))
    assert sum(up.values()) == 2 * 7 * 5 * 3 * 4


def test_lstm_is_counted() -> None:
    lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True, bidirectional=True)
    x = torch.randn(2, 5, 8)
    tokens = 2 * 5
    # per layer and direction: 4 gates · H · (I + H) per token; layer 2's input is both directions
    expected = tokens * 2 * (4 * 16 * (8 + 16)) + tokens * 2 * (4 * 16 * (32 + 16))
    assert sum(op_macs(lstm, x).values()) == expected
    # the native float64 path decomposes into matrix products that the counter prices itself
    assert sum(op_macs(lstm.double(), x.double()).values()) == expected


def test_fused_attention_is_counted() -> None:
    q, k, v = torch.randn(2, 4, 10, 8), torch.randn(2, 4, 12, 8), torch.randn(2, 4, 12, 6)
    assert sum(op_macs(F.scaled_dot_product_attention, q, k, v).values()) == 2 * 4 * 10 * 12 * (8 + 6)


class _Tiny(nn.Module):
    """Per bin and frame a Linear(2, 3) on (re, im): 6 MACs per bin and frame."""

    def __init__(self) -> None:
        super().__init__()
        self.stft, self.sample_rate = SpectrogramTransform(), 16000
        self.fc = nn.Linear(2, 3, bias=False)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.view_as_real(spec))


@pytest.mark.parametrize("seconds", [1.0, 2.5])
def test_count_macs_per_second(seconds: float) -> None:
    m = _Tiny().train()
    c = count_macs(m, seconds)
    frames = int(seconds * 16000) // 128 + 1
    assert c.frames == frames and c.macs == 257 * frames * 6
    assert c.per_second == pytest.approx(257 * frames * 6 / seconds)
    assert m.training                                  # the mode is restored
    with pytest.raises(TypeError, match="op_macs"):
        count_macs(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="n_fft"):
        count_macs(m, 0.01)


def test_bsrnn_count_includes_its_lstms() -> None:
    n = 8
    c = count_macs(BSRNN(num_channel=n, num_layer=1), 1.0)
    t = c.frames
    lstm = K * t * (4 * 2 * n * (n + 2 * n)) * 3          # time LSTM(N, 2N) + both directions over bands
    fc = K * t * (2 * n * n + 4 * n * n)                   # Linear(2N, N) and Linear(4N, N) after the LSTMs
    assert c.by_op["aten.mkldnn_rnn_layer"] == lstm      # CPU float32: the oneDNN kernel, priced here
    assert c.by_op["aten.mm"] == fc
    # the band layers' batched matmuls: at least the per-band products, at most every band padded
    # to the widest (17 bins) as the packed kernels do
    band_split = sum(t * 2 * w * n for w in BSRNN_BAND_WIDTHS)
    decoder = sum(t * (n * 4 * n + 4 * n * 12 * w) for w in BSRNN_BAND_WIDTHS)
    padded = K * t * (2 * 17 * n + n * 4 * n + 4 * n * 12 * 17)
    assert band_split + decoder <= c.by_op["aten.baddbmm"] <= padded
    assert c.by_op["aten.baddbmm"] < 1.1 * (band_split + decoder)
    assert c.macs == sum(c.by_op.values())


def test_differential_attention_is_counted_in_its_explicit_form() -> None:
    cfg = {"name": "bsdt", "num_channel": 16, "num_layer": 1, "num_heads": 2}
    diff = bandsplit.build_model(cfg)
    std = bandsplit.build_model({**cfg, "attention": "standard"})
    explicit, fused = count_macs(diff), count_macs(diff, explicit_attention=False)
    # explicit: 2H maps of size d and (A1 - λA2)V = 4·H·T²·d, as a standard attention with 2H heads
    assert explicit.macs == count_macs(std).macs
    # the fused path pads q/k to 2d and applies both maps to V: 8·H·T²·d for the temporal attention
    # (T frames, B·K sequences) and for the inter-band attention (K bands, B·T sequences)
    t, d, h = explicit.frames, 16 // 4, 2
    extra = K * (4 * h * t * t * d) + t * (4 * h * K * K * d)
    assert fused.macs - explicit.macs == extra
    assert all(m.impl == "auto" for m in diff.modules() if hasattr(m, "impl"))   # restored


def test_model_counts_are_positive_and_grow_with_size() -> None:
    small = count_macs(bandsplit.build_model(preset="bsdt-demo"))
    wide = count_macs(bandsplit.build_model({"name": "bsdt", "num_channel": 64, "num_layer": 2, "num_heads": 2}))
    assert 0 < small.macs < wide.macs
    # attention is quadratic in T: per-second MACs grow with the duration counted
    assert count_macs(bandsplit.build_model(preset="bsdt-demo"), 4.0).per_second > small.per_second
    # an LSTM model's count is linear in T (up to the + 1 frame)
    r1 = count_macs(bandsplit.build_model(preset="bsrnn-demo"), 1.0)
    r4 = count_macs(bandsplit.build_model(preset="bsrnn-demo"), 4.0)
    assert r4.macs / r1.macs == pytest.approx(r4.frames / r1.frames)


def test_cudnn_rnn_formula() -> None:
    """The cuDNN stack's formula (no GPU here): a 2-layer bidirectional LSTM's weight list."""
    from bandsplit.macs import _cudnn_rnn_flops

    lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True, bidirectional=True)
    shapes = [tuple(w.shape) for w in lstm._flat_weights]        # w_ih, w_hh, b_ih, b_hh per layer and direction
    flops = _cudnn_rnn_flops((2, 5, 8), shapes)
    assert flops // 2 == sum(op_macs(lstm, torch.randn(2, 5, 8)).values())
