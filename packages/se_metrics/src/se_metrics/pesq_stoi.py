"""PESQ (ITU-T P.862 / P.862.2 via the ``pesq`` package) and STOI / ESTOI (via ``pystoi``).

Both wrappers pass the arrays through unchanged (same dtype, no rescaling), so the values are
bit-identical to ``pesq.pesq(fs, clean, enhanced, mode)`` and ``pystoi.stoi(clean, enhanced, fs)``
on the same arrays. What they add: input checks with clear errors, and
:class:`MetricUndefinedError` where the libraries fail or return a placeholder (pystoi's 1e-5
with a warning, PESQ's exceptions on silence) or where the value would mean nothing: an
estimate without signal (both normalise its level), a pair shorter than the library's minimum.
"""

from __future__ import annotations

import importlib
import math
import warnings
from typing import Any

import numpy as np
import pesq as _pesq_lib
from pystoi import stoi as _pystoi
from pystoi import utils as _stoi_utils

from ._edges import LEVEL_INVARIANT, require_finite, require_samples, require_signal
from ._validate import MetricInputError, MetricUndefinedError, check_pair, sample_rate_alias, wrong_rate

PESQ_RATES = (8000, 16000)
#: Lowest rate STOI / ESTOI accept (Hz).
STOI_MIN_RATE = 8000
#: pystoi's internal rate (Hz), frame length and the frames its intermediate measure needs
_STOI_FS, _STOI_FRAME, _STOI_HOP, _STOI_N = 10000, 256, 128, 30


def pesq_min_samples(sr: int) -> int:
    """Shortest pair PESQ scores at ``sr`` Hz: a quarter second (the pesq library's minimum)."""
    return math.ceil(sr / 4)


def stoi_min_samples(sr: int) -> int:
    """Shortest pair (samples at ``sr`` Hz) for which pystoi can have 30 frames: its signal
    resampled to 10 kHz must exceed ``(30 + 2) * 128`` samples (0.41 s), before silent frames
    are removed."""
    return (_STOI_N + 2) * _STOI_HOP * sr // _STOI_FS + 1


@sample_rate_alias
def pesq(clean: Any, enhanced: Any, sample_rate: int, mode: str = "wb") -> float:
    """PESQ MOS-LQO of ``enhanced`` [T] against ``clean`` [T] at ``sample_rate`` Hz (``sr=``
    also accepted).

    mode: ``"wb"`` (wide-band, P.862.2, 16 kHz only) or ``"nb"`` (narrow-band, P.862, 8 or 16 kHz).
    Range about 1.0 ... 4.64 (WB) / 4.55 (NB); higher is better. Do not zero-pad before
    calling: padding changes the score. Another rate than 8 / 16 kHz (or wide-band PESQ at
    8 kHz) raises :class:`MetricSampleRateError`. Raises :class:`MetricUndefinedError` for a
    pair shorter than 0.25 s, an estimate without signal (silent, DC-only or more than 100 dB
    below the reference: PESQ aligns the estimate's level, so it would score it as if
    audible) and a pair in which PESQ finds no utterance.
    """
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    if mode not in ("wb", "nb"):
        raise MetricInputError(f"PESQ mode must be 'wb' (wide-band) or 'nb' (narrow-band), got {mode!r}.")
    if sr not in PESQ_RATES:
        raise wrong_rate("PESQ is defined only at 8000 or 16000 Hz", sr, 16000)
    if sr == 8000 and mode == "wb":
        raise wrong_rate("wide-band PESQ needs 16000 Hz audio (at 8000 Hz use mode='nb' instead)",
                         sr, 16000)
    require_samples(c.shape[0], pesq_min_samples(sr), sr, "PESQ", "the pesq library's minimum")
    require_signal(c, e, "PESQ", LEVEL_INVARIANT)
    try:
        value = _pesq_lib.pesq(sr, c, e, mode)
    except _pesq_lib.NoUtterancesError as err:
        raise MetricUndefinedError(
            f"PESQ is undefined for this pair: it found no speech utterance ({err}). Check that the reference "
            f"holds speech at a normal level and that the pair is not swapped or misaligned.",
            reason="PESQ found no utterance") from err
    except (_pesq_lib.PesqError, ValueError) as err:  # e.g. "cannot convert NaN" inside the library
        raise MetricUndefinedError(f"PESQ is undefined for this pair: the pesq library failed "
                                   f"({type(err).__name__}: {err}).",
                                   reason=f"the pesq library failed ({type(err).__name__})") from err
    return require_finite(value, "PESQ")


@sample_rate_alias
def stoi(clean: Any, enhanced: Any, sample_rate: int, extended: bool = False) -> float:
    """STOI (Taal et al. 2011) of ``enhanced`` [T] against ``clean`` [T] at ``sample_rate`` Hz
    (``sr=`` also accepted); ESTOI
    (Jensen & Taal 2016) with ``extended=True``. Range 0 ... 1 (ESTOI can go slightly below 0);
    higher is better. pystoi resamples internally to 10 kHz, so any rate from 8000 Hz up works; a
    lower one raises :class:`MetricSampleRateError` (STOI's bands reach 4.3 kHz, and pystoi would
    upsample audio at a few Hz a thousandfold: gigabytes for a second of it).

    Raises :class:`MetricUndefinedError` for a pair shorter than 0.41 s
    (:func:`stoi_min_samples`), where pystoi would return its placeholder 1e-5 (fewer than 30
    frames of speech left after its silent-frame removal), and for an estimate without signal
    (STOI rescales the estimate per segment, so it would score it as if audible).
    """
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    label = "ESTOI" if extended else "STOI"
    if sr < STOI_MIN_RATE:
        raise wrong_rate(f"{label} needs audio at {STOI_MIN_RATE} Hz or more (its bands reach 4.3 kHz)", sr, 16000)
    require_samples(c.shape[0], stoi_min_samples(sr), sr, label,
                    f"{_STOI_N} frames of {_STOI_FRAME} samples at pystoi's {_STOI_FS} Hz")
    require_signal(c, e, label, LEVEL_INVARIANT)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_pystoi(c, e, sr, extended=extended))
    for w in caught:
        if "Not enough STFT frames" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)  # pass others on
            continue
        raise MetricUndefinedError(
            f"{label} is undefined for this pair: fewer than 30 frames (384 ms) of speech remain "
            f"after removing silent frames (pystoi would return 1e-5). Use longer utterances with "
            f"more active speech.", reason="too little speech (fewer than 30 STOI frames)")
    return require_finite(value, label)


def _stoi_too_few_frames(label: str) -> MetricUndefinedError:
    return MetricUndefinedError(
        f"{label} is undefined for this pair: fewer than 30 frames (384 ms) of speech remain "
        f"after removing silent frames (pystoi would return 1e-5). Use longer utterances with "
        f"more active speech.", reason="too little speech (fewer than 30 STOI frames)")


def _row_col_normalize(x: np.ndarray) -> np.ndarray:
    """pystoi's ``utils.row_col_normalize`` [J, 15, N] with its diagonal matrix products written
    as broadcast products: ``diag(d) @ x`` sums one product ``d_i x_ij`` with exact zeros, so the
    values are the same bits; the random dither is drawn from NumPy's global stream in pystoi's
    order and shapes."""
    eps = _stoi_utils.EPS
    x_normed = x + eps * np.random.standard_normal(x.shape)
    x_normed -= np.mean(x_normed, axis=-1, keepdims=True)
    x_normed = (1. / np.sqrt(_stoi_utils.vect_two_norm(x_normed))) * x_normed
    x_normed += + eps * np.random.standard_normal(x_normed.shape)
    x_normed -= np.mean(x_normed, axis=1, keepdims=True)
    return x_normed * (1. / np.sqrt(_stoi_utils.vect_two_norm(x_normed, axis=1)))


def _segments(tob: np.ndarray, n: int) -> np.ndarray:
    """pystoi's ``np.array([tob[:, m - n:m] for m in range(n, T + 1)])`` [J, 15, n], one copy."""
    return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(tob, n, axis=1).transpose(1, 0, 2))


@sample_rate_alias
def stoi_pair(clean: Any, enhanced: Any, sample_rate: int, *, extended: tuple[bool, ...] = (False, True)
              ) -> dict[bool, float | MetricUndefinedError]:
    """STOI and ESTOI of one pair with pystoi's resampling, silent-frame removal, STFT and
    1/3-octave bands (Taal et al. 2011; Jensen & Taal 2016) computed once for both.

    ``extended``: which measures, as :func:`stoi`'s flag (default both). Returns ``{extended:
    value}`` with, for a measure undefined for this pair, the :class:`MetricUndefinedError`
    :func:`stoi` would raise in place of its value (the two share every reason). Each value is
    the one ``stoi(clean, enhanced, sample_rate, extended=...)`` returns: pystoi's own steps on
    the same arrays (STOI bit-identical; ESTOI draws pystoi's dither from NumPy's global stream,
    so it is bit-identical for the same stream state and equal to ~1e-15 otherwise). Bad input
    and rates below 8 kHz raise as :func:`stoi`.
    """
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    labels = {ext: "ESTOI" if ext else "STOI" for ext in extended}
    first = labels[extended[0]] if extended else "STOI"
    if sr < STOI_MIN_RATE:
        raise wrong_rate(f"{first} needs audio at {STOI_MIN_RATE} Hz or more (its bands reach 4.3 kHz)", sr, 16000)
    out: dict[bool, float | MetricUndefinedError] = {}
    for ext, label in labels.items():  # stoi()'s checks, each message naming its measure
        try:
            require_samples(c.shape[0], stoi_min_samples(sr), sr, label,
                            f"{_STOI_N} frames of {_STOI_FRAME} samples at pystoi's {_STOI_FS} Hz")
            require_signal(c, e, label, LEVEL_INVARIANT)
        except MetricUndefinedError as err:
            out[ext] = err
    if out:
        return out
    ps = importlib.import_module("pystoi.stoi")  # the module (the package exports its function by that name)
    x, y = c, e
    if sr != ps.FS:  # pystoi.stoi's steps, in its order
        x = _stoi_utils.resample_oct(x, ps.FS, sr)
        y = _stoi_utils.resample_oct(y, ps.FS, sr)
    x, y = _stoi_utils.remove_silent_frames(x, y, ps.DYN_RANGE, ps.N_FRAME, int(ps.N_FRAME / 2))
    x_spec = _stoi_utils.stft(x, ps.N_FRAME, ps.NFFT, overlap=2).transpose()
    y_spec = _stoi_utils.stft(y, ps.N_FRAME, ps.NFFT, overlap=2).transpose()
    if x_spec.shape[-1] < ps.N:
        return {ext: _stoi_too_few_frames(label) for ext, label in labels.items()}
    x_seg = _segments(np.sqrt(np.matmul(ps.OBM, np.square(np.abs(x_spec)))), ps.N)
    y_seg = _segments(np.sqrt(np.matmul(ps.OBM, np.square(np.abs(y_spec)))), ps.N)
    for ext, label in labels.items():
        if ext:
            x_n, y_n = _row_col_normalize(x_seg), _row_col_normalize(y_seg)
            value = np.sum(x_n * y_n / ps.N) / x_n.shape[0]
        else:
            value = _stoi_measure(x_seg, y_seg, ps)
        try:
            out[ext] = require_finite(value, label)
        except MetricUndefinedError as err:
            out[ext] = err
    return out


def _stoi_measure(x_segments: np.ndarray, y_segments: np.ndarray, ps: Any) -> float:
    """pystoi.stoi's STOI measure of the segments [J, 15, N] (its code, unchanged)."""
    eps = _stoi_utils.EPS
    normalization_consts = (np.linalg.norm(x_segments, axis=2, keepdims=True)
                            / (np.linalg.norm(y_segments, axis=2, keepdims=True) + eps))
    y_segments_normalized = y_segments * normalization_consts
    clip_value = 10 ** (-ps.BETA / 20)
    y_primes = np.minimum(y_segments_normalized, x_segments * (1 + clip_value))
    y_primes = y_primes - np.mean(y_primes, axis=2, keepdims=True)
    x_segments = x_segments - np.mean(x_segments, axis=2, keepdims=True)
    y_primes /= (np.linalg.norm(y_primes, axis=2, keepdims=True) + eps)
    x_segments /= (np.linalg.norm(x_segments, axis=2, keepdims=True) + eps)
    correlations_components = y_primes * x_segments
    j, m = x_segments.shape[0], x_segments.shape[1]
    return np.sum(correlations_components) / (j * m)
