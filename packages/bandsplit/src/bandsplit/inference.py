"""Waveform-in, waveform-out enhancement for any spectrogram model of this package.

The model maps a complex ``[B, F, T]`` spectrogram to one of the same shape and owns its STFT:
``model.stft`` (a :class:`~bandsplit.SpectrogramTransform`) and ``model.sample_rate`` (Hz), as
every model of :func:`bandsplit.build_model` / :func:`bandsplit.load_model` has. As in the BSRNN
evaluation script, the waveform is reflect-padded by one hop before the STFT and the padding
is trimmed after the inverse, so the output has exactly the input's length. Long signals are
cut into overlapping chunks and cross-faded back with :func:`se_data.chunked_apply`, the
toolkit's one overlap-add.

A list of waveforms of different lengths is enhanced as one padded batch when the model takes
``lengths`` (``model.supports_lengths``: BSRNN, BSDT, ERBUNet257 and the 601-bin ERBUNet behind
its :class:`~bandsplit.ERBUNetAdapter`, every attention kind): each item is reflect-padded with its
own length, framed with its own reflect padding, run with its valid frame count, and inverted with
its own frames' window envelope, so each output equals the one the item gets alone (to float
rounding).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from se_data import chunked_apply
from torch import Tensor, nn

from ._ragged import ragged_overlap_add, reflect_index
from .stft import SampleRateMismatchError, SpectrogramTransform

__all__ = ["enhance", "enhance_waveform", "supports_lengths"]


def supports_lengths(model: nn.Module) -> bool:
    """Whether ``model(spec, lengths=...)`` runs a padded batch of different-length utterances
    (so :func:`enhance` can batch a list of waveforms of different lengths)."""
    return bool(getattr(model, "supports_lengths", False))


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


def _ragged_frames(rows: list[Tensor], stft: SpectrogramTransform) -> tuple[Tensor, Tensor, Tensor]:
    """The STFTs of ``rows`` (each reflect-padded one hop, then centred with reflect padding, as
    :func:`_enhance_block` does for one row) as one zero-padded batch: ``(spec [B, F, T],
    frames [B], lengths [B])``. One gather builds every row's padded signal from its own length."""
    hop, half = stft.hop_length, stft.n_fft // 2
    device = rows[0].device
    lengths = torch.tensor([r.shape[-1] for r in rows], device=device)
    audio = nn.utils.rnn.pad_sequence(rows, batch_first=True)                      # [B, Lmax]
    padded = lengths + 2 * hop                                                     # after the hop padding
    q = torch.arange(-half, int(padded.max()) + half, device=device)[None, :]      # centred STFT's samples
    src = reflect_index(reflect_index(q, padded[:, None]) - hop, lengths[:, None])
    inside = q < (padded + half)[:, None]
    wave = audio.gather(1, src.clamp(0, audio.shape[1] - 1)) * inside
    spec = torch.stft(wave, stft.n_fft, hop, window=stft.window.to(wave.device, wave.dtype), onesided=True,
                      return_complex=True, center=False)
    return spec, padded // hop + 1, lengths


def _ragged_inverse(spec: Tensor, frames: Tensor, stft: SpectrogramTransform) -> Tensor:
    """Inverse STFT of a padded batch ``[B, F, T]`` in which row ``b`` has ``frames[b]`` frames:
    overlap-add of the windowed frames divided by each row's own window envelope (its frames
    only, as ``torch.istft`` of the row alone), centre padding removed: ``[B, (T - 1) hop]``."""
    n_fft, t = stft.n_fft, spec.shape[-1]
    valid = (torch.arange(t, device=spec.device)[None, :] < frames[:, None]).to(spec.real.dtype)
    y = ragged_overlap_add(spec, valid, n_fft, stft.hop_length, stft.window.to(spec.device, spec.real.dtype),
                           1e-11)
    return y[:, n_fft // 2:y.shape[-1] - n_fft // 2]


def _enhance_ragged(model: nn.Module, rows: list[Tensor], stft: SpectrogramTransform) -> list[Tensor]:
    """Rows ``[L_b]`` of different lengths (each ``>= n_fft``) -> enhanced rows, as one padded batch."""
    spec, frames, lengths = _ragged_frames(rows, stft)
    est = model(spec, lengths=frames)
    y = _ragged_inverse(est, frames, stft)[:, stft.hop_length:]
    return [y[i, :n] for i, n in enumerate(lengths.tolist())]


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


def _check_rows(audio: Sequence[Tensor]) -> list[Tensor]:
    rows = []
    for i, a in enumerate(audio):
        if not isinstance(a, Tensor) or not torch.is_floating_point(a) or a.dim() not in (1, 2):
            raise TypeError(f"audio[{i}] must be a float tensor [T] or [C, T], got "
                            f"{(a.dtype, list(a.shape)) if isinstance(a, Tensor) else type(a).__name__}")
        rows.extend(a.reshape(-1, a.shape[-1]).unbind(0))
    return rows


@torch.no_grad()
def _enhance_list(model: nn.Module, audio: Sequence[Tensor], sample_rate: int, stft: SpectrogramTransform,
                  chunk_seconds: float | None, overlap_seconds: float) -> list[Tensor]:
    """A list of waveforms ``[T_i]`` / ``[C_i, T_i]`` -> the enhanced list (see :func:`enhance`)."""
    if not audio:
        return []
    rows = _check_rows(audio)
    chunk = None if chunk_seconds is None else int(round(chunk_seconds * sample_rate))
    long_rows = [i for i, r in enumerate(rows) if chunk is not None and r.shape[-1] > chunk]
    short = [i for i, r in enumerate(rows) if i not in set(long_rows)]
    out: list[Tensor | None] = [None] * len(rows)
    for i in long_rows:  # chunked one at a time: their chunks are the batch
        out[i] = _enhance(model, rows[i], sample_rate, stft, chunk_seconds, overlap_seconds)
    if short:
        lengths = {rows[i].shape[-1] for i in short}
        if len(lengths) == 1:  # one length: a plain batch, as enhance(model, [B, T]) runs it
            ys = _enhance(model, torch.stack([rows[i] for i in short]), sample_rate, stft, None, overlap_seconds)
            for i, y in zip(short, ys.unbind(0)):
                out[i] = y
        else:
            if not supports_lengths(model):
                raise TypeError(f"{type(model).__name__} cannot run a padded batch of utterances of different "
                                f"lengths (no forward(spec, lengths=...)): enhance them one at a time")
            for i in short:  # the single-row checks (rate, NaN, length >= n_fft)
                _check_row(rows[i], sample_rate, stft)
            for i, y in zip(short, _enhance_ragged(model, [rows[i] for i in short], stft)):
                out[i] = y
    res, k = [], 0
    for a in audio:  # back to the inputs' shapes
        c = 1 if a.dim() == 1 else a.shape[0]
        block = torch.stack(out[k:k + c])  # type: ignore[arg-type]
        res.append(block[0] if a.dim() == 1 else block)
        k += c
    return res


def _check_row(x: Tensor, sample_rate: int, stft: SpectrogramTransform) -> None:
    if not torch.isfinite(x).all():
        raise ValueError("audio contains NaN or Inf samples; clean the file before enhancing it")
    total = x.shape[-1]
    if total < stft.n_fft:
        raise ValueError(f"audio is {total} samples ({total / sample_rate * 1000:.1f} ms) long; the model needs at "
                         f"least n_fft = {stft.n_fft} samples ({stft.n_fft / sample_rate * 1000:.0f} ms at "
                         f"{sample_rate} Hz): pad or skip such a short file")


def enhance(model: nn.Module, audio: Tensor | Sequence[Tensor], sample_rate: int, *,
            chunk_seconds: float | None = None, overlap_seconds: float = 1.0) -> Tensor | list[Tensor]:
    """Enhance ``audio`` with a spectrogram model that owns its STFT; returns the same shape.

    ``audio`` may also be a list of waveforms of different lengths (``[T_i]`` or ``[C_i, T_i]``):
    they are enhanced as one padded batch (``model(spec, lengths=...)``, see
    :func:`supports_lengths`; a model without it raises ``TypeError``) and the list of outputs,
    each shaped like its input, is returned. Each equals what the waveform gets alone to float
    rounding (1e-5 in float32 on speech); items longer than ``chunk_seconds`` are enhanced alone
    in chunks. Pass waveforms of similar lengths together: the batch costs its longest item's
    frames for every item.

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
    stft = model_stft(model)
    if isinstance(audio, (list, tuple)):
        stft.check_sample_rate(sample_rate)
        return _enhance_list(model, audio, sample_rate, stft, chunk_seconds, overlap_seconds)
    return _enhance(model, audio, sample_rate, stft, chunk_seconds, overlap_seconds)


def enhance_waveform(model: nn.Module, audio: Tensor, sample_rate: int, stft: SpectrogramTransform | None = None,
                     *, chunk_seconds: float | None = None, overlap_seconds: float = 1.0) -> Tensor:
    """The earlier name of :func:`enhance`; ``stft`` (optional) overrides ``model.stft``.

    ``enhance_waveform(model, audio, sample_rate, stft)`` works as before for a model without
    ``.stft``; with ``stft=None`` it is ``enhance(model, audio, sample_rate, ...)``.
    """
    if stft is None:
        stft = model_stft(model)
    return _enhance(model, audio, sample_rate, stft, chunk_seconds, overlap_seconds)
