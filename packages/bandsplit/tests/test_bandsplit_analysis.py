"""The analysis levels of BSDT and the ERB-UNet: ``return_analysis=True`` stays cheap (no new entry,
the same output as the plain forward), ``"full"`` adds the figures' entries, whose numbers are
checked here: temporal maps equal ``attn1 − λ·attn2`` (rows sum to ``1 − λ``; softmax maps to 1),
the inter-band map is that map averaged over batch, frames and heads and 0 off the graph, the 2-D
band embedding is the PCA of the embedding, the expected window is ``Σ_s w_s·window_s``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from bandsplit import BSDT, ERBUNet, ERBUNet257, ERBUNetAdapter, band_centres_hz
from bandsplit.analysis import analysis_level, pca_2d

N, H, L, K, E = 16, 2, 2, 31, 16
NEW_BSDT_KEYS = {"band_centres_hz", "temporal_attention", "interband_attention", "interband_lambda",
                 "expected_window", "band_embedding", "band_embedding_pca", "band_embedding_pca_explained"}
SMALL_ERB: dict[str, Any] = {"base_channels": 4, "depth": 2, "d_model": 16, "transformer_layers": 2, "num_heads": 2}


def _spec(b: int, t: int, seed: int = 0) -> torch.Tensor:
    return 0.1 * torch.randn(b, 257, t, dtype=torch.complex64, generator=torch.Generator().manual_seed(seed))


def _bsdt(**kw: Any) -> BSDT:
    torch.manual_seed(0)
    return BSDT(N, L, H, **kw).eval()


def test_analysis_level_accepts_false_true_full_only() -> None:
    assert [analysis_level(v) for v in (False, True, "full")] == [0, 1, 2]
    with pytest.raises(ValueError, match="False, True or 'full'"):
        analysis_level("maps")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'full'"):
        _bsdt()(_spec(1, 4), return_analysis="maps")
    with pytest.raises(ValueError, match="'full'"):
        ERBUNet257(**SMALL_ERB)(_spec(1, 4), return_analysis="all")


def test_bsdt_full_keys_and_shapes_and_the_cheap_level_is_unchanged() -> None:
    m, x = _bsdt(), _spec(2, 12)
    with torch.no_grad():
        y0 = m(x)
        y1, a1 = m(x, return_analysis=True)
        y2, a2 = m(x, return_analysis="full")
    assert torch.equal(y0, y1)                     # the cheap level runs the plain (fused) path
    torch.testing.assert_close(y2, y0, rtol=1e-4, atol=1e-5)   # the explicit maps compute the same
    assert not NEW_BSDT_KEYS & set(a1)
    assert set(a2) == set(a1) | NEW_BSDT_KEYS
    shapes = {"band_centres_hz": (K,), "temporal_attention": (L, 2, K, 12, 12), "interband_attention": (L, K, K),
              "interband_lambda": (L,), "expected_window": (L, K), "band_embedding": (L, K, E),
              "band_embedding_pca": (L, K, 2), "band_embedding_pca_explained": (L, 2)}
    assert {k: tuple(a2[k].shape) for k in shapes} == shapes
    torch.testing.assert_close(a2["band_centres_hz"], band_centres_hz(m.band_widths, 16000, 512).float())
    for k in set(a1) - {"scale_gates"}:            # the cheap entries are the same at both levels
        v1, v2 = a1[k], a2[k]
        if isinstance(v1, torch.Tensor):
            torch.testing.assert_close(v2, v1, rtol=1e-4, atol=1e-5)
        else:
            assert v1 == v2


def _capture(module: torch.nn.Module, *, output: bool, kwargs: bool = False) -> list[Any]:
    seen: list[Any] = []
    if kwargs:
        module.register_forward_hook(lambda mod, args, kw, out: seen.append(out), with_kwargs=True)
    elif output:
        module.register_forward_hook(lambda mod, args, out: seen.append(out))
    return seen


@pytest.mark.parametrize("kw", [{}, {"temporal_sharing": "per_band"}, {"attention": "standard"}],
                         ids=["shared", "per_band", "standard"])
def test_temporal_attention_is_the_differential_map_averaged_over_heads(kw: dict[str, Any]) -> None:
    m, x = _bsdt(**kw), _spec(1, 10, seed=3)
    normed = [_capture(b.norm_t, output=True) for b in m.blocks]   # the attention's input, per block
    with torch.no_grad():
        _, an = m(x, return_analysis="full")
        ta = an["temporal_attention"]
        for i, blk in enumerate(m.blocks):
            _, ref = blk.attn_t(normed[i][-1], return_analysis=True)
            if "attn1" in ref:
                lam = ref["lambda"]
                lam_b = lam.reshape(1, -1, 1, 1, 1) if lam.ndim else lam        # [K] per band, or one
                expect = (ref["attn1"] - lam_b * ref["attn2"]).mean(2)
                rows = (1 - lam).reshape(1, -1, 1).expand(1, K, 10)                # [B, K, T]
                torch.testing.assert_close(an["lambda"][i], lam)
            else:
                expect, rows = ref["attn"].mean(2), torch.ones(1, K, 10)
            torch.testing.assert_close(ta[i], expect, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(ta[i].sum(-1), rows, rtol=1e-5, atol=1e-5)
    if kw.get("attention") == "standard":
        assert (ta >= 0).all() and "lambda" not in an and "interband_lambda" not in an


@pytest.mark.parametrize("graph", ["learned", "fixed", "dense"])
def test_interband_attention_is_the_band_map_averaged_and_zero_off_the_graph(graph: str) -> None:
    m, x = _bsdt(graph=graph), _spec(2, 7, seed=4)
    seen = [_capture(b.inter_band.attn, output=True, kwargs=True) for b in m.blocks]
    with torch.no_grad():
        _, an = m(x, return_analysis="full")
    for i in range(L):
        _, ref = seen[i][-1]                                   # [B, T, H, K, K] maps of block i
        lam = ref["lambda"]
        expect = (ref["attn1"] - lam * ref["attn2"]).mean(dim=(0, 1, 2))
        ib = an["interband_attention"][i]
        torch.testing.assert_close(ib, expect, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ib.sum(-1), torch.full((K,), 1 - float(lam)), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(an["interband_lambda"][i], lam)
        off = an["graph"][i] == 0
        assert (ib[off] == 0).all() and (graph == "dense") == (not off.any())


def test_standard_interband_rows_sum_to_one_and_no_graph_means_no_map() -> None:
    with torch.no_grad():
        _, an = _bsdt(attention="standard")(_spec(1, 6), return_analysis="full")
        _, none = _bsdt(graph="none")(_spec(1, 6), return_analysis="full")
    torch.testing.assert_close(an["interband_attention"].sum(-1), torch.ones(L, K))
    assert (an["interband_attention"] >= 0).all()
    assert "interband_attention" not in none and "interband_lambda" not in none
    assert torch.equal(none["graph"], torch.eye(K).expand(L, K, K))


def test_band_embedding_is_the_gates_parameter_and_its_2d_projection_is_its_pca() -> None:
    m = _bsdt()
    with torch.no_grad():     # move the embeddings off their init so the blocks differ
        for b in m.blocks:
            b.fusion.band_gate.band_embedding.add_(0.3 * torch.randn(K, E))
        _, an = m(_spec(1, 8), return_analysis="full")
    for i, blk in enumerate(m.blocks):
        emb = blk.fusion.band_gate.band_embedding.detach()
        torch.testing.assert_close(an["band_embedding"][i], emb)
        x = emb.double().numpy()
        xc = x - x.mean(0)
        evals, evecs = np.linalg.eigh(np.cov(xc, rowvar=False, bias=True))     # ascending
        top = evecs[:, ::-1][:, :2]
        expect = xc @ top
        got = an["band_embedding_pca"][i].double().numpy()
        for j in range(2):    # a principal axis has no sign: compare up to it
            sign = np.sign(np.dot(got[:, j], expect[:, j]))
            np.testing.assert_allclose(got[:, j], sign * expect[:, j], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(an["band_embedding_pca_explained"][i].numpy(), evals[::-1][:2] / evals.sum(),
                                   rtol=1e-4, atol=1e-6)
        # uncorrelated, centred, the first component carries the most variance
        assert abs(np.corrcoef(got.T)[0, 1]) < 1e-4 and np.abs(got.mean(0)).max() < 1e-4
        assert got[:, 0].var() >= got[:, 1].var()


def test_expected_window_is_the_weighted_mean_window_per_band() -> None:
    for kw in ({}, {"fusion": "fixed", "windows": (1, 3, 16)}):
        m = _bsdt(**kw)
        with torch.no_grad():
            _, an = m(_spec(2, 9, seed=5), return_analysis="full")
        win = torch.tensor(m.windows, dtype=torch.float32)
        torch.testing.assert_close(an["expected_window"], an["fusion_weights"] @ win)
        assert (an["expected_window"] >= min(m.windows) - 1e-5).all()
        assert (an["expected_window"] <= max(m.windows) + 1e-5).all()
        assert ("band_embedding" in an) == (m.fusion == "adaptive")
    with torch.no_grad():
        _, none = _bsdt(use_multiscale=False)(_spec(1, 5), return_analysis="full")
    assert "expected_window" not in none and "fusion_weights" not in none


def test_pca_2d_edge_cases() -> None:
    p, v = pca_2d(torch.zeros(5, 3))                       # no variance at all
    assert p.shape == (5, 2) and torch.equal(p, torch.zeros(5, 2)) and torch.equal(v, torch.zeros(2))
    x = torch.tensor([[0.0], [1.0], [3.0]])                # one feature: the second component is 0
    p, v = pca_2d(x)
    torch.testing.assert_close(p[:, 0], torch.tensor([-4 / 3, -1 / 3, 5 / 3]))
    assert torch.equal(p[:, 1], torch.zeros(3)) and torch.equal(v, torch.tensor([1.0, 0.0]))
    p, _ = pca_2d(-x)                                      # the sign: largest loading positive
    assert p[2, 0] < 0 < p[0, 0]
    with pytest.raises(ValueError, match=r"\[K, E\]"):
        pca_2d(torch.zeros(2, 3, 4))


def test_bsdt_full_analysis_works_while_training_and_keeps_the_diversity_gates() -> None:
    m = _bsdt().train()
    y, an = m(_spec(1, 6), return_analysis="full")
    assert an["scale_gates"].requires_grad and not an["temporal_attention"].requires_grad
    (y.abs().mean() + an["scale_gates"].mean()).backward()


@pytest.mark.parametrize("attention", ["adaptive", "diff", "standard"])
def test_erb_unet_full_adds_the_bottleneck_maps(attention: str) -> None:
    torch.manual_seed(0)
    m = ERBUNet257(attention=attention, **SMALL_ERB).eval()
    x = _spec(2, 11, seed=6)
    with torch.no_grad():
        y1, a1 = m(x, return_analysis=True)
        y2, a2 = m(x, return_analysis="full")
    torch.testing.assert_close(y2, y1, rtol=1e-4, atol=1e-5)
    assert "attention_maps" not in a1 and set(a2) == set(a1) | {"attention_maps"}
    assert (a2["hop_length"], a2["sample_rate"], a2["n_fft"]) == (128, 16000, 512)
    maps = a2["attention_maps"]
    assert maps.shape == (2, 2, 11, 11)
    rows = maps.sum(-1)                                                     # [Lb, B, T]
    if attention == "adaptive":
        # alpha in (0, 1), λ_eff = 2·alpha·λ, a row of the map sums to 1 − λ_eff (mean over heads)
        alpha, lam_eff, lam = a2["alpha"], a2["lambda_eff"], a2["lambda"]
        assert alpha.shape == (2, 2, 2, 11) and ((alpha > 0) & (alpha < 1)).all()
        torch.testing.assert_close(lam_eff, 2 * alpha * lam[:, None, None, None])
        torch.testing.assert_close(rows, (1 - lam_eff).mean(2), rtol=1e-5, atol=1e-5)
        assert a2["scale_weights"].shape == (2, 3)
        torch.testing.assert_close(a2["scale_weights"].sum(-1), torch.ones(2))
        assert a2["scale_gates"].shape == (2, 3, 2, 2, 11)
    elif attention == "diff":
        torch.testing.assert_close(rows, (1 - a2["lambda"])[:, None, None].expand(2, 2, 11), rtol=1e-5, atol=1e-5)
    else:
        torch.testing.assert_close(rows, torch.ones(2, 2, 11))
        assert (maps >= 0).all()


def test_adapter_passes_the_full_level_through_in_the_nets_frames() -> None:
    torch.manual_seed(0)
    m = ERBUNetAdapter(ERBUNet(attention="adaptive", **SMALL_ERB)).eval()
    with torch.no_grad():
        _, a1 = m(_spec(1, 13), return_analysis=True)
        _, a2 = m(_spec(1, 13), return_analysis="full")
    t_net = a2["alpha"].shape[-1]
    assert "attention_maps" not in a1 and a2["attention_maps"].shape == (2, 1, t_net, t_net)
    assert (a2["hop_length"], a2["n_fft"]) == (100, 1200)
