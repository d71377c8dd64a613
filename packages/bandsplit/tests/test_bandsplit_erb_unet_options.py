"""ERB-UNet options: plain convolution, standard attention, the alpha / scale-weight analysis, the
801-bin ("Net1") variant behind the adapter, and config round trips through a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from bandsplit import (
    CHECKPOINT_FORMAT,
    ERBUNet,
    ERBUNet257,
    ERBUNetAdapter,
    HarmonicAwareGroupedConv,
    build_model,
    load_model,
)
from diffattn import ScaleDiversityLoss

SMALL: dict[str, Any] = {"base_channels": 4, "depth": 3, "d_model": 32, "transformer_layers": 2, "num_heads": 2}


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _spec(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(b, 257, t, dtype=torch.complex64, generator=torch.Generator().manual_seed(seed))


def test_plain_conv_replaces_every_erb_grouped_conv() -> None:
    torch.manual_seed(0)
    erb, plain = ERBUNet257(), ERBUNet257(conv="plain")
    assert all(isinstance(c, HarmonicAwareGroupedConv) for c in [*erb.enc_hag, *erb.dec_hag])
    assert all(type(c) is torch.nn.Conv2d and c.kernel_size == (7, 3) for c in [*plain.enc_hag, *plain.dec_hag])
    # default sizes: channels 8, 8, 16, 16 on 257, 129, 65, 33 bins; the encoder's first conv takes 2
    levels = [(2, 8, 257), (8, 8, 129), (16, 16, 65), (16, 16, 33)] + [(8, 8, 257), (8, 8, 129), (16, 16, 65),
                                                                      (16, 16, 33)]
    # ERB conv: 4 kernels with 7·3 + 5·3 + 3·3 + 3·3 = 54 taps, 4 biases, 4 mask logits per bin;
    # plain conv: one 7 x 3 kernel (21 taps) and one bias
    diff = sum(ci * co * (54 - 21) + 3 * co + 4 * f for ci, co, f in levels)
    assert _params(erb) - _params(plain) == diff
    assert not any("mask_logits" in n for n, _ in plain.named_parameters())
    x = _spec(2, 9)
    y, an = plain(x, return_analysis=True)
    assert y.shape == x.shape and an["conv"] == "plain" and "erb_masks_enc" not in an
    (y.abs().mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in plain.parameters())
    _, an_erb = erb(x, return_analysis=True)
    assert [tuple(m.shape) for m in an_erb["erb_masks_enc"]] == [(4, 257), (4, 129), (4, 65), (4, 33)]
    with pytest.raises(ValueError, match="conv must be"):
        ERBUNet257(conv="dilated")


def test_standard_attention_bottleneck_has_no_lambda() -> None:
    diff, std = ERBUNet257(), ERBUNet257(attention="standard")
    d = 96 // (2 * 4)                      # d_model 96, 4 differential heads
    assert _params(diff) - _params(std) == 2 * 6 * d
    assert not any("lambda" in n or "subln" in n for n, _ in std.named_parameters())
    y, an = std(_spec(1, 7), return_analysis=True)
    assert y.shape == (1, 257, 7) and "lambda" not in an and "alpha" not in an
    _, an_d = diff(_spec(1, 7), return_analysis=True)
    assert an_d["lambda"].shape == (2,) and "alpha" not in an_d


def test_adaptive_analysis_gives_alpha_and_scale_weights() -> None:
    torch.manual_seed(0)
    m = ERBUNet257(attention="adaptive", **SMALL)
    with torch.no_grad():   # gates that depend on the input (their last layer starts at zero: alpha = 0.5)
        for layer in m.bottleneck.layers:
            layer.attn.gate.mlp.weights[-1].normal_(0, 0.5)
            layer.attn.gate.scale_logits.copy_(torch.tensor([0.5, 0.0, -0.5]))
    x = _spec(2, 13)
    y_plain = m(x)
    y, an = m(x, return_analysis=True)
    torch.testing.assert_close(y, y_plain, rtol=1e-4, atol=1e-5)
    a = an["alpha"]
    assert a.shape == (2, 2, 2, 13) and ((a > 0) & (a < 1)).all() and a.std() > 1e-3
    torch.testing.assert_close(an["lambda_eff"], 2 * a * an["lambda"][:, None, None, None])
    assert an["scale_weights"].shape == (2, 3) and an["windows"] == (2, 4, 8)
    torch.testing.assert_close(an["scale_weights"][0], torch.softmax(torch.tensor([0.5, 0.0, -0.5]), 0))
    sg = an["scale_gates"]
    assert sg.shape == (2, 3, 2, 2, 13) and sg.requires_grad
    div, _ = ScaleDiversityLoss()(sg)
    div.backward()
    w = m.bottleneck.layers[0].attn.gate.mlp.weights[0]
    assert w.grad is not None and float(w.grad.abs().sum()) > 0
    # alpha follows the input
    _, an2 = m(_spec(2, 13, seed=5), return_analysis=True)
    assert not torch.allclose(an2["alpha"], a)


def test_801_bin_variant_behind_the_adapter() -> None:
    torch.manual_seed(0)
    m = build_model({"name": "erb-unet-801", **SMALL})
    assert isinstance(m, ERBUNetAdapter) and isinstance(m.net, ERBUNet)
    assert (m.net.n_fft, m.net.hop, m.net.num_bins) == (1600, 100, 801)
    assert m.net.freq_sizes == (801, 401, 201, 101)
    assert m.stft.to_dict() == {"sample_rate": 16000, "n_fft": 512, "hop_length": 128, "window": "hann"}
    assert m.sample_rate == 16000
    torch.manual_seed(0)
    same = build_model({"name": "erb-unet", "n_fft": 1600, "hop": 100, **SMALL})
    assert _params(same) == _params(m)
    torch.manual_seed(0)
    net601 = build_model({"name": "erb-unet", **SMALL})
    assert net601.net.num_bins == 601 and _params(net601) != _params(m)
    x = _spec(2, 20)
    with torch.no_grad():
        y = m.eval()(x)
        torch.testing.assert_close(y, same.eval()(x), rtol=0, atol=0)
        assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(torch.view_as_real(y)).all()
        # the analysis is in the net's frames: 512 + 128·19 = 2944 samples -> 2944 // 100 + 1 frames
        _, an = m(x, return_analysis=True)
    assert an["lambda"].shape == (2,) and an["erb_masks_enc"][0].shape == (4, 801)
    with pytest.raises(ValueError, match="n_fft 1600 / hop 100"):
        build_model({"name": "erb-unet-801", "n_fft": 1200})
    assert build_model({"name": "erb-unet-801", "hop": 100, "base_channels": 2, "depth": 1,
                        "d_model": 8, "transformer_layers": 1, "num_heads": 1}).net.hop == 100


def test_adapter_passes_the_nets_analysis_in_its_frames() -> None:
    torch.manual_seed(0)
    m = build_model({"name": "erb-unet", "attention": "adaptive", **SMALL}).eval()
    assert m.supports_analysis
    with torch.no_grad():
        y, an = m(_spec(1, 20), return_analysis=True)
    assert y.shape == (1, 257, 20)
    assert an["alpha"].shape == (2, 1, 2, 2944 // 100 + 1)


CONFIGS: dict[str, dict[str, Any]] = {
    "801 bins": {"name": "erb-unet-801", **SMALL},
    "601 bins, plain conv": {"name": "erb-unet", "conv": "plain", **SMALL},
    "257 bins, standard attention": {"name": "erb-unet-257", "attention": "standard", **SMALL},
    "257 bins, adaptive, plain conv": {"name": "erb-unet-257", "attention": "adaptive", "conv": "plain", **SMALL},
    "Net1 (nearest masks, pooled skips)": {"name": "erb-unet-801", "mask_resize": "nearest",
                                           "skip_align": "adaptive_pool", **SMALL},
    "Net2 (bilinear masks, cut skips)": {"name": "erb-unet", "mask_resize": "bilinear", "skip_align": "truncate",
                                         **SMALL},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_configs_round_trip_through_a_checkpoint(name: str, tmp_path: Path) -> None:
    cfg = CONFIGS[name]
    torch.manual_seed(0)
    model = build_model(cfg)
    assert model.config == cfg
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "best.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "tool": "train_bsdt", "model_config": dict(model.config),
                "sample_rate": 16000, "stft": {"n_fft": 512, "hop": 128}, "model": model.state_dict()}, path)
    loaded = load_model(path)
    assert loaded.config == cfg and type(loaded) is type(model)
    x = _spec(1, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------- research variants
@pytest.mark.parametrize("skip_align", ["adaptive_pool", "truncate"])
@pytest.mark.parametrize("n_fft", [1600, 1198, 16])
def test_research_skip_alignments_meet_every_skip(skip_align: str, n_fft: int) -> None:
    """Net1 / Net2 decoders: 2F - 1 bins pooled up, or 2F bins cut, to the skip's count at odd and
    even sizes; the result is the stated operation on the transposed conv's output."""
    torch.manual_seed(0)
    m = ERBUNet(n_fft=n_fft, hop=max(1, n_fft // 16), depth=3, base_channels=2, d_model=8, num_heads=1,
                transformer_layers=1, skip_align=skip_align)
    sizes = m.freq_sizes
    for lv in range(3):
        h = torch.randn(1, m.channels[lv + 1], sizes[lv + 1], 5, dtype=torch.float64)
        up = m.dec_up[lv].double()(h)
        assert up.shape[2] == 2 * sizes[lv + 1] - (1 if skip_align == "adaptive_pool" else 0)
        out = m._align(up, sizes[lv])
        assert out.shape[2:] == (sizes[lv], 5)
        if skip_align == "truncate":
            assert torch.equal(out, up[:, :, :sizes[lv]])
        else:  # adaptive average pooling from F_in to F_out bins: window [floor(i F_in / F_out), ceil((i+1) F_in / F_out))
            f_in, f_out = up.shape[2], sizes[lv]
            want = torch.stack([up[:, :, (i * f_in) // f_out:-((-(i + 1) * f_in) // f_out)].mean(2)
                                for i in range(f_out)], dim=2)
            assert torch.allclose(out, want, rtol=0, atol=1e-12)
    spec = 0.1 * torch.randn(2, 2, n_fft // 2 + 1, 7, generator=torch.Generator().manual_seed(1))
    assert m.double()(spec.double()).shape == spec.shape


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_research_mask_resize_from_the_input_grid(mode: str) -> None:
    """Masks live on the input grid (801 bins for Net1) and are resized to each level: nearest
    samples input bin floor(j * 801 / F_l), linear interpolates with align_corners=False; the
    top level is the input grid itself."""
    torch.manual_seed(0)
    m = ERBUNet(n_fft=1600, hop=100, depth=3, base_channels=2, d_model=8, num_heads=1, transformer_layers=1,
                mask_resize=mode)
    full = torch.sigmoid(m.enc_hag[0].mask_logits.detach()).double()
    assert full.shape == (4, 801)
    for lv, conv in enumerate(m.enc_hag):
        assert conv.mask_logits.shape == (4, 801)
        got = conv.masks().detach().double()
        f = m.freq_sizes[lv]
        assert got.shape == (4, f)
        if lv == 0:
            assert torch.equal(got, full)
        elif mode == "nearest":
            idx = (torch.arange(f, dtype=torch.float64) * (801 / f)).floor().long()
            assert torch.equal(got, full[:, idx])
        else:
            pos = ((torch.arange(f, dtype=torch.float64) + 0.5) * (801 / f) - 0.5).clamp(min=0)
            lo = pos.floor().long().clamp(max=800)
            hi = (lo + 1).clamp(max=800)
            w = pos - lo
            assert torch.allclose(got, full[:, lo] * (1 - w) + full[:, hi] * w, atol=1e-6)  # float32 resize
    # the masks stay learnable through the resize
    x = torch.randn(1, 2, 801, 4)
    m(x).square().sum().backward()
    assert all(c.mask_logits.grad is not None and c.mask_logits.grad.abs().sum() > 0 for c in m.enc_hag)


def test_research_variants_build_from_a_config_and_bad_options_are_refused() -> None:
    torch.manual_seed(0)
    cfg = {"name": "erb-unet-801", **SMALL, "mask_resize": "nearest", "skip_align": "adaptive_pool"}
    model = build_model(cfg)
    net = model.net
    assert (net.mask_resize, net.skip_align, net.num_bins) == ("nearest", "adaptive_pool", 801)
    with pytest.raises(ValueError, match="skip_align"):
        ERBUNet(skip_align="crop")
    with pytest.raises(ValueError, match="mask_resize"):
        ERBUNet(mask_resize="cubic")
    with pytest.raises(ValueError, match="has no masks"):
        ERBUNet(conv="plain", mask_resize="nearest")
