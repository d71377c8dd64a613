"""Classifier-free guidance and adaptive guidance scales: w = 1 is the conditional score, w = 0
the unconditional one, the batched forward equals two separate forwards, per-utterance w,
the k-NN bank (formula, tau, saved in the state dict), NC certainty, guidance modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sgmse_cfg import (
    CNNNoiseEncoder,
    EmbeddingBank,
    GuidedCond,
    NCSNpp,
    NoiseCondScoreModel,
    ScoreModel,
    SequenceNoiseEncoder,
    SmallUNet,
    expand_cond,
    guidance_unavailable,
    guidance_weights,
    guided_score,
    nc_certainty,
    parse_guidance_condition,
)



def _spec(B: int, T: int, seed: int) -> torch.Tensor:
    return torch.randn(B, 1, 256, T, dtype=torch.complex64, generator=torch.Generator().manual_seed(seed))


def _trained_like(inject: str) -> NoiseCondScoreModel:
    """A model whose conditional and unconditional scores differ (weights moved off init)."""
    torch.manual_seed(0)
    if inject == "xattn":
        enc = SequenceNoiseEncoder(channels=(4, 8), dim=16, num_tokens=3)
        bb = NCSNpp(nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), image_size=256,
                    context_dim=16, context_heads=2)
    else:
        enc = CNNNoiseEncoder(channels=(4, 8), dim=16)
        bb = SmallUNet(channels=(4, 8), temb_dim=16)
    m = NoiseCondScoreModel(bb, enc, inject=inject, n_classes=3, p_uncond=0.1).eval()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return m


@pytest.mark.parametrize("inject", ["input_add", "film", "xattn"])
@torch.no_grad()
def test_guided_score_identities_and_batching(inject: str) -> None:
    m = _trained_like(inject)
    B = 3
    x, y = _spec(B, 16, 1), _spec(B, 16, 2)
    t = torch.tensor([0.9, 0.4, 0.05])
    enc = m.encode(y)
    cond, null = m.condition(enc), m.null_condition()
    s_c = m(x, y, t, cond)
    s_u = m(x, y, t, expand_cond(null, B))
    assert (s_c - s_u).abs().max() > 1e-2 * s_c.abs().max()  # the test means something
    calls = []
    h = m.backbone.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    tol = dict(rtol=1e-5, atol=1e-5 * float(s_c.abs().max()))
    torch.testing.assert_close(guided_score(m.forward, x, y, t, cond, null, 1.0), s_c, **tol)
    torch.testing.assert_close(guided_score(m.forward, x, y, t, cond, null, 0.0), s_u, **tol)
    assert calls == [2 * B, 2 * B]  # ONE batched forward each
    w = torch.tensor([0.0, 1.0, 3.0])
    got = guided_score(m.forward, x, y, t, cond, null, w)
    want = s_u + w.reshape(-1, 1, 1, 1) * (s_c - s_u)  # two separate forwards
    torch.testing.assert_close(got, want, **tol)
    h.remove()
    # the same through a sampler's score function (GuidedCond), batch-1 condition shared
    gc = GuidedCond(m.condition(m.encode(y[:1])), null, torch.tensor([2.5]))
    one = m.score_fn(gc)(x, y, t)
    c1 = expand_cond(m.condition(m.encode(y[:1])), B)
    want1 = m(x, y, t, expand_cond(null, B)) + 2.5 * (m(x, y, t, c1) - m(x, y, t, expand_cond(null, B)))
    torch.testing.assert_close(one, want1, **tol)
    # the two-forward form gives the same score (for CPUs, where batch 2 costs more than 2 x 1)
    calls.clear()
    h = m.backbone.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    two = m.score_fn(GuidedCond(gc.cond, null, gc.w, batched=False))(x, y, t)
    assert calls == [B, B]
    h.remove()
    torch.testing.assert_close(two, one, **tol)


@torch.no_grad()
def test_static_w_one_and_zero_run_one_forward() -> None:
    m = _trained_like("film")
    y = _spec(2, 16, 4)
    enc = m.encode(y)
    for w, mode in ((1.0, "cond"), (0.0, "uncond"), (2.0, "cfg")):
        gc = m.guided_cond(enc, "static", w)
        assert gc.mode == mode and gc.forwards_per_eval == (2 if mode == "cfg" else 1)
        torch.testing.assert_close(gc.w, torch.full((2,), w))
    x, t = _spec(2, 16, 5), torch.tensor([0.5, 0.5])
    one = m.score_fn(m.guided_cond(enc, "static", 1.0))(x, y, t)
    torch.testing.assert_close(one, m(x, y, t, m.condition(enc)))
    # the data-prediction path (Schroedinger bridge) is guided the same way
    d = m.denoise_fn(m.guided_cond(enc, "static", 2.0))(x, y, t)
    du = m.denoise(x, y, t, expand_cond(m.null_condition(), 2))
    dc = m.denoise(x, y, t, m.condition(enc))
    torch.testing.assert_close(d, du + 2.0 * (dc - du), rtol=1e-4, atol=1e-4 * float(dc.abs().max()))


def test_sampler_with_guidance_is_seeded_and_differs_from_cond() -> None:
    m = _trained_like("input_add")
    y = _spec(1, 16, 6)
    a, nfe = m.sample(y, N=3, guidance="static", w=2.0, generator=torch.Generator().manual_seed(0))
    b, _ = m.sample(y, N=3, guidance="static", w=2.0, generator=torch.Generator().manual_seed(0))
    c, _ = m.sample(y, N=3, guidance="cond", generator=torch.Generator().manual_seed(0))
    assert nfe == 6
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-4


# ---- adaptive scales ------------------------------------------------------------------------
def test_nc_certainty_range() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [50.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    u = nc_certainty(logits)
    p = np.exp(1.0) / (np.exp(1.0) + 3)
    torch.testing.assert_close(u, torch.tensor([0.0, 1.0, (p - 0.25) / 0.75], dtype=torch.float32))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_bank_formula_and_tau(metric: str) -> None:
    g = torch.Generator().manual_seed(0)
    train = torch.randn(200, 8, generator=g)
    bank = EmbeddingBank(8, max_size=150, k=5, metric=metric, quantile=0.9).fit(train, generator=g)
    assert len(bank) == 150 and bank.is_fitted
    e = bank.embeddings.numpy().astype(np.float64)
    if metric == "cosine":
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
    q = torch.randn(6, 8, generator=g)
    qq = q.numpy().astype(np.float64)
    if metric == "cosine":
        qq = qq / np.linalg.norm(qq, axis=1, keepdims=True)
    d = np.sqrt(((qq[:, None] - e[None]) ** 2).sum(-1))
    want = np.sort(d, axis=1)[:, :5].mean(1)
    np.testing.assert_allclose(bank.distance(q).numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(bank.reliability(q).numpy(), 1 / (1 + want / float(bank.tau)), rtol=1e-5)
    # tau: the 0.9 quantile of the leave-one-out distances -> u >= 0.5 for 90 % of the bank
    dd = np.sqrt(((e[:, None] - e[None]) ** 2).sum(-1))
    np.fill_diagonal(dd, np.inf)
    loo = np.sort(dd, axis=1)[:, :5].mean(1)
    assert float(bank.tau) == pytest.approx(np.quantile(loo, 0.9), rel=1e-5)
    # far away -> small reliability; fixed tau is kept
    far = 100.0 * q if metric == "euclidean" else -bank.embeddings[:1]
    assert float(bank.reliability(far).max()) < float(bank.reliability(bank.embeddings[:1]).min())
    assert float(EmbeddingBank(8).fit(train, tau=0.7).tau) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="NaN"):
        EmbeddingBank(8).fit(torch.full((3, 8), float("nan")))


def test_guidance_weight_modes() -> None:
    g = torch.Generator().manual_seed(0)
    bank = EmbeddingBank(4, k=2).fit(torch.randn(20, 4, generator=g))
    pooled = torch.randn(3, 4, generator=g)
    logits = torch.randn(3, 5, generator=g)
    w = guidance_weights
    torch.testing.assert_close(w("static", w=2.5, batch=3), torch.full((3,), 2.5))
    torch.testing.assert_close(w("nc", w=2.0, logits=logits), 2.0 * nc_certainty(logits))
    torch.testing.assert_close(w("knn", pooled=pooled, bank=bank), bank.reliability(pooled))
    torch.testing.assert_close(w("mix", w=1.5, alpha=0.25, logits=logits, pooled=pooled, bank=bank),
                               1.5 * (0.25 * nc_certainty(logits) + 0.75 * bank.reliability(pooled)))
    torch.testing.assert_close(w("uncond", batch=2), torch.zeros(2))
    with pytest.raises(ValueError, match="guidance mode"):
        w("adaptive")


@torch.no_grad()
def test_bank_travels_in_the_state_dict(tmp_path) -> None:
    m = _trained_like("film")
    m.fit_bank(torch.randn(40, 16, generator=torch.Generator().manual_seed(1)))
    torch.save(m.state_dict(), tmp_path / "m.pt")
    fresh = NoiseCondScoreModel.from_config(m.to_config()).eval()
    assert len(fresh.bank) == 0
    fresh.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    y = _spec(2, 16, 9)
    torch.testing.assert_close(fresh.guided_cond(fresh.encode(y), "knn").w, m.guided_cond(m.encode(y), "knn").w)


@pytest.mark.parametrize("spec, want", [
    ("uncond", ("uncond", "uncond", 1.0)), ("cond", ("cond", "cond", 1.0)),
    ("static:2", ("static w=2", "static", 2.0)), ("static:0.5", ("static w=0.5", "static", 0.5)),
    ("knn", ("knn", "knn", 1.0)), ("mix:3", ("mix max 3", "mix", 3.0)), ("nc_raw:1", ("nc_raw", "nc_raw", 1.0)),
])
def test_guidance_conditions_parse(spec: str, want: tuple[str, str, float]) -> None:
    assert parse_guidance_condition(spec) == want


@pytest.mark.parametrize("spec, words", [
    ("cfg", "unknown condition 'cfg'"), ("static", "static needs a scale"), ("cond:2", "cond takes no scale"),
    ("knn:x", "is not a number"), ("mix:-1", "not a guidance scale (0 <= x <= 20)"), ("static:nan", "not a guidance"),
    ("static:21", "0 <= x <= 20"),
])
def test_bad_guidance_conditions_are_named(spec: str, words: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_guidance_condition(spec)
    assert words in str(e.value)


def test_guidance_unavailable_says_what_is_missing() -> None:
    plain = ScoreModel(SmallUNet(channels=(4, 8), temb_dim=16))
    assert guidance_unavailable(plain, "cond") is None
    assert "no noise encoder" in guidance_unavailable(plain, "knn")
    m = NoiseCondScoreModel(SmallUNet(channels=(4, 8), temb_dim=16), CNNNoiseEncoder(channels=(4, 8), dim=16),
                            n_classes=None)
    assert guidance_unavailable(m, "static") is None
    assert guidance_unavailable(m, "nc") == "the model has no NC head"
    assert guidance_unavailable(m, "knn") == "the model has no fitted k-NN bank"
    m.fit_bank(torch.randn(32, 16, generator=torch.Generator().manual_seed(0)))
    assert guidance_unavailable(m, "knn") is None
    assert guidance_unavailable(m, "mix") == "the model has no NC head"
