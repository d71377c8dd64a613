"""BSDT: I/O contract, ablation switches, analysis outputs, graphs, gradients, long inputs."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import bandsplit
from bandsplit import BSDT, BSRNN_BAND_WIDTHS, band_centers_hz
from diffattn import HarmonicBandGraph, LearnableBandGraph, NoInterBand, harmonic_band_mask

K = len(BSRNN_BAND_WIDTHS)


def _spec(b: int, t: int, seed: int = 0, dtype=torch.complex64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 257, t, dtype=dtype, generator=g)


def _eval_bsdt(num_channel: int, num_layer: int, b: int, t: int, **kw: Any) -> tuple[BSDT, torch.Tensor]:
    """A two-head BSDT in eval mode built under ``torch.manual_seed(0)``, and an input ``_spec(b, t)``."""
    torch.manual_seed(0)
    return BSDT(num_channel, num_layer, 2, **kw).eval(), _spec(b, t)


@pytest.mark.parametrize("t", [1, 2, 7, 40])
@pytest.mark.parametrize("graph", ["learned", "fixed", "dense", "none"])
def test_io_contract_matches_bsrnn(graph: str, t: int) -> None:
    m, x = _eval_bsdt(16, 2, 2, t, graph=graph)
    y = m(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(torch.view_as_real(y)).all()


def test_rejects_wrong_input() -> None:
    m = BSDT(16, 1, 2)
    with pytest.raises(ValueError, match="complex STFT"):
        m(torch.randn(1, 257, 10))
    with pytest.raises(ValueError, match="257"):
        m(torch.randn(1, 256, 10, dtype=torch.complex64))
    with pytest.raises(ValueError, match="graph"):
        BSDT(16, 1, 2, graph="knn")
    with pytest.raises(ValueError, match="257"):
        BSDT(16, 1, 2, band_widths=[2, 3, 4])


def test_ablation_switches_change_the_model() -> None:
    full = BSDT(16, 2, 2)
    no_ms = BSDT(16, 2, 2, use_multiscale=False)
    no_ib = BSDT(16, 2, 2, use_inter_band=False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(no_ms) < count(full) and count(no_ib) < count(full)
    assert all(b.fusion is None for b in no_ms.blocks)
    assert all(isinstance(b.inter_band, NoInterBand) for b in no_ib.blocks)
    assert all(isinstance(b.inter_band, HarmonicBandGraph) for b in BSDT(16, 2, 2, graph="fixed").blocks)
    assert all(isinstance(b.inter_band, LearnableBandGraph) for b in full.blocks)
    # the registry's names map onto the two versions
    assert isinstance(bandsplit.build_model({"name": "bsdt-v1", "num_channel": 16, "num_layer": 1})
                      .blocks[0].inter_band, HarmonicBandGraph)
    assert isinstance(bandsplit.build_model({"name": "bsdt", "num_channel": 16, "num_layer": 1})
                      .blocks[0].inter_band, LearnableBandGraph)


def test_analysis_outputs() -> None:
    m, x = _eval_bsdt(16, 3, 2, 30, graph="learned")
    y0 = m(x)
    y, an = m(x, return_analysis=True)
    # analysis is only computed on request and does not change the output
    torch.testing.assert_close(y, y0, rtol=1e-4, atol=1e-5)
    assert an["fusion_weights"].shape == (3, K, 3)
    torch.testing.assert_close(an["fusion_weights"].sum(-1), torch.ones(3, K))
    assert an["graph"].shape == (3, K, K)
    assert an["lambda"].shape == (3,)
    assert an["frame_gate"].shape == (3, 2, K, 30)
    assert ((an["frame_gate"] > 0) & (an["frame_gate"] < 1)).all()
    # the learned graph: symmetric, sparse top-k (+ symmetrisation), self-loops kept
    g = m.get_learned_graph()
    assert g.shape == (3, K, K)
    torch.testing.assert_close(g, g.transpose(1, 2))
    nz = (g[0] > 0).sum(-1)
    assert (nz >= 1 + 5).all() and (nz < K).all()
    # without multi-scale there are no fusion weights
    _, an2 = BSDT(16, 1, 2, use_multiscale=False)(x, return_analysis=True)
    assert "fusion_weights" not in an2


def test_fixed_graph_is_harmonic_mask_of_real_band_centres() -> None:
    m = BSDT(16, 1, 2, graph="fixed")
    centres = band_centers_hz(BSRNN_BAND_WIDTHS, 16000, 512)
    assert centres[0] == pytest.approx(15.625) and centres[-1] == pytest.approx(7750.0)
    expected = harmonic_band_mask(centres).float()
    torch.testing.assert_close((m.get_learned_graph()[0] > 0).float(), (expected > 0).float())
    # a harmonic graph is sparse but links some band pairs beyond the diagonal
    off = expected.clone()
    off.fill_diagonal_(0)
    assert 0 < int(off.sum()) < K * (K - 1)


def test_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    m = BSDT(16, 2, 2, graph="learned")
    x = _spec(2, 24)
    target = _spec(2, 24, seed=1)
    # the gates' last layers start at zero (neutral gates), so take one step before checking
    opt = torch.optim.SGD(m.parameters(), lr=1e-2)
    (m(x) - target).abs().mean().backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    loss = (m(x) - target).abs().mean()
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, missing
    zero = [n for n, p in m.named_parameters() if float(p.grad.abs().sum()) == 0.0]
    # top-k pruned logits of the learned graph may legitimately get no gradient; nothing else may
    assert all("logits" in n for n in zero), zero


def test_batch_items_are_independent() -> None:
    m, x = _eval_bsdt(16, 2, 3, 20)
    with torch.no_grad():
        y = m(x)
        y1 = m(x[1:2])
    torch.testing.assert_close(y[1:2], y1, rtol=1e-4, atol=1e-5)


def test_few_steps_reduce_the_loss() -> None:
    torch.manual_seed(0)
    m = BSDT(16, 1, 2)
    x = _spec(2, 32)
    target = 0.5 * x
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = (m(x) - target).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]


def test_sixty_seconds_runs_in_inference() -> None:
    """A 60 s utterance (T = 7,501 frames at hop 128) goes through the whole model on CPU."""
    m, x = _eval_bsdt(8, 1, 1, 7501)
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape and torch.isfinite(torch.view_as_real(y)).all()
