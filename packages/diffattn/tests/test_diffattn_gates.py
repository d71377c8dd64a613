"""MultiScaleDynamicFusionGate, FrequencyAdaptiveFusionGate and the scale-diversity loss."""

from __future__ import annotations

import pytest
import torch

from diffattn import (
    FrequencyAdaptiveFusionGate,
    MultiScaleDynamicFusionGate,
    odd_kernel,
    scale_diversity_loss,
    sliding_mean,
)

LENGTHS = [1, 2, 3, 7, 8, 13, 100]


def _loop_sliding_mean(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Reference: for each frame, the mean of the frames that exist within ±kernel//2."""
    t = x.shape[-2]
    r = kernel // 2
    rows = [x[..., max(0, i - r):min(t, i + r + 1), :].mean(-2) for i in range(t)]
    return torch.stack(rows, dim=-2)


def _perturb_last_layer(gate: MultiScaleDynamicFusionGate, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        gate.mlp.weights[-1].copy_(torch.randn(gate.mlp.weights[-1].shape, generator=g))
        gate.mlp.biases[-1].copy_(0.1 * torch.randn(gate.mlp.biases[-1].shape, generator=g))


def test_odd_kernels():
    assert [odd_kernel(w) for w in (1, 2, 3, 4, 8)] == [1, 3, 3, 5, 9]
    with pytest.raises(ValueError):
        odd_kernel(0)
    with pytest.raises(ValueError, match="odd"):
        sliding_mean(torch.zeros(1, 5, 2), 4)


@pytest.mark.parametrize("t", LENGTHS)
@pytest.mark.parametrize("kernel", [1, 3, 5, 9])
def test_sliding_mean_any_length(t, kernel):
    x = torch.randn(2, 3, t, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(t))
    y = sliding_mean(x, kernel)
    assert y.shape == x.shape  # no T+1, no truncation, for every T
    torch.testing.assert_close(y, _loop_sliding_mean(x, kernel))


@pytest.mark.parametrize("t", LENGTHS)
def test_multiscale_gate_shapes_and_values(t):
    torch.manual_seed(0)
    gate = MultiScaleDynamicFusionGate(8, windows=(2, 4, 8)).double()
    stats = torch.randn(2, 5, 3, t, 8, dtype=torch.float64)
    g = gate(stats)
    assert g.shape == (2, 5, 3, t)
    torch.testing.assert_close(g, torch.full_like(g, 0.5))  # zero-initialised last layer
    _perturb_last_layer(gate, 1)
    g, div, an = gate(stats, return_diversity_loss=True, return_analysis=True)
    assert g.shape == (2, 5, 3, t) and torch.isfinite(g).all()
    assert torch.all((g > 0) & (g < 1))
    assert an["kernels"] == (3, 5, 9)
    torch.testing.assert_close(an["scale_weights"].sum(-1), torch.ones(2, 5, 3, dtype=torch.float64))
    # the fused gate is the weighted sum of per-scale gates, each = sigmoid(MLP_s(pooled stats))
    sg = an["scale_gates"]
    assert sg.shape == (3, 2, 5, 3, t)
    for s, k in enumerate(an["kernels"]):
        h = sliding_mean(stats, k)
        for i, (w, b) in enumerate(zip(gate.mlp.weights, gate.mlp.biases)):
            h = h @ w[s] + b[s, 0]
            if i < len(gate.mlp.weights) - 1:
                h = torch.relu(h)
        torch.testing.assert_close(sg[s], torch.sigmoid(h[..., 0]))
    torch.testing.assert_close(g, torch.einsum("s...t,s->...t", sg, torch.softmax(gate.scale_logits, 0)))
    assert 0.0 <= float(div.detach()) <= 1.0


def test_multiscale_gate_external_weights_and_grads():
    torch.manual_seed(1)
    gate = MultiScaleDynamicFusionGate(6, windows=(1, 2, 4, 8))
    _perturb_last_layer(gate, 2)
    stats = torch.randn(3, 4, 11, 6)
    w = torch.softmax(torch.randn(3, 4, 4), -1)
    g, an = gate(stats, w, return_analysis=True)
    torch.testing.assert_close(g, torch.einsum("s...t,...s->...t", an["scale_gates"], w))
    # per-sequence weights broadcast over frames: only scale 0 -> the window-1 gate exactly
    one_hot = torch.tensor([1.0, 0, 0, 0]).expand(3, 4, 4)
    torch.testing.assert_close(gate(stats, one_hot), an["scale_gates"][0])
    with pytest.raises(ValueError, match="4 scales"):
        gate(stats, torch.ones(3, 4, 3) / 3)
    with pytest.raises(ValueError, match=r"\[\.\.\., T, 6\]"):
        gate(torch.randn(3, 11, 5))
    g, div = gate(stats, return_diversity_loss=True)
    (g.sum() + div).backward()
    assert gate.scale_logits.grad.abs().sum() > 0
    for prm in list(gate.mlp.weights) + list(gate.mlp.biases):
        assert prm.grad is not None and prm.grad.abs().sum() > 0


def test_diversity_loss_values():
    t = torch.arange(64, dtype=torch.float64)
    a = torch.sin(2 * torch.pi * t / 64)
    b = torch.cos(2 * torch.pi * t / 64)
    c = torch.sin(2 * torch.pi * 3 * t / 64)
    diverse = 0.5 + 0.4 * torch.stack([a, b, c])       # mutually orthogonal over time
    same = 0.5 + 0.4 * torch.stack([a, a, a])
    assert float(scale_diversity_loss(diverse)) < 1e-6
    assert float(scale_diversity_loss(same)) == pytest.approx(1.0, abs=1e-6)
    partial = 0.5 + 0.4 * torch.stack([a, (a + b) / 2 ** 0.5, b])  # corr 0.707, 0.707, 0
    assert float(scale_diversity_loss(partial)) == pytest.approx(2 * 0.5 ** 0.5 / 3, abs=1e-6)
    # batched gates [S, M, T] average over M; T = 1 and a single scale give 0
    batched = torch.stack([diverse, same], dim=1)
    assert float(scale_diversity_loss(batched)) == pytest.approx(0.5, abs=1e-6)
    assert float(scale_diversity_loss(torch.rand(3, 4, 1))) == 0.0
    assert float(scale_diversity_loss(torch.rand(1, 4, 9))) == 0.0
    # differentiable, finite gradient even for constant gates
    g = torch.full((3, 2, 9), 0.5, requires_grad=True)
    scale_diversity_loss(g).backward()
    assert torch.isfinite(g.grad).all()


@pytest.mark.parametrize("t", LENGTHS)
def test_frequency_adaptive_gate(t):
    torch.manual_seed(2)
    centres = [15.6, 93.75, 187.5, 750.0, 3000.0, 7750.0]
    gate = FrequencyAdaptiveFusionGate(8, num_bands=6, band_embed_dim=16, centres_hz=centres)
    assert gate.band_embedding.shape == (6, 16)
    assert gate.net[0].in_features == 2 * 8 + 16
    stats = torch.randn(2, 6, 3, t, 8)  # [B, K, heads, T, stats]
    w = gate(stats)
    assert w.shape == (2, 6, 3) and torch.isfinite(w).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 6))
    # identical statistics in every band still give band-dependent weights (embedding)
    same = stats[:, :1].expand(2, 6, 3, t, 8)
    ws = gate(same)
    assert (ws[:, 1:] - ws[:, :1]).abs().max() > 1e-4
    # gradients reach the band embedding and the MLP
    target = torch.tensor([0.7, 0.2, 0.1])
    loss = (w - target).square().sum()
    loss.backward()
    assert gate.band_embedding.grad is not None and torch.isfinite(gate.band_embedding.grad).all()
    assert gate.band_embedding.grad.abs().sum(-1).min() > 0  # every band's row is updated
    assert gate.net[0].weight.grad.abs().sum() > 0


def test_frequency_adaptive_gate_checks():
    gate = FrequencyAdaptiveFusionGate(4, num_bands=3)
    with pytest.raises(ValueError, match=r"\[B, 3"):
        gate(torch.randn(2, 4, 7, 4))
    with pytest.raises(ValueError, match="centres_hz"):
        FrequencyAdaptiveFusionGate(4, 3, centres_hz=[100.0, 200.0])
    w, an = gate(torch.randn(2, 3, 5, 4), return_analysis=True)
    assert an["features"].shape == (2, 3, 2 * 4 + 16)


def test_gate_without_learned_scale_weights():
    gate = MultiScaleDynamicFusionGate(4, learn_scale_weights=False)
    assert "scale_logits" not in dict(gate.named_parameters())
    with pytest.raises(ValueError, match="pass scale_weights"):
        gate(torch.randn(2, 5, 4))
    assert gate(torch.randn(2, 5, 4), torch.ones(2, 3) / 3).shape == (2, 5)


def test_blocked_inference_equals_full():
    torch.manual_seed(3)
    gate = MultiScaleDynamicFusionGate(8)
    _perturb_last_layer(gate, 4)
    stats = torch.randn(3, 7, 50, 8)
    full = gate(stats).detach()
    gate.block_elements = 50 * 8 * 4  # 4 sequences per block
    gate.mlp.block_rows = 64
    with torch.no_grad():
        torch.testing.assert_close(gate(stats), full)


def test_stacked_mlp_block_diagonal_form_equals_batched_form():
    """CUDA runs the per-scale MLPs as one block-diagonal matmul per layer; CPU as a batched
    matmul. Same function and same gradients (checked here on CPU, in float64)."""
    from diffattn.fusion_gates import _StackedMLP

    torch.manual_seed(0)
    mlp = _StackedMLP(3, (8, 32, 16, 1), zero_last=False).double()
    x = torch.randn(3, 500, 8, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 500, 1, dtype=torch.float64)
    grads = []
    for fn in (mlp._run, mlp._run_block_diagonal):
        x.grad = None
        mlp.zero_grad()
        y = fn(x)
        y.backward(g)
        grads.append([y.detach()] + [p.grad.clone() for p in mlp.parameters()] + [x.grad.clone()])
    assert grads[0][0].shape == (3, 500, 1)
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
