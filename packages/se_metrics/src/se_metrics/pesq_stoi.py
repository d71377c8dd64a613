"""PESQ (ITU-T P.862 / P.862.2 via the ``pesq`` package) and STOI / ESTOI (via ``pystoi``).

Both wrappers pass the arrays through unchanged (same dtype, no rescaling), so the values are
bit-identical to ``pesq.pesq(fs, clean, enhanced, mode)`` and ``pystoi.stoi(clean, enhanced, fs)``
on the same arrays. What they add: input checks with clear errors, and turning the libraries'
silent failure modes (pystoi returning 1e-5 with a warning) into errors.
"""

from __future__ import annotations

import warnings
from typing import Any

import pesq as _pesq_lib
from pystoi import stoi as _pystoi

from ._validate import MetricInputError, check_pair, sample_rate_alias, wrong_rate

PESQ_RATES = (8000, 16000)


@sample_rate_alias
def pesq(clean: Any, enhanced: Any, sample_rate: int, mode: str = "wb") -> float:
    """PESQ MOS-LQO of ``enhanced`` [T] against ``clean`` [T] at ``sample_rate`` Hz (``sr=``
    also accepted).

    mode: ``"wb"`` (wide-band, P.862.2, 16 kHz only) or ``"nb"`` (narrow-band, P.862, 8 or 16 kHz).
    Range about 1.0 ... 4.64 (WB) / 4.55 (NB); higher is better. Do not zero-pad before
    calling: padding changes the score. Another rate than 8 / 16 kHz (or wide-band PESQ at
    8 kHz) raises :class:`MetricSampleRateError`.
    """
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    if mode not in ("wb", "nb"):
        raise MetricInputError(f"PESQ mode must be 'wb' (wide-band) or 'nb' (narrow-band), got {mode!r}.")
    if sr not in PESQ_RATES:
        raise wrong_rate("PESQ is defined only at 8000 or 16000 Hz", sr, 16000)
    if sr == 8000 and mode == "wb":
        raise wrong_rate("wide-band PESQ needs 16000 Hz audio (at 8000 Hz use mode='nb' instead)",
                         sr, 16000)
    try:
        return float(_pesq_lib.pesq(sr, c, e, mode))
    except _pesq_lib.NoUtterancesError as err:
        raise MetricInputError(
            f"PESQ found no speech utterance in the signals ({err}). Check that the reference "
            f"holds speech at a normal level and that the pair is not swapped or misaligned.") from err
    except _pesq_lib.BufferTooShortError as err:
        raise MetricInputError(f"PESQ: audio too short ({err}); at least 0.25 s is needed.") from err
    except ValueError as err:  # the library fails inside on a silent estimate ("cannot convert NaN")
        if e.max() == e.min():
            raise MetricInputError(
                "PESQ cannot score a silent estimate (every sample equal, e.g. all zero): the "
                "system that produced the enhanced signal output no signal.") from err
        raise


@sample_rate_alias
def stoi(clean: Any, enhanced: Any, sample_rate: int, extended: bool = False) -> float:
    """STOI (Taal et al. 2011) of ``enhanced`` [T] against ``clean`` [T] at ``sample_rate`` Hz
    (``sr=`` also accepted); ESTOI
    (Jensen & Taal 2016) with ``extended=True``. Range 0 ... 1 (ESTOI can go slightly below 0);
    higher is better. pystoi resamples internally to 10 kHz, so any rate works.

    Raises MetricInputError where pystoi would return its placeholder 1e-5 (fewer than 30
    frames of speech left after its silent-frame removal).
    """
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_pystoi(c, e, sr, extended=extended))
    for w in caught:
        if "Not enough STFT frames" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)  # pass others on
            continue
        raise MetricInputError(
            f"{'ESTOI' if extended else 'STOI'}: fewer than 30 frames (384 ms) of speech remain "
            f"after removing silent frames, so the score is undefined (pystoi would return 1e-5). "
            f"Use longer utterances with more active speech.")
    return value
