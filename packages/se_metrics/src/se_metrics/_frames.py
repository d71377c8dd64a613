"""Framing as in Loizou's composite.m (and pysepm's port): 30 ms frames, 75 % overlap,
Hann window ``0.5 (1 - cos(2 pi n / (N + 1)))`` for n = 1..N (no zero end points)."""

from __future__ import annotations

import numpy as np

from ._validate import MetricSampleRateError, MetricUndefinedError

FRAME_S = 0.03
OVERLAP = 0.75
#: composite.m keeps the 95 % lowest frame distortions (drops the 5 % worst frames).
KEEP_FRACTION = 0.95


def frame_params(sr: int) -> tuple[int, int]:
    """(window length, hop) in samples: ``round(0.03 sr)`` and ``floor(0.25 * 0.03 * sr)``
    (480 / 120 at 16 kHz), computed exactly as composite.m does."""
    win = int(round(FRAME_S * sr))
    hop = int(np.floor((1 - OVERLAP) * FRAME_S * sr))
    if hop < 1:
        raise MetricSampleRateError(
            f"sample rate {sr} Hz is too low for 30 ms frames with a 7.5 ms hop; use audio at "
            f"8000 Hz or more (se_data.resample(audio, {sr}, 16000) resamples it).")
    return win, hop


def loizou_hann(n: int) -> np.ndarray:
    """Hann window [n] without zero end points, as composite.m: 0.5 (1 - cos(2 pi k / (n + 1))), k=1..n."""
    k = np.arange(1, n + 1, dtype=np.float64)
    return 0.5 * (1.0 - np.cos(2.0 * np.pi * k / (n + 1)))


def frames(x: np.ndarray, win: int, hop: int, n_frames: int) -> np.ndarray:
    """The first ``n_frames`` frames of ``x`` [T] as a read-only strided view [n_frames, win]."""
    view = np.lib.stride_tricks.sliding_window_view(x, win)[::hop]
    return view[:n_frames]


def n_frames_composite(n_samples: int, win: int, hop: int) -> int:
    """Frames composite.m scores: every full frame but the last, ``(T - win + hop) // hop - 1``."""
    return max((n_samples - (win - hop)) // hop - 1, 0)


def keep_lowest_mean(values: np.ndarray, fraction: float = KEEP_FRACTION) -> float:
    """Mean of the ``round(fraction * len)`` smallest values (composite.m's outlier removal)."""
    keep = int(round(values.shape[0] * fraction))
    if keep == 0:
        raise MetricUndefinedError("no complete 30 ms frame to score: use a longer signal.",
                                   reason="no complete 30 ms frame")
    return float(np.mean(np.sort(values)[:keep]))
