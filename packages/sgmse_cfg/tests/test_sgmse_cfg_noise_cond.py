"""Noise-aware conditioning: encoders (shapes, time locality of the sequence tokens), NC head
and NASE's loss, the three injections (identity at init, live after training), condition
dropout with a learned null embedding, the embedding computed once per utterance, configs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sgmse_cfg import (
    IGNORE_LABEL,
    BackboneCond,
    NC_WEIGHT,
    CNNNoiseEncoder,
    NCSNpp,
    NoiseClassifier,
    NoiseCondScoreModel,
    ScoreModel,
    SequenceNoiseEncoder,
    SmallUNet,
    expand_cond,
    nc_loss,
    score_model_from_config,
    spec_features,
)

CH = (4, 8, 8, 8)



def _spec(B: int, T: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 1, 256, T, dtype=torch.complex64, generator=g)


def _model(inject: str = "input_add", n_classes: int = 4, p_uncond: float = 0.0, seed: int = 0) -> NoiseCondScoreModel:
    torch.manual_seed(seed)
    if inject == "xattn":
        enc = SequenceNoiseEncoder(channels=CH, dim=16, num_tokens=3)
        bb = NCSNpp(nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(), image_size=256,
                    context_dim=16, context_heads=2)
    else:
        enc = CNNNoiseEncoder(features="reim_logmag", channels=CH, dim=16)
        bb = SmallUNet(channels=(4, 8), temb_dim=16)
    return NoiseCondScoreModel(bb, enc, inject=inject, n_classes=n_classes, p_uncond=p_uncond)


def _perturb(module: torch.nn.Module, seed: int = 1, skip: str = "cross_attn") -> None:
    """Move every parameter (zero-initialised output layers included) off its init, except
    those whose name contains ``skip``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if skip not in name:
                p.add_(0.3 * torch.randn(p.shape, generator=g))


# ---- encoders ---------------------------------------------------------------------------
def test_spec_features_channels_and_checks() -> None:
    s = _spec(2, 8)
    f2, f3 = spec_features(s, "reim"), spec_features(s[:, 0], "reim_logmag")
    assert f2.shape == (2, 2, 256, 8) and f3.shape == (2, 3, 256, 8)
    torch.testing.assert_close(f2[:, 0], s[:, 0].real)
    torch.testing.assert_close(f3[:, 2], torch.log(s[:, 0].abs() + 1e-5))
    with pytest.raises(ValueError, match="complex"):
        spec_features(s.real)
    with pytest.raises(ValueError, match="features"):
        spec_features(s, "mag")


def test_encoder_shapes_any_length() -> None:
    cnn = CNNNoiseEncoder(channels=CH, dim=16)
    seq = SequenceNoiseEncoder(channels=CH, dim=16, num_tokens=5)
    for T in (8, 37, 130):
        e = cnn(_spec(3, T))
        assert e.pooled.shape == (3, 16) and e.tokens.shape == (3, 1, 16)
        torch.testing.assert_close(e.tokens[:, 0], e.pooled)
        s = seq(_spec(3, T))
        assert s.tokens.shape == (3, 5, 16) and s.pooled.shape == (3, 16)
        torch.testing.assert_close(s.pooled, s.tokens.mean(1))


def test_sequence_tokens_are_local_in_time() -> None:
    """A change in the last 32 of 256 frames leaves the tokens of the first half untouched
    (4 stride-2 convs see 31 frames; channel LayerNorm mixes nothing across time) and
    changes the last token: the tokens keep non-stationary noise apart."""
    seq = SequenceNoiseEncoder(channels=CH, dim=16, num_tokens=4).eval()
    a = _spec(1, 256)
    b = a.clone()
    b[..., 224:] = b[..., 224:] * 5.0
    ta, tb = seq(a).tokens, seq(b).tokens
    torch.testing.assert_close(ta[:, :2], tb[:, :2], rtol=0, atol=0)
    assert (ta[:, 3] - tb[:, 3]).abs().max() > 1e-3


# ---- NC head and loss -----------------------------------------------------------------------
def test_nc_loss_is_cross_entropy_over_labelled_items() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 10, generator=g, requires_grad=True)
    labels = torch.tensor([0, 3, 9, IGNORE_LABEL, 5, IGNORE_LABEL])
    keep = labels >= 0
    ce, terms = nc_loss(logits, labels)
    torch.testing.assert_close(ce, F.cross_entropy(logits[keep], labels[keep]))
    # the result shape of every loss here: (total, detached terms)
    assert set(terms) == {"nc", "nc_acc"} and not terms["nc"].requires_grad
    assert float(terms["nc"]) == float(ce.detach())
    hits = sum(int(logits[i].argmax()) == int(labels[i]) for i in range(6) if labels[i] >= 0)
    assert float(terms["nc_acc"]) == hits / 4
    none, none_terms = nc_loss(logits, torch.full((6,), IGNORE_LABEL))
    assert float(none.detach()) == 0.0 and float(none_terms["nc_acc"]) == 0.0
    none.backward()  # attached to the graph (DDP sees the head used)
    assert logits.grad is not None and float(logits.grad.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="NC labels"):
        nc_loss(logits.detach(), torch.tensor([0, 1, 2, 3, 10, 0]))
    head = NoiseClassifier(16, 10)
    assert head(torch.randn(2, 16)).shape == (2, 10)


def test_nase_loss_is_dsm_plus_03_ce() -> None:
    m = _model(n_classes=4).train()
    x0 = _spec(3, 16, 1)
    y = x0 + _spec(3, 16, 2)
    labels = torch.tensor([1, IGNORE_LABEL, 3])
    total, terms = m.loss(x0, y, torch.Generator().manual_seed(0), labels=labels)
    assert NC_WEIGHT == 0.3 and set(terms) == {"dsm", "nc", "nc_acc"}
    assert not any(v.requires_grad for v in terms.values())
    torch.testing.assert_close(total.detach(), terms["dsm"] + 0.3 * terms["nc"])
    # the DSM term equals ScoreModel.loss under the same condition and generator (eval mode:
    # no condition dropout, no dropout in the head)
    m.eval()
    enc = m.encode(y)
    keep = labels >= 0
    ref, _ = m.loss(x0, y, torch.Generator().manual_seed(0), m.condition(enc))  # explicit cond: plain DSM
    torch.testing.assert_close(m.loss(x0, y, torch.Generator().manual_seed(0))[1]["dsm"], ref.detach())
    torch.testing.assert_close(nc_loss(enc.logits, labels)[0], F.cross_entropy(enc.logits[keep], labels[keep]))
    total.backward()
    assert m.encoder.convs[0].weight.grad is not None and m.nc_head.linear.weight.grad is not None


# ---- injection -------------------------------------------------------------------------------
@pytest.mark.parametrize("inject", ["input_add", "film", "xattn"])
def test_injection_identity_at_init_and_live_after_training(inject: str) -> None:
    m = _model(inject).eval()
    _perturb(m.backbone)  # a "trained" backbone; the new conditioning layers stay at init
    x, y = _spec(2, 16, 3), _spec(2, 16, 4)
    t = torch.tensor([0.3, 0.8])
    enc = m.encode(y)
    cond = m.condition(enc)
    if inject == "input_add":
        assert cond.input_add.shape == (2, 1, 256, 1) and not cond.input_add.is_complex()
    elif inject == "film":
        assert cond.temb_scale.shape == (2, 16) and cond.temb_shift.shape == (2, 16)
    else:
        assert cond.context.shape == (2, 3, 16)
    plain = ScoreModel(m.backbone, m.sde, m.transform)
    # zero-initialised last layers (injector / cross-attention output): the score is the plain one
    s0 = m(x, y, t, cond)
    if inject == "xattn":  # any context gives the same score while the blocks are zero
        other = BackboneCond(context=torch.randn(2, 3, 16))
        torch.testing.assert_close(s0, plain(x, y, t, other))
    else:
        torch.testing.assert_close(s0, plain(x, y, t))
    _perturb(m.injector)
    if inject == "xattn":
        _perturb(m.backbone.cross_attn, skip="-")
    s1 = m(x, y, t, m.condition(m.encode(y)))
    assert (s1 - s0).abs().max() > 1e-3 * s0.abs().max()


# ---- condition dropout ------------------------------------------------------------------------
@pytest.mark.parametrize("inject", ["input_add", "xattn"])
def test_condition_dropout_uses_the_learned_null(inject: str) -> None:
    m = _model(inject, p_uncond=0.5)
    _perturb(m.injector)
    with torch.no_grad():
        m.null_embedding.normal_()
    y = _spec(4, 16, 5)
    enc = m.encode(y)
    drop = torch.tensor([True, False, True, False])
    c = m.condition(enc, drop)
    full, null = m.condition(enc), expand_cond(m.null_condition(), 4)
    field = "context" if inject == "xattn" else "input_add"
    got, want_c, want_n = (getattr(v, field) for v in (c, full, null))
    torch.testing.assert_close(got[drop], want_n[drop])
    torch.testing.assert_close(got[~drop], want_c[~drop])
    # in training, loss draws the NC head's dropout, then the condition mask, from the
    # generator; with the same draws done by hand, the loss is ScoreModel's loss under that
    # condition
    m.train()
    x0 = _spec(4, 16, 6)
    g1 = torch.Generator().manual_seed(11)
    got_loss, got_terms = m.loss(x0, y, g1)  # no labels: the total is the DSM term
    assert set(got_terms) == {"dsm"} and float(got_terms["dsm"]) == float(got_loss.detach())
    g2 = torch.Generator().manual_seed(11)
    if m.nc_head is not None:
        torch.rand((4, m.encoder.dim), generator=g2)
    mask = torch.rand(4, generator=g2) < 0.5
    want, _ = ScoreModel.loss(m, x0, y, g2, m.condition(m.encode(y), mask))
    torch.testing.assert_close(got_loss, want)
    # the null embedding gets gradients (it is learned)
    got_loss.backward()
    assert m.null_embedding.grad is not None
    # no dropout in eval mode: same as the full condition
    m.eval()
    g3 = torch.Generator().manual_seed(11)
    ev, _ = m.loss(x0, y, g3)
    torch.testing.assert_close(ev, m.loss(x0, y, torch.Generator().manual_seed(11), m.condition(m.encode(y)))[0])


def test_dropout_rate_in_training_only() -> None:
    """loss drops about p_uncond of the items (seeded) in train mode and none in eval."""
    m = _model(p_uncond=0.2)
    masks = []
    orig = m.condition
    m.condition = lambda enc, drop=None: (masks.append(drop), orig(enc, drop))[1]  # type: ignore[method-assign]
    x0 = _spec(16, 8, 1)
    g = torch.Generator().manual_seed(0)
    m.train()
    with torch.no_grad():
        for _ in range(20):
            m.loss(x0, x0, g)
    frac = float(torch.cat(masks).float().mean())
    assert abs(frac - 0.2) < 0.05, frac  # 320 Bernoulli(0.2) draws
    masks.clear()
    m.eval()
    with torch.no_grad():
        m.loss(x0, x0, g)
    assert masks == [None]


# ---- the embedding is computed once per utterance ---------------------------------------------------
@pytest.mark.parametrize("sampler,guidance", [("pc", "static"), ("ode", "mix"), ("pc", "cond")])
def test_encoder_runs_once_per_utterance(sampler: str, guidance: str) -> None:
    m = _model().eval()
    m.fit_bank(torch.randn(20, 16, generator=torch.Generator().manual_seed(0)))
    calls = {"enc": 0, "bb": []}
    m.encoder.register_forward_hook(lambda *a: calls.__setitem__("enc", calls["enc"] + 1))
    m.backbone.register_forward_hook(lambda mod, inp, out: calls["bb"].append(inp[0].shape[0]))
    wave = torch.randn(16000 * 2, generator=torch.Generator().manual_seed(1))
    # a "long" file: chunked into several pieces sampled in batches
    out = m.enhance(wave, 16000, sampler=sampler, N=2, guidance=guidance, w=2.0, max_chunk_seconds=1.0,
                    chunk_seconds=0.5, max_batch=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == wave.shape and torch.isfinite(out).all()
    assert calls["enc"] == 1
    # 251 frames in chunks of 62 overlapping by 31: 8 chunks in batches of 3, 3, 2; with CFG
    # every score evaluation is ONE forward of twice the batch
    per_eval = 1 if guidance == "cond" else 2
    nfe = 4 if sampler == "pc" else 5
    assert sorted(set(calls["bb"])) == [2 * per_eval, 3 * per_eval]
    assert len(calls["bb"]) == 3 * nfe
    # sample(): once per call too
    calls["enc"] = 0
    y = _spec(2, 16, 7)
    x, nfe = m.sample(y, sampler=sampler, N=3, guidance=guidance, w=2.0, generator=torch.Generator().manual_seed(0))
    assert calls["enc"] == 1 and x.shape == y.shape
    assert nfe == (6 if sampler == "pc" else 7)


def test_config_round_trip_with_bank() -> None:
    m = _model("film", n_classes=3).eval()
    m.class_names = None
    m.fit_bank(torch.randn(30, 16, generator=torch.Generator().manual_seed(0)))
    _perturb(m.injector)
    cfg = m.to_config()
    m2 = score_model_from_config(cfg)
    assert isinstance(m2, NoiseCondScoreModel) and len(m2.bank) == 0
    m2.load_state_dict(m.state_dict())
    assert len(m2.bank) == 30 and float(m2.bank.tau) == pytest.approx(float(m.bank.tau))
    m2.eval()
    x, y, t = _spec(1, 16, 1), _spec(1, 16, 2), torch.tensor([0.5])
    torch.testing.assert_close(m2(x, y, t, m2.condition(m2.encode(y))), m(x, y, t, m.condition(m.encode(y))))
    plain = score_model_from_config(ScoreModel(SmallUNet(channels=(4, 8))).to_config())
    assert type(plain) is ScoreModel


def test_bad_configurations() -> None:
    enc = CNNNoiseEncoder(channels=CH, dim=16)
    with pytest.raises(ValueError, match="context_dim"):
        NoiseCondScoreModel(SmallUNet(channels=(4, 8)), enc, inject="xattn")
    with pytest.raises(ValueError, match="cross-attention"):
        NoiseCondScoreModel(NCSNpp(nf=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                                   image_size=256, context_dim=16, context_heads=2), enc)
    with pytest.raises(ValueError, match="p_uncond"):
        NoiseCondScoreModel(SmallUNet(channels=(4, 8)), enc, p_uncond=1.0)
    m = _model(n_classes=0).eval()
    with pytest.raises(ValueError, match="NC logits"):
        m.guided_cond(m.encode(_spec(1, 8)), "nc")
    with pytest.raises(RuntimeError, match="bank is empty"):
        m.guided_cond(m.encode(_spec(1, 8)), "knn")
