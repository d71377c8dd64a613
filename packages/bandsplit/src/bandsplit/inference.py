"""Waveform-in, waveform-out enhancement for any spectrogram model of this package.

The model maps a complex ``[B, F, T]`` spectrogram to one of the same shape. As in the BSRNN
evaluation script, the waveform is reflect-padded by one hop before the STFT and the padding
is trimmed after the inverse, so the output has exactly the input's length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .stft import SpectrogramTransform

__all__ = ["enhance_waveform"]


def _enhance_block(model: nn.Module, audio: Tensor, stft: SpectrogramTransform) -> Tensor:
    length = audio.shape[-1]
    pad = stft.hop if length > stft.hop else 0
    x = F.pad(audio.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1) if pad else audio
    est = model(stft.stft(x))
    y = stft.istft(est, length=x.shape[-1])
    return y[..., pad:pad + length]


@torch.no_grad()
def enhance_waveform(model: nn.Module, audio: Tensor, sample_rate: int, stft: SpectrogramTransform, *,
                     chunk_seconds: float | None = None, overlap_seconds: float = 1.0) -> Tensor:
    """Enhance ``audio`` (``[T]`` or ``[B, T]``, float, at ``sample_rate`` Hz); returns the same shape.

    ``chunk_seconds=None`` processes the whole utterance at once (exact; memory grows with its
    length). With ``chunk_seconds`` the signal is cut into overlapping chunks that are
    cross-faded linearly over ``overlap_seconds`` (bounded memory for files of any length).
    """
    stft.check_rate(sample_rate)
    if not torch.is_floating_point(audio):
        raise TypeError(f"audio must be a float tensor, got {audio.dtype}")
    if not torch.isfinite(audio).all():
        raise ValueError("audio contains NaN or Inf samples; clean the file before enhancing it")
    squeeze = audio.dim() == 1
    x = audio.unsqueeze(0) if squeeze else audio
    if x.shape[-1] < stft.n_fft:
        raise ValueError(f"audio is {x.shape[-1]} samples long; at least n_fft = {stft.n_fft} samples "
                         f"({stft.n_fft / sample_rate * 1000:.0f} ms) are needed")
    total = x.shape[-1]
    if chunk_seconds is None or total <= int(chunk_seconds * sample_rate):
        y = _enhance_block(model, x, stft)
    else:
        chunk = int(chunk_seconds * sample_rate)
        overlap = min(int(overlap_seconds * sample_rate), chunk // 2)
        if overlap < 1:
            raise ValueError("overlap_seconds must cover at least one sample")
        step = chunk - overlap
        y = torch.zeros_like(x)
        weight = torch.zeros(total, dtype=x.dtype, device=x.device)
        start = 0
        while True:
            end = min(start + chunk, total)
            s0 = max(0, end - chunk)  # the last chunk is shifted back to full length
            seg = _enhance_block(model, x[:, s0:end], stft)
            n = end - s0
            w = torch.ones(n, dtype=x.dtype, device=x.device)
            ramp = torch.linspace(0, 1, overlap + 2, dtype=x.dtype, device=x.device)[1:-1]
            if s0 > 0:
                w[:overlap] = ramp
            if end < total:
                w[-overlap:] = ramp.flip(0)
            y[:, s0:end] += seg * w
            weight[s0:end] += w
            if end >= total:
                break
            start += step
        y = y / weight
    return y.squeeze(0) if squeeze else y
