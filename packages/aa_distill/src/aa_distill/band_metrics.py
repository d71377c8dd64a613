"""Per-band metrics: each metric's frequency-resolved parts grouped into analysis bands.

The teacher/student analysis (:mod:`aa_distill.analysis`) reports NMR-S / HESR per frequency
band (20-500, 500-2k, 2k-8k, 8k-12k, 12k-20k Hz, :data:`ANALYSIS_BANDS_HZ`). A band ``[lo, hi)``
collects, for one tone:

* **NMR** - the masking model's own bands (109 quarter-Bark bands, 80 Hz - 18 kHz) whose
  centre lies in the band: the mean over frames and those bands of noise / mask (linear), the
  same average that :class:`aa_distill.NMR` takes over all bands. A band without any NMR band
  (e.g. above 18 kHz) is ``nan``. The 12-20 kHz band therefore covers 12-18 kHz.
* **HESR** - the harmonics ``m f0`` in the band: ``sum (|P_m| - |T_m|)^2 / sum |T_m|^2`` over
  those harmonics (``nan`` where the band holds no harmonic of the reference).
* **ASR** (aliases) and **ESR** (error) - the signal's energy (aliases ``x - bandlimit(x)``
  or error ``pred - target``) is split over frequency with the 120 dB Chebyshev-windowed
  spectrum of the last second (1 Hz bins), so the band values **sum to the broadband ratio**
  (``sum_band ASR_band = ASR`` up to the part above 20 kHz); each band's energy is divided by
  the *total* reference energy (an alias landing in a band with no harmonic still counts).

All functions return linear ratios ``[B, num_bands]`` (``10 log10`` for dB). NMR depends on
the level (see :mod:`aa_distill.nmr`): compare band values between signals at the same level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .bandlimit import CHEBYSHEV_ATTENUATION_DB, HarmonicAnalysis, _window_on, bandlimit
from .losses import hesr_parts
from .nmr import NMR
from .tones import ToneParams

#: The analysis bands ``(lo, hi)`` in Hz, half-open ``[lo, hi)``: bass, midrange, presence, high
#: harmonics and the band above the training tones.
ANALYSIS_BANDS_HZ: tuple[tuple[float, float], ...] = (
    (20.0, 500.0), (500.0, 2000.0), (2000.0, 8000.0), (8000.0, 12000.0), (12000.0, 20000.0))


def band_label(band: tuple[float, float]) -> str:
    """``"20-500"``, ``"2k-8k"``, ... (Hz, thousands as ``k``)."""
    def fmt(f: float) -> str:
        return f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"
    return f"{fmt(band[0])}-{fmt(band[1])}"


def _check_bands(bands: Sequence[tuple[float, float]]) -> torch.Tensor:
    b = torch.as_tensor([tuple(map(float, x)) for x in bands], dtype=torch.float64)
    if b.ndim != 2 or b.shape[1] != 2 or b.shape[0] < 1:
        raise ValueError(f"bands must be a non-empty list of (lo_hz, hi_hz) pairs, got {bands!r}")
    if bool((b[:, 0] >= b[:, 1]).any()) or bool((b < 0).any()):
        raise ValueError(f"every band needs 0 <= lo < hi, got {bands!r}")
    return b


def band_membership(freqs_hz: torch.Tensor,
                    bands: Sequence[tuple[float, float]] = ANALYSIS_BANDS_HZ) -> torch.Tensor:
    """``[..., num_bands]`` bool: ``lo <= f < hi`` for every frequency in ``freqs_hz`` ``[...]``."""
    b = _check_bands(bands).to(freqs_hz.device)
    f = freqs_hz.to(torch.float64)[..., None]
    return (f >= b[:, 0]) & (f < b[:, 1])


def _safe_ratio(num: torch.Tensor, den: torch.Tensor, defined: torch.Tensor) -> torch.Tensor:
    out = num / torch.where(defined, den, torch.ones_like(den))
    return torch.where(defined, out, torch.full_like(out, math.nan))


def group_nmr_band_ratios(ratios: torch.Tensor, band_centres_hz: torch.Tensor | Sequence[float],
                          bands: Sequence[tuple[float, float]] = ANALYSIS_BANDS_HZ) -> torch.Tensor:
    """Group :meth:`aa_distill.NMR.band_ratios` output ``[B, frames, 109]`` into analysis bands:
    ``[B, num_bands]`` linear, the mean over frames and the NMR bands whose centre (Hz) lies in
    the band (``nan`` for a band that holds none)."""
    r = ratios.mean(dim=-2)  # [B, 109]
    centres = torch.as_tensor(band_centres_hz, dtype=torch.float64, device=r.device)
    if centres.shape != r.shape[-1:]:
        raise ValueError(f"need one centre frequency per NMR band ({r.shape[-1]}), got {tuple(centres.shape)}")
    m = band_membership(centres, bands).to(r.dtype)  # [109, nb]
    count = m.sum(0).expand(r.shape[0], -1)
    return _safe_ratio(r @ m, count, count > 0)


def nmr_per_band(nmr: NMR, x: torch.Tensor, ref: torch.Tensor,
                 bands: Sequence[tuple[float, float]] = ANALYSIS_BANDS_HZ) -> torch.Tensor:
    """NMR of ``x`` against ``ref`` (``[B, T]``) per analysis band: ``[B, num_bands]`` linear
    (mean over frames and the NMR bands whose centre lies in the band; ``nan`` for a band that
    holds no NMR band)."""
    return group_nmr_band_ratios(nmr.band_ratios(x, ref), nmr.band_centres_hz, bands)


def hesr_per_band(pred: HarmonicAnalysis, target: HarmonicAnalysis,
                  bands: Sequence[tuple[float, float]] = ANALYSIS_BANDS_HZ) -> torch.Tensor:
    """HESR over the harmonics in each band, ``[B, num_bands]`` linear (``nan`` where the
    band holds no harmonic of the target with non-zero energy). ``pred`` and ``target`` are
    :func:`aa_distill.harmonic_analysis` results for the same f0."""
    err, ref, freqs = hesr_parts(pred, target)  # [B, H]
    m = (band_membership(freqs, bands) & target.valid[..., None]).to(err.dtype)  # [B, H, nb]
    num = torch.einsum("bh,bhn->bn", err, m)
    den = torch.einsum("bh,bhn->bn", ref, m)
    return _safe_ratio(num, den, den > 0)


def spectral_band_shares(x: torch.Tensor, sample_rate: int,
                         bands: Sequence[tuple[float, float]] = ANALYSIS_BANDS_HZ) -> torch.Tensor:
    """Fraction of the energy of the last second of ``x`` (``[B, T >= fs]``) in each band,
    ``[B, num_bands]``, from the 120 dB Chebyshev-windowed one-sided power spectrum (1 Hz
    bins; low leakage between bands). Zero for a silent signal."""
    fs = int(sample_rate)
    if x.ndim != 2 or x.shape[-1] < fs:
        raise ValueError(f"expected [B, T >= {fs}] signals at {fs} Hz, got {tuple(x.shape)}")
    w = _window_on(fs, CHEBYSHEV_ATTENUATION_DB, x.device)
    p = torch.fft.rfft(x[..., -fs:].to(torch.float64) * w).abs().pow(2)  # [B, fs/2 + 1]
    k = torch.arange(p.shape[-1], device=x.device, dtype=torch.float64)
    weight = torch.where((k > 0) & (k < fs / 2), 2.0, 1.0)  # one-sided spectrum
    p = p * weight
    m = band_membership(k, bands).to(p.dtype)  # bin k is k Hz (N = fs)
    total = p.sum(-1, keepdim=True)
    return (p @ m) / total.clamp_min(torch.finfo(torch.float64).tiny)


def asr_per_band(x: torch.Tensor, f0: torch.Tensor | float, sample_rate: int,
                 bands: Sequence[tuple[float, float]] = ANALYSIS_BANDS_HZ) -> torch.Tensor:
    """Aliasing-to-signal ratio per band, ``[B, num_bands]`` linear: the energy of the alias
    components (``x - bandlimit(x)``, last second) in the band over the *total* energy of the
    bandlimited signal. Summed over bands it gives :func:`aa_distill.asr` (minus aliases
    above the last band)."""
    r = bandlimit(x, f0, sample_rate)
    a = r.aliases.to(torch.float64)
    total = a.pow(2).sum(-1, keepdim=True) / r.bandlimited.to(torch.float64).pow(2).sum(-1, keepdim=True)
    return spectral_band_shares(a, sample_rate, bands) * total


def esr_per_band(pred: torch.Tensor, target: torch.Tensor, sample_rate: int,
                 bands: Sequence[tuple[float, float]] = ANALYSIS_BANDS_HZ) -> torch.Tensor:
    """Error-to-signal ratio per band over the last second, ``[B, num_bands]`` linear: the
    energy of ``pred - target`` in the band over the total energy of ``target``."""
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    fs = int(sample_rate)
    e = (pred[..., -fs:] - target[..., -fs:]).to(torch.float64)
    t = target[..., -fs:].to(torch.float64)
    total = e.pow(2).sum(-1, keepdim=True) / t.pow(2).sum(-1, keepdim=True)
    return spectral_band_shares(e, fs, bands) * total


def analysis_tone_params(sample_rate: int, *, num_tones: int = 50, f_min: float = 27.5,
                         f_max: float = 12_000.0,
                         levels_db: Sequence[float] = (-36.0, -18.0, -6.0),
                         duration: float = 1.2) -> ToneParams:
    """The analysis tone grid: ``num_tones`` log-spaced f0 from ``f_min`` to
    ``f_max`` Hz (27.5 Hz - 12 kHz, 50 tones) at every level in ``levels_db`` (dBFS peak),
    zero phase, ordered level-major (all f0 at the first level, then the next level)."""
    fs = int(sample_rate)
    if num_tones < 1:
        raise ValueError(f"num_tones must be >= 1, got {num_tones}")
    if not 1.0 <= f_min <= f_max < fs / 2:
        raise ValueError(f"need 1 Hz <= f_min <= f_max < fs/2 = {fs / 2} Hz, got {f_min}, {f_max}")
    if not levels_db:
        raise ValueError("levels_db must hold at least one level")
    if any(not math.isfinite(v) or v > 0 for v in levels_db):
        raise ValueError(f"levels_db must be finite dBFS values <= 0, got {list(levels_db)}")
    if not duration > 1.0:
        raise ValueError(f"duration must exceed 1 s (the last second is analysed), got {duration}")
    if num_tones == 1:
        f = torch.tensor([float(f_min)], dtype=torch.float64)
    else:
        f = torch.logspace(math.log10(f_min), math.log10(f_max), num_tones, dtype=torch.float64)
        f[0], f[-1] = float(f_min), float(f_max)
    levels = torch.as_tensor(list(levels_db), dtype=torch.float64)
    f0 = f.repeat(levels.numel())
    midi = 69.0 + 12.0 * torch.log2(f0 / 440.0)
    amp = (10.0 ** (levels / 20.0)).repeat_interleave(f.numel())
    return ToneParams(midi, f0, amp, torch.zeros_like(f0), fs, float(duration))
