"""Reading one wav for the evaluator: soundfile, float64, optional polyphase resampling, and
the count of full-scale samples (a clipped file)."""

from __future__ import annotations

from math import gcd
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from ._validate import MetricInputError


#: A sample at or beyond this magnitude is at full scale (clipped once written as PCM).
CLIP_LEVEL = 1.0


class Wav(NamedTuple):
    """A file read by :func:`read_wav`."""

    samples: np.ndarray   # [T] float64 at the rate asked for
    file_sr: int          # the rate the file had, in Hz
    n_clipped: int        # samples of the file (before resampling) with |x| >= CLIP_LEVEL


def read_wav(path: Path, sr: int, role: str) -> Wav:
    """Read ``path`` as float64 [T] at ``sr`` Hz; return the samples, the rate the file had and
    how many of its samples are at full scale (``|x| >= 1``, counted before resampling).

    A file at another rate is resampled with ``scipy.signal.resample_poly`` (Kaiser-windowed
    polyphase filter). Unreadable, empty or multi-channel files raise MetricInputError naming
    ``role`` (clean / enhanced / noisy) and the path.
    """
    try:
        x, file_sr = sf.read(str(path), dtype="float64", always_2d=False)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise MetricInputError(
            f"{role} file {path}: cannot be read as audio ({type(err).__name__}: {err}). "
            f"The file is corrupt, truncated or not a WAV: re-export it.") from err
    if x.ndim != 1:
        raise MetricInputError(
            f"{role} file {path} has {x.shape[1]} channels; the metrics need mono audio. "
            f"Downmix it first (e.g. soundfile.read(...)[0].mean(axis=1)) or write mono files.")
    if x.shape[0] == 0:
        raise MetricInputError(f"{role} file {path} is empty (0 samples): re-export it.")
    n_clipped = int(np.count_nonzero(np.abs(x) >= CLIP_LEVEL))
    if file_sr != sr:
        g = gcd(int(sr), int(file_sr))
        x = resample_poly(x, sr // g, file_sr // g)
    return Wav(x, int(file_sr), n_clipped)
