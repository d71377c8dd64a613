"""Sample-wise energy ratios: SI-SDR (Le Roux et al. 2019, zero-mean) and plain SNR, in dB."""

from __future__ import annotations

from typing import Any

import numpy as np
from se_data import si_sdr_db

from ._edges import LEVEL_INVARIANT, require_finite, require_signal
from ._validate import MetricUndefinedError, as_float64, check_pair, sample_rate_alias

#: Added to both energies so identical signals give a large finite value instead of +inf.
_EPS = 1e-12


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    # einsum's own loop, not BLAS: a threaded BLAS dot is far slower in busy worker processes
    return float(np.einsum("i,i->", a, b))


@sample_rate_alias
def si_sdr(clean: Any, enhanced: Any, sample_rate: int) -> float:
    """Scale-invariant SDR in dB (Le Roux et al., "SDR - half-baked or well done?", 2019).

    Both signals [T] are made zero-mean, then ``a = <e, s> / <s, s>``,
    ``SI-SDR = 10 log10((||a s||^2 + 1e-12) / (||e - a s||^2 + 1e-12))``: identical signals
    give a large finite value. Higher is better. ``sample_rate`` (Hz; ``sr=`` also accepted)
    is only checked: the metric does not depend on it.

    The formula is :func:`se_data.si_sdr_db`'s, called here, so the two agree on every input
    both score. Raises :class:`MetricUndefinedError` for an estimate without signal (silent,
    DC-only, or more than 100 dB below the reference: after the mean is removed and the
    projection rescales it, the 1e-12 stabiliser, not the estimate, would set the value) and
    for a constant reference (nothing is left after removing its mean, e.g. a 1-sample pair).
    """
    c, e, _ = check_pair(clean, enhanced, sample_rate)
    s, y = as_float64(c, e)
    require_signal(s, y, "SI-SDR", LEVEL_INVARIANT)
    try:
        value = si_sdr_db(s, y)
    except ValueError as err:  # a constant reference
        raise MetricUndefinedError(f"{err}.", reason="constant reference (nothing left after removing its mean)") \
            from err
    return require_finite(value, "SI-SDR")


@sample_rate_alias
def snr(clean: Any, enhanced: Any, sample_rate: int) -> float:
    """Plain SNR in dB, no scaling and no mean removal: ``10 log10(sum s^2 / sum (e - s)^2)``.

    Signals [T]; higher is better; ``sample_rate`` (Hz; ``sr=`` also accepted) is only checked.
    Defined for any pair of at least one sample: a silent estimate scores exactly 0 dB (its
    error is the reference itself).
    """
    c, e, _ = check_pair(clean, enhanced, sample_rate)
    s, y = as_float64(c, e)
    noise = y - s
    return float(10.0 * np.log10((_dot(s, s) + _EPS) / (_dot(noise, noise) + _EPS)))
