"""Waveform-in, waveform-out enhancement for any spectrogram model of this package.

The model maps a complex ``[B, F, T]`` spectrogram to one of the same shape and owns its STFT:
``model.stft`` (a :class:`~bandsplit.SpectrogramTransform`) and ``model.sample_rate`` (Hz), as
every model of :func:`bandsplit.build_model` / :func:`bandsplit.load_model` has. As in the BSRNN
evaluation script, the waveform is reflect-padded by one hop before the STFT and the padding
is trimmed after the inverse, so the output has exactly the input's length. Long signals are
cut into overlapping chunks and cross-faded back with :func:`se_data.chunked_apply`, the
toolkit's one overlap-add.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from se_data import chunked_apply
from torch import Tensor, nn

from .stft import SampleRateMismatchError, SpectrogramTransform

__all__ = ["enhance", "enhance_waveform"]


def model_stft(model: nn.Module) -> SpectrogramTransform:
    """``model.stft``, checked to be a :class:`SpectrogramTransform` at ``model.sample_rate``."""
    stft = getattr(model, "stft", None)
    if not isinstance(stft, SpectrogramTransform):
        raise TypeError(
            f"{type(model).__name__} carries no STFT (.stft, a bandsplit.SpectrogramTransform): build the "
            f"model with bandsplit.build_model / bandsplit.load_model, or attach one first: "
            f"model.stft = bandsplit.SpectrogramTransform(n_fft=512, hop_length=128, sample_rate=16000)")
    rate = getattr(model, "sample_rate", stft.sample_rate)
    if int(rate) != stft.sample_rate:
        raise SampleRateMismatchError(
            f"{type(model).__name__}.sample_rate is {rate} Hz but its STFT was built for {stft.sample_rate} Hz; "
            f"give both the rate the model was trained at")
    return stft


def _enhance_block(model: nn.Module, audio: Tensor, stft: SpectrogramTransform) -> Tensor:
    """``[B, L]`` (``L >= n_fft``) -> ``[B, L]``: reflect-pad one hop, STFT, model, inverse, trim."""
    length = audio.shape[-1]
    pad = stft.hop_length
    x = F.pad(audio.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    est = model(stft.stft(x))
    return stft.istft(est, length=x.shape[-1])[..., pad:pad + length]


@torch.no_grad()
def _enhance(model: nn.Module, audio: Tensor, sample_rate: int, stft: SpectrogramTransform,
             chunk_seconds: float | None, overlap_seconds: float) -> Tensor:
    stft.check_sample_rate(sample_rate)
    if not isinstance(audio, Tensor) or not torch.is_floating_point(audio):
        raise TypeError(f"audio must be a float tensor [T] or [B, T], got "
                        f"{audio.dtype if isinstance(audio, Tensor) else type(audio).__name__}")
    if audio.dim() not in (1, 2):
        raise ValueError(f"audio must be [T] or [B, T] (one channel per row), got shape {list(audio.shape)}")
    if not torch.isfinite(audio).all():
        raise ValueError("audio contains NaN or Inf samples; clean the file before enhancing it")
    squeeze = audio.dim() == 1
    x = audio.unsqueeze(0) if squeeze else audio
    total = x.shape[-1]
    if total < stft.n_fft:
        raise ValueError(f"audio is {total} samples ({total / sample_rate * 1000:.1f} ms) long; the model needs at "
                         f"least n_fft = {stft.n_fft} samples ({stft.n_fft / sample_rate * 1000:.0f} ms at "
                         f"{sample_rate} Hz): pad or skip such a short file")
    if chunk_seconds is None:
        y = _enhance_block(model, x, stft)
    else:
        chunk = int(round(chunk_seconds * sample_rate))
        if chunk < stft.n_fft:
            raise ValueError(f"chunk_seconds={chunk_seconds} is {chunk} samples, shorter than n_fft = "
                             f"{stft.n_fft}; use chunk_seconds >= {stft.n_fft / sample_rate:.3f} (seconds of "
                             f"context per chunk; 30 is usual) or None for one pass")
        overlap = min(int(round(overlap_seconds * sample_rate)), chunk // 2)
        if overlap < 1:
            raise ValueError(f"overlap_seconds={overlap_seconds} covers no sample at {sample_rate} Hz; the chunks "
                             f"need a cross-fade (1.0 s is usual)")
        batch = x.shape[0]

        def run(chunks: Tensor) -> Tensor:  # [n, B, chunk] -> [n, B, chunk]
            n = chunks.shape[0]
            return _enhance_block(model, chunks.reshape(n * batch, chunk), stft).reshape(n, batch, chunk)

        y = chunked_apply(run, x, chunk, overlap) if total > chunk else _enhance_block(model, x, stft)
    return y.squeeze(0) if squeeze else y


def enhance(model: nn.Module, audio: Tensor, sample_rate: int, *, chunk_seconds: float | None = None,
            overlap_seconds: float = 1.0) -> Tensor:
    """Enhance ``audio`` with a spectrogram model that owns its STFT; returns the same shape.

    Args:
        model: maps complex ``[B, F, T]`` to complex ``[B, F, T]`` and carries ``.stft`` (its
            :class:`SpectrogramTransform`) and ``.sample_rate`` (Hz), as every model of
            :func:`bandsplit.build_model` and :func:`bandsplit.load_model` does. Put it in
            ``eval()`` mode first (``load_model`` does); audio and model on the same device.
        audio: float waveform ``[T]`` or ``[B, T]`` (one utterance per row) at ``sample_rate``.
        sample_rate: rate of ``audio`` in Hz; must equal the model's (else
            :class:`SampleRateMismatchError`, a :class:`se_data.SampleRateError`, naming the fix).
        chunk_seconds: ``None`` enhances the whole utterance at once (exact; memory grows with
            its length). Otherwise signals longer than this are cut into chunks of this length
            that overlap by ``overlap_seconds`` (at most half a chunk) and are cross-faded
            linearly (:func:`se_data.chunked_apply`): bounded memory for files of any length.
        overlap_seconds: cross-fade length between chunks (seconds).

    Returns:
        The enhanced waveform, ``[T]`` or ``[B, T]`` like ``audio``, at ``sample_rate``.

    Raises ``ValueError`` for NaN/Inf samples or audio shorter than ``n_fft`` samples, and
    ``TypeError`` for a non-float tensor or a model without ``.stft``. Runs without autograd.
    """
    return _enhance(model, audio, sample_rate, model_stft(model), chunk_seconds, overlap_seconds)


def enhance_waveform(model: nn.Module, audio: Tensor, sample_rate: int, stft: SpectrogramTransform | None = None,
                     *, chunk_seconds: float | None = None, overlap_seconds: float = 1.0) -> Tensor:
    """The earlier name of :func:`enhance`; ``stft`` (optional) overrides ``model.stft``.

    ``enhance_waveform(model, audio, sample_rate, stft)`` works as before for a model without
    ``.stft``; with ``stft=None`` it is ``enhance(model, audio, sample_rate, ...)``.
    """
    if stft is None:
        stft = model_stft(model)
    return _enhance(model, audio, sample_rate, stft, chunk_seconds, overlap_seconds)
