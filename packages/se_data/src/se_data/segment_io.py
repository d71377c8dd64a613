"""Partial reads: one crop of an audio file at a target rate, reading only the samples it needs.

A training crop of 2 s from a 7 s VoiceBank file at 48 kHz needs 2 s (plus the resampling
filter's support, about 4 ms each side) of the file, not all of it: :func:`load_segment` seeks
with soundfile's ``start`` / ``frames`` and resamples that window alone
(:func:`se_data.resample_window` / :func:`se_data.resample_segment`). Without resampling the
result equals ``load_audio(path)[0][start:start + length]`` bit for bit; with resampling it
equals ``load_audio(path, sample_rate, resample=True)[0][start:start + length]`` up to float32
rounding of the same filter taps (a convolution over a shorter signal may sum in another order).
"""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf
import torch

from .audio_io import AudioInfo, audio_info
from .errors import AudioFileError, SampleRateError, fix_text, resample_hint
from .resample import resample_segment, resample_window, resampled_length

__all__ = ["load_segment"]


def load_segment(path: str | os.PathLike, start: int, length: int, sample_rate: int, *, resample: bool = False,
                 mono: bool = False, info: AudioInfo | None = None) -> torch.Tensor:
    """Samples ``[start, start + length)`` of ``path`` at ``sample_rate`` Hz as float32 [length].

    ``start`` / ``length`` count samples at ``sample_rate`` (after resampling, when the file is at
    another rate and ``resample=True``; otherwise such a file is a :class:`SampleRateError`). The
    segment must lie inside the (resampled) file. ``mono`` mean-downmixes a multi-channel file
    (otherwise an :class:`AudioFileError`). ``info``: the file's :func:`se_data.audio_info`, when
    the caller already read it (a dataset reads every header once when it is built).
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
    info = info if info is not None else audio_info(path)
    p = info.path
    if info.channels > 1 and not mono:
        raise AudioFileError(f"{p}: has {info.channels} channels but mono audio is expected; "
                             + fix_text("mono", "pass mono=True to average the channels (mean downmix)",
                                        does="to average the channels (mean downmix)"))
    if info.sample_rate != sample_rate and not resample:
        raise SampleRateError(f"{p}: sample rate is {info.sample_rate} Hz but {sample_rate} Hz is required; "
                              + resample_hint(int(sample_rate)))
    total = resampled_length(info.frames, info.sample_rate, int(sample_rate))
    if start < 0 or length < 1 or start + length > total:
        raise ValueError(f"{p}: segment [{start}, {start + length}) lies outside the file's {total} samples "
                         f"at {sample_rate} Hz")
    lo, hi = resample_window(start, length, info.sample_rate, int(sample_rate))
    a, b = max(lo, 0), min(hi, info.frames)  # the part of the filter's window inside the file
    try:
        data, _ = sf.read(str(p), start=a, frames=b - a, dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioFileError(f"{p}: could not read samples {a}..{b} (corrupt or truncated file): {e}. "
                             f"Re-create or re-download it.") from e
    if data.shape[0] != b - a:
        raise AudioFileError(f"{p}: holds {a + data.shape[0]} frames, fewer than the {info.frames} its header "
                             f"declared when the dataset was built (changed or truncated since?); re-create it")
    if not np.isfinite(data).all():
        raise AudioFileError(f"{p}: holds NaN/Inf samples; the file is broken, re-create it")
    # the same downmix as load_audio: float64 accumulation per sample, rounded to float32
    x = torch.from_numpy(data.mean(axis=1, dtype=np.float64).astype(np.float32) if data.shape[1] > 1
                         else data[:, 0].copy())
    if info.sample_rate == sample_rate:
        return x
    window = torch.zeros(hi - lo, dtype=torch.float32)
    window[a - lo:b - lo] = x
    y = resample_segment(window, start, length, info.sample_rate, int(sample_rate)).contiguous()
    if not bool(torch.isfinite(y).all()):
        raise AudioFileError(f"{p}: resampling overflowed float32: its samples lie far outside [-1, 1]; scale "
                             f"the file into [-1, 1] and re-create it")
    return y
