"""mix_at_snr: exact SNR on real speech and real noise, SI-SDR, looping, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from se_data import SampleRateError
from se_data.mixing import fit_to_length, mix_at_snr, si_sdr_db


@pytest.fixture(scope="module")
def speech_noise(shared_data):
    s, sr_s = sf.read(shared_data / "speech" / "voicebank16k" / "clean" / "p287_003.wav", dtype="float32")
    n, sr_n = sf.read(shared_data / "noise" / "noise1.wav", dtype="float32")
    assert sr_s == sr_n == 16000
    return torch.from_numpy(s), torch.from_numpy(n)


def _si_sdr(ref: np.ndarray, est: np.ndarray) -> float:  # independent float64 reference
    ref, est = ref - ref.mean(), est - est.mean()
    a = np.sum(ref * est) / np.sum(ref * ref)
    return 10 * np.log10(np.sum((a * ref) ** 2) / np.sum((est - a * ref) ** 2))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 5.0, 10.0, 20.0])
def test_exact_snr_on_real_speech_and_noise(speech_noise, snr):
    s, n = speech_noise
    noisy, info = mix_at_snr(s, n, snr, seed=3, speech_sr=16000, noise_sr=16000)
    assert noisy.dtype == torch.float32 and noisy.shape == s.shape
    assert abs(info.snr_db - snr) < 1e-6
    # recompute independently from the returned offset and gain, in float64
    s64, n64 = s.double().numpy(), n.double().numpy()
    seg = n64[info.noise_offset:info.noise_offset + s64.size]
    assert not info.looped and 0 <= info.noise_offset <= n64.size - s64.size
    g = math.sqrt(np.sum(s64**2) / (np.sum(seg**2) * 10 ** (snr / 10)))
    assert math.isclose(info.noise_gain, g, rel_tol=1e-12)
    assert abs(10 * np.log10(np.sum(s64**2) / np.sum((g * seg) ** 2)) - snr) < 1e-6
    # the float32 mixture itself: its noise part still gives the SNR to well under 1e-6 dB
    resid = noisy.double().numpy() - s64
    assert abs(10 * np.log10(np.sum(s64**2) / np.sum(resid**2)) - snr) < 1e-6
    # SI-SDR of the mixture: matches an independent implementation, and differs from the SNR
    assert math.isclose(info.si_sdr_db, _si_sdr(s64, s64 + g * seg), abs_tol=1e-9)
    assert abs(info.si_sdr_db - snr) > 1e-4


def test_si_sdr_equals_snr_when_noise_is_orthogonal(speech_noise):
    """The SI-SDR/SNR difference is the speech-noise correlation: remove it and they agree."""
    s, n = speech_noise
    s64 = s.double().numpy()
    s0 = s64 - s64.mean()
    seg = n.double().numpy()[: s64.size]
    seg = seg - seg.mean()
    seg = seg - (np.sum(seg * s0) / np.sum(s0 * s0)) * s0  # zero-mean and orthogonal to the speech
    noisy, info = mix_at_snr(torch.from_numpy(s0), torch.from_numpy(seg), 5.0, offset=0)
    assert noisy.dtype == torch.float64
    assert abs(info.si_sdr_db - 5.0) < 1e-9 and abs(info.snr_db - 5.0) < 1e-9


def test_si_sdr_db_edge_cases():
    """Identical signals give a large finite value (the 1e-12 regulariser), never +inf; a
    silent (constant) estimate or reference has no SI-SDR and raises."""
    rng = np.random.default_rng(0)
    s = rng.standard_normal(4000)
    e = float(np.sum((s - s.mean()) ** 2))
    assert si_sdr_db(s, s) == pytest.approx(10 * math.log10((e + 1e-12) / 1e-12), rel=1e-12)
    # a scaled, offset copy: the error is exactly zero, so the value is set by the regulariser
    assert si_sdr_db(s, 2.0 * s + 1.0) == pytest.approx(10 * math.log10((4 * e + 1e-12) / 1e-12), rel=1e-12)
    noisy = s + rng.standard_normal(4000)
    assert si_sdr_db(s, noisy) == pytest.approx(_si_sdr(s, noisy), abs=1e-9)
    assert si_sdr_db(s.astype(np.float32), noisy.astype(np.float32)) == pytest.approx(
        _si_sdr(s.astype(np.float32).astype(np.float64), noisy.astype(np.float32).astype(np.float64)), abs=1e-9)
    for silent in (np.zeros(4000), np.full(4000, 0.3)):
        with pytest.raises(ValueError, match="estimate is silent"):
            si_sdr_db(s, silent)
        with pytest.raises(ValueError, match="reference is silent"):
            si_sdr_db(silent, s)
    with pytest.raises(ValueError, match="equal length"):
        si_sdr_db(s, s[:-1])
    with pytest.raises(ValueError, match="NaN or Inf"):
        si_sdr_db(s, np.where(np.arange(4000) == 7, np.nan, s))


def test_seeded_offset_and_looping(speech_noise):
    s, n = speech_noise
    _, a = mix_at_snr(s, n, 0.0, seed=11)
    _, b = mix_at_snr(s, n, 0.0, seed=11)
    _, c = mix_at_snr(s, n, 0.0, seed=12)
    assert a.noise_offset == b.noise_offset != c.noise_offset
    short = n[:5000]  # shorter than the speech: looped from the offset
    noisy, info = mix_at_snr(s, short, 3.0, offset=4000)
    assert info.looped and info.noise_offset == 4000 and abs(info.snr_db - 3.0) < 1e-6
    idx = (4000 + np.arange(s.numel())) % 5000
    expect = s.double().numpy() + info.noise_gain * short.double().numpy()[idx]
    np.testing.assert_allclose(noisy.double().numpy(), expect, atol=1e-6)
    seg, off = fit_to_length(short, 12000, offset=4999)
    assert off == 4999 and seg[0] == short[4999] and seg[1] == short[0] and seg.numel() == 12000


def test_bad_input(speech_noise):
    s, n = speech_noise
    with pytest.raises(ValueError, match="speech is silent"):
        mix_at_snr(torch.zeros(16000), n, 0.0, seed=0)
    with pytest.raises(ValueError, match="noise segment at offset 0 .* silent"):
        mix_at_snr(s, torch.zeros(50000), 0.0, offset=0)
    with pytest.raises(ValueError, match="silent .*-160.0 dBFS.*pick_noise_offset"):
        mix_at_snr(s, torch.full((50000,), 1e-8, dtype=torch.float64), 0.0, offset=0)  # resampling ringing
    with pytest.raises(SampleRateError, match="resample"):
        mix_at_snr(s, n, 0.0, seed=0, speech_sr=16000, noise_sr=48000)
    bad = s.clone()
    bad[10] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        mix_at_snr(bad, n, 0.0, seed=0)
    with pytest.raises(ValueError, match="1-D"):
        mix_at_snr(s[None, :], n, 0.0, seed=0)
    with pytest.raises(ValueError, match="finite"):
        mix_at_snr(s, n, float("inf"), seed=0)
    with pytest.raises(ValueError, match="offset= or seed="):
        mix_at_snr(s, n, 0.0)
    with pytest.raises(ValueError, match="outside the noise"):
        mix_at_snr(s, n, 0.0, offset=n.numel())
