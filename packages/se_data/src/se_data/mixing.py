"""Mixing speech and noise at an exact SNR.

``mix_at_snr`` picks the noise gain ``g`` so that over the whole clip

    10·log10( Σ s² / Σ (g·n)² ) = snr_db

to float64 precision (the error is ~1e-12 dB; tests require < 1e-6 dB). This is the plain
energy-ratio SNR. The SI-SDR of the mixture it reports differs from it because speech and
noise are never exactly orthogonal: SI-SDR projects the mixture onto the speech, so the
part of the noise correlated with the speech counts as target (and the zero-mean
convention removes DC).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ._records import AsDictMixin
from ._rng import SeedLike, as_rng, check_positive_int, energy, out_dtype, to_f64
from .errors import SampleRateError


#: signals with an RMS at or below this (−120 dBFS, under 16-bit resolution) count as silent
SILENT_RMS = 1e-6


def _dbfs(e: float, n: int) -> str:
    return "-inf dBFS" if e == 0 else f"{10 * math.log10(e / n):.1f} dBFS"


@dataclass(frozen=True)
class MixInfo(AsDictMixin):
    """What :func:`mix_at_snr` did.

    noise_gain: linear gain g applied to the (looped/cropped) noise; noise_offset: start
    sample in the noise (at the mixing rate) of the segment used; looped: whether the noise
    was shorter than the speech and repeated; requested_snr_db / snr_db: asked for and
    achieved (float64) SNR in dB; si_sdr_db: zero-mean SI-SDR of the mixture against the
    speech in dB.
    """

    noise_gain: float
    noise_offset: int
    looped: bool
    requested_snr_db: float
    snr_db: float
    si_sdr_db: float


def fit_to_length(noise: torch.Tensor | np.ndarray, length: int, *, offset: int | None = None,
                  seed: SeedLike | None = None) -> tuple[torch.Tensor, int]:
    """Crop or loop ``noise`` [N] to ``length`` samples, starting at ``offset``.

    Sample ``i`` of the result is ``noise[(offset + i) % N]``. With ``offset=None`` it is
    drawn from ``seed``: uniform in ``[0, N − length]`` when the noise is long enough (no
    wrap-around), else uniform in ``[0, N)`` (the noise is looped). Returns the segment
    [length] (the input's dtype, float32 for NumPy float32) and the offset used.
    """
    x = noise.detach().cpu().numpy() if isinstance(noise, torch.Tensor) else np.asarray(noise)
    seg, off = fit_array(x, length, offset=offset, seed=seed)
    return torch.from_numpy(np.ascontiguousarray(seg)), off


def fit_array(x: np.ndarray, length: int, *, offset: int | None = None,
              seed: SeedLike | None = None) -> tuple[np.ndarray, int]:
    """:func:`fit_to_length` on a NumPy array [N] (same dtype out); the shared implementation."""
    length = check_positive_int("length", length)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"noise must be a non-empty 1-D signal [N], got shape {tuple(x.shape)}")
    n = x.size
    if offset is None:
        if seed is None:
            raise ValueError("fit_to_length: pass offset= or seed= (the offset is never drawn unseeded)")
        rng = as_rng(seed)
        offset = int(rng.integers(0, n - length + 1)) if n >= length else int(rng.integers(0, n))
    offset = int(offset)
    if not 0 <= offset < n:
        raise ValueError(f"offset {offset} is outside the noise (0 <= offset < {n})")
    if offset + length <= n:
        return x[offset:offset + length], offset
    return x[(offset + np.arange(length)) % n], offset


def si_sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Zero-mean SI-SDR (Le Roux et al. 2019) in dB of ``estimate`` against ``reference`` [T].

    The toolkit's one SI-SDR (``se_metrics.si_sdr`` calls it). Both signals (1-D, equal
    length, any real dtype; computed in float64) are made zero-mean, then
    ``a = <y, s> / <s, s>`` and ``SI-SDR = 10 log10((||a s||^2 + eps) / (||y - a s||^2 + eps))``
    with ``eps = 1e-12``, so identical signals give a large finite value (about
    ``10 log10(||s||^2 / 1e-12)`` dB) instead of +inf.

    Raises ``ValueError`` when either signal is constant (all samples equal, e.g. all zero:
    silent once its mean is removed): SI-SDR is undefined there.
    """
    eps = 1e-12
    s = np.asarray(reference, dtype=np.float64)
    y = np.asarray(estimate, dtype=np.float64)
    if s.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"SI-SDR needs two 1-D signals [T] of equal length, got shapes "
                         f"{tuple(s.shape)} (reference) and {tuple(y.shape)} (estimate)")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(y))):
        raise ValueError("SI-SDR needs finite signals: the reference or the estimate holds NaN or Inf")
    if s.size == 0 or s.max() == s.min():
        raise ValueError("SI-SDR is undefined: the reference is silent (constant: every sample "
                         "equal, so nothing is left after removing its mean); check that the "
                         "right reference was paired")
    if y.max() == y.min():
        raise ValueError("SI-SDR is undefined: the estimate is silent (constant: every sample "
                         "equal, e.g. all zero); the system that produced it output no signal")
    s = s - s.mean()
    y = y - y.mean()
    target = (energy(y, s) / energy(s)) * s
    return 10.0 * math.log10((energy(target) + eps) / (energy(y - target) + eps))


def mix_at_snr(speech: torch.Tensor | np.ndarray, noise: torch.Tensor | np.ndarray, snr_db: float, *,
               seed: SeedLike | None = None, offset: int | None = None, speech_sr: int | None = None,
               noise_sr: int | None = None) -> tuple[torch.Tensor, MixInfo]:
    """Add ``noise`` to ``speech`` [T] at exactly ``snr_db`` dB (energy ratio over the clip).

    The noise is looped or cropped to T samples (:func:`fit_to_length`; the offset comes
    from ``offset`` or is drawn from ``seed``), then scaled by
    ``g = sqrt(Σs² / (Σn² · 10^(snr_db/10)))`` computed in float64. Pass ``speech_sr`` and
    ``noise_sr`` (Hz) to have the rates checked: mixing signals at different rates raises
    :class:`~se_data.SampleRateError`.

    Returns ``(noisy [T], info)``: ``noisy = speech + g·noise_segment`` as a float32 tensor
    (float64 if either input is float64) and a :class:`MixInfo`. Silent speech or a silent
    noise segment (RMS ≤ :data:`SILENT_RMS`, −120 dBFS) raises ``ValueError``.
    """
    if speech_sr is not None and noise_sr is not None and int(speech_sr) != int(noise_sr):
        raise SampleRateError(f"mix_at_snr: speech is at {speech_sr} Hz but noise at {noise_sr} Hz; "
                              f"resample the noise first (se_data.resample(noise, {noise_sr}, {speech_sr}) "
                              f"or load it with load_audio(path, {speech_sr}, resample=True))")
    snr_db = float(snr_db)
    if not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    s = to_f64(speech, "speech")
    n_full = to_f64(noise, "noise")
    n, off = fit_array(n_full, s.size, offset=offset, seed=seed)
    es, en = energy(s), energy(n)
    if es <= SILENT_RMS**2 * s.size:
        raise ValueError(f"mix_at_snr: the speech is silent (RMS {_dbfs(es, s.size)}, below {SILENT_RMS:g}); "
                         f"an SNR is undefined")
    if en <= SILENT_RMS**2 * n.size:
        raise ValueError(f"mix_at_snr: the noise segment at offset {off} ({s.size} samples) is silent "
                         f"(RMS {_dbfs(en, n.size)}, below {SILENT_RMS:g}); scaling it up would only amplify "
                         f"rounding noise. Use another noise or offset (se_data.pick_noise_offset finds a "
                         f"non-silent one; NoiseSet(trim_silence=True) strips zero padding)")
    g = math.sqrt(es / (en * 10.0 ** (snr_db / 10.0)))
    scaled = g * n
    noisy = s + scaled
    achieved = 10.0 * math.log10(es / energy(scaled))
    info = MixInfo(noise_gain=g, noise_offset=off, looped=off + s.size > n_full.size, requested_snr_db=snr_db,
                   snr_db=achieved, si_sdr_db=si_sdr_db(s, noisy))
    return torch.from_numpy(noisy.astype(out_dtype(speech, noise))), info
