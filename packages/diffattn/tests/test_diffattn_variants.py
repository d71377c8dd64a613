"""Standard attention, per-band (batched) attention and the scale-diversity loss."""

from __future__ import annotations

import math

import pytest
import torch

from diffattn import (
    BandwiseAttention,
    DifferentialAttention,
    LearnableBandGraph,
    ScaleDiversityLoss,
    StandardAttention,
    make_inter_band,
    scale_diversity_loss,
)


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- standard attention
def test_standard_attention_matches_a_float64_transcription() -> None:
    torch.manual_seed(0)
    m = StandardAttention(16, 4).double()
    x = torch.randn(3, 9, 16, dtype=torch.float64)
    p = {n: t.detach() for n, t in m.named_parameters()}
    q, k, v = ((x @ p[f"{n}_proj.weight"].T).view(3, 9, 4, 4).transpose(1, 2) for n in "qkv")
    a = torch.softmax(q @ k.transpose(-1, -2) / 2.0, -1)           # d = 4, √d = 2
    ref = (a @ v).transpose(1, 2).reshape(3, 9, 16) @ p["out_proj.weight"].T
    torch.testing.assert_close(m(x), ref)
    y, an = m(x, return_analysis=True)
    torch.testing.assert_close(y, ref)
    torch.testing.assert_close(an["attn"], a)
    # causal: the output at t does not depend on later frames
    mc = StandardAttention(16, 4, causal=True).double()
    x2 = x.clone()
    x2[:, 5:] += 1.0
    torch.testing.assert_close(mc(x)[:, :5], mc(x2)[:, :5])
    assert not torch.allclose(mc(x)[:, 5:], mc(x2)[:, 5:])


def test_standard_attention_has_the_paper_baseline_size() -> None:
    dim, H = 32, 2
    diff, std = DifferentialAttention(dim, H, depth=0), StandardAttention(dim, 2 * H)
    d = dim // (2 * H)
    assert _params(std) == 4 * dim * dim
    assert _params(diff) - _params(std) == 6 * d                   # λ vectors 4d + per-head norm 2d
    assert std.head_dim == diff.head_dim
    assert not any("lambda" in n or "subln" in n for n, _ in std.named_parameters())


def test_inter_band_modules_take_standard_attention() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 31, 5, 16)
    m = make_inter_band("learned", 16, 2, 31, k=3, attention="standard")
    assert isinstance(m, LearnableBandGraph) and isinstance(m.attn, StandardAttention)
    assert m.attn.num_heads == 4
    y, info = m(x, return_analysis=True)
    torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-6)
    assert info["attention"].shape == (4, 31, 31) and "lambda" not in info
    # the graph masks the standard map as it masks the differential maps
    assert torch.all(info["attention"][:, info["graph"] == 0] == 0)
    d = _params(make_inter_band("dense", 16, 2, 31)) - _params(make_inter_band("dense", 16, 2, 31,
                                                                              attention="standard"))
    assert d == 6 * (16 // 4)
    with pytest.raises(ValueError, match="attention"):
        make_inter_band("dense", 16, 2, 31, attention="linear")


# ---------------------------------------------------------------- per-band attention
@pytest.mark.parametrize("kind", ["differential", "standard"])
def test_bandwise_attention_is_k_independent_modules(kind: str) -> None:
    torch.manual_seed(0)
    K, dim, H = 3, 16, 2
    mods = ([DifferentialAttention(dim, H, depth=1) for _ in range(K)] if kind == "differential"
            else [StandardAttention(dim, 2 * H) for _ in range(K)])
    for m in mods:   # give λ and the norm gain band-specific non-trivial values
        for n, p in m.named_parameters():
            if "lambda" in n or "subln" in n:
                p.data.add_(0.2 * torch.randn_like(p))
    bw = BandwiseAttention.from_modules(mods).double()
    mods = [m.double() for m in mods]
    x = torch.randn(2, K, 7, dim, dtype=torch.float64)
    y = bw(x)
    for k in range(K):
        torch.testing.assert_close(y[:, k], mods[k](x[:, k]))
    # parameters: K times one module's
    assert _params(bw) == K * _params(mods[0])
    # the analysis path gives the same output
    y2, an = bw(x, return_analysis=True)
    torch.testing.assert_close(y2, y)
    if kind == "differential":
        assert an["diff"].shape == (2, K, H, 7, 7) and an["lambda"].shape == (K,)
        torch.testing.assert_close(bw.lambda_full().detach(), torch.stack([m.lambda_full() for m in mods]).detach())
    else:
        assert an["attn"].shape == (2, K, 2 * H, 7, 7)
        assert not any("lambda" in n for n, _ in bw.named_parameters())


def test_bandwise_attention_gradients_and_band_independence() -> None:
    torch.manual_seed(0)
    bw = BandwiseAttention(8, 2, 4, depth=0)
    x = torch.randn(2, 4, 6, 8, requires_grad=True)
    y = bw(x)
    # band 1's output depends on band 1's input only
    (gx,) = torch.autograd.grad(y[:, 1].sum(), x, retain_graph=True)
    assert float(gx[:, 1].abs().sum()) > 0
    assert float(gx[:, [0, 2, 3]].abs().sum()) == 0.0
    y.square().mean().backward()
    for n, p in bw.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
        # every band's slice of every parameter is trained
        assert (p.grad.flatten(1).abs().sum(1) > 0).all(), n
    with pytest.raises(ValueError, match=r"\[B, 4, T, 8\]"):
        bw(torch.randn(2, 3, 6, 8))


# ---------------------------------------------------------------- diversity loss
def test_diversity_loss_values() -> None:
    loss = ScaleDiversityLoss()
    t = torch.linspace(0, 2 * math.pi, 64)
    a, b = torch.sin(t), torch.cos(t)                              # uncorrelated over a period
    same = torch.stack([a, a])[None, :, None]                       # [L=1, S=2, N=1, T]
    assert float(loss(same)[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(loss(torch.stack([a, -a])[None, :, None])[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(loss(torch.stack([a, b])[None, :, None])[0]) == pytest.approx(0.0, abs=0.05)
    # two layers: the total is the mean of the per-layer values
    two = torch.stack([torch.stack([a, a]), torch.stack([a, b])])[:, :, None]
    total, terms = loss(two)
    assert terms["per_layer"].shape == (2,)
    assert float(total) == pytest.approx(float(terms["per_layer"].mean()))
    assert float(terms["per_layer"][0]) == pytest.approx(1.0, abs=1e-6)
    # positive gates with the same time course but different levels: Pearson sees it, and so does
    # the raw cosine; gates of different time courses but equal mean: only Pearson tells them apart
    g1, g2 = 0.5 + 0.1 * a, 0.5 + 0.1 * b
    pair = torch.stack([g1, g2])[None, :, None]
    assert float(loss(pair)[0]) < 0.05
    assert float(ScaleDiversityLoss(centred=False)(pair)[0]) > 0.9
    # equals diffattn.scale_diversity_loss (the gate's own helper) for one layer
    g = torch.rand(3, 2, 5, 20)
    torch.testing.assert_close(loss(g[None])[0], scale_diversity_loss(g), rtol=1e-5, atol=1e-6)
    # fewer than two scales: nothing to diversify
    assert float(loss(torch.rand(2, 1, 4, 9))[0]) == 0.0


def test_diversity_loss_gradient_decorrelates() -> None:
    torch.manual_seed(0)
    t = torch.linspace(0, 2 * math.pi, 50)
    g = torch.stack([torch.sin(t), torch.sin(t) + 0.3 * torch.cos(3 * t)])[None, :, None].clone().requires_grad_()
    opt = torch.optim.SGD([g], lr=5.0)
    first = None
    for _ in range(30):
        total, _ = ScaleDiversityLoss()(g)
        first = float(total.detach()) if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert first > 0.9 and float(ScaleDiversityLoss()(g)[0].detach()) < 0.5 * first
