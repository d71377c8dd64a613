"""Frame-by-frame (streaming) inference for the causal BSRNN: ``model.streamer().push(frames)``.

With ``causal=True`` every normalisation in :class:`~bandsplit.BSRNN` uses per-frame statistics
(BandSplit, the time and band blocks, the MaskDecoder), the time LSTM is unidirectional and the
band BLSTM runs within each frame. So the band features of frame ``t`` depend on input frames
``<= t`` only, through the time LSTMs' states, and the output frame ``t`` is the 3-tap mask
``Y(t) = M0(t) X(t-1) + M1(t) X(t) + M2(t) X(t+1)``: one frame of look-ahead.

:class:`BSRNNStreamer` keeps the time LSTMs' ``(h, c)`` states, the last two input frames and the
mask of the last frame between calls. ``push(frames)`` takes the next ``n`` STFT frames and
returns the ``n`` output frames that are complete (delayed by one frame: the first call returns
``n - 1``); ``flush()`` returns the last frame (its look-ahead frame taken as zero, as the
offline model zero-pads). The frames pushed so far, in any split, give exactly the offline
``model(X)`` (to float rounding: the LSTMs' state carries between calls).

Algorithmic latency at the model's STFT (16 kHz, n_fft 512, hop 128): the analysis window
(512 samples, 32 ms) plus the mask's one frame of look-ahead (128 samples, 8 ms): 640 samples,
**40 ms**. Each frame costs one push of one frame (``bench/streaming.py`` times it).

BSDT has no causal form (attention over the whole utterance, centred smoothing windows, the
fusion gate's statistics over time and whole-utterance BandSplit/MaskDecoder norms), so it has
no streamer; neither have the ERB-UNets (whole-utterance GroupNorm, centred convolutions over
time, attention over all frames).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .bsrnn import BSRNN, _norm_channels_last

__all__ = ["BSRNNStreamer"]


class BSRNNStreamer:
    """Stateful frame-by-frame inference of a causal :class:`~bandsplit.BSRNN`.

    Create it with ``model.streamer()`` (or ``BSRNNStreamer(model)``); the model must have been
    built with ``causal=True`` and is used as it is (put it in ``eval()`` mode; its weights are
    not copied, so it must not change while a stream runs).

    * ``push(frames)``: complex STFT frames ``[B, F, n]`` (or ``[F, n]`` for one stream), the
      next ``n >= 0`` frames of each of the ``B`` streams -> the enhanced frames completed by them,
      ``[B, F, m]`` with ``m = n`` (``n - 1`` on the first call with frames). Output frame ``t``
      needs input frame ``t + 1`` (the mask's look-ahead): every output lags its input by one frame.
    * ``flush()``: the last output frame (``[B, F, 1]``, or ``[B, F, 0]`` if nothing is pending),
      computed with a zero look-ahead frame as the offline model does at the end; then the
      streamer is reset for a new stream.
    * ``reset()``: forget the stream (LSTM states, pending frame).

    ``frames_in`` / ``frames_out`` count the frames pushed and returned. Runs without autograd.
    The concatenated outputs of any sequence of pushes followed by ``flush()`` equal
    ``model(X)`` for the concatenated input ``X``.

    Algorithmic latency (16 kHz, n_fft 512, hop 128): 512-sample window + 128-sample look-ahead =
    640 samples = 40 ms.
    """

    def __init__(self, model: BSRNN) -> None:
        if not isinstance(model, BSRNN):
            raise TypeError(f"BSRNNStreamer streams a bandsplit.BSRNN, got {type(model).__name__}")
        if not model.causal:
            raise ValueError("streaming needs a causal BSRNN (BSRNN(..., causal=True)): the default model's norms "
                             "use statistics over the whole utterance, so no output frame is final before the "
                             "input ends")
        self.model = model
        self.reset()

    def reset(self) -> None:
        """Start a new stream: drop the LSTM states, the held input frames and the pending mask."""
        self._states: dict[int, tuple[Tensor, Tensor] | None] = {i: None for i in range(1, self.model.num_layer + 1)}
        self._x_prev: Tensor | None = None   # input frames t-2, t-1: [B, F, 2]
        self._m_prev: Tensor | None = None   # mask of frame t-1: [B, F, 1, 3]
        self._batch: int | None = None
        self._squeeze = False
        self.frames_in = 0
        self.frames_out = 0

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency in samples: the STFT window plus one hop of look-ahead."""
        return self.model.stft.n_fft + self.model.stft.hop_length

    @property
    def latency_seconds(self) -> float:
        """Algorithmic latency in seconds (0.040 at 16 kHz, n_fft 512, hop 128)."""
        return self.latency_samples / self.model.stft.sample_rate

    def _check(self, frames: Tensor) -> Tensor:
        if not isinstance(frames, Tensor) or not frames.is_complex() or frames.dim() not in (2, 3):
            raise ValueError(f"push expects complex STFT frames [B, F={self.model.n_freq}, n] (or [F, n]), got "
                             f"{frames.dtype if isinstance(frames, Tensor) else type(frames).__name__} "
                             f"{tuple(frames.shape) if isinstance(frames, Tensor) else ''}")
        squeeze = frames.dim() == 2
        x = frames.unsqueeze(0) if squeeze else frames
        if x.shape[1] != self.model.n_freq:
            raise ValueError(f"push expects {self.model.n_freq} frequency bins, got {x.shape[1]}")
        if self._batch is None:
            self._batch, self._squeeze = x.shape[0], squeeze
        elif x.shape[0] != self._batch or squeeze != self._squeeze:
            raise ValueError(f"this stream has batch {self._batch}{' (unbatched)' if self._squeeze else ''}; got "
                             f"frames of shape {tuple(frames.shape)} (call reset() for a new stream)")
        return x

    def _time_block(self, z: Tensor, i: int) -> Tensor:
        """The time block of layer ``i`` on new frames, carrying the LSTM state."""
        m = self.model
        b, t, k, n = z.shape
        out = _norm_channels_last(z, getattr(m, f"norm_t{i}"), True)
        out = out.transpose(1, 2).reshape(b * k, t, n)
        y, self._states[i] = getattr(m, f"lstm_t{i}")(out, self._states[i])
        return z + getattr(m, f"fc_t{i}")(y).view(b, k, t, n).transpose(1, 2)

    def _out(self, x: Tensor) -> Tensor:
        return x.squeeze(0) if self._squeeze else x

    @torch.no_grad()
    def push(self, frames: Tensor) -> Tensor:
        """Next ``n`` input frames ``[B, F, n]`` -> the output frames they complete ``[B, F, m]``."""
        x = self._check(frames)
        m = self.model
        n = x.shape[-1]
        if n == 0:
            return self._out(x[..., :0])
        z = m.band_split(x)                                                       # [B, n, K, N]
        for kind, i in m._order:
            z = self._time_block(z, i) if kind == "t" else m._band_block(z, i)
        mask = m.mask_decoder(z)                                                  # [B, F, n, 3]
        if self._x_prev is None:   # frames -2, -1 of the stream: zero, as the offline mask pads
            self._x_prev = x.new_zeros(*x.shape[:2], 2)
        x_ext = torch.cat([self._x_prev, x], dim=-1)                              # frames t-2 .. t+n-1
        if self._m_prev is None:   # first frames: outputs 0 .. n-2
            masks, x_win = mask, x_ext[..., 1:]
        else:                      # outputs t-1 .. t+n-2
            masks, x_win = torch.cat([self._m_prev, mask], dim=2), x_ext
        k = masks.shape[2] - 1
        mo = masks[:, :, :k]
        y = mo[..., 0] * x_win[..., :k] + mo[..., 1] * x_win[..., 1:k + 1] + mo[..., 2] * x_win[..., 2:k + 2]
        self._m_prev, self._x_prev = masks[:, :, k:], x_ext[..., -2:]
        self.frames_in += n
        self.frames_out += k
        return self._out(y)

    @torch.no_grad()
    def flush(self) -> Tensor:
        """The last output frame (zero look-ahead, as offline) ``[B, F, 1]``; then :meth:`reset`."""
        if self._m_prev is None or self._x_prev is None:   # nothing pending
            real = next(self.model.parameters()).dtype
            empty = torch.zeros(self._batch or 1, self.model.n_freq, 0,
                                dtype=torch.complex128 if real == torch.float64 else torch.complex64)
            out = self._out(empty)
            self.reset()
            return out
        mp, xp = self._m_prev[:, :, 0], self._x_prev
        y = (mp[..., 0] * xp[..., 0] + mp[..., 1] * xp[..., 1]).unsqueeze(-1)
        y = self._out(y)
        self.reset()
        return y
