"""Non-stationary noise: concatenated noise types with crossfades, sudden events, and
mixing along a time-varying SNR trajectory. Everything is seeded.

All signals are mono [N] at one sample rate (``sample_rate``, Hz), which the caller
guarantees (load noise files with ``load_audio(path, sr, resample=True, mono=True)``).

* :func:`concat_noises` — segments of different noises joined with equal-power
  (sin/cos) crossfades, each segment at its own level.
* :func:`add_events` — short loud events (given clips, or synthetic knocks, beeps and
  clicks) at random times, each at a level relative to the background RMS.
* :func:`snr_trajectory` / :func:`mix_with_snr_trajectory` — a per-sample SNR curve (dB)
  and a mixer that follows it: at sample t the noise gain is
  ``sqrt(Ps / (Pn · 10^(snr(t)/10)))`` with Ps, Pn the clip-average speech and noise power,
  so the local noise level relative to the long-term speech level follows the curve.
* :func:`compose_nonstationary` — the three together, as a test-set or training noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ._rng import SeedLike, as_rng, check_positive_int, check_sample_rate, out_dtype, to_f64
from .mixing import fit_array, si_sdr_db

EVENT_KINDS = ("knock", "beep", "click")


def _unit(x: np.ndarray, what: str) -> np.ndarray:
    r = math.sqrt(float(np.mean(x**2)))
    if r == 0.0:
        raise ValueError(f"{what} is silent (all zeros)")
    return x / r


def concat_noises(noises: Sequence[torch.Tensor | np.ndarray], length: int, sample_rate: int, *, seed: SeedLike,
                  n_segments: int | None = None, min_segment_s: float = 0.5, crossfade_s: float = 0.1,
                  level_db: tuple[float, float] = (-3.0, 3.0), labels: Sequence[str] | None = None
                  ) -> tuple[torch.Tensor, dict]:
    """Join segments of different noises into one [length] float32 signal at ``sample_rate`` Hz.

    ``n_segments`` (default: one per 1.5 s, at least 2) segments with boundaries drawn
    uniformly, no segment shorter than ``min_segment_s``; each segment takes a noise other
    than the previous one's (when there are two or more), looped/cropped from a seeded
    offset, scaled to RMS 1 and then by a uniform gain in ``level_db``. Neighbours overlap by
    ``crossfade_s`` seconds with equal-power (cos/sin) fades. Returns ``(noise, info)`` with
    ``info["segments"]`` = list of ``{start, end, index, label, offset, level_db}`` (samples).
    """
    length = check_positive_int("length", length)
    sr = check_sample_rate("sample_rate", sample_rate)
    pool = [to_f64(x, f"noises[{i}]") for i, x in enumerate(noises)]
    if not pool:
        raise ValueError("concat_noises needs at least one noise")
    if labels is not None and len(labels) != len(pool):
        raise ValueError(f"labels has {len(labels)} entries for {len(pool)} noises")
    rng = as_rng(seed)
    min_seg = max(1, int(round(min_segment_s * sr)))
    k = n_segments if n_segments is not None else max(2, int(length / (1.5 * sr)))
    k = max(1, min(int(k), length // min_seg))
    # boundaries: k-1 cut points, spaced at least min_seg apart (uniform on the reduced simplex)
    free = length - k * min_seg
    cuts = np.sort(rng.uniform(0, free, k - 1)) if k > 1 else np.zeros(0)
    bounds = np.concatenate([[0], np.round(cuts + min_seg * np.arange(1, k)).astype(np.int64), [length]])
    xf = min(int(round(crossfade_s * sr)), min_seg)
    t = np.arange(length)
    out = np.zeros(length)
    segments, prev = [], -1
    for j in range(k):  # k is small (one segment per ~1.5 s)
        choices = [i for i in range(len(pool)) if i != prev] or [0]
        idx = int(choices[int(rng.integers(len(choices)))])
        s, e = int(bounds[j]), int(bounds[j + 1])
        lo, hi = max(0, s - xf), min(length, e + xf)
        for _ in range(16):  # an intermittent noise (a bark, then silence): redraw a silent piece's offset
            seg, off = fit_array(pool[idx], length, seed=rng)
            if np.any(seg[lo:hi] != 0):
                break
        lvl = float(rng.uniform(*level_db)) if level_db[1] > level_db[0] else float(level_db[0])
        # weight: 1 inside, cos/sin ramps of width xf centred on each inner boundary
        w = np.ones(length)
        if j > 0:
            u = np.clip((t - (s - xf / 2)) / max(xf, 1), 0, 1)
            w *= np.sin(0.5 * np.pi * u)
        if j < k - 1:
            u = np.clip((t - (e - xf / 2)) / max(xf, 1), 0, 1)
            w *= np.cos(0.5 * np.pi * u)
        piece = seg[lo:hi]
        out[lo:hi] += w[lo:hi] * _unit(piece, f"noise {idx} over samples {lo}:{hi}") * 10 ** (lvl / 20)
        segments.append({"start": s, "end": e, "index": idx, "label": labels[idx] if labels else str(idx),
                         "offset": off, "level_db": lvl})
        prev = idx
    return torch.from_numpy(out.astype(np.float32)), {"segments": segments, "crossfade": xf}


def synthetic_event(kind: str, sample_rate: int, *, seed: SeedLike) -> torch.Tensor:
    """A short synthetic event [T] float32, RMS 1, at ``sample_rate`` Hz.

    ``"knock"``: exponentially decaying noise burst through a low resonance (door knock,
    clap; 60–250 ms); ``"beep"``: a harmonic tone 500–2500 Hz with 10 ms ramps (100–400 ms);
    ``"click"``: a 2–10 ms broadband click.
    """
    sr = check_sample_rate("sample_rate", sample_rate)
    rng = as_rng(seed)
    if kind == "knock":
        n = int(rng.uniform(0.06, 0.25) * sr)
        t = np.arange(n) / sr
        x = rng.standard_normal(n) * np.exp(-t / rng.uniform(0.01, 0.05))
        f0 = rng.uniform(150.0, 600.0)
        x += 3.0 * np.sin(2 * np.pi * f0 * t) * np.exp(-t / rng.uniform(0.02, 0.06))
    elif kind == "beep":
        n = int(rng.uniform(0.1, 0.4) * sr)
        t = np.arange(n) / sr
        f0 = rng.uniform(500.0, 2500.0)
        harm = np.arange(1, 4)[:, None]
        x = (np.sin(2 * np.pi * f0 * harm * t[None, :]) / harm * (harm * f0 < 0.45 * sr)).sum(0)
        ramp = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)
        x *= ramp
    elif kind == "click":
        n = max(4, int(rng.uniform(0.002, 0.01) * sr))
        x = rng.standard_normal(n) * np.hanning(n)
    else:
        raise ValueError(f"unknown event kind {kind!r}; choose one of {EVENT_KINDS}")
    return torch.from_numpy(_unit(x, f"{kind} event").astype(np.float32))


def add_events(noise: torch.Tensor | np.ndarray, sample_rate: int, *, seed: SeedLike,
               events: Sequence[torch.Tensor | np.ndarray] | None = None, rate_hz: float = 0.5,
               n_events: int | None = None, level_db: tuple[float, float] = (0.0, 12.0)
               ) -> tuple[torch.Tensor, dict]:
    """Add sudden events to ``noise`` [N] at ``sample_rate`` Hz; returns ``(out [N] float32, info)``.

    ``n_events`` (default: Poisson with mean ``rate_hz · N / sample_rate``) events start at
    uniform random samples; each is a clip from ``events`` (1-D, same rate) or a
    :func:`synthetic_event` of a random kind, truncated at the end of the signal, scaled so
    its RMS is ``level_db`` (uniform in the range) above the background's RMS.
    ``info["events"]`` lists ``{start, end, kind, level_db}``.
    """
    sr = check_sample_rate("sample_rate", sample_rate)
    x = to_f64(noise, "noise").copy()
    rng = as_rng(seed)
    bg = math.sqrt(float(np.mean(x**2)))
    if bg == 0.0:
        raise ValueError("add_events: the background noise is silent; events are scaled relative to it")
    pool = None if events is None else [to_f64(e, f"events[{i}]") for i, e in enumerate(events)]
    if pool is not None and not pool:
        raise ValueError("add_events: events is an empty list; pass clips or events=None for synthetic ones")
    k = int(rng.poisson(rate_hz * x.size / sr)) if n_events is None else int(n_events)
    info = []
    for _ in range(k):  # a few events per clip
        if pool is None:
            kind = EVENT_KINDS[int(rng.integers(len(EVENT_KINDS)))]
            ev = synthetic_event(kind, sr, seed=rng).numpy().astype(np.float64)
        else:
            i = int(rng.integers(len(pool)))
            kind, ev = f"clip{i}", _unit(pool[i], f"events[{i}]")
        start = int(rng.integers(x.size))
        ev = ev[: x.size - start]
        lvl = float(rng.uniform(*level_db)) if level_db[1] > level_db[0] else float(level_db[0])
        r = math.sqrt(float(np.mean(ev**2)))
        if r > 0:
            x[start:start + ev.size] += ev / r * bg * 10 ** (lvl / 20)
        info.append({"start": start, "end": start + ev.size, "kind": kind, "level_db": lvl})
    return torch.from_numpy(x.astype(np.float32)), {"events": info}


def snr_trajectory(length: int, sample_rate: int, *, seed: SeedLike, kind: str = "random_walk",
                   snr_range: tuple[float, float] = (-5.0, 15.0), knot_s: float = 0.5) -> torch.Tensor:
    """A per-sample SNR curve [length] float64 in dB, inside ``snr_range``.

    ``"random_walk"``: knots every ``knot_s`` s, a clipped Gaussian random walk (step std =
    a quarter of the range), cosine-interpolated; ``"linear"``: a straight ramp between two
    uniform draws; ``"steps"``: a constant uniform draw per knot interval (sudden changes);
    ``"sine"``: a sinusoid over the full range with a random period of 1–4 s and phase.
    """
    length = check_positive_int("length", length)
    sr = check_sample_rate("sample_rate", sample_rate)
    lo, hi = float(snr_range[0]), float(snr_range[1])
    if not hi >= lo:
        raise ValueError(f"snr_range must be (low, high) with high >= low, got {snr_range}")
    rng = as_rng(seed)
    t = np.arange(length, dtype=np.float64)
    step = max(1, int(round(knot_s * sr)))
    n_knots = length // step + 2
    if kind == "random_walk":
        v = np.empty(n_knots)
        v[0] = rng.uniform(lo, hi)
        steps = rng.normal(0.0, (hi - lo) / 4 + 1e-12, n_knots - 1)
        for i in range(1, n_knots):  # clipped walk: a cumulative sum would leave the range
            v[i] = min(hi, max(lo, v[i - 1] + steps[i - 1]))
        pos = t / step
        i0 = np.floor(pos).astype(np.int64)
        a = 0.5 - 0.5 * np.cos(np.pi * (pos - i0))
        curve = v[i0] * (1 - a) + v[i0 + 1] * a
    elif kind == "linear":
        a, b = rng.uniform(lo, hi, 2)
        curve = a + (b - a) * t / max(length - 1, 1)
    elif kind == "steps":
        v = rng.uniform(lo, hi, n_knots)
        curve = v[(t // step).astype(np.int64)]
    elif kind == "sine":
        period = rng.uniform(1.0, 4.0) * sr
        curve = 0.5 * (lo + hi) + 0.5 * (hi - lo) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    else:
        raise ValueError(f"unknown trajectory kind {kind!r}; choose random_walk, linear, steps or sine")
    return torch.from_numpy(curve)


def mix_with_snr_trajectory(speech: torch.Tensor | np.ndarray, noise: torch.Tensor | np.ndarray,
                            snr_db: torch.Tensor | np.ndarray, *, seed: SeedLike | None = None,
                            offset: int | None = None) -> tuple[torch.Tensor, dict]:
    """Mix ``speech`` [T] with ``noise`` (looped/cropped to T) following ``snr_db`` [T] (dB).

    The noise gain at sample t is ``g(t) = sqrt(Ps / (Pn · 10^(snr_db[t]/10)))`` (Ps, Pn: mean
    power of the speech and of the noise segment over the clip), computed in float64.
    Returns ``(noisy [T], info)``; info holds ``noise_offset``, ``snr_db_mean`` (mean of the
    curve), ``snr_db`` (achieved clip-level SNR, Σs²/Σ(g·n)²) and ``si_sdr_db``.
    """
    s = to_f64(speech, "speech")
    curve = to_f64(snr_db, "snr_db")
    if curve.size != s.size:
        raise ValueError(f"snr_db has {curve.size} samples but the speech has {s.size}; pass one dB value "
                         f"per sample (see snr_trajectory)")
    n, off = fit_array(to_f64(noise, "noise"), s.size, offset=offset, seed=seed)
    ps, pn = float(np.mean(s**2)), float(np.mean(n**2))
    if ps == 0.0:
        raise ValueError("mix_with_snr_trajectory: the speech is silent (all zeros)")
    if pn == 0.0:
        raise ValueError(f"mix_with_snr_trajectory: the noise segment at offset {off} is silent")
    scaled = np.sqrt(ps / (pn * 10.0 ** (curve / 10.0))) * n
    noisy = s + scaled
    info = {"noise_offset": off, "snr_db_mean": float(curve.mean()),
            "snr_db": 10.0 * math.log10(float(np.sum(s**2)) / float(np.sum(scaled**2))),
            "si_sdr_db": si_sdr_db(s, noisy)}
    return torch.from_numpy(noisy.astype(out_dtype(speech, noise))), info


def compose_nonstationary(noises: Sequence[torch.Tensor | np.ndarray], length: int, sample_rate: int, *,
                          seed: SeedLike, labels: Sequence[str] | None = None, crossfade_s: float = 0.1,
                          event_rate_hz: float = 0.5, event_level_db: tuple[float, float] = (0.0, 12.0),
                          events: Sequence[torch.Tensor | np.ndarray] | None = None,
                          level_db: tuple[float, float] = (-3.0, 3.0)) -> tuple[torch.Tensor, dict]:
    """Concatenated noise types (:func:`concat_noises`) plus sudden events (:func:`add_events`).

    ``level_db``: range (dB) of each segment's uniform random level (:func:`concat_noises`;
    ``(0, 0)`` keeps every segment at RMS 1, so only the events change the noise level).
    Returns ``(noise [length] float32 with RMS 1, info)`` with ``info["segments"]`` and
    ``info["events"]``. Pair it with :func:`snr_trajectory` + :func:`mix_with_snr_trajectory`
    for a time-varying SNR.
    """
    rng = as_rng(seed)
    base, info = concat_noises(noises, length, sample_rate, seed=rng, crossfade_s=crossfade_s, labels=labels,
                               level_db=level_db)
    out, ev = add_events(base, sample_rate, seed=rng, events=events, rate_hz=event_rate_hz,
                         level_db=event_level_db)
    x = _unit(out.numpy().astype(np.float64), "the composed noise")
    return torch.from_numpy(x.astype(np.float32)), {**info, **ev}
