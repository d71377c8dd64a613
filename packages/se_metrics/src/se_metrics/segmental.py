"""Segmental SNR (SSNR) as Loizou's composite.m (pysepm ``SNRseg``), in dB."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._frames import frame_params, frames, loizou_hann, n_frames_composite
from ._edges import frame_min_samples, require_finite, require_samples
from ._validate import as_float64, check_pair, sample_rate_alias

SSNR_MIN_DB = -10.0
SSNR_MAX_DB = 35.0
_EPS = np.finfo(np.float64).eps


def ssnr_frames(clean: np.ndarray, enhanced: np.ndarray, sr: int) -> np.ndarray:
    """Per-frame SNR in dB [F], clipped to [-10, 35], for float64 signals [T] at ``sr`` Hz.

    30 ms Hann frames (composite.m's window), 75 % overlap; every full frame but the last.
    """
    win, hop = frame_params(sr)
    n = n_frames_composite(clean.shape[0], win, hop)
    w = loizou_hann(win)
    fc = frames(clean, win, hop, n) * w
    fe = frames(enhanced, win, hop, n) * w
    signal = np.einsum("ft,ft->f", fc, fc)
    d = fc - fe
    noise = np.einsum("ft,ft->f", d, d)
    seg = 10.0 * np.log10(signal / (noise + _EPS) + _EPS)
    return np.clip(seg, SSNR_MIN_DB, SSNR_MAX_DB)


@sample_rate_alias
def ssnr(clean: Any, enhanced: Any, sample_rate: int) -> float:
    """Segmental SNR in dB of ``enhanced`` [T] against ``clean`` [T] at ``sample_rate`` Hz
    (``sr=`` also accepted).

    Mean over 30 ms Hann frames (75 % overlap) of the frame SNR clipped to [-10, 35] dB, as
    Loizou's composite.m (no voice-activity selection). Range -10 ... 35; higher is better.
    Defined for a silent estimate (every frame 0 dB, or -10 where the reference is silent);
    a pair without one complete frame (600 samples at 16 kHz) raises
    :class:`MetricUndefinedError`.
    """
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    require_samples(c.shape[0], frame_min_samples(*frame_params(sr)), sr, "SSNR", "one complete 30 ms frame")
    c, e = as_float64(c, e)
    return require_finite(np.mean(ssnr_frames(c, e, sr)), "SSNR")
