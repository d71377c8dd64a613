"""Bandlimiter, Kaiser lowpass and losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.signal import freqz
from scipy.signal.windows import chebwin

from aa_distill import (
    Bandlimiter,
    HarmonicMagnitudeLoss,
    KaiserLowpass,
    asr,
    bandlimit,
    curriculum_lambda,
    dc_loss,
    esr,
    harmonic_analysis,
    hesr,
    kaiser_lowpass_taps,
    lambda_weights,
)


def _harmonic_series(f0: float, fs: int, seconds: float, rng: np.random.Generator,
                     dc: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DC + harmonics m f0 kept >= 30 Hz below Nyquist, amplitudes ~ U(0,1)/m."""
    h = int((fs / 2 - 30) // f0)
    amps = rng.uniform(0.2, 1.0, h) / np.arange(1, h + 1)
    ph = rng.uniform(0, 2 * np.pi, h)
    t = np.arange(int(seconds * fs)) / fs
    m = np.arange(1, h + 1)[:, None]
    x = dc + (amps[:, None] * np.cos(2 * np.pi * m * f0 * t + ph[:, None])).sum(0)
    return x, amps, ph


def _naive_bandlimit(sig: np.ndarray, f0: float, fs: int) -> np.ndarray:
    """The reference algorithm with its N x H matrices (for cross-checking)."""
    n = fs
    sig = sig[-n:]
    w = chebwin(n, at=120, sym=False)
    spec = np.fft.rfft(sig * w)
    h = int(np.floor(0.5 * fs / f0))
    harm = f0 * np.arange(1, h + 1)
    bins = np.round(harm * n / fs).astype(int)
    d = harm * n / fs - bins
    idx = np.arange(n)[:, None]
    amps = spec[bins] / np.sum(w[:, None] * np.exp(2j * np.pi * d * idx / n), axis=0)
    t = np.arange(n)[:, None] / fs
    return spec[0].real / w.sum() + np.sum(
        2 * np.abs(amps) * np.cos(2 * np.pi * harm * t + np.angle(amps)), axis=1)


def test_bandlimit_recovers_off_bin_harmonic_series_below_minus_100_db():
    fs = 48_000
    rng = np.random.default_rng(0)
    f0s = [440.37, 1234.567, 3001.9, 5001.9]  # up to 54 harmonics
    sigs, amps = [], []
    for f0 in f0s:
        x, a, _ = _harmonic_series(f0, fs, 1.2, rng)
        sigs.append(x)
        amps.append(a)
    x = torch.from_numpy(np.stack(sigs))
    r = bandlimit(x, torch.tensor(f0s, dtype=torch.float64), fs)
    assert r.bandlimited.shape == (4, fs)
    err_db = 10 * torch.log10(r.aliases.pow(2).sum(-1) / x[:, -fs:].pow(2).sum(-1))
    assert bool((err_db < -100).all()), err_db
    # DC is kept and the magnitudes are the true ones (scalloping corrected)
    assert torch.allclose(r.analysis.dc, torch.full((4,), 0.05, dtype=torch.float64), atol=1e-7)
    for i, a in enumerate(amps):
        got = r.analysis.magnitudes[i, :len(a)].numpy()
        np.testing.assert_allclose(got, a, rtol=0, atol=3e-6 * a.max())  # window leakage: -110 dB


@pytest.mark.parametrize("f0", [12_000.0, 4_800.0, 48_000 / 14])
def test_a_harmonic_exactly_at_nyquist_is_counted_once(f0):
    """fs / (2 f0) a whole number: the top harmonic sits on the real Nyquist bin. An alias-free
    series with such a component is returned unchanged (aliases below -100 dB, ASR too); the
    component's magnitude is what a sampled cosine at fs/2 shows, |A cos(phase)|. (Counting it
    twice made the aliases equal minus that component: ASR about -12 dB for a 12 kHz tone.)"""
    fs = 48_000
    top = round(fs / (2 * f0))
    rng = np.random.default_rng(3)
    amps, ph = rng.uniform(0.2, 1.0, top) / np.arange(1, top + 1), rng.uniform(0, 2 * np.pi, top)
    n = np.arange(int(1.25 * fs))
    x = 0.02 + sum(amps[m - 1] * np.cos(2 * np.pi * m * f0 * n / fs + ph[m - 1]) for m in range(1, top))
    x = x + amps[-1] * np.cos(np.pi * n + ph[-1])  # the harmonic at fs/2
    xt = torch.from_numpy(x)[None]
    r = bandlimit(xt, f0, fs)
    seg = xt[:, -fs:].pow(2).sum()
    assert float(10 * torch.log10(r.aliases.pow(2).sum() / seg)) < -100
    assert float(10 * torch.log10(asr(xt, f0, fs))) < -100
    got = r.analysis.magnitudes[0, top - 1].item()
    assert got == pytest.approx(abs(amps[-1] * np.cos(ph[-1] + np.pi * (len(x) - fs))), abs=1e-6)


def test_bandlimit_floor_is_the_window_side_lobes():
    """~290 harmonics of 27.53 Hz at 16 kHz: the 120 dB window's leakage limits the error to
    about -97 dB; with a 200 dB window the same code reaches < -170 dB (the synthesis is
    exact)."""
    fs = 16_000
    x, _, _ = _harmonic_series(27.53, fs, 1.05, np.random.default_rng(1))
    x = torch.from_numpy(x)[None]
    sig = x[:, -fs:].pow(2).sum()
    for at, bound in ((120.0, -90.0), (200.0, -170.0)):
        r = bandlimit(x, 27.53, fs, attenuation_db=at)
        assert float(10 * torch.log10(r.aliases.pow(2).sum() / sig)) < bound


def test_bandlimit_matches_reference_algorithm():
    fs = 8_000
    t = torch.arange(int(1.3 * fs), dtype=torch.float64) / fs
    f0 = torch.tensor([110.3, 1001.7, 3333.3], dtype=torch.float64)
    x = torch.tanh(6 * torch.sin(2 * math.pi * f0[:, None] * t + 0.3)) + 0.1
    r = bandlimit(x, f0, fs)
    for i in range(3):
        ref = _naive_bandlimit(x[i].numpy(), float(f0[i]), fs)
        np.testing.assert_allclose(r.bandlimited[i].numpy(), ref, rtol=0, atol=1e-11)


def test_bandlimit_removes_aliases_and_is_idempotent_and_linear():
    fs = 44_100
    t = torch.arange(int(1.2 * fs), dtype=torch.float64) / fs
    f0 = torch.tensor([1245.0, 4186.0], dtype=torch.float64)
    x = torch.tanh(10 * torch.sin(2 * math.pi * f0[:, None] * t))
    r = bandlimit(x, f0, fs)
    asr_db = 10 * torch.log10(r.aliases.pow(2).sum(-1) / r.bandlimited.pow(2).sum(-1))
    assert bool((asr_db > -60).all())  # hard clipping aliases audibly
    again = bandlimit(r.bandlimited, f0, fs).bandlimited
    resid = 10 * torch.log10((again - r.bandlimited).pow(2).sum(-1) / r.bandlimited.pow(2).sum(-1))
    assert bool((resid < -100).all())
    y = 0.3 * x + torch.roll(x, 17, dims=-1)
    lin = bandlimit(y, f0, fs).bandlimited - (0.3 * r.bandlimited + bandlimit(
        torch.roll(x, 17, dims=-1), f0, fs).bandlimited)
    assert float(lin.abs().max()) < 1e-12


def test_bandlimit_gradient_and_float32_input():
    fs = 16
    x = torch.randn(2, 18, dtype=torch.float64, requires_grad=True)
    f0 = torch.tensor([2.3, 3.1], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda v: bandlimit(v, f0, fs).bandlimited, (x,))
    x32 = torch.randn(1, 20, requires_grad=True)
    out = Bandlimiter(fs)(x32, 3.0)
    assert out.dtype == torch.float32
    out.sum().backward()
    assert torch.isfinite(x32.grad).all()


def test_bandlimit_input_checks():
    with pytest.raises(ValueError, match="shorter than the one-second"):
        bandlimit(torch.zeros(1, 100), 10.0, 1000)
    with pytest.raises(ValueError, match="odd"):
        bandlimit(torch.zeros(1, 2000), 10.0, 1001)
    with pytest.raises(ValueError, match="f0"):
        bandlimit(torch.zeros(1, 2000), 600.0, 1000)
    with pytest.raises(ValueError, match="float64"):
        bandlimit(torch.zeros(1, 2000), torch.tensor([10.0]), 1000)
    with pytest.raises(ValueError, match="one frequency per signal"):
        bandlimit(torch.zeros(3, 2000), torch.tensor([10.0, 20.0], dtype=torch.float64), 1000)


# ----------------------------------------------------------------------------- lowpass
@pytest.mark.parametrize("fs, taps", [(48_000, 63), (44_100, 57)])
def test_kaiser_lowpass_design_for_the_actual_rate(fs, taps):
    h = kaiser_lowpass_taps(fs)
    assert h.size == taps
    w, resp = freqz(h, worN=1 << 16, fs=fs)
    db = 20 * np.log10(np.abs(resp))
    assert db[w <= 12_000].min() > -0.002 and db[w <= 12_000].max() < 0.002
    assert abs(np.interp(14_000, w, db) - (-6.02)) < 0.01
    stop = db[w >= 16_000].max()
    if fs == 48_000:
        assert abs(stop - (-78.99)) < 0.01  # the reference design's worst stopband value
    else:
        assert stop < -78.9


def test_kaiser_lowpass_module_is_zero_phase_and_checks_rate():
    fs = 48_000
    lp = KaiserLowpass(fs)
    t = torch.arange(4800, dtype=torch.float64) / fs
    lo = torch.sin(2 * math.pi * 1000 * t)[None]
    hi = torch.sin(2 * math.pi * 20_000 * t)[None]
    mid = slice(100, -100)
    assert float((lp(lo) - lo)[:, mid].abs().max()) < 2e-4  # unchanged, no delay
    assert float(lp(hi)[:, mid].abs().max()) < 10 ** (-78 / 20)
    assert lp(lo.float()).dtype == torch.float32
    with pytest.raises(ValueError, match="below Nyquist"):
        KaiserLowpass(32_000)


# ----------------------------------------------------------------------------- losses
def test_esr_and_dc_reductions():
    t = torch.tensor([[1.0, -1.0, 1.0, -1.0], [2.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([[1.5, -1.0, 1.0, -1.0], [2.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    # per item: 0.25/4 and 1/4
    assert torch.allclose(esr(p, t, "none"), torch.tensor([0.0625, 0.25], dtype=torch.float64))
    assert float(esr(p, t, "mean")) == pytest.approx((0.0625 + 0.25) / 2)
    assert float(esr(p, t, "pooled")) == pytest.approx(1.25 / 8)
    # DC: mean(t - p) per item -0.125 and -0.25 (mean t^2 = 1 for both); pooled averages
    # over the whole batch before squaring (the reference): (-1.5 / 8)^2 / 1
    assert float(dc_loss(p, t, "pooled")) == pytest.approx((1.5 / 8) ** 2)
    assert torch.allclose(dc_loss(p, t, "none"),
                          torch.tensor([0.125 ** 2, 0.25 ** 2], dtype=torch.float64))
    # opposite DC errors cancel in the pooled form only
    q = t + torch.tensor([[0.1], [-0.1]], dtype=torch.float64)
    assert float(dc_loss(q, t, "pooled")) == pytest.approx(0.0, abs=1e-30)
    assert float(dc_loss(q, t, "mean")) > 0


def test_asr_and_hesr():
    fs = 48_000
    t = torch.arange(int(1.2 * fs), dtype=torch.float64) / fs
    f0 = torch.tensor([440.37, 2345.6], dtype=torch.float64)
    pure = torch.sin(2 * math.pi * f0[:, None] * t) + 0.5 * torch.sin(4 * math.pi * f0[:, None] * t)
    assert bool((10 * torch.log10(asr(pure, f0, fs)) < -100).all())
    clipped = torch.tanh(10 * torch.sin(2 * math.pi * f0[:, None] * t))
    asr_db = 10 * torch.log10(asr(clipped, f0, fs))
    assert -95 < float(asr_db[0]) < -75 and float(asr_db[1]) > -40  # aliasing grows with f0
    assert bool((hesr(pure, pure, f0, fs) < 1e-20).all())
    # halving the harmonic magnitudes gives HESR 0.25; a delay does not change it
    quarter = torch.full((2,), 0.25, dtype=torch.float64)
    assert torch.allclose(hesr(0.5 * pure, pure, f0, fs), quarter, atol=1e-9)
    delayed = torch.sin(2 * math.pi * f0[:, None] * (t - 1e-4)) \
        + 0.5 * torch.sin(4 * math.pi * f0[:, None] * (t - 1e-4))
    assert bool((hesr(delayed, pure, f0, fs) < 1e-10).all())  # leakage only
    an = harmonic_analysis(pure, f0, fs)
    assert torch.allclose(an.magnitudes[:, :2], torch.tensor([[1.0, 0.5], [1.0, 0.5]],
                                                             dtype=torch.float64), atol=1e-9)


def test_harmonic_magnitude_loss():
    fs = 48_000
    t = torch.arange(fs, dtype=torch.float64) / fs
    f0 = torch.tensor([300.3, 2000.5], dtype=torch.float64)
    m = torch.arange(1, 11, dtype=torch.float64)[:, None, None]
    x = (torch.cos(2 * math.pi * m * f0[:, None] * t + m) / m).sum(0)  # 10 harmonics
    loss = HarmonicMagnitudeLoss(fs, num_harmonics=10)
    total, terms = loss(x, x, f0)
    assert float(total) == pytest.approx(0.0, abs=1e-20) and set(terms) == {"harmonic"}
    # -6.02 dB on every harmonic: loss = 6.0206^2 whatever the weights
    assert float(loss(0.5 * x, x, f0)[0]) == pytest.approx((20 * math.log10(2)) ** 2, rel=1e-9)
    p = (0.9 * x).requires_grad_(True)
    loss(p, x, f0)[0].backward()
    assert torch.isfinite(p.grad).all() and float(p.grad.abs().sum()) > 0


def test_lambda_weights_and_curriculum():
    assert lambda_weights(1.0) == (0.5, 0.5)
    e, n = lambda_weights(0.3)
    assert e == pytest.approx(0.769, abs=5e-4) and n == pytest.approx(0.231, abs=5e-4)
    assert e + n == pytest.approx(1.0)
    assert curriculum_lambda(0, 40) == pytest.approx(3.0)
    assert curriculum_lambda(40, 40) == pytest.approx(0.3)
    assert curriculum_lambda(20, 40) == pytest.approx(math.sqrt(0.9))
    vals = [curriculum_lambda(e, 40) for e in range(41)]
    assert all(a > b for a, b in zip(vals, vals[1:]))
    with pytest.raises(ValueError):
        lambda_weights(-1.0)
