"""AdaptiveDifferentialAttention and the attention statistics that drive its gate."""

from __future__ import annotations

import math

import pytest
import torch

from diffattn import (
    STAT_NAMES,
    AdaptiveDifferentialAttention,
    DifferentialAttention,
    combine_masks,
    differential_maps,
    differential_row_stats,
    row_stats_from_maps,
)


def _set_gate_bias(m: AdaptiveDifferentialAttention, bias: float) -> None:
    """Make every scale's gate the constant sigmoid(bias)."""
    with torch.no_grad():
        m.gate.mlp.biases[-1].fill_(bias)


# -- statistics ------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [1, 2, 9, 40])
def test_fused_stats_match_explicit_maps(causal, length):
    g = torch.Generator().manual_seed(length)
    q = 2 * torch.randn(2, 4, length, 8, dtype=torch.float64, generator=g)
    k = 2 * torch.randn(2, 4, length, 8, dtype=torch.float64, generator=g)
    lam = torch.tensor(0.9, dtype=torch.float64)
    a1, a2 = differential_maps(q, k, scale=0.35, causal=causal)
    valid = combine_masks(None, causal, length, length, q.device)
    ref = row_stats_from_maps(a1, a2, lam, valid)
    got = differential_row_stats(q, k, lam, scale=0.35, causal=causal)
    assert got.shape == (2, 2, length, 8)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    got32 = differential_row_stats(q.float(), k.float(), lam.float(), scale=0.35, causal=causal)
    torch.testing.assert_close(got32.double(), ref, rtol=1e-4, atol=1e-4)


def test_fused_stats_memory_is_linear():
    """No T×T tensor: at T = 3000 the three SDPA calls see only [N, h, T+1, <=2d+1] tensors."""
    import torch.nn.functional as F
    seen = []
    orig = F.scaled_dot_product_attention

    def spy(q, k, v, *a, **kw):
        seen.append((q.ndim, tuple(q.shape), tuple(v.shape)))
        return orig(q, k, v, *a, **kw)

    F.scaled_dot_product_attention = spy
    try:
        q = torch.randn(1, 2, 3000, 4)
        differential_row_stats(q, q.flip(2), 0.5, scale=0.5, causal=True)
    finally:
        F.scaled_dot_product_attention = orig
    assert len(seen) == 3
    for nd, qs, vs in seen:  # 4-D with equal q/v widths: what the CPU flash kernel requires
        assert nd == 4 and qs[2] == 3001 and qs[-1] == vs[-1] <= 2 * 4 + 1


def test_stats_known_values():
    L, lam = 10, 0.3
    idx = torch.arange(L, dtype=torch.float64)
    # zero queries -> uniform rows: entropy 1, cv 0, overlap 1, energy share |1−λ|, centroid mid
    q = torch.zeros(1, 2, L, 4, dtype=torch.float64)
    k = torch.randn(1, 2, L, 4, dtype=torch.float64)
    st = differential_row_stats(q, k, lam, scale=1.0)[0, 0]  # [L, 8]
    exp = torch.tensor([1, 1, 0, 0, 1, 1 - lam, 0, 0], dtype=torch.float64).repeat(L, 1)
    exp[:, 6] = exp[:, 7] = torch.asinh((L - 1) / 2 - idx)
    torch.testing.assert_close(st, exp, atol=2e-6, rtol=0)
    # causal uniform: row i averages keys 0..i (centroid i/2); row 0 has entropy/cv 0
    st = differential_row_stats(q, k, 1.5, scale=1.0, causal=True)[0, 0]
    torch.testing.assert_close(st[1:, 0], torch.ones(L - 1, dtype=torch.float64))
    assert st[0, 0] == 0 and st[0, 2] == 0
    torch.testing.assert_close(st[:, 6], torch.asinh(-idx / 2))
    torch.testing.assert_close(st[:, 5], torch.full((L,), 0.5, dtype=torch.float64))
    # one-hot maps: map 1 on key i, map 2 on key i+1 (mod L): entropy 0, cv 1, overlap 0,
    # energy share √(1+λ²), offsets 0 and +1 (or −(L−1) for the last row)
    eye = torch.eye(L, dtype=torch.float64)
    q1 = torch.stack([eye, eye], 0)[None] * 60
    k1 = torch.stack([eye, eye.roll(1, 0)], 0)[None]
    st = differential_row_stats(q1, k1, lam, scale=1.0)[0, 0]
    torch.testing.assert_close(st[:, :5], torch.tensor([0, 0, 1, 1, 0.0], dtype=torch.float64).expand(L, 5),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(st[:, 5], torch.full((L,), (1 + lam ** 2) ** 0.5, dtype=torch.float64))
    off2 = torch.ones(L, dtype=torch.float64)
    off2[-1] = -(L - 1)
    torch.testing.assert_close(st[:, 6], torch.zeros(L, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(st[:, 7], torch.asinh(off2), atol=1e-9, rtol=0)
    assert STAT_NAMES == ("entropy1", "entropy2", "cv1", "cv2", "overlap", "diff_energy",
                          "offset1", "offset2")


def test_stats_are_not_the_row_mean():
    """A softmax row's mean is the constant 1/L; the gate's statistics vary with the input."""
    torch.manual_seed(0)
    m = AdaptiveDifferentialAttention(16, 1, depth=0)
    x = 3 * torch.randn(4, 12, 16)
    _, an = m(x, return_analysis=True)
    torch.testing.assert_close(an["attn1"].mean(-1), torch.full((4, 1, 12), 1 / 12))
    assert torch.all(an["stats"].flatten(0, -2).std(0) > 1e-3)  # every statistic varies


# -- the adaptive layer -------------------------------------------------------------------------

@pytest.mark.parametrize("impl", ["sdpa", "naive"])
@pytest.mark.parametrize("causal", [False, True])
def test_init_equals_differential_attention(impl, causal):
    torch.manual_seed(1)
    m = AdaptiveDifferentialAttention(32, 2, depth=3, causal=causal, rotary=True)
    plain = DifferentialAttention(32, 2, depth=3, causal=causal, rotary=True)
    missing = plain.load_state_dict(m.state_dict(), strict=False)
    assert not missing.missing_keys
    x = torch.randn(2, 15, 32)
    torch.testing.assert_close(m(x, impl=impl), plain(x, impl=impl), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["sdpa", "naive"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("bias", [-3.0, 0.0, 2.5])
def test_gate_scales_lambda(reference_diffattn, impl, causal, bias):
    """A constant gate g gives exactly differential attention with λ_eff = 2gλ."""
    torch.manual_seed(2)
    m = AdaptiveDifferentialAttention(16, 2, depth=1, causal=causal).double()
    _set_gate_bias(m, bias)
    x = torch.randn(3, 9, 16, dtype=torch.float64)
    lam = m.lambda_full().detach()
    lam_eff = 2 * torch.sigmoid(torch.tensor(bias, dtype=torch.float64)) * lam
    ref = reference_diffattn(m, x, causal, lam_override=lam_eff)
    torch.testing.assert_close(m(x, impl=impl), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [1, 4, 13, 40])
def test_fused_equals_naive_and_analysis(causal, length):
    torch.manual_seed(3)
    m = AdaptiveDifferentialAttention(24, 2, depth=0, causal=causal, num_bands=3)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():  # a non-trivial, input-dependent (unsaturated) gate
        for w in m.gate.mlp.weights:
            w.copy_(0.5 * torch.randn(w.shape, generator=g))
    x = torch.randn(2, 3, length, 24)
    y_fused = m(x, impl="sdpa")
    y, div, an = m(x, return_diversity_loss=True, return_analysis=True)
    torch.testing.assert_close(y_fused, y, rtol=1e-5, atol=1e-5)
    H = 2
    assert an["attn1"].shape == (2, 3, H, length, length)
    assert an["gate"].shape == (2, 3, H, length) and an["stats"].shape == (2, 3, H, length, 8)
    assert an["scale_gates"].shape == (3, 2, 3, H, length)
    assert an["band_scale_weights"].shape == (2, 3, 3)
    torch.testing.assert_close(an["band_scale_weights"].sum(-1), torch.ones(2, 3))
    torch.testing.assert_close(an["lambda_eff"], 2 * an["gate"] * an["lambda"])
    # the fused map is a difference: rows sum to 1 − λ_eff (a convex mix would sum to 1)
    torch.testing.assert_close(an["diff"].sum(-1), 1 - an["lambda_eff"], rtol=1e-5, atol=1e-5)
    if length > 1:
        assert an["gate"].std() > 1e-3  # the gate really depends on the statistics
    assert 0 <= float(div.detach()) <= 1
    with pytest.raises(ValueError, match=r"\[B, 3, T, 24\]"):
        m(torch.randn(2, 4, length, 24))


@pytest.mark.parametrize("impl", ["sdpa", "naive"])
def test_gradcheck_with_live_stats(impl):
    torch.manual_seed(5)
    m = AdaptiveDifferentialAttention(8, 1, depth=0, windows=(1, 2), detach_stats=False).double()
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for w in m.gate.mlp.weights:
            w.copy_(torch.randn(w.shape, generator=g, dtype=torch.float64))
    x = torch.randn(1, 6, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: m(t, impl=impl), (x,), fast_mode=True)


def test_gradients_reach_gate_and_lambda():
    torch.manual_seed(7)
    m = AdaptiveDifferentialAttention(16, 2, depth=2, num_bands=4)
    x = torch.randn(2, 4, 10, 16)
    y, div = m(x, return_diversity_loss=True)
    (y.square().mean() + 0.1 * div).backward()
    named = dict(m.named_parameters())
    assert "gate.scale_logits" not in named  # per-band weights replace the global ones (DDP: no unused params)
    for n in ("lambda_q1", "lambda_k2", "band_gate.net.0.weight", "gate.mlp.weights.2",
              "band_gate.band_embedding", "q_proj.weight"):
        assert named[n].grad is not None, n
    # the last gate layer starts at zero, so only it (and λ, projections) move first
    assert named["gate.mlp.weights.2"].grad.abs().sum() > 0
    assert named["lambda_q1"].grad.abs().sum() > 0
    assert math.isfinite(float(div.detach()))
