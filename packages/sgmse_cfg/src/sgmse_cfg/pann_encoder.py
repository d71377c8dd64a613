"""PANNs CNN14 (Kong et al. 2020) with the published checkpoint's layer names.

:class:`Cnn14Encoder` has exactly the state-dict keys and shapes of ``panns_inference``'s
``Cnn14`` (and of the audio branch of LAION-CLAP's ``PANN-14`` model, the same network): the
torchlibrosa front end's fixed tensors (``spectrogram_extractor.stft.conv_real.weight``,
``...conv_imag.weight``, ``logmel_extractor.melW``), ``bn0``, ``conv_block1`` ...
``conv_block6`` (two 3x3 conv + batch norm each), ``fc1`` and ``fc_audioset``. So
``Cnn14_mAP=0.431.pth`` (``{"model": state_dict, ...}``) loads into it through
:func:`sgmse_cfg.load_pretrained_encoder`; nothing is downloaded.

Outputs (eval mode, the same arithmetic as the peers):

* :meth:`Cnn14Encoder.clip_outputs` -- ``{"embedding" [B, 2048], "clipwise_output" [B, C]}``
  as ``panns_inference``'s ``Cnn14.forward``;
* :meth:`Cnn14Encoder.frame_embeddings` -- ``[B, frames / 32, 2048]``: CLAP's PANN
  "fine-grained" embedding (``relu(fc1(max_pool3 + avg_pool3))`` over the time axis of the
  last conv block), before CLAP repeats each row 32 times;
* ``forward(wave)`` -- the tokens an :class:`~sgmse_cfg.AudioEncoder` returns: the frame
  embeddings (``output="frames"``, default) or the clip embedding as one token
  (``output="embedding"``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ._audio_frontends import TorchlibrosaLogmel, TorchlibrosaSpectrogram

__all__ = ["Cnn14Encoder", "PANNS_CNN14_CONFIG"]

#: the published Cnn14_mAP=0.431.pth (AudioSet, 32 kHz): panns_inference's ``AudioTagging``
PANNS_CNN14_CONFIG: dict[str, Any] = dict(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64,
                                          fmin=50.0, fmax=14000.0, classes_num=527)


class _ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: Tensor, pool: int) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool > 1 else x


class Cnn14Encoder(nn.Module):
    """PANNs CNN14 audio encoder (random weights unless loaded).

    Args:
        sample_rate, window_size, hop_size, mel_bins, fmin, fmax, classes_num: as
            ``panns_inference.models.Cnn14`` (defaults: the published 32 kHz AudioSet model;
            LAION-CLAP's PANN-14 branch uses 48 kHz, 1024 / 480, 64 mels, 50..14000 Hz).
            ``mel_bins`` must be 64 (CNN14's ``bn0`` is 64 wide).
        output: ``"frames"`` (tokens ``[B, frames / 32, 2048]``) or ``"embedding"`` (the clip
            embedding ``[B, 1, 2048]``).
    """

    arch = "cnn14"

    def __init__(self, sample_rate: int = 32000, window_size: int = 1024, hop_size: int = 320, mel_bins: int = 64,
                 fmin: float = 50.0, fmax: float = 14000.0, classes_num: int = 527, output: str = "frames") -> None:
        super().__init__()
        if mel_bins != 64:
            raise ValueError(f"CNN14 needs mel_bins=64 (its bn0 is 64 wide), got {mel_bins}")
        if output not in ("frames", "embedding"):
            raise ValueError(f"output must be 'frames' or 'embedding', got {output!r}")
        self.config: dict[str, Any] = dict(sample_rate=sample_rate, window_size=window_size, hop_size=hop_size,
                                           mel_bins=mel_bins, fmin=fmin, fmax=fmax, classes_num=classes_num,
                                           output=output)
        self.sample_rate = int(sample_rate)
        self.embed_dim = 2048
        self.output = output
        self.spectrogram_extractor = TorchlibrosaSpectrogram(window_size, hop_size, window_size)
        self.logmel_extractor = TorchlibrosaLogmel(sample_rate, window_size, mel_bins, fmin, fmax)
        self.bn0 = nn.BatchNorm2d(64)
        widths = (1, 64, 128, 256, 512, 1024, 2048)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", _ConvBlock(widths[i], widths[i + 1]))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes_num)

    def log_mel(self, wave: Tensor) -> Tensor:
        """``[B, L]`` -> ``[B, 1, frames, 64]`` after ``bn0`` (the conv stack's input)."""
        x = self.logmel_extractor(self.spectrogram_extractor(wave))
        return self.bn0(x.transpose(1, 3)).transpose(1, 3)

    def features(self, wave: Tensor) -> Tensor:
        """The last conv block averaged over frequency: ``[B, 2048, frames / 32]``."""
        if wave.ndim != 2:
            raise ValueError(f"Cnn14Encoder takes waveforms [B, L], got {tuple(wave.shape)}")
        x = self.log_mel(wave.float() if not wave.is_floating_point() else wave)
        for i in range(1, 7):
            block: _ConvBlock = getattr(self, f"conv_block{i}")
            x = F.dropout(block(x, 2 if i < 6 else 1), p=0.2, training=self.training)
        return x.mean(dim=3)

    def _clip(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = x.max(dim=2).values + x.mean(dim=2)
        h = F.relu(self.fc1(F.dropout(h, p=0.5, training=self.training)))
        return F.dropout(h, p=0.5, training=self.training), torch.sigmoid(self.fc_audioset(h))

    def clip_outputs(self, wave: Tensor) -> dict[str, Tensor]:
        """``{"embedding": [B, 2048], "clipwise_output": [B, classes_num]}`` (PANNs' outputs)."""
        emb, clip = self._clip(self.features(wave))
        return {"embedding": emb, "clipwise_output": clip}

    def frame_embeddings(self, wave: Tensor) -> Tensor:
        """``[B, frames / 32, 2048]``: ``relu(fc1(max_pool3(x) + avg_pool3(x)))`` per frame."""
        x = self.features(wave)
        lat = F.max_pool1d(x, 3, 1, 1) + F.avg_pool1d(x, 3, 1, 1)
        return F.relu(self.fc1(lat.transpose(1, 2)))

    def forward(self, wave: Tensor) -> Tensor:
        if self.output == "frames":
            return self.frame_embeddings(wave)
        return self.clip_outputs(wave)["embedding"][:, None]
