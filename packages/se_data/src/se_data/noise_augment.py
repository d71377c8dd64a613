"""Seeded noise augmentation: mixing two noises and temporal augmentation.

Both work on mono noise signals [N] that are already at the same sample rate; levels are
set later by :func:`se_data.mix_at_snr`, so the outputs here are normalised to RMS 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._records import AsDictMixin
from ._rng import SeedLike, as_rng, check_positive_int, to_f64
from .mixing import fit_array


def _unit_rms(x: np.ndarray, name: str) -> np.ndarray:
    r = math.sqrt(float(np.mean(x**2)))
    if r == 0.0:
        raise ValueError(f"{name} is silent (all zeros) over the span used")
    return x / r


def mix_noises(noise_a: torch.Tensor | np.ndarray, noise_b: torch.Tensor | np.ndarray, length: int, *,
               seed: SeedLike, weight: float | None = None, weight_range: tuple[float, float] = (0.3, 0.7)
               ) -> tuple[torch.Tensor, dict]:
    """Mix two noises [Na], [Nb] into one [length] float32 tensor with RMS 1.

    Each noise is looped/cropped to ``length`` from a seeded offset and scaled to RMS 1; the
    mix is ``sqrt(w)·a + sqrt(1 − w)·b`` (``w`` = share of the power from ``a``, drawn
    uniformly from ``weight_range`` unless ``weight`` is given), then renormalised to RMS 1.
    Returns ``(mix, {"weight", "offset_a", "offset_b"})``.
    """
    length = check_positive_int("length", length)
    rng = as_rng(seed)
    w = float(rng.uniform(*weight_range)) if weight is None else float(weight)
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"weight must be in [0, 1] (share of power from noise_a), got {w}")
    a, oa = fit_array(to_f64(noise_a, "noise_a"), length, seed=rng)
    b, ob = fit_array(to_f64(noise_b, "noise_b"), length, seed=rng)
    mix = math.sqrt(w) * _unit_rms(a, "noise_a") + math.sqrt(1 - w) * _unit_rms(b, "noise_b")
    mix = _unit_rms(mix, "the mix of noise_a and noise_b")
    return torch.from_numpy(mix.astype(np.float32)), {"weight": w, "offset_a": oa, "offset_b": ob}


@dataclass(frozen=True)
class TemporalAugment(AsDictMixin):
    """Settings of :func:`augment_noise`.

    shift: roll the cropped segment by a uniform random number of samples (circular);
    gain_db: range (dB) of a uniform random gain applied after RMS normalisation
    ((0, 0) for none); p_reverse: probability of time reversal; p_flip: probability of a
    polarity flip.
    """

    shift: bool = True
    gain_db: tuple[float, float] = (-6.0, 6.0)
    p_reverse: float = 0.5
    p_flip: float = 0.0


def augment_noise(noise: torch.Tensor | np.ndarray, length: int, *, seed: SeedLike,
                  config: TemporalAugment = TemporalAugment()) -> tuple[torch.Tensor, dict]:
    """Random crop/loop to ``length``, circular shift, time reversal, polarity flip and gain.

    ``noise`` [N] (any rate; nothing here depends on it) -> ``(out [length] float32, params)``
    where ``params`` holds ``offset``, ``shift``, ``reversed``, ``flipped`` and ``gain_db``, so
    the same output can be rebuilt. Before the gain the segment has RMS 1.
    """
    length = check_positive_int("length", length)
    rng = as_rng(seed)
    if not (0.0 <= config.p_reverse <= 1.0 and 0.0 <= config.p_flip <= 1.0):
        raise ValueError(f"p_reverse and p_flip must be probabilities, got {config}")
    seg, off = fit_array(to_f64(noise, "noise"), length, seed=rng)
    x = _unit_rms(seg, f"noise segment at offset {off}")
    shift = int(rng.integers(length)) if config.shift else 0
    rev = bool(rng.random() < config.p_reverse)
    flip = bool(rng.random() < config.p_flip)
    lo, hi = config.gain_db
    gain = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
    x = np.roll(x, shift)
    if rev:
        x = x[::-1]
    x = x * (10.0 ** (gain / 20.0)) * (-1.0 if flip else 1.0)
    params = {"offset": off, "shift": shift, "reversed": rev, "flipped": flip, "gain_db": gain}
    return torch.from_numpy(np.ascontiguousarray(x).astype(np.float32)), params
