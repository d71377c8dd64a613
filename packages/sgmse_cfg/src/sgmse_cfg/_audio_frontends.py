"""Feature front ends of the published audio encoders, in plain PyTorch (not a public API).

* :func:`kaldi_fbank` -- Kaldi's log-mel filterbank as ``torchaudio.compliance.kaldi.fbank``
  computes it with its defaults (what BEATs feeds its patch embedding): 25 ms Povey window,
  10 ms shift, ``snip_edges``, DC removal, pre-emphasis 0.97, power spectrum of the frame
  zero-padded to a power of two, Kaldi-mel triangles from 20 Hz to Nyquist, ``log(max(., eps))``.
* :func:`slaney_mel_filters` -- ``librosa.filters.mel`` (Slaney mel scale, Slaney area
  normalisation), the filters torchlibrosa's ``LogmelFilterBank`` holds as ``melW``.
* :class:`TorchlibrosaSpectrogram` / :class:`TorchlibrosaLogmel` -- torchlibrosa's
  ``Spectrogram`` (an STFT as two ``Conv1d`` with DFT-times-Hann kernels, reflect padding) and
  ``LogmelFilterBank`` (``10 log10(max(mel, 1e-10))``) with the same state-dict names
  (``stft.conv_real.weight``, ``stft.conv_imag.weight``, ``melW``), so PANNs' and CLAP's
  checkpoints, which store these fixed tensors, load into them. They are buffers here (fixed,
  never trained), built from the same formulas, so a module made without a checkpoint has them.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


# ---------------------------------------------------------------------------- Kaldi fbank
def _kaldi_mel(f: Tensor | float) -> Tensor | float:
    if isinstance(f, Tensor):
        return 1127.0 * torch.log(1.0 + f / 700.0)
    return 1127.0 * math.log(1.0 + f / 700.0)


def kaldi_mel_banks(num_bins: int, padded_window_size: int, sample_rate: float, low_freq: float = 20.0,
                    high_freq: float = 0.0) -> Tensor:
    """Kaldi's triangular mel filters ``[num_bins, padded_window_size // 2 + 1]`` (the last,
    Nyquist, column zero, as in torchaudio)."""
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"kaldi_mel_banks: need 0 <= low_freq < high_freq <= Nyquist, got {low_freq}, {high_freq}")
    num_fft_bins = padded_window_size // 2
    fft_bin_width = sample_rate / padded_window_size
    mel_low, mel_high = _kaldi_mel(low_freq), _kaldi_mel(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins).unsqueeze(1)
    left = mel_low + b * delta
    center = mel_low + (b + 1.0) * delta
    right = mel_low + (b + 2.0) * delta
    mel = _kaldi_mel(fft_bin_width * torch.arange(num_fft_bins)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.max(torch.zeros(1), torch.min(up, down))
    return F.pad(banks, (0, 1))


def kaldi_fbank(wave: Tensor, *, sample_rate: float = 16000.0, num_mel_bins: int = 128,
                frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0, preemphasis: float = 0.97,
                low_freq: float = 20.0, high_freq: float = 0.0, mel_banks: Tensor | None = None) -> Tensor:
    """``wave [B, L]`` -> log-mel ``[B, frames, num_mel_bins]`` equal to
    ``torchaudio.compliance.kaldi.fbank(wave[b:b+1], num_mel_bins=..., sample_frequency=...,
    frame_length=..., frame_shift=...)`` for every ``b`` (dither 0, Povey window, DC removal,
    pre-emphasis, power spectrum, no energy term, ``snip_edges``). ``mel_banks`` may pass
    :func:`kaldi_mel_banks`' result to skip rebuilding it."""
    if wave.ndim != 2:
        raise ValueError(f"kaldi_fbank takes waveforms [B, L], got {tuple(wave.shape)}")
    win = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    if wave.shape[1] < win:
        raise ValueError(f"kaldi_fbank: {wave.shape[1]} samples are shorter than one {frame_length_ms} ms frame "
                         f"({win} samples)")
    padded = 1 << (win - 1).bit_length()
    frames = wave.unfold(1, win, shift)  # [B, T, win]
    frames = frames - frames.mean(dim=-1, keepdim=True)
    prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - preemphasis * prev
    window = torch.hann_window(win, periodic=False, dtype=frames.dtype, device=frames.device).pow(0.85)
    frames = F.pad(frames * window, (0, padded - win))
    power = torch.fft.rfft(frames).abs().pow(2.0)  # [B, T, padded // 2 + 1]
    if mel_banks is None:
        mel_banks = kaldi_mel_banks(num_mel_bins, padded, sample_rate, low_freq, high_freq)
    mel = torch.matmul(power, mel_banks.to(power.dtype).T)
    eps = torch.tensor(torch.finfo(torch.float32).eps, dtype=mel.dtype, device=mel.device)
    return torch.max(mel, eps).log()


# ---------------------------------------------------------------------------- librosa / torchlibrosa
def _hz_to_slaney_mel(f: Tensor) -> Tensor:
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    lin = f / f_sp
    return torch.where(f >= min_log_hz, min_log_mel + torch.log(f.clamp(min=1e-10) / min_log_hz) / logstep, lin)


def _slaney_mel_to_hz(m: Tensor) -> Tensor:
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, math.log(6.4) / 27.0
    return torch.where(m >= min_log_mel, min_log_hz * torch.exp(logstep * (m - min_log_mel)), f_sp * m)


def slaney_mel_filters(sample_rate: float, n_fft: int, n_mels: int, fmin: float = 0.0,
                       fmax: float | None = None) -> Tensor:
    """``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)`` (Slaney scale and norm):
    ``[n_mels, n_fft // 2 + 1]`` float32, computed in float64 as librosa does."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fftfreqs = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    edges = torch.linspace(float(_hz_to_slaney_mel(torch.tensor(float(fmin), dtype=torch.float64))),
                           float(_hz_to_slaney_mel(torch.tensor(fmax, dtype=torch.float64))), n_mels + 2,
                           dtype=torch.float64)
    mel_f = _slaney_mel_to_hz(edges)
    fdiff = mel_f[1:] - mel_f[:-1]
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    enorm = 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])
    return (weights * enorm[:, None]).float()


def dft_hann_kernels(n_fft: int, win_length: int | None = None) -> tuple[Tensor, Tensor]:
    """torchlibrosa's STFT kernels ``(real, imag)``, each ``[n_fft // 2 + 1, 1, n_fft]``:
    ``e^{-2 pi i n k / N}`` times a periodic Hann window of ``win_length`` centred in ``n_fft``."""
    win_length = n_fft if win_length is None else win_length
    n = torch.arange(win_length, dtype=torch.float64)
    window = 0.5 - 0.5 * torch.cos(2.0 * math.pi * n / win_length)  # scipy 'hann', fftbins=True
    lpad = (n_fft - win_length) // 2
    window = F.pad(window, (lpad, n_fft - win_length - lpad))
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    t = torch.arange(n_fft, dtype=torch.float64)[None, :]
    ang = 2.0 * math.pi * ((k * t) % n_fft) / n_fft
    real = (torch.cos(ang) * window).float()[:, None, :]
    imag = (-torch.sin(ang) * window).float()[:, None, :]
    return real, imag


class _FixedKernel(nn.Module):
    """A fixed tensor stored under the name ``weight`` (a buffer: saved, never trained)."""

    weight: Tensor

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.register_buffer("weight", weight)


class _TorchlibrosaSTFT(nn.Module):
    def __init__(self, n_fft: int, hop_length: int, win_length: int | None = None) -> None:
        super().__init__()
        real, imag = dft_hann_kernels(n_fft, win_length)
        self.n_fft, self.hop_length = int(n_fft), int(hop_length)
        self.conv_real = _FixedKernel(real)
        self.conv_imag = _FixedKernel(imag)

    def forward(self, wave: Tensor) -> tuple[Tensor, Tensor]:
        x = F.pad(wave[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        real = F.conv1d(x, self.conv_real.weight, stride=self.hop_length)
        imag = F.conv1d(x, self.conv_imag.weight, stride=self.hop_length)
        return real[:, None].transpose(2, 3), imag[:, None].transpose(2, 3)  # [B, 1, T, F]


class TorchlibrosaSpectrogram(nn.Module):
    """``wave [B, L]`` -> power spectrogram ``[B, 1, frames, n_fft // 2 + 1]`` (centred, reflect
    padding), torchlibrosa's ``Spectrogram`` with its state-dict names."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int | None = None) -> None:
        super().__init__()
        self.stft = _TorchlibrosaSTFT(n_fft, hop_length, win_length)

    def forward(self, wave: Tensor) -> Tensor:
        real, imag = self.stft(wave)
        return real ** 2 + imag ** 2


class TorchlibrosaLogmel(nn.Module):
    """power spectrogram ``[..., F]`` -> ``10 log10(max(spec @ melW, amin))`` ``[..., n_mels]``
    (``ref`` 1, no ``top_db``: how PANNs and CLAP configure torchlibrosa's ``LogmelFilterBank``)."""

    melW: Tensor

    def __init__(self, sample_rate: float, n_fft: int, n_mels: int, fmin: float, fmax: float,
                 amin: float = 1e-10) -> None:
        super().__init__()
        self.amin = float(amin)
        self.register_buffer("melW", slaney_mel_filters(sample_rate, n_fft, n_mels, fmin, fmax).T.contiguous())

    def forward(self, spec: Tensor) -> Tensor:
        return 10.0 * torch.log10(torch.clamp(torch.matmul(spec, self.melW), min=self.amin))
