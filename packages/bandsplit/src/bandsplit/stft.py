"""The STFT that BSRNN-family models expect: 16 kHz, n_fft 512, hop 128, periodic Hann.

Models in this package map a complex spectrogram ``[B, 257, T]`` to one of the same shape; the
transform carries the sample rate it was built for and refuses audio at another rate (the
seeds' worst bug was feeding 48 kHz audio to 16 kHz STFT settings).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SampleRateMismatchError(ValueError):
    """Audio at another rate than the model's STFT was built for."""


class SpectrogramTransform(nn.Module):
    """Complex STFT / inverse with a fixed sample rate.

    ``stft(x)``: ``[B, T_samples]`` -> complex ``[B, n_fft//2+1, frames]`` (centred frames,
    reflect padding, ``frames = T_samples // hop + 1``). ``istft(X, length)`` inverts it.
    """

    def __init__(self, n_fft: int = 512, hop: int = 128, sample_rate: int = 16000) -> None:
        super().__init__()
        self.n_fft, self.hop, self.sample_rate = int(n_fft), int(hop), int(sample_rate)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)

    @property
    def num_bins(self) -> int:
        return self.n_fft // 2 + 1

    def check_rate(self, sample_rate: int, what: str = "audio") -> None:
        if int(sample_rate) != self.sample_rate:
            raise SampleRateMismatchError(
                f"{what} is at {sample_rate} Hz but this model's STFT (n_fft {self.n_fft}, hop {self.hop}) "
                f"was built for {self.sample_rate} Hz. Resample first: "
                f"se_data.load_audio(path, sr={self.sample_rate}, resample=True), or "
                f"tools/resample_dataset.py SRC DST --sr {self.sample_rate}.")

    def stft(self, x: Tensor) -> Tensor:
        return torch.stft(x, self.n_fft, self.hop, window=self.window.to(x.dtype), onesided=True,
                          return_complex=True, center=True, pad_mode="reflect")

    def istft(self, spec: Tensor, length: int) -> Tensor:
        return torch.istft(spec, self.n_fft, self.hop, window=self.window.to(spec.real.dtype),
                           onesided=True, center=True, length=length)

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop={self.hop}, sample_rate={self.sample_rate}"
