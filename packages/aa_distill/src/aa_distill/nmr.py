"""Differentiable noise-to-mask ratio (NMR): PEAQ-basic masking (ITU-R BS.1387 FFT ear model)
as simplified by Zheleznov and used by Carson et al. (DAFx25) as a training loss.

Per frame (Hann 2048, hop 1024, no centring) of the test signal ``x`` and reference ``r``:

1. level calibration: both signals are scaled so that a full-scale sine (amplitude 1) at
   1019.5 Hz reads ``level_db`` = 92 dB SPL (PEAQ's playback level assumption);
2. magnitude spectra ``|X|``, ``|R|`` weighted by the outer/middle-ear response
   ``A(f) = -2.184 f^-0.8 + 6.5 exp(-0.6 (f - 3.3)^2) - 0.001 f^3.6`` dB (f in kHz);
3. noise pattern ``N_b = max(sum_k U_bk (|X_k| - |R_k|)^2, E_min)`` and pitch pattern
   ``E_b = max(sum_k U_bk |R_k|^2, E_min) + E_in,b`` over 109 quarter-Bark bands
   (``U``: fractional bin-to-band overlap; ``E_in``: internal ear noise);
4. level-dependent two-sided spreading of ``E`` (lower 27 dB/Bark, upper
   ``24 + 230/f_c - 2 log10 E`` dB/Bark, power-law addition with exponent 0.4, normalised);
5. mask ``M_b = g_m,b * spread(E)_b`` with the mask offset ``g_m`` (3 dB up to 12 Bark, then
   ``0.25 b dz`` dB);
6. ``NMR = mean over frames and bands of N_b / M_b`` (linear), reported as ``10 log10``.

There is no time spreading (the reference omits it for steady tones).

Level calibration and comparability: NMR depends on the absolute level. Scaling both
signals by 0.1 changes the NMR of the same distortion by ~ -19 dB while ESR is unchanged.
**Compare NMR values only between signals at the same level** (e.g. teacher and student on
the same input tone), never across input levels or across differently normalised data.

Numerics: the noise term uses ``|X| - |R| = Re((X - R) conj(X + R)) / (|X| + |R|)``,
computed from the spectra of ``x - r`` and ``x + r``. This is exact algebra, but keeps
float32 accurate when ``x`` and ``r`` are close (float32 stays within ~0.01 dB of float64 on
the reference cases), and makes NMR of identical inputs exactly the ``E_min`` floor.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._peaq_bands import (
    BAND_CENTRE_HZ,
    BAND_LOWER_HZ,
    BAND_STEP_BARK,
    BAND_UPPER_HZ,
    NUM_BANDS,
)

_SPREAD_EXPONENT = 0.4


def _ear_weights(sample_rate: float, n_fft: int) -> np.ndarray:
    """Amplitude weights ``10^(A(f)/20)`` at the rFFT bin frequencies (0 at DC)."""
    f_khz = np.arange(n_fft // 2 + 1) * (sample_rate / n_fft) / 1000.0
    w = np.zeros_like(f_khz)
    f = f_khz[1:]
    a_db = -2.184 * f ** -0.8 + 6.5 * np.exp(-0.6 * (f - 3.3) ** 2) - 0.001 * f ** 3.6
    w[1:] = 10.0 ** (a_db / 20.0)
    return w


def _band_matrix(sample_rate: float, n_fft: int) -> np.ndarray:
    """``U[k, b]``: the fraction of rFFT bin ``k`` (width fs/N, centred on k fs/N) inside band b."""
    df = sample_rate / n_fft
    k = np.arange(n_fft // 2 + 1)[:, None]
    hi = np.minimum(BAND_UPPER_HZ[None, :], (k + 0.5) * df)
    lo = np.maximum(BAND_LOWER_HZ[None, :], (k - 0.5) * df)
    return np.maximum(0.0, hi - lo) / df


def _peak_factor(f_norm: float, n_fft: int) -> float:
    """Hann-window scalloping factor of a sine at normalised frequency ``f_norm`` (PQ_gp)."""
    df = 1.0 / n_fft
    k = math.floor(f_norm / df)
    dfn = min((k + 1) * df - f_norm, f_norm - k * df)
    dfw = dfn * (n_fft - 1)
    if dfw == 0.0:
        return 1.0
    return math.sin(math.pi * dfw) / (math.pi * dfw * (1.0 - dfw ** 2))


def _spread_constants(n_bands: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Log of the upper-slope base per band, lower-spreading matrix (exponentiated),
    the sum of the lower geometric series per band, and the log of the lower slope."""
    dz = BAND_STEP_BARK
    log_a_uc = np.log(10.0) * (-2.4 - 23.0 / BAND_CENTRE_HZ) * dz  # log of 10^((-2.4-23/fc) dz)
    a_l = 10.0 ** (-2.7 * dz)
    m = np.arange(n_bands)
    g_il = (1.0 - a_l ** (m + 1)) / (1.0 - a_l)
    # lower spreading (to bands i <= m) after the power law: (a_l^e)^(m - i)
    diff = m[:, None] - m[None, :]  # [m, i] = m - i
    lower = np.where(diff >= 0, (a_l ** _SPREAD_EXPONENT) ** np.maximum(diff, 0), 0.0)
    return log_a_uc, lower, g_il, float(np.log(a_l))


class NMR(torch.nn.Module):
    """Noise-to-mask ratio of a test signal against a reference (see module docs).

    Parameters
    ----------
    sample_rate : Hz, required (the bands, ear weighting and calibration depend on it).
    n_fft, hop : frame length and hop (2048, 1024).
    level_db : SPL of a full-scale sine (92 dB).
    e_min : floor of the band energies (1e-12; identical inputs give ~ -128 dB).
    bits : ``None`` (default) for no quantisation, or e.g. 24 to round both signals to that
        many bits first with a straight-through gradient (the MATLAB original; the
        reference's 64 bits is a no-op).
    f_test : calibration frequency (1019.5 Hz).
    dtype : compute dtype of the band and spreading work (``torch.float32`` or
        ``torch.float64``); ``None`` (default) uses the inputs' (promoted) dtype.
    stft_float64 : run the two STFTs and the magnitude difference in float64 whatever
        ``dtype`` is (default True). A float32 STFT has a rounding floor about 140 dB below
        the strongest bin; in the quiet high bands of a lowpassed low tone the noise pattern
        sits near that floor, and a float32 STFT moved such a tone's NMR by up to 0.05 dB
        (1 in 40 random tones). With the float64 STFT the float32 path stays within 0.01 dB
        of float64 (``bench/aa_speed.py`` prints the worst case on 40 tones). With
        ``stft_float64=False`` the STFTs of ``x - ref`` and ``x + ref`` (formed in the inputs'
        precision) run in ``dtype``, and ``|X| - |R|`` comes from them without cancellation.
    upper_form : how the upper frequency spreading is evaluated: ``"matrix"`` (a ``[109,
        109]`` power matrix per frame; fastest on GPUs), ``"loop"`` (108 vector steps over
        band distances; fastest on CPUs) or ``"auto"`` (default: matrix on CUDA tensors,
        loop otherwise). Same values to rounding.

    ``forward(x [B, T], ref [B, T]) -> [B]`` linear NMR per item (mean over frames and bands),
    in the compute dtype; differentiable in both inputs;
    :meth:`band_ratios` returns the ``[B, frames, 109]`` per-band noise/mask ratios so that
    callers can average over any band subset (:attr:`band_centres_hz`).
    """

    def __init__(self, sample_rate: float, n_fft: int = 2048, hop: int = 1024,
                 level_db: float = 92.0, e_min: float = 1e-12, bits: int | None = None,
                 f_test: float = 1019.5, dtype: torch.dtype | None = None,
                 stft_float64: bool = True, upper_form: str = "auto") -> None:
        super().__init__()
        self.stft_float64 = bool(stft_float64)
        if upper_form not in ("auto", "matrix", "loop"):
            raise ValueError(f"upper_form must be 'auto', 'matrix' or 'loop', got {upper_form!r}")
        self.upper_form = upper_form
        if dtype not in (None, torch.float32, torch.float64):
            raise ValueError(f"dtype must be None, torch.float32 or torch.float64, got {dtype}")
        self.dtype = dtype
        fs = float(sample_rate)
        if not math.isfinite(fs) or fs <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
        if fs / 2 < BAND_UPPER_HZ[-1]:
            raise ValueError(f"NMR's bands reach 18 kHz: sample_rate {fs} Hz is too low "
                             f"(need >= 36 kHz)")
        if bits is not None and not (2 <= bits <= 64):
            raise ValueError(f"bits must be None or in 2..64, got {bits}")
        self.sample_rate, self.n_fft, self.hop = sample_rate, int(n_fft), int(hop)
        self.level_db, self.e_min, self.bits, self.f_test = level_db, e_min, bits, f_test
        gp = _peak_factor(f_test / fs, self.n_fft)
        # full-scale sine -> Hann-window peak (N - 1)/4 * gp -> 10^(level/20)
        self.calibration = 10.0 ** (level_db / 20.0) / (gp * (self.n_fft - 1) / 4.0)
        log_a_uc, lower, g_il, _ = _spread_constants(NUM_BANDS)
        idx = np.arange(NUM_BANDS)
        mask_db = np.where(idx <= 12.0 / BAND_STEP_BARK, 3.0, 0.25 * idx * BAND_STEP_BARK)
        f64 = dict(dtype=torch.float64)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=False, **f64))
        self.register_buffer("ear", torch.as_tensor(_ear_weights(fs, self.n_fft), **f64))
        self.register_buffer("band_matrix", torch.as_tensor(_band_matrix(fs, self.n_fft), **f64))
        self.register_buffer("internal_noise", torch.as_tensor(
            10.0 ** (1.456 * (BAND_CENTRE_HZ / 1000.0) ** -0.8 / 10.0), **f64))
        self.register_buffer("mask_offset", torch.as_tensor(10.0 ** (-mask_db / 10.0), **f64))
        self.register_buffer("log_a_uc", torch.as_tensor(log_a_uc, **f64))
        self.register_buffer("lower_spread", torch.as_tensor(lower, **f64))
        self.register_buffer("g_il", torch.as_tensor(g_il, **f64))
        d = idx[None, :] - idx[:, None]  # [m, i] = i - m
        self.register_buffer("upper_steps", torch.as_tensor(np.maximum(d, 0), **f64))
        self.register_buffer("upper_mask", torch.as_tensor(d > 0))
        self.register_buffer("remaining", torch.as_tensor(NUM_BANDS - idx, **f64))
        self.register_buffer("spread_norm", torch.ones(NUM_BANDS, **f64))
        with torch.no_grad():
            self.spread_norm.copy_(self._spread(torch.ones(1, NUM_BANDS, **f64))[0])

    @property
    def band_centres_hz(self) -> np.ndarray:
        """Centre frequency (Hz) of each of the 109 bands."""
        return BAND_CENTRE_HZ.copy()

    def _buf(self, name: str, like: torch.Tensor) -> torch.Tensor:
        return getattr(self, name).to(dtype=like.dtype)

    def _spread(self, e: torch.Tensor) -> torch.Tensor:
        """Level-dependent frequency spreading of band energies ``e`` ``[..., 109]``
        (PEAQ ``PQ_SpreadCB``), normalised by :attr:`spread_norm`; vectorised over bands."""
        dz, ex = BAND_STEP_BARK, _SPREAD_EXPONENT
        log_a_uce = self._buf("log_a_uc", e) + (0.2 * dz) * torch.log(e)  # [..., m]
        # a_uce = exp(log_a_uce); sum_{j < remaining} a_uce^j = (1 - a^r) / (1 - a), as expm1 ratios (no cancellation
        # when a_uce is close to 1)
        g_iu = torch.expm1(self._buf("remaining", e) * log_a_uce) / torch.expm1(log_a_uce)
        en = e / (self._buf("g_il", e) + g_iu - 1.0)
        ene = en.pow(ex)
        lower = ene @ self._buf("lower_spread", e)  # sum_{m >= i} ene_m (a_l^e)^(m - i)
        upper = self._upper_spread(ene, ex * log_a_uce, matrix=e.is_cuda if self.upper_form == "auto"
                                   else self.upper_form == "matrix")
        return (lower + upper).pow(1.0 / ex) / self._buf("spread_norm", e)

    def _upper_spread(self, ene: torch.Tensor, log_r: torch.Tensor, matrix: bool) -> torch.Tensor:
        """``upper_i = sum_{m < i} ene_m r_m^(i - m)`` with ``r_m = exp(log_r_m)``, ``[..., 109]``.

        Two exact forms of the same sum. ``matrix``: one ``[109, 109]`` matrix of powers per
        frame and a batched matmul (few, large kernels: fastest on a GPU). Otherwise a loop
        over the 108 band *distances* (not over bands): each step multiplies the running
        powers of all sources at once and adds them shifted, so the work is 108 small
        vector ops on cache-sized tensors (about 4x faster forward + backward on a CPU).
        """
        if matrix:
            steps = self._buf("upper_steps", ene)
            upper_mat = torch.exp(log_r[..., :, None] * steps).masked_fill(~self.upper_mask, 0.0)
            return (ene[..., None, :] @ upper_mat)[..., 0, :]
        r, nc = torch.exp(log_r), ene.shape[-1]
        term, out = ene, torch.zeros_like(ene)
        for k in range(1, nc):  # distance k: source m = 0..nc-k-1 reaches band m + k
            term = term[..., :-1] * r[..., :nc - k]
            out = out + torch.nn.functional.pad(term, (k, 0))
        return out

    def _spectra(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x, self.n_fft, self.hop, window=self._buf("window", x), center=False,
                          return_complex=True).transpose(-1, -2)  # [B, frames, bins]

    def _quantise(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits is None:
            return x
        amax = 2.0 ** (self.bits - 1)
        return x + (torch.round(x * amax) / amax - x).detach()  # straight-through rounding

    def band_ratios(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Noise-to-mask ratio per frame and band, ``[B, frames, 109]`` (linear)."""
        if x.shape != ref.shape or x.ndim != 2:
            raise ValueError(f"x and ref must both be [B, T], got {tuple(x.shape)} and "
                             f"{tuple(ref.shape)}")
        for v in (x, ref):
            if v.dtype not in (torch.float32, torch.float64):
                raise ValueError(f"x and ref must be float32 or float64, got {v.dtype}")
        if x.shape[-1] < self.n_fft:
            raise ValueError(f"signals of {x.shape[-1]} samples are shorter than one NMR frame "
                             f"({self.n_fft})")
        x, ref = self._quantise(x), self._quantise(ref)
        g = self.calibration
        cdt = self.dtype or torch.promote_types(x.dtype, ref.dtype)
        if self.stft_float64:
            # float64 magnitude spectra: |X| - |R| keeps ~1e-16 of the peak bin (a float32 STFT
            # has a floor ~140 dB down, which quiet bands reach), and only x's STFT is on the
            # gradient path when ref is a target
            mag_x, mag_r = (self._spectra(v.to(torch.float64) * g).abs() for v in (x, ref))
            mag_diff, mag_r = (mag_x - mag_r).to(cdt), mag_r.to(cdt)
        else:  # float32 STFTs of x - R and x + R (formed in the inputs' precision)
            dr, di = torch.view_as_real(self._spectra(((x - ref) * g).to(cdt))).unbind(-1)
            sr, si = torch.view_as_real(self._spectra(((x + ref) * g).to(cdt))).unbind(-1)
            tiny = torch.finfo(cdt).tiny
            ar, ai, br, bi = sr + dr, si + di, sr - dr, si - di  # 2X, 2R
            mag_x = 0.5 * (ar * ar + ai * ai).clamp_min(tiny).sqrt()  # clamp: finite gradient at 0
            mag_r = 0.5 * (br * br + bi * bi).clamp_min(tiny).sqrt()
            # |X| - |R| = Re((X - R) conj(X + R)) / (|X| + |R|): no cancellation when X ~ R
            mag_diff = (dr * sr + di * si) / (mag_x + mag_r).clamp_min(tiny)
        ear = self._buf("ear", mag_r)
        u = self._buf("band_matrix", mag_r)
        noise = ((mag_diff * ear).pow(2) @ u).clamp_min(self.e_min)
        pitch = ((mag_r * ear).pow(2) @ u).clamp_min(self.e_min) \
            + self._buf("internal_noise", mag_r)
        mask = self._buf("mask_offset", mag_r) * self._spread(pitch)
        return noise / mask

    def forward(self, x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Linear NMR per item ``[B]`` (mean over frames and bands); dB: ``10 log10``."""
        return self.band_ratios(x, ref).mean(dim=(-2, -1))

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop={self.hop}, "
                f"level_db={self.level_db}, bits={self.bits}, dtype={self.dtype}, "
                f"stft_float64={self.stft_float64}")


def nmr_db(x: torch.Tensor, ref: torch.Tensor, sample_rate: float, **kwargs: float) -> torch.Tensor:
    """Convenience: ``10 log10 NMR(x, ref)`` per item, ``[B]`` (builds an :class:`NMR`)."""
    return 10.0 * torch.log10(NMR(sample_rate, **kwargs).to(x.device)(x, ref))


class NMRLoss(torch.nn.Module):
    """NMR as a batch loss.

    ``reduction="geometric"`` (the reference): mean of the per-item dB values, converted back
    to linear (``10^(mean_dB / 10)``, a geometric mean); ``"mean"``: arithmetic mean of the
    linear values; ``"none"``: ``[B]``. ``forward(pred, target) -> (total, {"nmr": total})``,
    the toolkit's loss convention.
    """

    def __init__(self, sample_rate: float, reduction: str = "geometric", **nmr_kwargs) -> None:
        super().__init__()
        if reduction not in ("geometric", "mean", "none"):
            raise ValueError(f"reduction must be 'geometric', 'mean' or 'none', got {reduction!r}")
        self.reduction = reduction
        self.nmr = NMR(sample_rate, **nmr_kwargs)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        v = self.nmr(pred, target)
        if self.reduction == "mean":
            v = v.mean()
        elif self.reduction == "geometric":
            v = torch.exp(torch.log(v).mean())
        return v, {"nmr": v.detach()}
