"""Input checks shared by every metric: one place that turns bad input into a clear error.

Every public metric takes ``(clean, enhanced, sample_rate)``: two 1-D signals ``[T]`` (numpy
arrays or anything with ``.detach().cpu().numpy()``, i.e. torch tensors) and the sample rate in
Hz (``sr=`` is accepted as the keyword's older name, see :func:`sample_rate_alias`). Bad input
raises :class:`MetricInputError` (a ``ValueError``) whose message names the problem and the
fix; a rate a metric is not defined at raises its subclass :class:`MetricSampleRateError`,
which is also a :class:`se_data.SampleRateError`. A pair that is valid but for which one
metric has no meaningful value (silent or DC-only estimate, too short for that metric, too
little speech) raises the subclass :class:`MetricUndefinedError` from that metric only. A
metric never returns a number for input it cannot score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from se_data import SampleRateError, keyword_alias, resample_hint

#: A reference whose RMS is below this (about -120 dBFS for audio in [-1, 1]) counts as silent.
SILENCE_RMS = 1e-6


class MetricInputError(ValueError):
    """Input a metric cannot score: wrong shape, rate, length, NaN/Inf, silent reference.

    The message says what is wrong and how to fix it. Subclass of ``ValueError``.
    """


class MetricUndefinedError(MetricInputError):
    """A valid pair for which this one metric has no meaningful value.

    Raised per metric (the others may still be defined): a silent, near-silent or DC-only
    estimate for the level-invariant and logarithmic metrics, a pair shorter than the metric's
    minimum duration (see ``se_metrics._edges.MIN_SAMPLES``), too little speech for STOI, no
    utterance found by PESQ, and the composite measures whenever PESQ-WB, LLR or WSS is
    undefined. The message names the metric and the reason; ``reason`` holds the reason alone
    (e.g. ``"silent estimate (every sample is 0)"``), which the evaluator writes into its
    ``undefined`` column. A subclass of :class:`MetricInputError`, so ``except
    MetricInputError`` still catches it; the evaluator records it without failing the file.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason if reason is not None else message


class MetricSampleRateError(MetricInputError, SampleRateError):
    """Audio at a sample rate the metric is not defined at (PESQ: 8 or 16 kHz; wide-band PESQ,
    the composite measures and the evaluator: 16 kHz).

    Both a :class:`MetricInputError` and the toolkit's :class:`se_data.SampleRateError`, so
    ``except MetricInputError`` and ``except se_data.SampleRateError`` both catch it. The
    message names ``se_data.resample`` as the fix.
    """


def wrong_rate(what: str, sample_rate: int, target_sample_rate: int) -> MetricSampleRateError:
    """The error for ``what`` (e.g. ``"PESQ is defined only at 8000 or 16000 Hz"``) at
    ``sample_rate`` Hz, with the shared fix text: resample to ``target_sample_rate`` Hz."""
    return MetricSampleRateError(f"{what}, got {sample_rate} Hz; for both signals, "
                                 f"{resample_hint(target_sample_rate)}.")


#: ``sample_rate`` also accepted as its earlier keyword name ``sr`` (the toolkit's one alias helper)
sample_rate_alias = keyword_alias(sr="sample_rate")


def as_1d_array(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a 1-D numpy array ``[T]`` without changing its dtype.

    Accepts numpy arrays, sequences and torch tensors (duck-typed via ``.detach().cpu().numpy()``).
    Raises MetricInputError for multi-dimensional (e.g. stereo) input or non-numeric data.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        try:
            x = x.numpy()
        except TypeError as err:  # a dtype numpy has not: bfloat16 (exact in float32), complex32, ...
            if not (hasattr(x, "is_floating_point") and x.is_floating_point()):
                raise MetricInputError(f"{name} must hold real numbers, got a tensor of dtype {x.dtype}.") from err
            x = x.float().numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        hint = ""
        if arr.ndim == 2 and 1 in arr.shape:
            hint = " It has a length-1 axis: pass x.reshape(-1)."
        elif arr.ndim == 2:
            hint = (" Looks like multi-channel audio: downmix to mono first "
                    "(e.g. x.mean(axis=1) for a soundfile [T, C] array) or score each channel separately.")
        raise MetricInputError(
            f"{name} must be a 1-D signal [T], got shape {tuple(arr.shape)}.{hint}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise MetricInputError(f"{name} must hold real numbers, got dtype {arr.dtype}.")
    return arr


def check_sample_rate(sample_rate: Any) -> int:
    """Return ``sample_rate`` as an int; raise MetricInputError unless it is a positive whole
    number of Hz."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float, np.floating)) \
            or not np.isfinite(sample_rate) or float(sample_rate) <= 0 or float(sample_rate) != int(sample_rate):
        raise MetricInputError(
            f"sample_rate must be a positive whole number of Hz (e.g. 16000), got {sample_rate!r}.")
    return int(sample_rate)


def check_pair(clean: Any, enhanced: Any, sample_rate: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate a (reference, estimate) pair; return both as 1-D arrays (dtype kept) and the
    sample rate in Hz as an int.

    Checks, in order: 1-D shape, sample rate, equal length, at least one sample, finite
    samples, non-silent reference. Each failure raises MetricInputError naming the fix. The
    shortest duration is each metric's own (``se_metrics._edges.MIN_SAMPLES``): a pair too
    short for one metric raises :class:`MetricUndefinedError` from that metric only.
    """
    c = as_1d_array(clean, "clean (reference)")
    e = as_1d_array(enhanced, "enhanced (estimate)")
    sr = check_sample_rate(sample_rate)
    if c.shape[0] != e.shape[0]:
        raise MetricInputError(
            f"clean and enhanced differ in length ({c.shape[0]} vs {e.shape[0]} samples at {sr} Hz). "
            f"Metrics compare sample by sample: make them the same length first (e.g. trim both to "
            f"the shorter one, n = min(len(clean), len(enhanced))) and check that both have the same "
            f"sample rate.")
    if c.shape[0] == 0:
        raise MetricInputError("clean and enhanced are empty (0 samples): there is nothing to score. "
                               "Check the file reading or the trimming that produced them.")
    for arr, name in ((c, "clean (reference)"), (e, "enhanced (estimate)")):
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            n_bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise MetricInputError(
                f"{name} contains {n_bad} NaN/Inf sample(s): a metric on it would be meaningless. "
                f"Fix the model or pipeline that produced it (e.g. check for a diverged network "
                f"or a division by zero).")
    rms = float(np.sqrt(np.mean(np.square(c, dtype=np.float64))))
    if rms < SILENCE_RMS:
        raise MetricInputError(
            f"the clean reference is silent (RMS {rms:.3g} < {SILENCE_RMS:g}): intrusive metrics "
            f"need speech in the reference. Check that the right file was paired and that it "
            f"was not written as all zeros.")
    return c, e, sr


def as_float64(c: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both signals as contiguous float64 (for the numpy metrics; PESQ/STOI keep the given dtype)."""
    return np.ascontiguousarray(c, dtype=np.float64), np.ascontiguousarray(e, dtype=np.float64)
