"""ERBUNet (601 bins) and ERBUNet257 (257-bin redesign): shapes for any T, exact skip alignment, bounded mask,
learned (not random) position information, depth-indexed differential attention, batch
independence, a tiny overfit, and the parameter table."""

from __future__ import annotations

import pytest
import torch

from bandsplit.erb_adapter import ERBUNetAdapter
from bandsplit.erb_unet import ERB_UNET_FULL_SIZE, ERBUNet, ERBUNet257, _freq_sizes
from bandsplit.stft import SpectrogramTransform

SMALL = dict(base_channels=4, depth=2, d_model=32, transformer_layers=2, num_heads=2)


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_level_sizes_and_channels():
    m = ERBUNet()
    assert m.num_bins == 601 and m.freq_sizes == (601, 301, 151, 76, 38)
    assert m.channels == (8, 8, 16, 16, 16)
    m257 = ERBUNet257()
    assert m257.freq_sizes == (257, 129, 65, 33, 17)
    assert m257.enc_hag[0].group_bin_edges == (0, 11, 37, 101, 257)  # ERB groups recomputed for 257 bins
    assert m.enc_hag[0].group_bin_edges == (0, 25, 86, 235, 601)
    assert m.enc_hag[2].bin_stride == 4 and m.enc_hag[2].group_bin_edges == (0, 7, 22, 59, 151)


@pytest.mark.parametrize("b,t", [(1, 1), (2, 7), (3, 64)])
def test_erbunet_shapes_any_T(b, t):
    torch.manual_seed(0)
    m = ERBUNet()
    x = torch.randn(b, 2, 601, t)
    y = m(x)
    assert y.shape == x.shape and y.dtype == x.dtype and bool(torch.isfinite(y).all())


@pytest.mark.parametrize("b,t", [(1, 1), (2, 7), (3, 64)])
def test_erbunet257_complex_io(b, t):
    torch.manual_seed(0)
    m = ERBUNet257()
    x = torch.randn(b, 257, t, dtype=torch.complex64)
    with torch.no_grad():
        y = m(x)
        y64 = m.double()(x.to(torch.complex128))
    assert y.shape == x.shape and y.dtype == torch.complex64 and bool(torch.isfinite(y.abs()).all())
    assert y64.dtype == torch.complex128
    assert torch.allclose(y64.to(torch.complex64), y, atol=1e-4 * float(y.abs().max()))


@pytest.mark.parametrize("n_fft", [1200, 1198, 512, 510, 16])
def test_skip_alignment_exact_for_odd_and_even_sizes(n_fft):
    """An impulse at bin 2j goes down to bin j and comes back up at bin 2j, at every level."""
    m = ERBUNet(n_fft=n_fft, hop=n_fft // 4, depth=3, base_channels=2, d_model=8, num_heads=1,
                transformer_layers=1)
    sizes = m.freq_sizes
    assert list(sizes) == _freq_sizes(n_fft // 2 + 1, 3)
    for lv in range(3):
        down, up = m.enc_down[lv][0], m.dec_up[lv][0]
        with torch.no_grad():
            for conv in (down, up):
                conv.weight.zero_()
                conv.bias.zero_()
            down.weight[0, 0, 1, 1] = 1.0
            up.weight[0, 0, 1, 1] = 1.0
        f = sizes[lv]
        for j in {0, (f - 1) // 2, max(0, sizes[lv + 1] - 1)}:
            x = torch.zeros(1, down.in_channels, f, 3)
            x[0, 0, 2 * j, 1] = 1.0
            h = down(x)
            assert h.shape[2] == sizes[lv + 1] and h.shape[3] == 3
            assert h[0, 0].nonzero().tolist() == [[j, 1]]
            y = up(h)
            assert y.shape[2:] == (f, 3)  # exact size, no crop
            assert y[0, 0].nonzero().tolist() == [[2 * j, 1]]


def test_output_is_bounded_complex_mask_times_input():
    torch.manual_seed(1)
    m = ERBUNet257(**SMALL, mask_bound=1.5)
    with torch.no_grad():
        m.head.weight.normal_(0, 5.0)  # push the raw mask far out: the bound must still hold
    x = torch.randn(2, 257, 9, dtype=torch.complex64)
    ri = torch.view_as_real(x).permute(0, 3, 1, 2)
    with torch.no_grad():
        mask = m.mask(ri)
    mag = mask.square().sum(1).sqrt()
    assert float(mag.max()) <= 1.5 * (1 + 1e-6) and float(mag.max()) > 1.4  # saturates at the bound
    mc = torch.view_as_complex(mask.permute(0, 2, 3, 1).contiguous())
    assert torch.allclose(m(x), mc * x, atol=1e-5)


def test_no_random_buffers_and_learned_position():
    """No positional embedding as a random, unlearned buffer: every tensor in the state
    dict is a parameter (the STFT window is a non-persistent buffer) and position info is learned."""
    m = ERBUNet()
    params = {n for n, _ in m.named_parameters()}
    assert set(m.state_dict()) == params
    pos = m.bottleneck.pos.weight
    x = torch.randn(1, 2, 601, 5)
    m(x).square().mean().backward()
    assert pos.grad is not None and float(pos.grad.abs().sum()) > 0


def test_bottleneck_uses_depth_indexed_differential_attention():
    from diffattn import AdaptiveDifferentialAttention, DifferentialAttention, lambda_init_fn
    m = ERBUNet(transformer_layers=3)
    for i, layer in enumerate(m.bottleneck.layers):
        assert type(layer.attn) is DifferentialAttention
        assert layer.attn.depth == i and layer.attn.lambda_init == pytest.approx(lambda_init_fn(i))
        assert layer.attn.causal is False
    assert [round(lay.attn.lambda_init, 4) for lay in m.bottleneck.layers] == [0.2, 0.3555, 0.4707]
    ma = ERBUNet257(**SMALL, attention="adaptive")
    assert all(isinstance(lay.attn, AdaptiveDifferentialAttention) for lay in ma.bottleneck.layers)
    assert ma(torch.randn(1, 257, 11, dtype=torch.complex64)).shape == (1, 257, 11)


def test_batch_items_independent():
    torch.manual_seed(2)
    m = ERBUNet257(**SMALL)
    x = torch.randn(3, 257, 10, dtype=torch.complex64)
    y = m(x)
    for i in range(3):
        assert torch.allclose(m(x[i:i + 1]), y[i:i + 1], atol=1e-5)


def test_bad_input_rejected():
    m = ERBUNet257(**SMALL)
    with pytest.raises(ValueError, match="257"):
        m(torch.randn(1, 256, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="complex"):
        m(torch.randn(1, 257, 4))
    with pytest.raises(ValueError, match="ERBUNetAdapter"):
        ERBUNet(**SMALL)(torch.randn(1, 2, 257, 4))
    with pytest.raises(TypeError, match="fixes n_fft"):
        ERBUNet257(n_fft=1024)


@pytest.mark.parametrize("kind", ["erb-unet-257", "adapter"])
def test_tiny_overfit(kind):
    """A few Adam steps on one fixed (noisy, target) pair clearly reduce the L1 loss."""
    g = torch.Generator().manual_seed(0)
    stft = SpectrogramTransform(512, 128, 16000)
    w = torch.randn(2, 1920, generator=g)
    x = stft.stft(w)  # [2, 257, 16]
    target = stft.stft(0.5 * w + 0.3 * torch.randn(2, 1920, generator=g))
    torch.manual_seed(0)
    model = ERBUNet257(**SMALL) if kind == "erb-unet-257" else ERBUNetAdapter(ERBUNet(**SMALL))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = (model(x) - target).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


def test_parameter_table(capsys):
    rows = {
        "ERBUNet() 601 bins": _count(ERBUNet()),
        "ERBUNet257()": _count(ERBUNet257()),
        "ERBUNetAdapter(ERBUNet())": _count(ERBUNetAdapter(ERBUNet())),
        "ERBUNet(**ERB_UNET_FULL_SIZE)": _count(ERBUNet(**ERB_UNET_FULL_SIZE)),
    }
    with capsys.disabled():
        print("\nERB-UNet parameters")
        for k, v in rows.items():
            print(f"  {k:32s} {v:>12,d}")
    assert rows["ERBUNet() 601 bins"] == 395_258
    assert rows["ERBUNet257()"] == 325_250
    assert rows["ERBUNetAdapter(ERBUNet())"] == rows["ERBUNet() 601 bins"]  # the adapter adds none
    assert rows["ERBUNet(**ERB_UNET_FULL_SIZE)"] == 16_981_402  # the design's "~15-20 M"
