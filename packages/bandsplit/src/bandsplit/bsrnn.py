"""BSRNN: band-split RNN speech enhancement, as the widely used reimplementation builds it.

Architecture (sungwon23/BSRNN, the "BSRNN(num_channel=64, num_layer=5)" of VoiceBank-DEMAND
papers, 2,963,024 parameters): BandSplit over 31 bands -> L residual blocks over time
(GroupNorm(1, N) -> LSTM(N, 2N) -> Linear(2N, N)) -> L residual blocks over bands
(GroupNorm(1, N) -> BLSTM(N, 2N) -> Linear(4N, N)) -> MaskDecoder -> 3-tap complex mask
applied over time. The reference runs all time blocks before all band blocks; the paper
interleaves them (``interleaved=True``). The reference's norms use statistics over the whole
utterance; ``causal=True`` uses per-frame statistics instead (the time LSTM is always
unidirectional; the 3-tap mask keeps its one frame of look-ahead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from ._masking import frame_mask, masked_mean_var
from .band_split import BandSplit
from .bands import BSRNN_BAND_WIDTHS, check_band_widths
from .mask_decoder import MaskDecoder, apply_fir_mask
from .stft import SpectrogramTransform

if TYPE_CHECKING:
    from .streaming import BSRNNStreamer


def _norm_channels_last(x: torch.Tensor, norm: nn.GroupNorm, causal: bool,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """``GroupNorm(1, N)`` of ``[B, T, K, N]`` features: stats over (T, K, N), or (K, N) per frame.

    Whole-utterance statistics: ``group_norm`` on the ``[B, N, T, K]`` view (forward +
    backward 2.2x faster than a ``layer_norm`` over (T, K, N) with the affine expanded to
    those dims on an H100 and 3.5x on a CPU: ``bench/profile_step.py``). Per-frame
    statistics: one fused ``layer_norm`` over (K, N) with the per-channel affine. ``mask``
    (bool ``[B, T]``, ``True`` = valid frame): whole-utterance statistics over the valid frames.
    """
    if mask is not None and not causal:
        mean, var = masked_mean_var(x, mask.to(x.dtype)[:, :, None, None], (1, 2, 3))
        return (x - mean) * torch.rsqrt(var + norm.eps) * norm.weight + norm.bias
    if causal:
        shape = x.shape[2:]
        return torch.nn.functional.layer_norm(x, shape, norm.weight.expand(shape), norm.bias.expand(shape),
                                              norm.eps)
    return torch.nn.functional.group_norm(x.permute(0, 3, 1, 2), 1, norm.weight, norm.bias,
                                          norm.eps).permute(0, 2, 3, 1)


class BSRNN(nn.Module):
    """Band-split RNN enhancer: complex STFT ``[B, F, T]`` -> enhanced complex STFT ``[B, F, T]``.

    The input is the raw (uncompressed, unnormalised) complex STFT of 16 kHz audio with
    n_fft 512, hop 128 (F = 257), as the reference trains it; the reference's forward also
    takes a complex tensor. Its state dict has the reference's keys and shapes
    (``band_split.norm{k}``, ``band_split.fc{k}``, ``norm_t{i}``, ``lstm_t{i}``, ``fc_t{i}``,
    ``norm_k{i}``, ``lstm_k{i}``, ``fc_k{i}``, ``mask_decoder.norm{k}``, ``.fc1{k}``,
    ``.fc2{k}``), so a checkpoint of that implementation loads with ``load_state_dict``.

    Args:
        num_channel: N, features per band (reference default 128; the published model 64).
        num_layer: L, number of time blocks and of band blocks (default 6; published 5).
        band_widths: band table in bins (default: the 31 BSRNN bands summing to 257).
        interleaved: run time/band blocks as T1, K1, T2, K2, ... (the paper) instead of the
            reference's T1..TL, K1..KL. Same parameters, different function.
        causal: per-frame normalisation statistics everywhere instead of whole-utterance
            GroupNorm statistics. The output at frame t then depends on input frames <= t + 1,
            and :meth:`streamer` runs the model frame by frame (algorithmic latency at 16 kHz,
            n_fft 512, hop 128: the 32 ms window + 8 ms look-ahead = 40 ms).
        sample_rate, n_fft, hop_length: the STFT the model works on (Hz, samples): ``self.stft``
            is it, and ``self.sample_rate`` its rate (:func:`bandsplit.enhance` uses both).
            ``n_fft`` defaults to ``2 (F - 1)`` for the ``F`` bins of the band table (512).

    Shapes: ``forward(x)``: ``x`` complex ``[B, F, T]`` (any T >= 1) -> complex ``[B, F, T]``.

    Memory: activations grow linearly with B x T (about 0.4 GiB for a 60 s utterance at
    N = 64, L = 5 in no-grad inference). Under ``torch.no_grad()`` inputs longer than
    ``inference_chunk`` frames (default 1024) run the LSTMs chunk by chunk (the time LSTM
    carries its state across chunks; the band LSTM is per frame), which gives the same output
    and keeps the LSTMs' working memory bounded; set ``inference_chunk = 0`` to disable.
    """

    def __init__(self, num_channel: int = 128, num_layer: int = 6, band_widths: Sequence[int] | None = None,
                 *, interleaved: bool = False, causal: bool = False, sample_rate: int = 16000,
                 n_fft: int | None = None, hop_length: int = 128) -> None:
        super().__init__()
        widths = check_band_widths(BSRNN_BAND_WIDTHS if band_widths is None else band_widths,
                                   None if n_fft is None else int(n_fft) // 2 + 1)
        self.num_channel = n = int(num_channel)
        self.num_layer = int(num_layer)
        self.band_widths = widths
        self.n_freq = sum(widths)
        self.interleaved = bool(interleaved)
        self.causal = bool(causal)
        self.band_split = BandSplit(widths, n, causal=causal)
        for i in range(1, self.num_layer + 1):
            setattr(self, f"norm_t{i}", nn.GroupNorm(1, n))
            setattr(self, f"lstm_t{i}", nn.LSTM(n, 2 * n, batch_first=True))
            setattr(self, f"fc_t{i}", nn.Linear(2 * n, n))
        for i in range(1, self.num_layer + 1):
            setattr(self, f"norm_k{i}", nn.GroupNorm(1, n))
            setattr(self, f"lstm_k{i}", nn.LSTM(n, 2 * n, batch_first=True, bidirectional=True))
            setattr(self, f"fc_k{i}", nn.Linear(4 * n, n))
        self.mask_decoder = MaskDecoder(widths, n, causal=causal)
        t_blocks = [("t", i) for i in range(1, self.num_layer + 1)]
        k_blocks = [("k", i) for i in range(1, self.num_layer + 1)]
        self._order = ([b for pair in zip(t_blocks, k_blocks) for b in pair] if interleaved
                       else t_blocks + k_blocks)
        #: frames per chunk for the LSTMs in no-grad inference on long inputs (0: never chunk).
        #: Bounds the LSTMs' working memory (a 60 s utterance has 7,501 frames); same output.
        self.inference_chunk = 1024
        self._init_weights()
        #: the model's STFT (no parameters; its window is a non-persistent buffer)
        self.stft = SpectrogramTransform(2 * (self.n_freq - 1) if n_fft is None else n_fft, hop_length, sample_rate)
        self.sample_rate = self.stft.sample_rate

    def _init_weights(self) -> None:
        """The reference's init: LSTM ih xavier-uniform, hh orthogonal, biases 0; Linear xavier, bias 0."""
        for m in self.modules():
            if isinstance(m, nn.LSTM):
                for name, p in m.named_parameters():
                    if "weight_ih" in name:
                        nn.init.xavier_uniform_(p)
                    elif "weight_hh" in name:
                        nn.init.orthogonal_(p)
                    elif "bias" in name:
                        nn.init.zeros_(p)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=1.0)
                nn.init.zeros_(m.bias)

    def extra_repr(self) -> str:
        return f"interleaved={self.interleaved}, causal={self.causal}"

    def _chunked(self, t: int) -> bool:
        """No-grad inference on long inputs runs the LSTMs over chunks of frames (same result)."""
        return not torch.is_grad_enabled() and self.inference_chunk > 0 and t > self.inference_chunk

    def _time_block(self, z: torch.Tensor, i: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, k, n = z.shape
        # the time LSTM runs forward only: padded frames after an item's end never reach it
        out = _norm_channels_last(z, getattr(self, f"norm_t{i}"), self.causal, mask)
        out = out.transpose(1, 2).reshape(b * k, t, n)
        lstm, fc = getattr(self, f"lstm_t{i}"), getattr(self, f"fc_t{i}")
        if self._chunked(t):  # carry the LSTM state from chunk to chunk: exact
            res, state = out.new_empty(b * k, t, n), None
            for s in range(0, t, self.inference_chunk):
                y, state = lstm(out[:, s:s + self.inference_chunk], state)
                res[:, s:s + self.inference_chunk] = fc(y)
            out = res
        else:
            out = fc(lstm(out)[0])
        return z + out.view(b, k, t, n).transpose(1, 2)

    def _band_block(self, z: torch.Tensor, i: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, k, n = z.shape
        out = _norm_channels_last(z, getattr(self, f"norm_k{i}"), self.causal, mask)
        lstm, fc = getattr(self, f"lstm_k{i}"), getattr(self, f"fc_k{i}")
        if self._chunked(t):  # frames are independent in the band LSTM: exact
            res = torch.empty_like(z)
            for s in range(0, t, self.inference_chunk):
                c = out[:, s:s + self.inference_chunk]
                res[:, s:s + self.inference_chunk] = fc(lstm(c.reshape(-1, k, n))[0]).view(c.shape)
            return res.add_(z)
        return z + fc(lstm(out.reshape(b * t, k, n))[0]).view(b, t, k, n)

    def streamer(self) -> BSRNNStreamer:
        """A stateful frame-by-frame runner of this causal model (:class:`bandsplit.BSRNNStreamer`):
        ``s = model.streamer(); y = s.push(frames)`` (complex ``[B, F, n]`` -> the ``n`` frames they
        complete, one frame behind), ``s.flush()`` at the end. Its outputs equal ``model(X)``.
        Algorithmic latency: the STFT window + one hop of look-ahead (40 ms at 16 kHz, 512 / 128).
        Raises ``ValueError`` unless the model was built with ``causal=True``."""
        from .streaming import BSRNNStreamer  # noqa: PLC0415 - streaming imports this module

        return BSRNNStreamer(self)

    #: ``forward(x, lengths=...)`` runs a padded batch of utterances of different lengths
    supports_lengths = True

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
        """``x``: complex STFT ``[B, F, T]`` -> enhanced complex STFT ``[B, F, T]``.

        ``lengths``: optional valid frames per item (``[B]``, each in ``1 .. T``) of a batch
        padded to ``T`` frames: item ``b`` then gets, in its first ``lengths[b]`` frames, what it
        gets alone (whole-utterance norms count its valid frames, its frames past the end count as
        zeros for the 3-tap mask), and zeros after them."""
        if not x.is_complex() or x.dim() != 3:
            raise ValueError(f"BSRNN expects a complex STFT [B, F={self.n_freq}, T] "
                             f"(torch.stft(..., return_complex=True)), got {x.dtype} {tuple(x.shape)}")
        valid = frame_mask(lengths, x.shape[0], x.shape[-1], x.device)          # [B, T] or None
        if valid is not None:
            x = x * valid[:, None, :]
        z = self.band_split(x, valid)                                           # [B, T, K, N]
        for kind, i in self._order:
            z = self._time_block(z, i, valid) if kind == "t" else self._band_block(z, i, valid)
        mask = self.mask_decoder(z, valid)                                      # [B, F, T, 3]
        y = apply_fir_mask(mask, x)
        return y if valid is None else y * valid[:, None, :]
