"""When a metric is defined for a valid pair: each metric's shortest input, and the estimates
that level-invariant or logarithmic metrics cannot score.

Shortest pair per metric (samples at ``sr`` Hz; 16 kHz in brackets), below which the metric
raises :class:`MetricUndefinedError` while the others still compute:

========================  ==================================================================
PESQ (WB, NB)             ``ceil(sr / 4)`` (4000 = 0.25 s): the pesq library's minimum
STOI, ESTOI               ``floor(4096 sr / 10000) + 1`` (6554 = 0.41 s): pystoi works at
                          10 kHz and needs 30 frames (256 samples, hop 128) after its
                          framing; silent frames it removes can still leave too few
SI-SDR                    2 (a single sample is constant: nothing is left after the mean)
SNR                       1
SSNR, LLR, WSS            ``round(0.03 sr) + floor(0.0075 sr)`` (600 = 37.5 ms): one complete
                          30 ms frame as composite.m counts them (every full frame but the last)
LSD                       2048 (128 ms): one STFT frame
CSIG / CBAK / COVL        the largest of PESQ's, LLR's and WSS's (0.25 s)
========================  ==================================================================

Estimates without signal (:func:`estimate_problem`). The metrics that normalise away the
estimate's level (PESQ aligns it to a fixed loudness, STOI rescales each segment, SI-SDR
projects onto the reference, LLR's LPC model and WSS's spectral slopes ignore the gain) or
take its logarithm (LSD) have no meaningful value when the estimate carries no signal:

* silent: every sample 0, or RMS below :data:`SILENCE_RMS` (the floor a reference must pass);
* DC-only: constant non-zero, or a constant offset with the rest below the near-silent limit
  (SI-SDR removes the mean; PESQ filters DC; STOI's bands start at 150 Hz);
* near-silent: what varies is more than :data:`NEAR_SILENT_DB` (100 dB) below the reference's
  RMS. 100 dB is beyond the 96 dB range of 16-bit audio: at the reference's level such an
  estimate rounds to digital silence, yet the level-invariant metrics would score it as if it
  were played at full level (measured: ``1e-7 * clean`` gets PESQ-WB 4.64 and STOI 1.0), and
  the logarithmic ones return a value set by their numerical floor.

SNR and SSNR compare energies with the reference in the numerator: a silent estimate has an
error equal to the reference, exactly 0 dB, a fair score, so they stay defined.
"""

from __future__ import annotations

import math

import numpy as np

from ._validate import SILENCE_RMS, MetricUndefinedError

#: An estimate whose varying part is more than this many dB below the reference's RMS is near-silent.
NEAR_SILENT_DB = 100.0

#: Why a level-invariant metric is undefined for an estimate without signal.
LEVEL_INVARIANT = ("it normalises the estimate's level, so it would score an estimate without signal as if it "
                   "were audible, or divide by zero")
#: Why a logarithmic metric is undefined for an estimate without signal.
LOGARITHMIC = "the logarithm of the estimate's power would be set by the numerical floor, not by the estimate"


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def estimate_problem(clean: np.ndarray, enhanced: np.ndarray) -> str | None:
    """Why ``enhanced`` [T] carries no signal to score against ``clean`` [T] (a short reason
    such as ``"silent estimate (every sample is 0)"``), or None when it has some.

    Silent, DC-only and near-silent as in the module docstring; computed in float64.
    """
    e = np.asarray(enhanced, dtype=np.float64)
    lo, hi = float(e.min()), float(e.max())
    if lo == hi:
        return "silent estimate (every sample is 0)" if hi == 0 else f"DC-only estimate (every sample is {hi:.3g})"
    mean = float(e.mean())
    ac = _rms(e - mean)
    ref = _rms(np.asarray(clean, dtype=np.float64))
    below_db = 20.0 * math.log10(ref / ac) if ac > 0 else math.inf
    if ac >= SILENCE_RMS and below_db <= NEAR_SILENT_DB:
        return None
    if abs(mean) >= SILENCE_RMS and abs(mean) > ac:
        return f"DC-only estimate (offset {mean:.3g}, what varies is {below_db:.0f} dB below the reference)"
    if below_db > NEAR_SILENT_DB:
        return (f"near-silent estimate (RMS {ac:.2g}, {below_db:.0f} dB below the reference, "
                f"beyond the {NEAR_SILENT_DB:.0f} dB limit)")
    return f"silent estimate (RMS {ac:.2g} < {SILENCE_RMS:g})"


def require_signal(clean: np.ndarray, enhanced: np.ndarray, label: str, why: str) -> None:
    """Raise :class:`MetricUndefinedError` for metric ``label`` (e.g. ``"PESQ"``) when
    :func:`estimate_problem` finds no signal in ``enhanced``; ``why`` says why that makes the
    metric undefined (:data:`LEVEL_INVARIANT` or :data:`LOGARITHMIC`)."""
    problem = estimate_problem(clean, enhanced)
    if problem is not None:
        raise MetricUndefinedError(
            f"{label} is undefined for a {problem}: {why}. The system that produced the enhanced signal "
            f"output no usable signal; check it (the other metrics of this pair are still defined).",
            reason=problem)


def require_samples(n: int, n_min: int, sr: int, label: str, source: str) -> None:
    """Raise :class:`MetricUndefinedError` when a pair of ``n`` samples at ``sr`` Hz is shorter
    than ``n_min``, the shortest input metric ``label`` accepts (``source`` says where that
    minimum comes from)."""
    if n < n_min:
        raise MetricUndefinedError(
            f"{label} is undefined for this pair: too short ({n} samples = {n / sr:.3f} s at {sr} Hz; it needs at "
            f"least {n_min} samples = {n_min / sr:.3f} s, {source}). Score longer utterances or concatenate "
            f"short ones; the metrics defined on shorter input are still computed.",
            reason=f"too short ({n} samples = {n / sr:.3f} s, needs {n_min} = {n_min / sr:.3f} s)")


def require_finite(value: float, label: str) -> float:
    """``value`` as a float; :class:`MetricUndefinedError` if it is NaN or infinite (a metric
    never returns a non-finite number)."""
    v = float(value)
    if not math.isfinite(v):
        raise MetricUndefinedError(f"{label} is undefined for this pair: it computed {v}.",
                                   reason=f"{label} computed {v}")
    return v


def frame_min_samples(win: int, hop: int) -> int:
    """Shortest signal with one frame as composite.m counts them (every full frame but the
    last): ``win + hop`` samples."""
    return win + hop
