"""Invariants on real speech + real noise: monotonic over SNR, best value for clean-vs-clean."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import se_metrics as sm

SNRS_DB = [-5, 0, 5, 10, 15, 20]
HIGHER_BETTER = ["pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "snr", "ssnr", "csig", "cbak", "covl"]
LOWER_BETTER = ["lsd", "llr", "wss"]


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> tuple[np.ndarray, float]:
    """speech + g * noise with g such that 10 log10(sum s^2 / sum (g n)^2) == snr_db exactly."""
    g = np.sqrt(np.sum(speech ** 2) / (np.sum(noise ** 2) * 10.0 ** (snr_db / 10.0)))
    return speech + g * noise, g


def _all(clean, y, sr):
    out = sm.evaluate_pair(clean, y, sr)
    out["llr"] = sm.llr(clean, y, sr)
    out["wss"] = sm.wss(clean, y, sr)
    return out


@pytest.fixture(scope="module")
def sweep(shared_data):
    clean, sr = sf.read(shared_data / "speech" / "voicebank16k" / "clean" / "p287_002.wav")
    noise, nsr = sf.read(shared_data / "noise" / "noise1.wav")
    assert sr == nsr == 16000 and noise.ndim == 1
    noise = noise[5 * sr: 5 * sr + clean.shape[0]]
    rows = {}
    for snr_db in SNRS_DB:
        y, g = mix_at_snr(clean, noise, snr_db)
        assert 10 * np.log10(np.sum(clean ** 2) / np.sum((g * noise) ** 2)) == pytest.approx(snr_db, abs=1e-9)
        rows[snr_db] = _all(clean, y, sr)
    return clean, sr, rows


def test_snr_equals_mixing_snr(sweep):
    """Plain SNR of speech + scaled noise is exactly the mixing SNR (no scaling in the metric)."""
    _, _, rows = sweep
    for snr_db, r in rows.items():
        assert r["snr"] == pytest.approx(snr_db, abs=1e-9)


@pytest.mark.parametrize("metric", HIGHER_BETTER)
def test_higher_better_increases_with_snr(sweep, metric):
    _, _, rows = sweep
    vals = [rows[s][metric] for s in SNRS_DB]
    assert all(b > a for a, b in zip(vals, vals[1:])), (metric, vals)


@pytest.mark.parametrize("metric", LOWER_BETTER)
def test_lower_better_decreases_with_snr(sweep, metric):
    _, _, rows = sweep
    vals = [rows[s][metric] for s in SNRS_DB]
    assert all(b < a for a, b in zip(vals, vals[1:])), (metric, vals)


def test_clean_vs_clean_is_best(sweep):
    clean, sr, rows = sweep
    best = _all(clean, clean, sr)
    # exact optima
    assert best["pesq_wb"] == 4.643888473510742 and best["pesq_nb"] == 4.548638343811035
    assert best["stoi"] == pytest.approx(1.0, abs=1e-12) and best["estoi"] == pytest.approx(1.0, abs=1e-12)
    assert best["ssnr"] == 35.0
    assert best["lsd"] == 0.0 and best["llr"] == 0.0 and best["wss"] == 0.0
    assert best["csig"] == best["cbak"] == best["covl"] == 5.0
    assert best["si_sdr"] > 100 and best["snr"] > 100 and np.isfinite(best["si_sdr"])
    for metric in HIGHER_BETTER:
        assert best[metric] > max(r[metric] for r in rows.values()), metric
    for metric in LOWER_BETTER:
        assert best[metric] < min(r[metric] for r in rows.values()), metric


def test_scale_behaviour(shared_data):
    """SI-SDR ignores the estimate's gain and its DC offset; SNR does not."""
    clean, sr = sf.read(shared_data / "speech" / "voicebank16k" / "clean" / "p287_001.wav")
    noisy, _ = sf.read(shared_data / "speech" / "voicebank16k" / "noisy" / "p287_001.wav")
    base = sm.si_sdr(clean, noisy, sr)
    assert sm.si_sdr(clean, 3.0 * noisy + 0.01, sr) == pytest.approx(base, abs=1e-9)
    assert sm.si_sdr(0.5 * clean, noisy, sr) == pytest.approx(base, abs=1e-9)
    assert abs(sm.snr(clean, 3.0 * noisy, sr) - sm.snr(clean, noisy, sr)) > 1.0
    # PESQ jointly normalises its inputs: a common gain changes nothing
    assert sm.pesq(0.5 * clean, 0.5 * noisy, sr) == sm.pesq(clean, noisy, sr)
