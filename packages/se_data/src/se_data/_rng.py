"""Private helpers: one way to turn a seed into a NumPy generator, and array conversions.

Every random function in the noise / mixing / demo modules takes ``seed``: an ``int``, a
``numpy.random.Generator`` (used as is, so a caller can thread one generator through many
calls) or a ``torch.Generator`` (one 63-bit integer is drawn from it to seed NumPy).
``None`` is refused: nothing random here is ever unseeded.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

SeedLike = Union[int, np.integer, np.random.Generator, torch.Generator]


def as_rng(seed: SeedLike, *, name: str = "seed") -> np.random.Generator:
    """A ``numpy.random.Generator`` from an int, a NumPy generator or a torch generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, torch.Generator):
        return np.random.default_rng(int(torch.randint(0, 2**63 - 1, (1,), generator=seed)))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an int, numpy.random.Generator or torch.Generator "
                        f"(got {type(seed).__name__}); every random choice here is seeded")
    if int(seed) < 0:
        raise ValueError(f"{name} must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))


def to_f64(x: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """1-D float64 NumPy copy of a tensor / array [T]; errors on other shapes and NaN/Inf."""
    if isinstance(x, torch.Tensor):
        a = x.detach().cpu().numpy().astype(np.float64)  # numpy cast: torch's threaded copy is slow under load
    else:
        a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D [T] (mono samples), got shape {tuple(a.shape)}; "
                         f"downmix multi-channel audio first (load_audio(..., mono=True))")
    if a.size == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} holds NaN or Inf samples")
    return a


def out_dtype(*xs: torch.Tensor | np.ndarray) -> type:
    """np.float64 if any input is float64, else np.float32."""
    for x in xs:
        if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
            return np.float64
        if isinstance(x, np.ndarray) and x.dtype == np.float64:
            return np.float64
    return np.float32


def energy(a: np.ndarray, b: np.ndarray | None = None) -> float:
    """Σ a·b (Σ a² without b) in float64, by pairwise summation (not BLAS: NumPy's threaded
    dot product is ~100x slower on a loaded 2-core machine)."""
    return float(np.sum(a * (a if b is None else b)))


def check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_sample_rate(name: str, sr: int) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or int(sr) <= 0:
        raise ValueError(f"{name} must be a positive integer sample rate in Hz, got {sr!r}")
    return int(sr)
