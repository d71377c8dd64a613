"""The vectorised internals equal straightforward per-frame reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import solve_toeplitz

from se_metrics import lpc
from se_metrics import weighted_slope as wss_mod
from se_metrics._frames import frame_params, keep_lowest_mean, loizou_hann, n_frames_composite


def test_frame_params_16k_and_8k():
    assert frame_params(16000) == (480, 120)
    assert frame_params(8000) == (240, 60)
    assert n_frames_composite(49600, 480, 120) == 409  # composite.m: int(T/120 - 480/120)
    w = loizou_hann(480)
    assert w[0] > 0 and w[-1] > 0 and w[0] == pytest.approx(w[-1])


def test_levinson_matches_solve_toeplitz():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 480)) * loizou_hann(480)
    r = lpc.autocorr(x, 16)
    a = lpc.levinson(r)
    for f in range(7):
        ref = solve_toeplitz(r[f, :16], -r[f, 1:17])
        np.testing.assert_allclose(a[f, 1:], ref, rtol=1e-9, atol=1e-12)
    assert np.all(a[:, 0] == 1.0)
    # autocorrelation equals np.correlate lags
    full = np.correlate(x[0], x[0], mode="full")
    np.testing.assert_allclose(r[0], full[479:479 + 17], rtol=1e-12)


def test_levinson_zero_frame():
    a = lpc.levinson(np.zeros((2, 17)))
    assert np.array_equal(a, np.eye(1, 17).repeat(2, axis=0))


def _loop_peaks(slope, energy):
    """composite.m's local-peak loop, written out per band (0-based, as pysepm)."""
    nb = slope.shape[0]
    out = np.zeros_like(slope)
    for i in range(nb):
        n = i
        if slope[i] > 0:
            while n < nb and slope[n] > 0:
                n += 1
            out[i] = energy[n - 1]
        else:
            while n >= 0 and slope[n] <= 0:
                n -= 1
            out[i] = energy[n + 1]
    return out


def test_nearest_peaks_vectorised_equals_loop():
    rng = np.random.default_rng(1)
    energy = rng.normal(size=(25, 40)).cumsum(axis=0)
    energy[:, 0] = np.arange(25)      # monotonic rising frame
    energy[:, 1] = -np.arange(25)     # monotonic falling frame
    slope = np.diff(energy, axis=0)
    got = wss_mod._nearest_peaks(slope, energy)
    want = np.stack([_loop_peaks(slope[:, f], energy[:, f]) for f in range(energy.shape[1])], axis=1)
    np.testing.assert_array_equal(got, want)


def test_keep_lowest_mean():
    v = np.arange(20, dtype=float)[::-1]
    assert keep_lowest_mean(v) == np.mean(np.arange(19))  # round(0.95*20)=19 lowest
