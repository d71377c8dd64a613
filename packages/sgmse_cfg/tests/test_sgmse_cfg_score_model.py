"""ScoreModel: output scalings (SGMSE+'s score = -NCSN++ output), the DSM loss against its
closed-form optimum on Gaussian data, a training smoke test, configs, and enhance() end to end
with an oracle score (short and chunked long files, sample-rate guard)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from sgmse_cfg import (
    NCSNpp,
    OUVESDE,
    SBVESDE,
    BadAudioError,
    SampleRateError,
    ScoreModel,
    SmallUNet,
    batch_view,
)


class _Const(nn.Module):
    """Backbone returning a fixed tensor (to check the output scalings)."""

    downsampling_factor = 1
    config: dict = {}

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out

    def forward(self, x, t, cond=None):
        return self.out


def test_output_scalings():
    g = torch.Generator().manual_seed(0)
    shape = (3, 1, 4, 5)
    out, x_t, y = (torch.randn(shape, dtype=torch.complex64, generator=g) for _ in range(3))
    t = torch.tensor([0.1, 0.5, 0.9])
    sde = OUVESDE()
    std = sde.std(t)[:, None, None, None]
    a, b = (c[:, None, None, None] for c in sde.mean_coeffs(t))
    assert torch.equal(ScoreModel(_Const(out), output_scaling="none")(x_t, y, t), -out)
    assert torch.allclose(ScoreModel(_Const(out), output_scaling="sigma")(x_t, y, t), -out / std)
    data = ScoreModel(_Const(out), output_scaling="data")
    assert torch.allclose(data(x_t, y, t), -(x_t - a * out - b * y) / std ** 2)
    assert torch.equal(data.denoise(x_t, y, t), out)
    # Tweedie's formula inverts the data parameterisation
    sig = ScoreModel(_Const(-data(x_t, y, t) * std), output_scaling="sigma")
    assert torch.allclose(sig.denoise(x_t, y, t), out, atol=1e-5)
    with pytest.raises(ValueError):
        ScoreModel(_Const(out), output_scaling="eps")  # type: ignore[arg-type]


def test_ncsnpp_score_is_minus_the_sgmse_output(shared_data):
    d = torch.load(shared_data / "reference" / "ncsnpp_reference_parity_tiny.pt", weights_only=True)
    backbone = NCSNpp(**d["config"]).eval()
    backbone.load_state_dict(d["state_dict"])
    model = ScoreModel(backbone)
    assert model.output_scaling == "none"
    with torch.no_grad():
        score = model(d["x"][:, :1], d["x"][:, 1:], d["t"])
    ref = -d["out"]
    assert ((score - ref).abs().max() / ref.abs().max()).item() < 1e-5


S = 0.5  # data std for the Gaussian problems below


class _AnalyticScore(nn.Module):
    """Backbone whose output makes ScoreModel return the exact score of x0 ~ CN(mu0, S^2)."""

    default_output_scaling = "none"
    downsampling_factor = 64
    config: dict = {}

    def __init__(self, sde, mu0_fn, s: float = S) -> None:
        super().__init__()
        self.sde, self.mu0_fn, self.s = sde, mu0_fn, s
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x, t, cond=None):
        self.shapes.append(tuple(x.shape))
        xt, y = x[:, :1], x[:, 1:]
        a, b = self.sde.mean_coeffs(t)
        a, b, std = batch_view(a, xt), batch_view(b, xt), batch_view(self.sde.std(t), xt)
        return (xt - a * self.mu0_fn(y) - b * y) / (a ** 2 * self.s ** 2 + std ** 2)  # = -score


def test_dsm_loss_reaches_its_closed_form_optimum_with_the_true_score():
    """With the exact score the sigma^2-weighted DSM loss per complex bin is
    0.5 * E_t[u / (u + std^2)], u = a(t)^2 S^2, t ~ U[0.03, 1]."""
    sde = OUVESDE()
    mu0 = 0.2 - 0.1j
    model = ScoreModel(_AnalyticScore(sde, lambda y: torch.full_like(y, mu0)), sde)
    g = torch.Generator().manual_seed(0)
    B, n = 4096, 64
    x0 = mu0 + S * torch.randn(B, 1, 8, 8, dtype=torch.complex64, generator=g)
    y = torch.full_like(x0, 0.4 + 0.3j)
    total, terms = model.loss(x0, y, g)
    assert set(terms) == {"dsm"} and float(terms["dsm"]) == total.item()
    loss = total.item()
    tt = torch.linspace(0.03, 1.0, 20001, dtype=torch.float64)
    u = sde.mean_coeffs(tt)[0] ** 2 * S ** 2
    expected = 0.5 * n * float(torch.trapezoid(u / (u + sde.std(tt) ** 2), tt)) / 0.97
    assert loss == pytest.approx(expected, rel=0.03)  # ~5 Monte-Carlo standard errors
    # a zero score costs 0.5 * E|z|^2 = 0.5 per bin
    zero = ScoreModel(_Const(torch.zeros_like(x0)), sde, output_scaling="none")
    assert zero.loss(x0, y, g)[0].item() == pytest.approx(0.5 * n, rel=0.03)


def test_training_a_small_unet_reduces_the_loss():
    torch.manual_seed(0)
    model = ScoreModel(SmallUNet(channels=(8, 16, 32, 32), temb_dim=64))
    g = torch.Generator().manual_seed(0)
    x0 = 0.3 * torch.randn(4, 1, 32, 32, dtype=torch.complex64, generator=g)
    y = x0 + 0.2 * torch.randn(4, 1, 32, 32, dtype=torch.complex64, generator=g)

    def evaluate() -> float:
        with torch.no_grad():
            return model.loss(x0, y, torch.Generator().manual_seed(123))[0].item()

    before = evaluate()
    assert before == pytest.approx(0.5 * 32 * 32, rel=0.05)  # zero-initialised output
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(25):
        opt.zero_grad()
        model.loss(x0, y, g)[0].backward()
        opt.step()
    assert evaluate() < 0.9 * before


def test_config_round_trip():
    model = ScoreModel(SmallUNet(channels=(8, 16), temb_dim=32), SBVESDE(k=2.0),
                       output_scaling="data")
    cfg = model.to_config()
    clone = ScoreModel.from_config(cfg)
    clone.load_state_dict(model.state_dict())
    assert clone.to_config() == cfg and clone.sample_rate == 16000
    x = torch.randn(2, 1, 16, 8, dtype=torch.complex64)
    t = torch.tensor([0.3, 0.7])
    with torch.no_grad():
        assert torch.equal(clone(x, x, t), model(x, x, t))


def _oracle_model(c: float = 0.5) -> ScoreModel:
    """Oracle for the 'clean' spectrogram c * Y (per compressed bin, std 1e-3): enhance()
    must then return c^2 * y, because |X| = (c |Y~| / beta)^2 in the linear domain."""
    sde = OUVESDE()
    return ScoreModel(_AnalyticScore(sde, lambda y: c * y, s=1e-3), sde)


def _noisy(seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * 16000)
    tt = torch.arange(n) / 16000
    return 0.1 * torch.randn(n, generator=g) + 0.3 * torch.sin(2 * math.pi * 300 * tt)


def _snr_db(ref: torch.Tensor, est: torch.Tensor) -> float:
    return 10 * math.log10(ref.pow(2).sum().item() / (est - ref).pow(2).sum().item())


def test_enhance_short_file_with_oracle_score():
    model = _oracle_model()
    y = _noisy(3.0)
    x = model.enhance(y, 16000, generator=torch.Generator().manual_seed(1))
    assert x.shape == y.shape and x.dtype == torch.float32
    assert _snr_db(0.25 * y, x) > 35.0
    assert set(model.backbone.shapes) == {(1, 2, 256, 384)}  # 376 frames padded to 6 x 64
    assert len(model.backbone.shapes) == 60  # N=30, PC with one ALD step


def test_enhance_long_file_is_chunked_and_stitched():
    model = _oracle_model()
    y = _noisy(12.0, seed=3)  # > 8 s: cut into ~4 s chunks, 0.5 s overlap
    x = model.enhance(y, 16000, sampler="ode", N=10, max_batch=2,
                      generator=torch.Generator().manual_seed(2))
    assert x.shape == y.shape
    assert _snr_db(0.25 * y, x) > 35.0
    shapes = set(model.backbone.shapes)
    assert all(s[0] <= 2 and s[1:] == (2, 256, 512) for s in shapes)  # batches of <= 2 chunks


def _enhance_with_crossfade_loop(model: ScoreModel, y: torch.Tensor, chunk: int, overlap: int,
                                 max_batch: int, **kw) -> torch.Tensor:
    """The chunked path written out by hand: chunks of ``chunk`` frames sampled ``max_batch``
    at a time in order, cross-faded with ramps ``(k + 0.5) / overlap``."""
    tr = model.transform
    Y_norm, normfac = y / y.abs().max(), y.abs().max()
    Y = tr.wave_to_spec(Y_norm, 16000)
    T = Y.shape[-1]
    starts = list(range(0, T - chunk, chunk - overlap)) + [T - chunk]
    w = torch.ones(len(starts), chunk)
    ramp = (torch.arange(overlap) + 0.5) / overlap
    w[1:, :overlap], w[:-1, -overlap:] = ramp, ramp.flip(0)
    acc, wsum = torch.zeros_like(Y), torch.zeros(T)
    for g0 in range(0, len(starts), max_batch):
        group = starts[g0:g0 + max_batch]
        X, _ = model.sample(torch.stack([Y[:, s:s + chunk] for s in group])[:, None], **kw)
        for j, s in enumerate(group):
            acc[:, s:s + chunk] += X[j, 0] * w[g0 + j]
            wsum[s:s + chunk] += w[g0 + j]
    return tr.spec_to_wave(acc / wsum, length=y.shape[0]) * normfac


def test_chunked_enhance_is_the_plain_crossfade_of_batched_chunks():
    """enhance() stitches with se_data.chunked_apply: bit for bit the hand-written loop (same
    chunks, same batches, same generator draws in the same order, same ramps)."""
    model = _oracle_model()
    y = _noisy(3.0, seed=5)  # 376 frames; 1 s chunks: 125 -> 128 frames (a multiple of 64), overlap 31
    got = model.enhance(y, 16000, sampler="pc", N=3, chunk_seconds=1.0, overlap_seconds=0.25, max_batch=2,
                        generator=torch.Generator().manual_seed(4))
    want = _enhance_with_crossfade_loop(model, y, 128, 31, 2, sampler="pc", N=3, eps=model.t_eps,
                                        generator=torch.Generator().manual_seed(4))
    assert torch.equal(got, want)
    # 4 chunks (starts 0, 97, 194, 248) in 2 batches of 2, PC N=3: 6 evaluations each, twice
    assert model.backbone.shapes == [(2, 2, 256, 128)] * (2 * 2 * 6)


def test_sample_rate_keyword_and_its_alias_sr():
    model = _oracle_model()
    y = _noisy(0.5, seed=6)
    kw = dict(sampler="ode", N=2)
    a = model.enhance(y, sample_rate=16000, generator=torch.Generator().manual_seed(0), **kw)
    b = model.enhance(y, sr=16000, generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(a, b)
    with pytest.raises(TypeError, match="not both"):
        model.enhance(y, 16000, sr=16000)
    with pytest.raises(TypeError, match="sample_rate"):
        model.enhance(y)
    with pytest.raises(SampleRateError, match="48000 Hz"):
        model.enhance(y, sr=48000)


def test_enhance_rejects_bad_input():
    model = _oracle_model()
    with pytest.raises(SampleRateError, match="resample"):
        model.enhance(torch.zeros(48000), 48000)
    with pytest.raises(BadAudioError, match="silent"):
        model.enhance(torch.zeros(16000), 16000)
    with pytest.raises(BadAudioError, match="mono"):
        model.enhance(torch.zeros(2, 16000), 16000)
    with pytest.raises(BadAudioError, match="short"):
        model.enhance(torch.ones(100), 16000)
    with pytest.raises(ValueError, match="SBVESDE"):
        model.sample(torch.zeros(1, 1, 256, 64, dtype=torch.complex64), sampler="sb_ode")


def test_data_parallel_shares_reassemble_the_global_batch_loss():
    """``share=(rank, world)``: every rank draws t / z / both dropouts for the global batch
    from the same seed and keeps items rank::world; the mean of the ranks' losses is then the
    one-process loss on the global batch (the DDP gradient), to float rounding."""
    from sgmse_cfg import CNNNoiseEncoder, NoiseCondScoreModel, SmallUNet

    torch.manual_seed(0)
    model = NoiseCondScoreModel(SmallUNet(channels=(4, 8)), CNNNoiseEncoder(channels=(4, 8), dim=8),
                                inject="input_add", n_classes=3, p_uncond=0.5).train()
    model.nc_head.dropout.p = 0.5  # make the NC head's dropout matter
    labels = torch.tensor([0, 1, 2, 1])
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, 1, 256, 32, dtype=torch.complex64, generator=g)
    y = x0 + 0.5 * torch.randn(4, 1, 256, 32, dtype=torch.complex64, generator=g)

    def loss(idx, share):
        total, terms = model.loss(x0[idx], y[idx], torch.Generator().manual_seed(7), labels=labels[idx], share=share)
        assert "nc" in terms
        return total

    whole = loss(slice(None), None)
    ranks = [loss(slice(r, None, 2), (r, 2)) for r in range(2)]
    torch.testing.assert_close((ranks[0] + ranks[1]) / 2, whole, rtol=1e-5, atol=1e-6)
    # not vacuous: without the share each rank redraws its own numbers
    unshared = [loss(slice(r, None, 2), None) for r in range(2)]
    assert abs(float(((unshared[0] + unshared[1]) / 2 - whole).detach())) > 1e-3 * abs(float(whole.detach()))
    with pytest.raises(ValueError, match="share"):
        loss(slice(None), (2, 2))
