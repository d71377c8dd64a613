"""Synthetic noises: exact spectral slopes, seeding, babble."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import welch

from se_data.synthetic_noise import (
    babble_noise,
    brown_noise,
    colored_noise,
    pink_noise,
    synthetic_noise,
    white_noise,
)

SR = 16000


def _slope_db_per_octave(x: np.ndarray, sr: int = SR) -> float:
    """Least-squares slope of the Welch PSD (dB) against log2(f) over 100 Hz - 6 kHz."""
    f, p = welch(x, fs=sr, nperseg=4096)
    m = (f >= 100) & (f <= 6000)
    return float(np.polyfit(np.log2(f[m]), 10 * np.log10(p[m]), 1)[0])


@pytest.mark.parametrize("fn, slope", [(white_noise, 0.0), (pink_noise, -3.0), (brown_noise, -6.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_spectral_slopes(fn, slope, seed):
    x = fn(10 * SR, seed=seed, sample_rate=SR)
    assert x.shape == (10 * SR,) and x.dtype == torch.float32
    assert math.isclose(float(x.double().pow(2).mean().sqrt()), 1.0, rel_tol=1e-5)
    measured = _slope_db_per_octave(x.numpy())
    assert abs(measured - slope) <= 0.5, f"{fn.__name__}: {measured:.3f} dB/oct, expected {slope}"


def test_general_exponent_slope_and_other_rate():
    # exponent a -> 10*log10(2)*a dB/octave, at 44.1 kHz too
    x = colored_noise(10 * 44100, -1.5, seed=3, sample_rate=44100)
    assert abs(_slope_db_per_octave(x.numpy(), 44100) - (-1.5 * 10 * math.log10(2))) <= 0.5


def test_seeding():
    a = pink_noise(20000, seed=7)
    assert torch.equal(a, pink_noise(20000, seed=7))
    assert not torch.equal(a, pink_noise(20000, seed=8))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(white_noise(1000, seed=g1), white_noise(1000, seed=g2))
    r1, r2 = np.random.default_rng(2), np.random.default_rng(2)
    assert torch.equal(brown_noise(1000, seed=r1), brown_noise(1000, seed=r2))
    with pytest.raises(TypeError, match="seed"):
        white_noise(1000, seed=None)
    with pytest.raises(ValueError, match="unknown synthetic noise"):
        synthetic_noise("purple", 100, seed=0)
    with pytest.raises(ValueError, match="num_samples"):
        white_noise(0, seed=0)


def _envelope_std_db(x: np.ndarray, frame: int = 320) -> float:
    f = x[: x.size // frame * frame].reshape(-1, frame)
    return float(np.std(10 * np.log10(np.mean(f**2, axis=1) + 1e-12)))


def test_babble_from_real_speech(shared_data):
    clips = [torch.from_numpy(sf.read(shared_data / "speech" / "voicebank16k" / "clean" / f"p287_00{i}.wav",
                                      dtype="float32")[0]) for i in range(1, 7)]
    b = babble_noise(3 * SR, seed=0, speech=clips, n_talkers=6)
    assert b.shape == (3 * SR,) and math.isclose(float(b.double().pow(2).mean().sqrt()), 1.0, rel_tol=1e-5)
    assert torch.equal(b, babble_noise(3 * SR, seed=0, speech=clips, n_talkers=6))
    # one talker = that clip, looped/cropped from some offset, at RMS 1: it must be a circular shift of the clip
    one = babble_noise(clips[0].numel(), seed=1, speech=clips[:1], n_talkers=1).double().numpy()
    c = clips[0].double().numpy()
    c = c / np.sqrt(np.mean(c**2))
    k = int(np.argmax(np.fft.irfft(np.fft.rfft(c) * np.conj(np.fft.rfft(one)), n=c.size)))  # best circular lag
    assert np.max(np.abs(np.roll(c, -k) - one)) < 1e-5
    # summing talkers smooths the envelope: babble is more stationary than one speaker
    assert _envelope_std_db(b.numpy()) < 0.5 * _envelope_std_db(c[: 3 * SR])


def test_babble_from_speechlike_talkers():
    b = babble_noise(2 * SR, seed=4, n_talkers=5)
    assert b.shape == (2 * SR,) and torch.isfinite(b).all()
    assert torch.equal(b, babble_noise(2 * SR, seed=4, n_talkers=5))
    with pytest.raises(ValueError, match="silent"):
        babble_noise(100, seed=0, speech=[torch.zeros(50)])
