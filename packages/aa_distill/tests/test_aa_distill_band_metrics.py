"""Per-band grouping of NMR bands / harmonics / alias components, the analysis tone grid and
the oversampled-waveshaper teacher."""

from __future__ import annotations

import math

import pytest
import torch

from aa_distill import (
    ANALYSIS_BANDS_HZ,
    NMR,
    OversampledWaveshaper,
    analysis_tone_params,
    asr,
    asr_per_band,
    band_label,
    band_membership,
    esr_per_band,
    group_nmr_band_ratios,
    harmonic_analysis,
    hesr,
    hesr_per_band,
    nmr_per_band,
    spectral_band_shares,
    synthesize_tones,
)

FS = 48_000


def _harmonic_series(f0: float, amps: torch.Tensor, n: int = FS) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) / FS
    m = torch.arange(1, amps.numel() + 1, dtype=torch.float64)
    return (amps[:, None] * torch.cos(2 * math.pi * f0 * m[:, None] * t + 0.3 * m[:, None])).sum(0)


def test_band_membership_and_labels():
    f = torch.tensor([19.9, 20.0, 499.9, 500.0, 11999.0, 12000.0, 19999.0, 20000.0])
    m = band_membership(f)
    assert m.shape == (8, 5)
    assert m.sum(1).tolist() == [0, 1, 1, 1, 1, 1, 1, 0]
    assert m.float().argmax(1)[[1, 3, 4, 5]].tolist() == [0, 1, 3, 4]
    assert [band_label(b) for b in ANALYSIS_BANDS_HZ] == ["20-500", "500-2k", "2k-8k", "8k-12k",
                                                        "12k-20k"]
    with pytest.raises(ValueError, match="lo < hi"):
        band_membership(f, [(500.0, 20.0)])


def test_nmr_per_band_regroups_the_total():
    """Every NMR band centre lies in 20 Hz-20 kHz, so the count-weighted mean of the five band
    values is the broadband NMR; one all-covering band is the broadband NMR itself."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, FS // 4, generator=gen, dtype=torch.float64) * 0.1
    ref = x + 1e-3 * torch.randn(2, FS // 4, generator=gen, dtype=torch.float64)
    nmr = NMR(FS)
    total = nmr(x, ref)
    per = nmr_per_band(nmr, x, ref)
    counts = band_membership(torch.as_tensor(nmr.band_centres_hz)).sum(0).to(torch.float64)
    assert int(counts.sum()) == 109
    torch.testing.assert_close((per * counts).sum(-1) / 109, total, rtol=1e-12, atol=0)
    torch.testing.assert_close(nmr_per_band(nmr, x, ref, [(0.0, 1e5)])[:, 0], total,
                               rtol=1e-12, atol=0)
    above = nmr_per_band(nmr, x, ref, [(18_500.0, 20_000.0)])  # no NMR band up there
    assert bool(above.isnan().all())
    ratios = nmr.band_ratios(x, ref)
    assert torch.equal(group_nmr_band_ratios(ratios, nmr.band_centres_hz), per)
    with pytest.raises(ValueError, match="centre frequency per NMR band"):
        group_nmr_band_ratios(ratios, nmr.band_centres_hz[:-1])


def test_hesr_per_band_isolates_the_changed_harmonic():
    f0 = 440.3  # 25 harmonics reach 11.0 kHz
    amps = 1.0 / torch.arange(1, 26, dtype=torch.float64)
    target = _harmonic_series(f0, amps)[None]
    changed = amps.clone()
    changed[9] *= 1.1  # the 10th harmonic, 4403 Hz: band 2k-8k
    pred = _harmonic_series(f0, changed)[None]
    pa, ta = harmonic_analysis(pred, f0, FS), harmonic_analysis(target, f0, FS)
    per = hesr_per_band(pa, ta)[0]
    m = torch.arange(1, 26, dtype=torch.float64)
    in_band = (m * f0 >= 2000) & (m * f0 < 8000)
    expected = (0.1 * amps[9]) ** 2 / amps[in_band].pow(2).sum()
    assert float(per[2]) == pytest.approx(float(expected), rel=1e-4)  # window leakage
    assert float(per[[0, 1, 3]].max()) < 1e-12  # untouched harmonics: leakage floor only
    # no harmonic below Nyquist in a band above it
    assert math.isnan(float(hesr_per_band(pa, ta, [(24_001.0, 30_000.0)])[0, 0]))
    # pooled over all bands it is the broadband HESR
    err_total = float(expected) * float(amps[in_band].pow(2).sum())
    assert float(hesr(pred, target, f0, FS)[0]) == pytest.approx(
        err_total / float(amps.pow(2).sum()), rel=1e-4)


def test_asr_per_band_places_an_alias_and_sums_to_asr():
    f0 = 1234.5
    amps = 0.5 ** torch.arange(0, 12, dtype=torch.float64)
    clean = _harmonic_series(f0, amps, FS + 4800)
    t = torch.arange(FS + 4800, dtype=torch.float64) / FS
    alias = 1e-3 * torch.sin(2 * math.pi * 3333.3 * t)
    per = asr_per_band((clean + alias)[None], f0, FS)[0]
    total = float(asr((clean + alias)[None], f0, FS)[0])
    assert total == pytest.approx(0.5e-6 / float(amps.pow(2).sum() / 2), rel=1e-3)
    # the bands miss only what lies below 20 Hz or above 20 kHz (window leakage here)
    assert float(per.sum()) == pytest.approx(total, rel=1e-5)
    assert float(per[2]) == pytest.approx(total, rel=1e-5)  # 3.3 kHz: band 2k-8k
    # elsewhere only the bandlimiter's floor (~ -115 dB re the signal)
    assert float(per[[0, 1, 3, 4]].max()) < 1e-5 * total


def test_esr_per_band_and_shares():
    t = torch.arange(FS, dtype=torch.float64) / FS
    target = torch.sin(2 * math.pi * 1000.5 * t)[None]
    err = 0.01 * torch.sin(2 * math.pi * 10_000.25 * t)[None]
    per = esr_per_band(target + err, target, FS)[0]
    assert float(per[3]) == pytest.approx(1e-4, rel=1e-3)  # 8k-12k
    assert float(per[[0, 1, 2, 4]].max()) < 1e-14
    shares = spectral_band_shares(torch.stack([target[0], err[0]]), FS)
    assert shares[0, 1] == pytest.approx(1.0, abs=1e-10) and shares[1, 3] == pytest.approx(1.0, abs=1e-10)
    assert float(spectral_band_shares(torch.zeros(1, FS), FS).abs().max()) == 0.0


def test_analysis_tone_grid():
    p = analysis_tone_params(FS, num_tones=50, levels_db=(-18.0, -6.0))
    assert len(p) == 100 and p.num_samples == 57_600 and p.sample_rate == FS
    assert float(p.f0[0]) == 27.5 and float(p.f0[49]) == 12_000.0
    ratios = p.f0[1:50] / p.f0[:49]
    torch.testing.assert_close(ratios, torch.full_like(ratios, (12_000 / 27.5) ** (1 / 49)))
    assert torch.equal(p.f0[:50], p.f0[50:])
    assert float(p.amplitude[0]) == pytest.approx(10 ** (-18 / 20)) and float(
        p.amplitude[99]) == pytest.approx(10 ** (-6 / 20))
    torch.testing.assert_close(440 * 2 ** ((p.midi - 69) / 12), p.f0)
    x = synthesize_tones(p.subset(slice(0, 2)))
    assert float(x[0].abs().max()) == pytest.approx(10 ** (-18 / 20), rel=1e-6)
    with pytest.raises(ValueError, match="f_max"):
        analysis_tone_params(FS, f_max=30_000.0)
    with pytest.raises(ValueError, match="levels_db"):
        analysis_tone_params(FS, levels_db=(3.0,))


def test_waveshaper_receptive_field_delay_and_small_signal_gain():
    w = OversampledWaveshaper(FS, gain=10.0, factor=8)
    rf = w.receptive_field
    assert rf == 1 + math.ceil(2 * (w.num_taps - 1) / 8) and w.delay == (w.num_taps - 1) / 8
    gen = torch.Generator().manual_seed(1)
    x = 0.1 * torch.randn(1, 1500, generator=gen, dtype=torch.float64)
    y = w(x)
    assert y.shape == x.shape and y.dtype == torch.float64
    m = 1200
    x2 = x.clone()
    x2[0, m - rf] += 0.5  # just outside the receptive field of output m
    assert float((w(x2) - y)[0, m:].abs().max()) == 0.0
    x2 = x.clone()
    x2[0, m - rf + 1] += 0.5  # its oldest input sample
    assert float((w(x2) - y)[0, m].abs()) > 1e-12
    # causal: a change at sample m leaves every earlier output untouched
    x3 = x.clone()
    x3[0, m] += 0.5
    assert float((w(x3) - y)[0, :m].abs().max()) == 0.0
    # small signals: gain 10 (tanh(10 x) ~ 10 x), delayed by w.delay samples
    f0 = 1000.0
    n = torch.arange(int(1.2 * FS), dtype=torch.float64)
    tone = 1e-5 * torch.sin(2 * math.pi * f0 * n / FS)[None]
    out = w(tone)[0, -FS:]
    ref = 10 * 1e-5 * torch.sin(2 * math.pi * f0 * (n[-FS:] - w.delay) / FS)
    assert float((out - ref).abs().max()) < 1e-5 * 1e-4  # passband ripple < 1e-4


def test_waveshaper_oversampling_reduces_aliasing():
    f0 = 5111.0
    n = torch.arange(int(1.1 * FS), dtype=torch.float64)
    x = 0.5 * torch.sin(2 * math.pi * f0 * n / FS)[None]
    naive = 10 * math.log10(float(asr(OversampledWaveshaper(FS, factor=1, shape="hardclip")(x),
                                      f0, FS)[0]))
    os8 = 10 * math.log10(float(asr(OversampledWaveshaper(FS, factor=8, shape="hardclip")(x),
                                    f0, FS)[0]))
    tanh8 = 10 * math.log10(float(asr(OversampledWaveshaper(FS, factor=8)(x), f0, FS)[0]))
    assert naive > -20.0  # a hard clipper at the base rate aliases strongly
    assert os8 < naive - 20.0
    assert tanh8 < -100.0  # tanh's harmonics decay fast: 8x is nearly alias-free
    assert OversampledWaveshaper(FS)(x.float()).dtype == torch.float32
    with pytest.raises(ValueError, match="shape"):
        OversampledWaveshaper(FS, shape="fuzz")
    with pytest.raises(ValueError, match="sample_rate"):
        OversampledWaveshaper(44_100.5)


@pytest.mark.parametrize("factor", [2, 3, 8])
def test_waveshaper_polyphase_equals_the_direct_form(factor):
    """The polyphase filters equal the textbook form: zero-stuff, filter with r h, shape,
    filter with h, keep every r-th sample (all causal)."""
    w = OversampledWaveshaper(FS, gain=3.0, factor=factor)
    gen = torch.Generator().manual_seed(factor)
    x = 0.3 * torch.randn(2, 1001, generator=gen, dtype=torch.float64)
    h, r, t = w.taps, factor, x.shape[-1]
    stuffed = torch.zeros(2, r * t, dtype=torch.float64)
    stuffed[:, ::r] = x
    u = torch.nn.functional.conv1d(torch.nn.functional.pad(stuffed[:, None], (h.numel() - 1, 0)),
                                   (r * h).flip(0).view(1, 1, -1))[:, 0]
    y = torch.tanh(3.0 * u)
    v = torch.nn.functional.conv1d(torch.nn.functional.pad(y[:, None], (h.numel() - 1, 0)),
                                   h.flip(0).view(1, 1, -1))[:, 0]
    torch.testing.assert_close(w(x), v[:, ::r], rtol=0, atol=1e-14)
