"""SmallUNet: size, interface shared with NCSN++, bf16 autocast, conditioning hooks."""

from __future__ import annotations

import pytest
import torch

from sgmse_cfg import BackboneCond, SmallUNet, count_parameters


def _randomised(seed: int = 0) -> SmallUNet:
    torch.manual_seed(seed)
    m = SmallUNet()
    with torch.no_grad():
        for blk in list(m.down_blocks) + list(m.up_blocks) + [m.mid]:
            torch.nn.init.normal_(blk.conv1.weight, std=0.05)  # zero-initialised by default
        torch.nn.init.normal_(m.conv_out.weight, std=0.05)
    return m.eval()


def _inputs(B=2, Fq=64, T=32):
    g = torch.Generator().manual_seed(1)
    return (torch.randn(B, 2, Fq, T, dtype=torch.complex64, generator=g) * 0.3,
            torch.rand(B, generator=g) * 0.9 + 0.05)


def test_size_and_interface():
    m = SmallUNet()
    assert count_parameters(m) == 733_618 < 1_000_000
    assert m.downsampling_factor == 8 and m.default_output_scaling == "sigma"
    x, t = _inputs()
    out = m(x, t)
    assert out.shape == (2, 1, 64, 32) and out.dtype == torch.complex64
    assert torch.count_nonzero(out) == 0  # zero-initialised output layer: score 0 at init
    out256 = m(torch.zeros(1, 2, 256, 64, dtype=torch.complex64), torch.tensor([0.5]))
    assert out256.shape == (1, 1, 256, 64)


def test_bf16_autocast_output_is_complex64_and_close(fp32_and_bf16):
    ref, out = fp32_and_bf16(_randomised(), *_inputs())
    assert out.dtype == torch.complex64
    rel = ((out - ref).abs().max() / ref.abs().max()).item()
    assert 1e-5 < rel < 0.05


def test_batch_independence_and_time_dependence():
    m = _randomised()
    x, t = _inputs(B=3)
    with torch.no_grad():
        out = m(x, t)
        assert torch.allclose(out[2:], m(x[2:], t[2:]), atol=1e-5)
        assert (m(x, t * 0.5) - out).abs().max() > 1e-4


def test_conditioning_hooks():
    m = _randomised()
    x, t = _inputs()
    emb = torch.randn(2, 1, 64, 1)
    with torch.no_grad():
        assert torch.equal(m(x, t, BackboneCond(input_add=emb)), m(x + emb, t))
        base = m(x, t)
        shift = m(x, t, BackboneCond(temb_shift=torch.ones(2, m.temb_dim)))
        assert (shift - base).abs().max() > 1e-4
    with pytest.raises(ValueError, match="cross-attention"):
        m(x, t, BackboneCond(context=torch.zeros(2, 3, 4)))


def test_bad_inputs():
    m = SmallUNet()
    x, t = _inputs()
    with pytest.raises(ValueError, match="multiples of 8"):
        m(x[..., :30], t)
    with pytest.raises(ValueError, match="complex"):
        m(x.real, t)
