"""Noise-reference encoders: a noisy (or noise-only) spectrogram -> a noise embedding.

The reference is the model's own compressed complex spectrogram ``y [B, 1, F, T]`` (or any
``[B, 1, F, T]`` noise reference in the same representation): at inference the noisy input
is all there is, as in NASE. Every encoder returns a :class:`NoiseEncoding` with

* ``pooled [B, D]``: one vector per utterance (NC head, input addition, FiLM, k-NN bank);
* ``tokens [B, L, D]``: a fixed number ``L`` of tokens for cross-attention (``L = 1`` for
  the pooled CNN, whose token is the pooled vector).

Encoders:

* :class:`CNNNoiseEncoder` -- four stride-2 conv blocks, average pooling over time (and to
  ``freq_pool`` coarse frequency bands), two fully connected layers -> ``[B, D]``.
* :class:`SequenceNoiseEncoder` -- the same conv stack without global pooling: adaptive
  pooling to ``freq_pool x num_tokens`` and a linear projection -> ``num_tokens`` tokens
  ordered in time (read by cross-attention, so non-stationary noise is not
  averaged away).

Input features (``features``): ``"reim"`` = real and imaginary parts of the compressed
spectrogram (2 channels); ``"reim_logmag"`` adds ``log(|c| + 1e-5)`` as a
third channel, which makes the spectral envelope (what tells noise types apart) directly
visible to the first layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = ["NoiseEncoding", "CNNNoiseEncoder", "SequenceNoiseEncoder", "spec_features",
           "SPEC_FEATURES"]

SPEC_FEATURES = ("reim", "reim_logmag")


@dataclass
class NoiseEncoding:
    """Output of a noise encoder: ``pooled [B, D]``, ``tokens [B, L, D]`` and, when the model
    has an NC head, ``logits [B, C]``."""

    pooled: Tensor
    tokens: Tensor
    logits: Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.pooled.shape[0]


def spec_features(spec: Tensor, features: str = "reim") -> Tensor:
    """Complex spectrogram ``[B, 1, F, T]`` or ``[B, F, T]`` -> real channels ``[B, C, F, T]``
    (float32): ``"reim"`` (C = 2) or ``"reim_logmag"`` (C = 3, adds ``log(|c| + 1e-5)``)."""
    if not spec.is_complex():
        raise ValueError(f"noise encoders take a complex spectrogram, got {spec.dtype}")
    if spec.ndim == 4:
        if spec.shape[1] != 1:
            raise ValueError(f"expected [B, 1, F, T], got {tuple(spec.shape)}")
        spec = spec[:, 0]
    if spec.ndim != 3:
        raise ValueError(f"expected a spectrogram [B, 1, F, T] or [B, F, T], got {tuple(spec.shape)}")
    if spec.dtype != torch.complex128:  # complex32 / autocast inputs computed in single precision
        spec = spec.to(torch.complex64)
    chans = [spec.real, spec.imag]
    if features == "reim_logmag":
        chans.append(torch.log(spec.abs() + 1e-5))
    elif features != "reim":
        raise ValueError(f"features must be one of {SPEC_FEATURES}, got {features!r}")
    return torch.stack(chans, dim=1)


class _ChannelNorm(nn.Module):
    """LayerNorm over channels at every (frequency, time) position. Unlike GroupNorm it
    mixes nothing across time, so a token of :class:`SequenceNoiseEncoder` depends only on
    its own stretch of the input (within the convs' receptive field)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(ch)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _ConvStack(nn.Sequential):
    """Conv 3x3 stride 2 -> channel LayerNorm -> SiLU, once per entry of ``channels``
    (receptive field ``2**(n+1) - 1`` frames for ``n`` blocks)."""

    def __init__(self, in_ch: int, channels: Sequence[int]) -> None:
        layers: list[nn.Module] = []
        for ch in channels:
            layers += [nn.Conv2d(in_ch, ch, 3, stride=2, padding=1), _ChannelNorm(ch), nn.SiLU()]
            in_ch = ch
        super().__init__(*layers)


class _SpecEncoder(nn.Module):
    input_kind = "spec"  # takes the model's compressed complex spectrogram

    def __init__(self, features: str, channels: Sequence[int], dim: int, freq_pool: int) -> None:
        super().__init__()
        if features not in SPEC_FEATURES:
            raise ValueError(f"features must be one of {SPEC_FEATURES}, got {features!r}")
        if not channels:
            raise ValueError("channels needs at least one conv block")
        self.features = features
        self.dim = int(dim)
        self.freq_pool = int(freq_pool)
        self.convs = _ConvStack(2 if features == "reim" else 3, channels)

    def _conv(self, spec: Tensor) -> Tensor:
        with torch.autocast(device_type=spec.device.type, enabled=False):
            x = spec_features(spec, self.features)
        return self.convs(x)


class CNNNoiseEncoder(_SpecEncoder):
    """The CNN noise encoder: conv x4 (stride 2) -> average over time -> FC x2.

    ``spec [B, 1, F, T]`` complex -> :class:`NoiseEncoding` with ``pooled [B, dim]`` and
    ``tokens = pooled[:, None]`` (``L = 1``). The time average is taken over the whole input,
    so a whole utterance of any length gives one embedding; frequency is kept at
    ``freq_pool`` coarse bands (adaptive average pooling) before the FC layers.

    Args:
        features: ``"reim"`` (2 channels) or ``"reim_logmag"``.
        channels: conv widths (64, 128, 256, 512 in the noise-conditioning design).
        dim: embedding width (512 in the noise-conditioning design).
        freq_pool: coarse frequency bands kept before the FC layers.
    """

    def __init__(self, features: str = "reim", channels: Sequence[int] = (64, 128, 256, 512),
                 dim: int = 512, freq_pool: int = 4) -> None:
        super().__init__(features, channels, dim, freq_pool)
        self.config: dict[str, Any] = dict(features=features, channels=tuple(channels), dim=dim,
                                           freq_pool=freq_pool)
        self.num_tokens = 1
        self.fc = nn.Sequential(nn.Linear(channels[-1] * freq_pool, dim), nn.SiLU(),
                                nn.Linear(dim, dim))

    def forward(self, spec: Tensor) -> NoiseEncoding:
        h = F.adaptive_avg_pool2d(self._conv(spec), (self.freq_pool, 1)).flatten(1)  # [B, C*fp]
        z = self.fc(h)
        return NoiseEncoding(pooled=z, tokens=z[:, None])


class SequenceNoiseEncoder(_SpecEncoder):
    """The sequence noise encoder: the conv stack without global pooling -> ``num_tokens`` tokens.

    ``spec [B, 1, F, T]`` complex -> ``tokens [B, num_tokens, dim]`` (token ``l`` summarises
    the ``l``-th of ``num_tokens`` equal time spans; adaptive average pooling, so any length
    gives the same number of tokens) and ``pooled = tokens.mean(1)``.

    Args:
        features, channels, freq_pool: as :class:`CNNNoiseEncoder`.
        dim: token width (= the backbone's ``context_dim`` for cross-attention).
        num_tokens: tokens per utterance (16 in the noise-conditioning design).
    """

    def __init__(self, features: str = "reim", channels: Sequence[int] = (64, 128, 256, 512),
                 dim: int = 512, num_tokens: int = 16, freq_pool: int = 4) -> None:
        super().__init__(features, channels, dim, freq_pool)
        if num_tokens < 1:
            raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
        self.config = dict(features=features, channels=tuple(channels), dim=dim,
                           num_tokens=num_tokens, freq_pool=freq_pool)
        self.num_tokens = int(num_tokens)
        self.proj = nn.Linear(channels[-1] * freq_pool, dim)

    def forward(self, spec: Tensor) -> NoiseEncoding:
        h = F.adaptive_avg_pool2d(self._conv(spec), (self.freq_pool, self.num_tokens))  # [B, C, fp, L]
        h = h.permute(0, 3, 1, 2).flatten(2)  # [B, L, C*fp]
        tokens = self.proj(h)
        return NoiseEncoding(pooled=tokens.mean(dim=1), tokens=tokens)
