"""Speech-like signals from a source-filter model, offline and seeded (no data needed).

One utterance is built like this:

* **Timeline.** Phrases of 3–8 syllables separated by pauses (0.10–0.35 s), with leading
  and trailing silence (0.05–0.25 s). A syllable is an optional onset consonant (fricative, stop closure +
  burst, or nasal murmur), a vowel nucleus (80–220 ms) and an optional fricative coda, so
  syllables come at about 4 per second.
* **Source.** A Rosenberg glottal pulse train (opening phase ``0.5·(1 − cos(π·φ/Tp))``,
  closing phase ``cos(π·(φ − Tp)/(2·Tn))``, closed otherwise; ``φ`` the phase within the
  period), differentiated for lip radiation. The pitch contour has a speaker base f0 in
  90–250 Hz, phrase declination (+15 % → −15 %), accents on stressed syllables, slow drift
  and 0.5–1.5 % jitter; shimmer per period; aspiration noise during the open phase.
* **Filter.** Four formants F1–F4 (Peterson & Barney vowel targets scaled by a vocal-tract
  factor, interpolated between syllables so formants glide) as Klatt-style resonators,
  applied frame by frame in the STFT domain (32 ms Hann frames, 75 % overlap); fricatives
  and bursts are noise through a band-pass at a per-segment centre frequency.
* **Envelopes.** Raised-cosine attack/release per segment, per-syllable stress level.

:func:`synth_speech` returns float32 ``[round(seconds·sample_rate)]`` scaled to an active
RMS level (default −26 dBFS). The same seed gives the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ._records import AsDictMixin
from ._rng import SeedLike, as_rng, check_sample_rate

#: F1–F4 targets (Hz) of ten vowels, adult male (Peterson & Barney 1952; F4 set to 3500 Hz)
VOWEL_FORMANTS: dict[str, tuple[float, float, float, float]] = {
    "i": (270, 2290, 3010, 3500), "I": (390, 1990, 2550, 3500), "e": (530, 1840, 2480, 3500),
    "ae": (660, 1720, 2410, 3500), "a": (730, 1090, 2440, 3500), "o": (570, 840, 2410, 3500),
    "U": (440, 1020, 2240, 3500), "u": (300, 870, 2240, 3500), "V": (640, 1190, 2390, 3500),
    "er": (490, 1350, 1690, 3500),
}
_NASAL_FORMANTS = (250.0, 1100.0, 2300.0, 3400.0)
_BANDWIDTHS = np.array([70.0, 100.0, 160.0, 220.0])
_VOWEL_TABLE = np.array(list(VOWEL_FORMANTS.values()), dtype=np.float64)


@dataclass(frozen=True)
class Speaker(AsDictMixin):
    """Voice parameters of one synthetic talker.

    f0_hz: base pitch (Hz); vt_scale: formant scale (1.0 adult male, ~1.2 adult female);
    jitter / shimmer: relative period / amplitude perturbation; breathiness: aspiration
    level relative to the glottal source; open_quotient: opening + closing phase share of
    the period; rate: speaking-rate factor (1.0 ≈ 4 syllables/s).
    """

    f0_hz: float
    vt_scale: float
    jitter: float
    shimmer: float
    breathiness: float
    open_quotient: float
    rate: float


def random_speaker(seed: SeedLike) -> Speaker:
    """Draw a talker: f0 in 90–250 Hz, vocal-tract scale rising with f0 (0.95–1.25)."""
    rng = as_rng(seed)
    f0 = float(np.exp(rng.uniform(np.log(90.0), np.log(250.0))))
    vt = float(np.clip(0.95 + 0.30 * (f0 - 90.0) / 160.0 + rng.normal(0, 0.03), 0.9, 1.3))
    return Speaker(f0_hz=f0, vt_scale=vt, jitter=float(rng.uniform(0.005, 0.015)),
                   shimmer=float(rng.uniform(0.02, 0.08)), breathiness=float(rng.uniform(0.02, 0.12)),
                   open_quotient=float(rng.uniform(0.5, 0.7)), rate=float(rng.uniform(0.85, 1.2)))


def _ramp_env(n: int, starts: np.ndarray, ends: np.ndarray, amps: np.ndarray, attack: int,
              release: int) -> np.ndarray:
    """Sum of segments [start, end) with raised-cosine attack/release, amplitude ``amps``."""
    env = np.zeros(n)
    for s, e, a in zip(starts, ends, amps):  # a handful of segments per utterance
        s, e = int(s), int(min(e, n))
        if e <= s:
            continue
        t = np.arange(e - s, dtype=np.float64)
        at, rl = max(1, min(attack, (e - s) // 2)), max(1, min(release, (e - s) // 2))
        w = np.minimum(1.0, np.minimum((t + 0.5) / at, (e - s - t - 0.5) / rl))
        env[s:e] += a * (0.5 - 0.5 * np.cos(np.pi * np.clip(w, 0, 1)))
    return env


def _plan(rng: np.random.Generator, n: int, sr: int, spk: Speaker, pad_silence: bool) -> dict:
    """Segment lists (in samples) for vowels/nasals (voiced) and fricatives/bursts (unvoiced)."""
    lead = rng.uniform(0.05, 0.25) if pad_silence else rng.uniform(0.0, 0.05)
    tail = rng.uniform(0.05, 0.25) if pad_silence else 0.0
    end_t = n / sr - tail
    t = lead
    v_seg, u_seg, phrases = [], [], []  # v: (s, e, F[4], amp, accent); u: (s, e, fc, amp)
    r = spk.rate
    while t < end_t - 0.12:
        p_start = t
        for _ in range(int(rng.integers(3, 9))):
            if t >= end_t - 0.12:
                break
            onset = rng.choice(4, p=[0.25, 0.35, 0.2, 0.2])  # none, fricative, stop, nasal
            if onset == 1:
                d = rng.uniform(0.05, 0.13) / r
                u_seg.append((t, t + d, rng.choice([2500.0, 3500.0, 4500.0, 5500.0]) * rng.uniform(0.9, 1.1),
                              rng.uniform(0.15, 0.35)))
                t += d
            elif onset == 2:
                t += rng.uniform(0.02, 0.05) / r  # closure: silence
                d = rng.uniform(0.01, 0.025)
                u_seg.append((t, t + d, rng.uniform(1500.0, 4500.0), rng.uniform(0.3, 0.6)))
                t += d
            elif onset == 3:
                d = rng.uniform(0.04, 0.08) / r
                v_seg.append((t, t + d, np.array(_NASAL_FORMANTS) * spk.vt_scale, rng.uniform(0.25, 0.4), 0.0))
                t += d
            d = rng.uniform(0.08, 0.22) / r
            f = _VOWEL_TABLE[rng.integers(len(_VOWEL_TABLE))] * spk.vt_scale * rng.uniform(0.95, 1.05, 4)
            stress = rng.uniform(0.55, 1.0)
            v_seg.append((t, t + d, f, stress, rng.uniform(0.0, 0.15) * (stress > 0.8)))
            t += d
            if rng.random() < 0.25:
                d = rng.uniform(0.04, 0.10) / r
                u_seg.append((t, t + d, rng.choice([3000.0, 4000.0, 5000.0]) * rng.uniform(0.9, 1.1),
                              rng.uniform(0.1, 0.3)))
                t += d
            t += rng.uniform(0.0, 0.04)
        phrases.append((p_start, min(t, end_t)))
        t += rng.uniform(0.10, 0.35)

    def arr(rows, k):
        return np.array([row[k] for row in rows], dtype=np.float64) if rows else np.zeros(0)

    v = {"s": np.round(arr(v_seg, 0) * sr), "e": np.minimum(np.round(arr(v_seg, 1) * sr), n - 1),
         "F": np.array([row[2] for row in v_seg]).reshape(-1, 4), "amp": arr(v_seg, 3), "acc": arr(v_seg, 4)}
    u = {"s": np.round(arr(u_seg, 0) * sr), "e": np.minimum(np.round(arr(u_seg, 1) * sr), n - 1),
         "fc": arr(u_seg, 2), "amp": arr(u_seg, 3)}
    ph = np.round(np.array(phrases).reshape(-1, 2) * sr)
    return {"v": v, "u": u, "phrases": ph}


def _resonator_mag(freq_hz: np.ndarray, bw_hz: np.ndarray, omega: np.ndarray, sr: int) -> np.ndarray:
    """|H| of a cascade of Klatt resonators (each unit gain at DC): freq/bw [K, R] Hz,
    omega [F] rad/sample -> [K, F].

    One resonator is ``A / (1 − c·z⁻¹ + r²·z⁻²)`` with ``r = exp(−π·B/sr)``,
    ``c = 2r·cos(2π·F/sr)``, ``A = 1 − c + r²``; on the unit circle
    ``|D|² = 1 + c² + r⁴ − 2c(1 + r²)·cos ω + 2r²·cos 2ω``.
    """
    r2 = np.exp(-2 * np.pi * bw_hz / sr)
    c = 2 * np.sqrt(r2) * np.cos(2 * np.pi * freq_hz / sr)
    a0, a1, a2 = 1 + c * c + r2 * r2, -2 * c * (1 + r2), 2 * r2
    den2 = a0[..., None] + a1[..., None] * np.cos(omega) + a2[..., None] * np.cos(2 * omega)  # [K, R, F]
    gain2 = ((1 - c + r2) ** 2).prod(axis=1)[:, None]
    return np.sqrt(gain2 / den2.prod(axis=1))

def _filter_frames(x: np.ndarray, h: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Filter each frame of x [C, T] by the magnitude response h [C, K, n_fft//2+1] (STFT with a
    periodic Hann window, hop = n_fft/4, centred frames; weighted overlap-add). Returns [C, T]."""
    c, n = x.shape
    k = h.shape[1]
    pad = n_fft // 2
    total = (k - 1) * hop + n_fft
    xp = np.zeros((c, total))
    xp[:, pad:pad + n] = x
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(xp, n_fft, axis=1)[:, ::hop][:, :k]  # [C, K, N]
    y = np.fft.irfft(np.fft.rfft(frames * win, axis=-1) * h, n=n_fft, axis=-1) * win
    r = n_fft // hop
    blocks = np.zeros((c, k + r - 1, hop))
    wsum = np.zeros((k + r - 1, hop))
    yb = y.reshape(c, k, r, hop)
    wb = (win**2).reshape(r, hop)
    for j in range(r):  # r = 4 overlapping quarters
        blocks[:, j:j + k] += yb[:, :, j]
        wsum[j:j + k] += wb[j]
    out = blocks.reshape(c, -1)[:, pad:pad + n]
    return out / np.maximum(wsum.reshape(-1)[pad:pad + n], 1e-3)


def synth_speech(seconds: float, *, seed: SeedLike, sample_rate: int = 16000, speaker: Speaker | None = None,
                 level_db: float = -26.0, pad_silence: bool = True) -> torch.Tensor:
    """One speech-like utterance: float32 [round(seconds·sample_rate)] at ``sample_rate`` Hz.

    ``speaker`` fixes the voice (else :func:`random_speaker` draws one from the same
    generator); ``level_db`` is the RMS over the active (voiced + unvoiced) part in dBFS;
    ``pad_silence`` adds 0.05–0.25 s of silence at both ends (off for babble talkers).
    """
    sr = check_sample_rate("sample_rate", sample_rate)
    n = int(round(float(seconds) * sr))
    if n < int(0.25 * sr):
        raise ValueError(f"synth_speech needs at least 0.25 s, got {seconds} s")
    rng = as_rng(seed)
    spk = speaker if speaker is not None else random_speaker(rng)
    plan = _plan(rng, n, sr, spk, pad_silence)
    v, u = plan["v"], plan["u"]
    ms = sr // 1000

    # --- pitch contour: declination per phrase, accents, drift, jitter ---
    idx = np.arange(n, dtype=np.float64)
    decl = np.ones(n)
    for s, e in plan["phrases"]:
        s, e = int(s), int(min(e, n))
        if e > s:
            decl[s:e] = 1.15 - 0.30 * (idx[s:e] - s) / max(e - s, 1)
    centers = 0.5 * (v["s"] + v["e"])
    widths = np.maximum(0.5 * (v["e"] - v["s"]), 1.0)
    coarse = np.arange(0, n + 64, 64, dtype=np.float64)  # accents are smooth: evaluate every 4 ms, interpolate
    accent = np.interp(idx, coarse, (v["acc"][:, None] * np.exp(
        -0.5 * ((coarse[None, :] - centers[:, None]) / widths[:, None]) ** 2)).sum(0)) if len(centers) else np.zeros(n)
    n_knots = max(4, int(n / sr * 8))
    drift = np.interp(idx, np.linspace(0, n, n_knots), rng.normal(0, 0.03, n_knots))
    jit = np.interp(idx, np.linspace(0, n, max(4, int(n / sr * 200))), rng.normal(0, spk.jitter, max(4, int(n / sr * 200))))
    f0 = np.clip(spk.f0_hz * decl * (1 + accent + drift + jit), 50.0, 0.45 * sr)

    # --- glottal source (Rosenberg), shimmer, aspiration ---
    phase = np.cumsum(f0 / sr)
    frac = phase - np.floor(phase)
    tp, tn = 0.6 * spk.open_quotient, 0.4 * spk.open_quotient
    g = np.where(frac < tp, 0.5 * (1 - np.cos(np.pi * frac / tp)),
                 np.where(frac < tp + tn, np.cos(np.pi * (frac - tp) / (2 * tn)), 0.0))
    cycles = np.floor(phase).astype(np.int64)
    shim = 1 + spk.shimmer * rng.standard_normal(cycles[-1] + 2)
    g *= shim[cycles]
    src = np.diff(g, prepend=0.0) / (f0 / sr)  # lip radiation; / (f0/sr) keeps the level f0-independent
    src /= np.sqrt(np.mean(src**2)) + 1e-12
    src += spk.breathiness * 3.0 * rng.standard_normal(n) * (frac < tp + tn)

    v_env = _ramp_env(n, v["s"], v["e"], v["amp"], attack=15 * ms, release=30 * ms)
    u_env = _ramp_env(n, u["s"], u["e"], u["amp"], attack=10 * ms, release=15 * ms)
    noise = rng.standard_normal(n)

    # --- time-varying filters, frame by frame in the STFT domain ---
    n_fft = int(2 ** np.ceil(np.log2(0.032 * sr)))
    hop = n_fft // 4
    n_frames = 1 + n // hop
    t_frames = np.arange(n_frames) * hop
    omega = np.linspace(0, np.pi, n_fft // 2 + 1)
    if len(centers):
        order = np.argsort(centers)
        F = np.stack([np.interp(t_frames, centers[order], v["F"][order, i]) for i in range(4)], axis=1)
    else:
        F = np.tile(np.array(VOWEL_FORMANTS["a"]) * spk.vt_scale, (n_frames, 1))
    F = np.minimum(F, 0.45 * sr)
    bw = _BANDWIDTHS[None, :] * (F / np.array(VOWEL_FORMANTS["a"])[None, :]) ** 0.3
    h_v = _resonator_mag(F, bw, omega, sr)  # [K, F]
    fc_track = np.full(n, 4000.0)
    for s, e, fc in zip(u["s"], u["e"], u["fc"]):
        fc_track[int(s):int(e)] = fc
    fc = np.minimum(fc_track[np.minimum(t_frames, n - 1)], 0.42 * sr)[:, None]
    h_u = _resonator_mag(fc, 0.5 * fc, omega, sr)
    f_hz = omega[None, :] * sr / (2 * np.pi)
    h_u = h_u * (f_hz / fc) ** 2 / (1 + (f_hz / fc) ** 2) / (1 + (f_hz / (1.6 * fc)) ** 4)
    h_u /= h_u.max(axis=1, keepdims=True)

    y2 = _filter_frames(np.stack([src * v_env, noise * u_env]), np.stack([h_v, h_u]), n_fft, hop)
    voiced, unvoiced = y2[0], y2[1]
    vr = np.sqrt(np.mean(voiced[v_env > 0.3] ** 2)) if np.any(v_env > 0.3) else 1.0
    ur = np.sqrt(np.mean(unvoiced[u_env > 0.1] ** 2)) if np.any(u_env > 0.1) else 1.0
    y = voiced / (vr + 1e-12) + unvoiced / (ur + 1e-12) * 10 ** (rng.uniform(-10.0, -4.0) / 20)
    active = (v_env + u_env) > 0.05
    rms = np.sqrt(np.mean(y[active] ** 2)) if np.any(active) else np.sqrt(np.mean(y**2))
    y *= 10 ** (level_db / 20) / (rms + 1e-12)
    return torch.from_numpy(y.astype(np.float32))
