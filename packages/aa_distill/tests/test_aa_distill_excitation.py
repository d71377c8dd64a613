"""Listening signals: the exponential sweep's instantaneous frequency and level, the
Karplus-Strong pluck's pitch, length, level and determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import hilbert

from aa_distill import GUITAR_OPEN_STRINGS_HZ, exponential_sweep, plucked_string


def test_sweep_follows_its_exponential_frequency_law_at_its_level():
    fs, seconds, f1, f2 = 16_000, 2.0, 50.0, 6_000.0
    x = exponential_sweep(fs, seconds, f1, f2, level_db=-12.0)
    assert x.shape == (32_000,) and x.dtype.is_floating_point
    assert float(x.abs().max()) == pytest.approx(10 ** (-12 / 20), rel=1e-6)
    phase = np.unwrap(np.angle(hilbert(x.numpy().astype(np.float64))))
    inst = np.diff(phase) * fs / (2 * np.pi)
    t = (np.arange(len(inst)) + 0.5) / fs
    law = f1 * np.exp(t * math.log(f2 / f1) / seconds)
    mid = slice(int(0.1 * fs), int(1.9 * fs))  # away from the fades and the analytic signal's edges
    np.testing.assert_allclose(inst[mid], law[mid], rtol=0.02)
    assert abs(float(x[0])) < 1e-6 and abs(float(x[-1])) < 1e-3  # faded in and out
    with pytest.raises(ValueError, match="f_end"):
        exponential_sweep(fs, 1.0, 50.0, 9_000.0)


@pytest.mark.parametrize("f0", [82.41, 329.63])
def test_pluck_pitch_length_level_and_seed(f0):
    fs = 48_000
    x = plucked_string(fs, [f0], seconds_per_note=1.0, level_db=-6.0, seed=3).numpy().astype(np.float64)
    assert x.shape == (fs,) and np.abs(x).max() == pytest.approx(10 ** (-6 / 20), rel=1e-6)
    seg = x[: fs // 2]
    ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
    lo = int(fs / (1.5 * f0))
    lag = lo + int(np.argmax(ac[lo:int(fs / (0.7 * f0))]))
    assert fs / lag == pytest.approx(f0, rel=0.01)  # the period is the delay line plus half a sample
    assert np.sqrt(np.mean(x[-fs // 10:] ** 2)) < 0.5 * np.sqrt(np.mean(x[: fs // 10] ** 2))  # it decays
    again = plucked_string(fs, [f0], seconds_per_note=1.0, level_db=-6.0, seed=3).numpy()
    other = plucked_string(fs, [f0], seconds_per_note=1.0, level_db=-6.0, seed=4).numpy()
    assert np.array_equal(again, x.astype(np.float32)) and not np.array_equal(other, again)


def test_pluck_default_is_the_six_open_strings():
    x = plucked_string(16_000, seconds_per_note=0.25)
    assert len(GUITAR_OPEN_STRINGS_HZ) == 6 and x.shape == (6 * 4000,)
    with pytest.raises(ValueError, match="notes_hz"):
        plucked_string(16_000, [5.0])
