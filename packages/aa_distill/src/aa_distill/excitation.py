"""Test signals for listening to amp models: an exponential sine sweep and a plucked-string DI.

* :func:`exponential_sweep` — Farina's exponential (logarithmic) sine sweep (Farina, "Simultaneous
  measurement of impulse response and distortion with a swept-sine technique", AES 108, 2000):
  ``x(t) = A sin(2 pi f1 L (exp(t / L) - 1))`` with ``L = T / ln(f2 / f1)``, so the instantaneous
  frequency ``f1 exp(t / L)`` rises from ``f1`` to ``f2`` over ``T`` seconds. Through a nonlinear
  model every harmonic of the sweep is another rising line; aliases are the lines that fold
  back down from Nyquist, easy to see in a spectrogram and to hear.
* :func:`plucked_string` — a Karplus-Strong plucked string (Karplus & Strong, "Digital synthesis
  of plucked-string and drum timbres", CMJ 7(2), 1983; Jaffe & Smith's extensions, CMJ 7(2),
  1983): a noise burst one period long, recirculated through a delay line of ``N = round(fs /
  f0)`` samples and a two-point average with loss ``rho``, i.e. the IIR filter
  ``y[n] = x[n] + rho / 2 (y[n - N] + y[n - N - 1])``. A guitar DI is close to this: a decaying,
  harmonic-rich string without cabinet or room.

Both return float32 ``[T]`` at ``sample_rate`` Hz with their peak at ``level_db`` dBFS; every
random choice takes a seed.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from scipy.signal import lfilter

__all__ = ["exponential_sweep", "plucked_string", "GUITAR_OPEN_STRINGS_HZ"]

#: The six open strings of a guitar in standard tuning, E2 A2 D3 G3 B3 E4 (Hz).
GUITAR_OPEN_STRINGS_HZ: tuple[float, ...] = (82.41, 110.0, 146.83, 196.0, 246.94, 329.63)


def _check_rate(sample_rate: int) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    return int(sample_rate)


def _at_level(x: np.ndarray, level_db: float) -> torch.Tensor:
    if not math.isfinite(level_db) or level_db > 0:
        raise ValueError(f"level_db must be a finite peak level in dBFS (<= 0), got {level_db!r}")
    peak = float(np.abs(x).max())
    return torch.from_numpy((x * (10 ** (level_db / 20) / peak)).astype(np.float32))


def exponential_sweep(sample_rate: int, seconds: float = 5.0, f_start: float = 20.0,
                      f_end: float | None = None, level_db: float = -6.0, fade_s: float = 0.01
                      ) -> torch.Tensor:
    """Exponential sine sweep ``[T]`` (float32, ``T = round(seconds * sample_rate)``) from
    ``f_start`` to ``f_end`` Hz (default: 0.45 ``sample_rate``, below Nyquist), peak
    ``level_db`` dBFS, with ``fade_s``-second raised-cosine fades at both ends (no clicks).
    The instantaneous frequency at time t is ``f_start exp(t ln(f_end / f_start) / seconds)``."""
    fs = _check_rate(sample_rate)
    f_end = 0.45 * fs if f_end is None else float(f_end)
    if not (0 < f_start < f_end < fs / 2):
        raise ValueError(f"need 0 < f_start < f_end < fs/2 = {fs / 2} Hz, got f_start={f_start}, f_end={f_end}")
    n = int(round(seconds * fs))
    if n < 2 or not math.isfinite(seconds):
        raise ValueError(f"seconds must give at least 2 samples at {fs} Hz, got {seconds!r}")
    t = np.arange(n, dtype=np.float64) / fs
    rate = seconds / math.log(f_end / f_start)  # L
    x = np.sin(2 * np.pi * f_start * rate * np.expm1(t / rate))
    k = min(int(round(fade_s * fs)), n // 2)
    if k > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        x[:k] *= ramp
        x[n - k:] *= ramp[::-1]
    return _at_level(x, level_db)


def plucked_string(sample_rate: int, notes_hz: Sequence[float] = GUITAR_OPEN_STRINGS_HZ,
                   seconds_per_note: float = 1.5, decay: float = 0.996, level_db: float = -6.0,
                   seed: int = 0) -> torch.Tensor:
    """Karplus-Strong plucks of ``notes_hz`` one after another, ``seconds_per_note`` each:
    ``[len(notes_hz) * round(seconds_per_note * sample_rate)]`` float32, peak ``level_db`` dBFS.

    ``decay`` is the loop loss ``rho`` in (0, 1] (lower: shorter sustain). The excitation of
    each note is a zero-mean uniform noise burst of one period from ``numpy``'s generator
    seeded with ``seed``. The pitch is ``fs / (N + 1/2)`` for the integer delay ``N`` (the
    two-point average adds half a sample); ``N`` is chosen to make that nearest ``f0``.
    """
    fs = _check_rate(sample_rate)
    if not 0 < decay <= 1:
        raise ValueError(f"decay must lie in (0, 1], got {decay!r}")
    per = int(round(seconds_per_note * fs))
    notes = [float(f) for f in notes_hz]
    if not notes or any(not (20 <= f < fs / 4) for f in notes):
        raise ValueError(f"notes_hz must be non-empty, each in [20 Hz, fs/4 = {fs / 4} Hz), got {notes}")
    if per < 1:
        raise ValueError(f"seconds_per_note gives no samples at {fs} Hz: {seconds_per_note!r}")
    rng = np.random.default_rng(seed)
    out = np.empty(len(notes) * per, dtype=np.float64)
    for i, f0 in enumerate(notes):  # one IIR filter per note: a handful of notes, not a hot path
        delay = max(2, int(round(fs / f0 - 0.5)))
        burst = rng.uniform(-1.0, 1.0, delay)
        excitation = np.zeros(per)
        excitation[:min(delay, per)] = (burst - burst.mean())[:per]
        a = np.zeros(delay + 2)
        a[0], a[delay], a[delay + 1] = 1.0, -decay / 2, -decay / 2
        out[i * per:(i + 1) * per] = lfilter([1.0], a, excitation)
    return _at_level(out, level_db)
