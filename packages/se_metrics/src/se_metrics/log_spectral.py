"""Log-spectral distance (LSD) on log10 power spectra."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.signal import get_window

from ._edges import LOGARITHMIC, require_finite, require_samples, require_signal
from ._validate import as_float64, check_pair, sample_rate_alias

N_FFT = 2048
HOP = 512
#: Added to the power spectrum before log10 (on the 1/sum(window)-scaled spectrum).
POWER_EPS = 1e-8


def _log_power(x: np.ndarray) -> np.ndarray:
    """log10 power spectrogram [F, K] of x [T]: periodic Hann 2048, hop 512, no padding,
    magnitude scaled by 1/sum(window) (scipy.signal.stft's default), plus 1e-8 before log10."""
    w = get_window("hann", N_FFT)  # periodic
    n = 1 + (x.shape[0] - N_FFT) // HOP
    fr = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:n] * w
    spec = np.abs(np.fft.rfft(fr, axis=1)) / w.sum()
    return np.log10(spec ** 2 + POWER_EPS)


@sample_rate_alias
def lsd(clean: Any, enhanced: Any, sample_rate: int) -> float:
    """Log-spectral distance of ``enhanced`` [T] against ``clean`` [T] (any ``sample_rate``, Hz;
    ``sr=`` also accepted).

    ``mean_frames sqrt(mean_freq (log10 P_e - log10 P_c)^2)`` with P the power spectra of a
    2048-point periodic-Hann STFT, hop 512, no centre padding, magnitude scaled by
    1/sum(window), and 1e-8 added to the power before log10 (units: log10 power, i.e. bels;
    multiply by 10 for dB). The +1e-8 makes the value depend slightly on level in very quiet
    bins, as in the reference implementation. 0 is best.

    Raises :class:`MetricUndefinedError` for a pair shorter than 2048 samples (one STFT frame)
    and for an estimate without signal (silent, DC-only or more than 100 dB below the
    reference), whose log power the 1e-8 floor, not the estimate, would set.
    """
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    require_samples(c.shape[0], N_FFT, sr, "LSD", "one STFT frame")
    require_signal(c, e, "LSD", LOGARITHMIC)
    c, e = as_float64(c, e)
    d = _log_power(e) - _log_power(c)
    return require_finite(np.mean(np.sqrt(np.mean(d ** 2, axis=1))), "LSD")
