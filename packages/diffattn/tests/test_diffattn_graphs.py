"""Inter-band modules over [B, K, T, N]: harmonic mask, learned top-k graph, dense, none."""

from __future__ import annotations

import pytest
import torch

from diffattn import DenseBandAttention, HarmonicBandGraph, LearnableBandGraph, NoInterBand
from diffattn import band_centres_hz, harmonic_band_mask, make_inter_band

BSRNN_WIDTHS = [2] + [3] * 10 + [8] * 12 + [16] * 7 + [17]


def test_band_centres_bsrnn():
    c = band_centres_hz(BSRNN_WIDTHS, 16000, 512)
    assert c.shape == (31,)
    torch.testing.assert_close(c[:4], torch.tensor([15.625, 93.75, 187.5, 281.25], dtype=torch.float64))
    assert c[10].item() == pytest.approx(937.5)      # bins 29..31
    assert c[11].item() == pytest.approx(35.5 * 31.25)  # bins 32..39
    assert c[-1].item() == pytest.approx(7750.0)     # bins 240..256
    with pytest.raises(ValueError, match="257 one-sided bins"):
        band_centres_hz(BSRNN_WIDTHS + [1], 16000, 512)
    with pytest.raises(ValueError):
        band_centres_hz([2, 0, 3], 16000, 512)


def test_harmonic_mask_known_centres():
    c = [100.0, 200.0, 300.0, 450.0, 1000.0, 30.0]
    m = harmonic_band_mask(c, tol=0.05, max_harmonic=8, min_hz=50.0)
    expected = torch.eye(6, dtype=torch.bool)
    for i, j in [(0, 1), (0, 2), (1, 4)]:  # ratios 2, 3 and 5; 1000/100 = 10 > max_harmonic
        expected[i, j] = expected[j, i] = True
    assert torch.equal(m, expected)  # 300/200, 450/x, 1000/300 are not near integers; 30 Hz < min_hz
    # tolerance is relative to the harmonic number: 100 vs 209 (2.09) only with tol >= 0.045
    assert not harmonic_band_mask([100.0, 209.0], tol=0.04)[0, 1]
    assert harmonic_band_mask([100.0, 209.0], tol=0.05)[0, 1]
    assert harmonic_band_mask([100.0, 1000.0], max_harmonic=10)[0, 1]
    with pytest.raises(ValueError):
        harmonic_band_mask([100.0, float("nan")])


def test_harmonic_mask_bsrnn_bands():
    c = band_centres_hz(BSRNN_WIDTHS, 16000, 512)
    m = harmonic_band_mask(c)
    assert torch.equal(m, m.T) and m.diagonal().all()
    assert int((m.sum() - 31) / 2) == 105           # undirected edges besides self-loops
    assert m[0].sum() == 1                           # the DC band (15.6 Hz) has only its self-loop
    assert m[1, 2] and m[1, 3] and m[2, 4]           # 93.75 -> 187.5 (2x), 281.25 (3x); 187.5 -> 375
    assert not m[1, 30]                              # 7750/93.75 = 82.7: beyond max_harmonic


def _modules(dim=16, heads=2, K=31):
    c = band_centres_hz(BSRNN_WIDTHS, 16000, 512)
    return {"fixed": HarmonicBandGraph(dim, heads, c, depth=1),
            "learned": LearnableBandGraph(dim, heads, K, k=4, depth=1),
            "dense": DenseBandAttention(dim, heads, K, depth=1),
            "none": NoInterBand()}


@pytest.mark.parametrize("kind", ["fixed", "learned", "dense", "none"])
@pytest.mark.parametrize("t", [1, 7])
def test_interface_and_graph_sparsity(kind, t):
    """Output band i depends on input band j only where the graph has an edge (i, j)."""
    torch.manual_seed(0)
    mod = _modules()[kind].double()
    with torch.no_grad():  # non-zero band-position embeddings so they take part
        for n, p in mod.named_parameters():
            if n == "band_pos":
                p.normal_(0, 0.5)
    x = torch.randn(2, 31, t, 16, dtype=torch.float64)
    y, info = mod(x, return_analysis=True)
    assert y.shape == x.shape
    torch.testing.assert_close(y, mod(x))
    graph = info["graph"]
    assert graph.shape == (31, 31)
    j = 6
    x2 = x.clone()
    x2[:, j] += torch.randn(2, t, 16, dtype=torch.float64)
    changed = (mod(x2) - y).abs().amax(dim=(0, 2, 3)) > 1e-12  # [K]
    assert torch.equal(changed, graph[:, j] > 0), kind
    if kind == "dense":
        assert changed.all()
    if kind == "none":
        assert torch.equal(y, x) and torch.equal(graph, torch.eye(31))
    else:
        assert info["diff_attention"].shape == (2, 31, 31)
        assert torch.all(info["diff_attention"][:, graph == 0] == 0)


@pytest.mark.parametrize("kind", ["fixed", "learned", "dense"])
def test_fused_equals_naive(kind):
    torch.manual_seed(1)
    mod = _modules()[kind]
    x = torch.randn(2, 31, 9, 16)
    y = mod(x)
    y_naive, _ = mod(x, return_analysis=True)  # the analysis path uses explicit maps
    torch.testing.assert_close(y, y_naive, rtol=1e-5, atol=1e-5)


def test_learned_graph_semantics():
    torch.manual_seed(2)
    K, k = 8, 2
    mod = LearnableBandGraph(8, 1, K, k=k, band_position=False).double()
    w = mod.get_learned_graph()
    assert torch.equal(w, w.T)
    assert torch.all((w > 0).sum(1) >= k + 1) and torch.all(w.diagonal() > 0)
    # local init: each band's strongest neighbours are the adjacent bands
    assert (w > 0)[3, 2] and (w > 0)[3, 4] and not (w > 0)[3, 6]
    # a chosen structure: logits +4 on (0, 5), (1, 6), -4 elsewhere off-diagonal
    logits = torch.full((K, K), -4.0)
    logits.fill_diagonal_(3.0)
    logits[0, 5] = logits[5, 0] = logits[1, 6] = logits[6, 1] = 4.0
    mod = LearnableBandGraph(8, 1, K, k=1, init_logits=logits, band_position=False).double()
    g = mod.get_learned_graph()
    assert g[0, 5].item() == pytest.approx(torch.sigmoid(torch.tensor(4.0)).item())
    assert g[0, 5] > 0 and g[1, 6] > 0 and g.diagonal().gt(0).all()
    # the attention maps are softmax(q·k/√d + log W) over the graph's neighbours
    x = torch.randn(1, K, 3, 8, dtype=torch.float64)
    _, info = mod(x, return_analysis=True)
    h = mod.norm(x).transpose(1, 2).reshape(3, K, 8)
    q, kk, _ = mod.attn.project(h)
    logw = torch.log(g).masked_fill(g == 0, float("-inf"))
    a = torch.softmax(q @ kk.transpose(-1, -2) * mod.attn.scaling + logw, -1)  # [3, 2, K, K]
    lam = mod.attn.lambda_full()
    diff = (a[:, 0] - lam * a[:, 1]).mean(0)
    torch.testing.assert_close(info["diff_attention"][0], diff.detach())


def test_learned_graph_gets_gradients():
    torch.manual_seed(3)
    mod = LearnableBandGraph(16, 2, 31, k=5)
    x = torch.randn(2, 31, 5, 16)
    mod(x).square().mean().backward()
    grad = mod.affinity.grad
    assert grad is not None and grad.abs().sum() > 0
    torch.testing.assert_close(grad, grad.T)  # symmetric logits -> symmetric gradient
    on_edges = mod.get_learned_graph() > 0
    assert torch.all(grad[~on_edges] == 0) and grad[on_edges].abs().sum() > 0
    # and the top-k selection follows the weights after an update
    with torch.no_grad():
        mod.affinity[0, 20] = mod.affinity[20, 0] = 10.0
    assert mod.get_learned_graph()[0, 20] > 0.99


def test_factory_and_errors():
    c = band_centres_hz(BSRNN_WIDTHS, 16000, 512)
    assert isinstance(make_inter_band("fixed", 16, 2, 31, centres_hz=c), HarmonicBandGraph)
    assert isinstance(make_inter_band("harmonic", 16, 2, 31, centres_hz=c), HarmonicBandGraph)
    assert isinstance(make_inter_band("learned", 16, 2, 31, k=3), LearnableBandGraph)
    assert isinstance(make_inter_band("dense", 16, 2, 31), DenseBandAttention)
    assert isinstance(make_inter_band("none", 16, 2, 31), NoInterBand)
    with pytest.raises(ValueError, match="centres_hz"):
        make_inter_band("fixed", 16, 2, 31)
    with pytest.raises(ValueError, match="unknown"):
        make_inter_band("star", 16, 2, 31)
    with pytest.raises(ValueError, match=r"k < num_bands"):
        LearnableBandGraph(16, 2, 4, k=4)
    with pytest.raises(ValueError, match=r"\[B, 31, T, 16\]"):
        DenseBandAttention(16, 2, 31)(torch.randn(2, 30, 5, 16))


@pytest.mark.parametrize("kind", ["fixed", "learned", "dense"])
def test_blocked_inference_equals_full(kind):
    """Inference processes frames in blocks (bounded memory); the result is the same."""
    torch.manual_seed(4)
    mod = _modules()[kind]
    x = torch.randn(2, 31, 23, 16)
    with torch.no_grad():
        full = mod._block(x)
        mod.block_elements = 2 * 31 * 16 * 5  # 5 frames per block -> 5 blocks, last one short
        blocked = mod(x)
    torch.testing.assert_close(blocked, full)
    torch.testing.assert_close(mod(x).detach(), full)  # autograd mode: one block
