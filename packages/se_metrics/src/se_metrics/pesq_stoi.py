"""PESQ (ITU-T P.862 / P.862.2 via the ``pesq`` package) and STOI / ESTOI (via ``pystoi``).

Both wrappers pass the arrays through unchanged (same dtype, no rescaling), so the values are
bit-identical to ``pesq.pesq(fs, clean, enhanced, mode)`` and ``pystoi.stoi(clean, enhanced, fs)``
on the same arrays. What they add: input checks with clear errors, and
:class:`MetricUndefinedError` where the libraries fail or return a placeholder (pystoi's 1e-5
with a warning, PESQ's exceptions on silence) or where the value would mean nothing: an
estimate without signal (both normalise its level), a pair shorter than the library's minimum.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pesq as _pesq_lib
from pystoi import stoi as _pystoi

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
