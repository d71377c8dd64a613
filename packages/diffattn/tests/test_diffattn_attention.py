"""DifferentialAttention against a float64 transcription of the reference algorithm
(microsoft/unilm Diff-Transformer multihead_diffattn.py), written here independently."""

from __future__ import annotations

import math

import pytest
import torch

from diffattn import DifferentialAttention, lambda_init_fn


def _randomise(m: DifferentialAttention, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for prm in (m.lambda_q1, m.lambda_k1, m.lambda_q2, m.lambda_k2):
            prm.copy_(torch.randn(prm.shape, generator=g) * 0.3)
        m.subln.weight.copy_(1 + 0.2 * torch.randn(m.subln.weight.shape, generator=g))


def test_lambda_init_depth_is_zero_based():
    assert lambda_init_fn(0) == pytest.approx(0.2)
    assert lambda_init_fn(1) == pytest.approx(0.8 - 0.6 * math.exp(-0.3))
    assert lambda_init_fn(1000) == pytest.approx(0.8)
    assert DifferentialAttention(16, 2, depth=3).lambda_init == pytest.approx(0.8 - 0.6 * math.exp(-0.9))
    with pytest.raises(ValueError):
        lambda_init_fn(-1)


def test_shapes_params_and_reference_names():
    torch.manual_seed(0)
    m = DifferentialAttention(64, 4, depth=0)
    assert m.head_dim == 8
    names = {n: tuple(p.shape) for n, p in m.named_parameters()}
    assert names == {"q_proj.weight": (64, 64), "k_proj.weight": (64, 64), "v_proj.weight": (64, 64),
                     "out_proj.weight": (64, 64), "lambda_q1": (8,), "lambda_k1": (8,),
                     "lambda_q2": (8,), "lambda_k2": (8,), "subln.weight": (16,)}
    # same count as a plain 8-head transformer attention (4·dim², no bias) + 4d + 2d
    assert sum(p.numel() for p in m.parameters()) == 4 * 64 * 64 + 4 * 8 + 16
    # lambda vectors ~ N(0, 0.1²)
    big = DifferentialAttention(2048, 1, depth=0)
    assert big.lambda_q1.std().item() == pytest.approx(0.1, rel=0.1)
    with pytest.raises(ValueError, match="multiple"):
        DifferentialAttention(30, 4, depth=0)
    with pytest.raises(ValueError, match=r"\[\.\.\., L, 64\]"):
        m(torch.randn(2, 5, 32))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [1, 2, 7, 16, 33])
@pytest.mark.parametrize("impl", ["sdpa", "naive"])
def test_matches_float64_reference(causal, length, impl, reference_diffattn):
    torch.manual_seed(length)
    m = DifferentialAttention(32, 2, depth=2, causal=causal).double()
    _randomise(m, length)
    x = torch.randn(3, length, 32, dtype=torch.float64)
    y = m(x, impl=impl)
    ref = reference_diffattn(m, x, causal)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [5, 31, 64])
def test_fused_equals_naive_float32(causal, length, reference_diffattn):
    torch.manual_seed(1)
    m = DifferentialAttention(48, 3, depth=1, causal=causal)
    _randomise(m, 3)
    x = torch.randn(2, 3, length, 48)  # leading dims [B, K] are batch
    y_fused = m(x, impl="sdpa")
    y_naive = m(x, impl="naive")
    assert y_fused.shape == x.shape
    torch.testing.assert_close(y_fused, y_naive, rtol=1e-5, atol=1e-5)
    ref = reference_diffattn(m, x.reshape(6, length, 48), causal).reshape(x.shape)
    torch.testing.assert_close(y_fused.double(), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_rotary_matches_reference(causal, reference_diffattn):
    torch.manual_seed(2)
    m = DifferentialAttention(32, 2, depth=0, causal=causal, rotary=True).double()
    _randomise(m, 5)
    x = torch.randn(2, 13, 32, dtype=torch.float64)
    ref = reference_diffattn(m, x, causal, rotary=True)
    torch.testing.assert_close(m(x, impl="sdpa"), ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(m(x, impl="naive"), ref, rtol=1e-10, atol=1e-10)
    # rotary makes the layer position-aware: it no longer commutes with a permutation of T
    perm = torch.randperm(13)
    if not causal:
        assert not torch.allclose(m(x[:, perm]), m(x)[:, perm], atol=1e-6)
        plain = DifferentialAttention(32, 2, depth=0).double()
        torch.testing.assert_close(plain(x[:, perm]), plain(x)[:, perm])


def test_bool_mask_and_causal_combined(reference_diffattn):
    torch.manual_seed(3)
    m = DifferentialAttention(16, 1, depth=0, causal=True).double()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    mask = torch.rand(9, 9, generator=torch.Generator().manual_seed(0)) > 0.5
    mask |= torch.eye(9, dtype=torch.bool)
    ref = reference_diffattn(m, x, causal=True, attn_mask=mask)
    torch.testing.assert_close(m(x, attn_mask=mask, impl="sdpa"), ref)
    torch.testing.assert_close(m(x, attn_mask=mask, impl="naive"), ref)


def test_analysis_maps():
    torch.manual_seed(4)
    m = DifferentialAttention(32, 2, depth=4, causal=True)
    x = torch.randn(2, 3, 11, 32)
    y, an = m(x, return_analysis=True)
    torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)
    assert an["attn1"].shape == (2, 3, 2, 11, 11)
    torch.testing.assert_close(an["attn1"].sum(-1), torch.ones(2, 3, 2, 11))
    torch.testing.assert_close(an["attn2"].sum(-1), torch.ones(2, 3, 2, 11))
    # differential map rows sum to 1 − λ; causal => upper triangle is exactly zero
    torch.testing.assert_close(an["diff"].sum(-1), (1 - an["lambda"]).expand(2, 3, 2, 11))
    assert torch.all(an["diff"].triu(1) == 0)
    assert an["lambda_init"] == pytest.approx(lambda_init_fn(4))
    with pytest.raises(ValueError, match="explicit maps"):
        m(x, return_analysis=True, impl="sdpa")


@pytest.mark.parametrize("impl", ["sdpa", "naive"])
@pytest.mark.parametrize("causal", [False, True])
def test_gradcheck(impl, causal):
    torch.manual_seed(5)
    m = DifferentialAttention(8, 1, depth=1, causal=causal, rotary=True).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: m(t, impl=impl), (x,), fast_mode=True)
    # parameters (λ vectors included) receive gradients
    m(x, impl=impl).square().sum().backward()
    for n, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n


def test_reference_formula_not_convex_mix():
    """λ>0 subtracts the second map: output differs from the single-map attention."""
    torch.manual_seed(6)
    m = DifferentialAttention(16, 1, depth=0).double()
    with torch.no_grad():  # λ = e^{0.5·8·0.25}·... > 1: more than A1's mass is subtracted somewhere
        m.lambda_q1.fill_(0.5), m.lambda_k1.fill_(0.5), m.lambda_q2.zero_()
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    _, an = m(x, return_analysis=True)
    assert an["lambda"].item() == pytest.approx(math.exp(2.0) - 1.0 + 0.2)
    assert torch.any(an["diff"] < 0)  # a convex mix of two softmax maps is never negative
