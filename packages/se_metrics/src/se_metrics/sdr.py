"""Sample-wise energy ratios: SI-SDR (Le Roux et al. 2019, zero-mean) and plain SNR, in dB."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import as_float64, check_pair

#: Added to both energies so identical signals give a large finite value instead of +inf.
_EPS = 1e-12


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # einsum's own loop, not BLAS: a threaded BLAS dot is far slower in busy worker processes
    return float(np.einsum("i,i->", a, b))


def si_sdr(clean: Any, enhanced: Any, sr: int) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., "SDR - half-baked or well done?", 2019).

    Both signals [T] are made zero-mean, then ``a = <e, s> / <s, s>``,
    ``SI-SDR = 10 log10(||a s||^2 / ||e - a s||^2)``. Higher is better. ``sr`` (Hz) is only
    checked (the metric does not depend on it).
    """
    c, e, _ = check_pair(clean, enhanced, sr)
    s, y = as_float64(c, e)
    s = s - s.mean()
    y = y - y.mean()
    alpha = _dot(y, s) / _dot(s, s)
    target = alpha * s
    residual = y - target
    return float(10.0 * np.log10((_dot(target, target) + _EPS) / (_dot(residual, residual) + _EPS)))


def snr(clean: Any, enhanced: Any, sr: int) -> float:
    """Plain SNR in dB, no scaling and no mean removal: ``10 log10(sum s^2 / sum (e - s)^2)``.

    Signals [T]; higher is better; ``sr`` (Hz) is only checked.
    """
    c, e, _ = check_pair(clean, enhanced, sr)
    s, y = as_float64(c, e)
    noise = y - s
    return float(10.0 * np.log10((_dot(s, s) + _EPS) / (_dot(noise, noise) + _EPS)))
