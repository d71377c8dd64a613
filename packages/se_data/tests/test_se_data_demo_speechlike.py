"""The speech-like generator: pitch, syllable rate, voiced/unvoiced segments, level, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import butter, find_peaks, sosfiltfilt

from se_data.speechlike import Speaker, random_speaker, synth_speech

SR = 16000


def _frames(x: np.ndarray, n: int = 512, hop: int = 160) -> np.ndarray:
    idx = np.arange(0, x.size - n, hop)[:, None] + np.arange(n)[None, :]
    return x[idx]


def _f0_track(x: np.ndarray) -> np.ndarray:
    """Autocorrelation pitch of the loud, low-centroid (voiced) frames, in Hz."""
    fr = _frames(x) * np.hanning(512)
    spec = np.abs(np.fft.rfft(fr, axis=1)) ** 2
    f = np.fft.rfftfreq(512, 1 / SR)
    energy = spec.sum(1)
    centroid = (spec * f).sum(1) / (energy + 1e-20)
    voiced = (energy > 0.1 * energy.max()) & (centroid < 1500)
    ac = np.fft.irfft(spec[voiced], axis=1)[:, : SR // 60]
    lo, hi = SR // 400, SR // 60
    lags = lo + np.argmax(ac[:, lo:hi], axis=1)
    return SR / lags


@pytest.mark.parametrize("f0", [100.0, 220.0])
def test_pitch_follows_the_speaker(f0):
    spk = Speaker(f0_hz=f0, vt_scale=1.0, jitter=0.01, shimmer=0.04, breathiness=0.05, open_quotient=0.6, rate=1.0)
    x = synth_speech(3.0, seed=1, speaker=spk).numpy()
    est = np.median(_f0_track(x))
    assert abs(est / f0 - 1.0) < 0.15, f"median f0 {est:.1f} Hz for a {f0} Hz speaker"


def test_random_speakers_cover_90_to_250_hz():
    f0 = np.array([random_speaker(i).f0_hz for i in range(400)])
    assert f0.min() >= 90 and f0.max() <= 250 and f0.min() < 100 and f0.max() > 230


def test_syllable_rate_voicing_level_and_determinism():
    x = synth_speech(6.0, seed=2, level_db=-26.0)
    assert x.shape == (6 * SR,) and x.dtype == torch.float32
    assert torch.equal(x, synth_speech(6.0, seed=2, level_db=-26.0))
    assert not torch.equal(x, synth_speech(6.0, seed=3, level_db=-26.0))
    a = x.double().numpy()
    # syllables at roughly 4 per second: count vowel nuclei as peaks of the < 1 kHz envelope
    low = sosfiltfilt(butter(4, 1000, fs=SR, output="sos"), a)
    env_db = 10 * np.log10(np.mean(low[: a.size // 160 * 160].reshape(-1, 160) ** 2, axis=1) + 1e-18)
    peaks, _ = find_peaks(env_db, prominence=6, distance=8)  # 100 frames/s, nuclei >= 80 ms apart
    assert 2.5 <= len(peaks) / 6.0 <= 6.0, f"{len(peaks) / 6.0:.2f} syllables/s"
    # voiced (low spectral centroid) and unvoiced / fricative (high centroid) frames both occur
    fr = _frames(a) * np.hanning(512)
    spec = np.abs(np.fft.rfft(fr, axis=1)) ** 2
    f = np.fft.rfftfreq(512, 1 / SR)
    e = spec.sum(1)
    loud = e > 1e-3 * e.max()
    cen = (spec * f).sum(1)[loud] / e[loud]
    assert np.mean(cen < 1200) > 0.4 and np.mean(cen > 2500) > 0.03
    # pauses: some frames are silent
    assert np.mean(~loud) > 0.05
    # active level: RMS of the non-silent part is -26 dBFS (within the active-mask tolerance)
    act = np.abs(a) > 1e-6
    assert abs(20 * np.log10(np.sqrt(np.mean(a[act] ** 2))) + 26.0) < 1.5


def test_too_short_is_refused():
    with pytest.raises(ValueError, match="0.25 s"):
        synth_speech(0.1, seed=0)
