"""Weighted spectral slope (WSS, Klatt 1982) as Loizou's composite.m (pysepm ``wss``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._frames import frame_params, frames, keep_lowest_mean, loizou_hann, n_frames_composite
from ._edges import LEVEL_INVARIANT, frame_min_samples, require_finite, require_samples, require_signal
from ._validate import as_float64, check_pair, sample_rate_alias

# 25 critical bands: centre frequencies and bandwidths in Hz (composite.m's table).
_CENT_HZ = np.array([
    50.0, 120.0, 190.0, 260.0, 330.0, 400.0, 470.0, 540.0, 617.372, 703.378, 798.717, 904.128,
    1020.38, 1148.30, 1288.72, 1442.54, 1610.70, 1794.16, 1993.93, 2211.08, 2446.71, 2701.97,
    2978.04, 3276.17, 3597.63])
_BW_HZ = np.array([
    70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 70.0, 77.3724, 86.0056, 95.3398, 105.411, 116.256,
    127.914, 140.423, 153.823, 168.154, 183.457, 199.776, 217.153, 235.631, 255.255, 276.072,
    298.126, 321.465, 346.136])
K_MAX = 20.0      # Klatt's global-maximum constant (composite.m)
K_LOCMAX = 1.0    # Klatt's local-maximum constant
_LOG_FLOOR_DB = -100.0
_EPS = np.finfo(np.float64).eps


def _crit_filters(sr: int, n_half: int) -> np.ndarray:
    """Gaussian critical-band filters [25, n_half] over FFT bins 0..n_half-1 (composite.m)."""
    max_freq = sr / 2.0
    j = np.arange(n_half, dtype=np.float64)
    f0 = np.floor(_CENT_HZ / max_freq * n_half)
    bw = _BW_HZ / max_freq * n_half
    norm = np.log(_BW_HZ[0]) - np.log(_BW_HZ)
    filt = np.exp(-11.0 * ((j[None, :] - f0[:, None]) / bw[:, None]) ** 2 + norm[:, None])
    min_factor = np.exp(-30.0 / (2.0 * 2.303))  # -30 dB point of each filter
    return filt * (filt > min_factor)


def _band_energy_db(x: np.ndarray, sr: int) -> np.ndarray:
    """Critical-band log energies [25, F] (dB, floored at -100) of float64 signal x [T]."""
    win, hop = frame_params(sr)
    n = n_frames_composite(x.shape[0], win, hop)
    n_fft = int(2 ** np.ceil(np.log2(2 * win)))
    spec = np.abs(np.fft.rfft(frames(x, win, hop, n) * loizou_hann(win), n=n_fft, axis=1)) ** 2
    energy = _crit_filters(sr, n_fft // 2) @ spec[:, : n_fft // 2].T
    with np.errstate(divide="ignore"):
        return np.maximum(10.0 * np.log10(energy), _LOG_FLOOR_DB)


def _nearest_peaks(slope: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """composite.m's local-peak search, vectorised: slope [B-1, F], energy [B, F] -> [B-1, F].

    Where the slope rises, the walk goes up the bands to the first non-rising band n (at most
    B-1) and takes energy[n-1]; where it falls, it goes down to the last rising band n (or -1)
    and takes energy[n+1]. Index conventions exactly as composite.m / pysepm.
    """
    nb = slope.shape[0]
    idx = np.arange(nb)[:, None]
    rising = slope > 0
    # first n >= i with slope[n] <= 0, else nb (= num_crit - 1)
    stop_up = np.where(~rising, idx, nb)
    first_fall = np.minimum.accumulate(stop_up[::-1], axis=0)[::-1]
    # last n <= i with slope[n] > 0, else -1
    stop_down = np.where(rising, idx, -1)
    last_rise = np.maximum.accumulate(stop_down, axis=0)
    take = np.where(rising, first_fall - 1, last_rise + 1)
    return np.take_along_axis(energy, take, axis=0)


def wss_frames(clean: np.ndarray, enhanced: np.ndarray, sr: int) -> np.ndarray:
    """Per-frame WSS distortion [F] for float64 signals [T] at ``sr`` Hz (composite.m)."""
    e_c = _band_energy_db(clean + _EPS, sr)
    e_e = _band_energy_db(enhanced + _EPS, sr)
    s_c = np.diff(e_c, axis=0)
    s_e = np.diff(e_e, axis=0)
    w_c = (K_MAX / (K_MAX + e_c.max(axis=0) - e_c[:-1])) * \
        (K_LOCMAX / (K_LOCMAX + _nearest_peaks(s_c, e_c) - e_c[:-1]))
    w_e = (K_MAX / (K_MAX + e_e.max(axis=0) - e_e[:-1])) * \
        (K_LOCMAX / (K_LOCMAX + _nearest_peaks(s_e, e_e) - e_e[:-1]))
    w = 0.5 * (w_c + w_e)
    return np.sum(w * (s_c - s_e) ** 2, axis=0) / np.sum(w, axis=0)


@sample_rate_alias
def wss(clean: Any, enhanced: Any, sample_rate: int) -> float:
    """Weighted spectral slope distance of ``enhanced`` [T] against ``clean`` [T] at
    ``sample_rate`` Hz (``sr=`` also accepted): 25 critical bands, 30 ms Hann frames, 75 %
    overlap, mean over the 95 % lowest frames, as Loizou's composite.m. Range 0 ... ; lower is
    better. Raises :class:`MetricUndefinedError` for a pair without one complete 30 ms frame
    and for an estimate without signal (its band energies would sit on the -100 dB floor; the
    slopes ignore the gain, so a near-silent copy would score 0)."""
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    require_samples(c.shape[0], frame_min_samples(*frame_params(sr)), sr, "WSS", "one complete 30 ms frame")
    require_signal(c, e, "WSS", LEVEL_INVARIANT)
    c, e = as_float64(c, e)
    return require_finite(keep_lowest_mean(wss_frames(c, e, sr)), "WSS")
