"""Seeded synthetic noises: white, pink, brown (exact power-law spectra) and babble.

Coloured noise is made by shaping a white Gaussian spectrum: the power spectral density is
``P(f) ∝ f**exponent`` for ``f >= f_min`` (flat below ``f_min``, zero at DC), so the slope is
``10·log10(2)·exponent`` dB per octave exactly (in expectation):

=========  ==========  =====================
noise      exponent    slope
=========  ==========  =====================
white       0           0 dB/octave
pink       −1          −3.01 dB/octave (1/f)
brown      −2          −6.02 dB/octave (1/f²)
=========  ==========  =====================

Every generator returns a float32 tensor ``[num_samples]`` with RMS 1 (mixing sets the
level) and takes ``seed`` (int, ``numpy.random.Generator`` or ``torch.Generator``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy.fft import next_fast_len

from ._rng import SeedLike, as_rng, check_positive_int, check_sample_rate, to_f64

#: PSD exponent of each named colour (P(f) ∝ f**exponent)
NOISE_EXPONENTS: dict[str, float] = {"white": 0.0, "pink": -1.0, "brown": -2.0}


def colored_noise(num_samples: int, exponent: float, *, seed: SeedLike, sample_rate: int = 16000,
                  f_min: float = 20.0) -> torch.Tensor:
    """Gaussian noise [num_samples] float32, RMS 1, with PSD ∝ f**exponent above ``f_min`` Hz.

    ``exponent`` 0 / −1 / −2 gives white / pink / brown. Below ``f_min`` (Hz, at
    ``sample_rate`` Hz) the spectrum is held at its ``f_min`` value so that 1/f² noise is not
    dominated by sub-audio drift; DC is zero. ``f_min=0`` keeps the power law down to the
    lowest FFT bin. The noise is the first ``num_samples`` of a circular signal of a fast FFT
    length (``scipy.fft.next_fast_len``).
    """
    n = check_positive_int("num_samples", num_samples)
    sr = check_sample_rate("sample_rate", sample_rate)
    if not math.isfinite(exponent):
        raise ValueError(f"exponent must be finite, got {exponent}")
    if n < 4:
        raise ValueError(f"num_samples must be >= 4 for a coloured noise, got {n}")
    rng = as_rng(seed)
    m = next_fast_len(n, real=True)  # shape the spectrum at a fast FFT length, keep the first n samples
    spec = rng.standard_normal(m // 2 + 1) + 1j * rng.standard_normal(m // 2 + 1)
    freqs = np.fft.rfftfreq(m, d=1.0 / sr)
    f = np.maximum(freqs, max(float(f_min), freqs[1]))
    spec *= f ** (exponent / 2.0)  # amplitude ∝ f^(exponent/2) -> power ∝ f^exponent
    spec[0] = 0.0
    if m % 2 == 0:
        spec[-1] = spec[-1].real  # the Nyquist bin of a real signal is real
    x = np.fft.irfft(spec, n=m)[:n]
    x -= x.mean()
    x /= np.sqrt(np.mean(x**2))
    return torch.from_numpy(x.astype(np.float32))


def white_noise(num_samples: int, *, seed: SeedLike, sample_rate: int = 16000) -> torch.Tensor:
    """White Gaussian noise [num_samples] float32, RMS 1 (flat spectrum, 0 dB/octave)."""
    return colored_noise(num_samples, 0.0, seed=seed, sample_rate=sample_rate, f_min=0.0)


def pink_noise(num_samples: int, *, seed: SeedLike, sample_rate: int = 16000,
               f_min: float = 20.0) -> torch.Tensor:
    """Pink (1/f) noise [num_samples] float32, RMS 1: −3.01 dB/octave above ``f_min`` Hz."""
    return colored_noise(num_samples, -1.0, seed=seed, sample_rate=sample_rate, f_min=f_min)


def brown_noise(num_samples: int, *, seed: SeedLike, sample_rate: int = 16000,
                f_min: float = 20.0) -> torch.Tensor:
    """Brown (1/f²) noise [num_samples] float32, RMS 1: −6.02 dB/octave above ``f_min`` Hz."""
    return colored_noise(num_samples, -2.0, seed=seed, sample_rate=sample_rate, f_min=f_min)


def babble_noise(num_samples: int, *, seed: SeedLike, sample_rate: int = 16000,
                 speech: Sequence[torch.Tensor | np.ndarray] | None = None,
                 n_talkers: int = 6) -> torch.Tensor:
    """Babble [num_samples] float32, RMS 1: the sum of ``n_talkers`` speech signals.

    Each talker is a clip from ``speech`` (1-D signals that must already be at
    ``sample_rate`` Hz; picked without replacement while enough clips remain), looped or
    cropped to ``num_samples`` from a random offset and scaled to RMS 1 before summing, so
    every talker is equally loud. With ``speech=None`` the talkers are speech-like signals
    from :func:`se_data.speechlike.synth_speech` (offline, no data needed).
    """
    n = check_positive_int("num_samples", num_samples)
    sr = check_sample_rate("sample_rate", sample_rate)
    k = check_positive_int("n_talkers", n_talkers)
    rng = as_rng(seed)
    if speech is None:
        from .speechlike import synth_speech  # local import: speechlike is the bigger module

        talkers = [synth_speech(n / sr, seed=rng, sample_rate=sr, pad_silence=False).numpy()
                   .astype(np.float64) for _ in range(k)]
    else:
        clips = [to_f64(c, f"speech[{i}]") for i, c in enumerate(speech)]
        if not clips:
            raise ValueError("babble_noise: speech is an empty list; pass clips or speech=None")
        order = np.concatenate([rng.permutation(len(clips)) for _ in range(-(-k // len(clips)))])
        talkers = [clips[i] for i in order[:k]]
    out = np.zeros(n)
    for i, t in enumerate(talkers):
        rms = np.sqrt(np.mean(t**2))
        if rms == 0:
            raise ValueError(f"babble_noise: speech clip {i} is silent (all zeros)")
        idx = (int(rng.integers(len(t))) + np.arange(n)) % len(t)
        out += t[idx] / rms
    rms = np.sqrt(np.mean(out**2))
    if rms == 0:
        raise ValueError("babble_noise: the talkers cancel or are silent over the requested span; "
                         "use longer clips")
    return torch.from_numpy((out / rms).astype(np.float32))


def synthetic_noise(kind: str, num_samples: int, *, seed: SeedLike, sample_rate: int = 16000,
                    **kwargs) -> torch.Tensor:
    """Dispatch by name: ``"white"``, ``"pink"``, ``"brown"`` or ``"babble"`` (kwargs go to the
    generator, e.g. ``speech=`` / ``n_talkers=`` for babble). Returns [num_samples] float32."""
    if kind == "white":
        return white_noise(num_samples, seed=seed, sample_rate=sample_rate, **kwargs)
    if kind == "pink":
        return pink_noise(num_samples, seed=seed, sample_rate=sample_rate, **kwargs)
    if kind == "brown":
        return brown_noise(num_samples, seed=seed, sample_rate=sample_rate, **kwargs)
    if kind == "babble":
        return babble_noise(num_samples, seed=seed, sample_rate=sample_rate, **kwargs)
    raise ValueError(f"unknown synthetic noise kind {kind!r}; choose white, pink, brown or babble")
