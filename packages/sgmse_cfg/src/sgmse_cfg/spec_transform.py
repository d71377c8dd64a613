"""SGMSE+'s complex STFT representation, bound to the sample rate it was built for.

SGMSE+ (sp-uhh/sgmse, ``data_module.py``) represents audio as a compressed complex STFT:

* STFT with ``n_fft = 510`` (256 frequency bins), ``hop = 128``, periodic Hann window,
  ``center=True`` (reflect padding), no normalisation;
* amplitude compression ``c~ = beta * |c|**alpha * exp(j*angle(c))`` with ``alpha = 0.5``
  and ``beta = 0.15``, inverted exactly by ``c = (|c~|/beta)**(1/alpha) * exp(j*angle(c~))``;
* waveforms are scaled by ``normfac = max|y|`` of the noisy signal before the STFT
  (``normalize="noisy"``) and the enhanced waveform is multiplied back by it.

Those STFT settings are meant for 16 kHz audio. Feeding 48 kHz audio (VoiceBank-DEMAND's
native rate) silently trains or runs a broken model (sgmse issues #15, #19, #42), so every
transform carries its ``sample_rate`` and refuses audio at any other rate.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

import se_data

from se_data import keyword_alias

from .errors import BadAudioError, SampleRateError

__all__ = ["SpecTransform", "normalize_by_noisy"]

TransformType = Literal["exponent", "none"]


class SpecTransform:
    """Compressed complex STFT of SGMSE+ for one sample rate.

    Args:
        sample_rate: rate (Hz) the transform and any model using it were built for.
        n_fft: FFT size (510 gives ``n_fft // 2 + 1 = 256`` bins).
        hop_length: hop in samples.
        window: ``"hann"`` (periodic) or ``"sqrthann"``.
        spec_factor: ``beta`` of the amplitude compression.
        spec_abs_exponent: ``alpha`` of the amplitude compression.
        transform_type: ``"exponent"`` (SGMSE+'s default) or ``"none"``.

    Shapes: waveforms ``[..., L]`` (real), spectrograms ``[..., F, T]`` (complex) with
    ``F = n_fft // 2 + 1`` and ``T = L // hop_length + 1``.
    """

    def __init__(self, sample_rate: int = 16000, n_fft: int = 510, hop_length: int = 128,
                 window: str = "hann", spec_factor: float = 0.15, spec_abs_exponent: float = 0.5,
                 transform_type: TransformType = "exponent") -> None:
        if int(sample_rate) != sample_rate or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}")
        if window not in ("hann", "sqrthann"):
            raise ValueError(f"window must be 'hann' or 'sqrthann', got {window!r}")
        if transform_type not in ("exponent", "none"):
            raise ValueError(f"transform_type must be 'exponent' or 'none', got {transform_type!r}")
        if spec_factor <= 0 or spec_abs_exponent <= 0:
            raise ValueError("spec_factor and spec_abs_exponent must be positive")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.window_type = window
        self.spec_factor = float(spec_factor)
        self.spec_abs_exponent = float(spec_abs_exponent)
        self.transform_type = transform_type
        self._windows: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    # ---- configuration ---------------------------------------------------------------
    @property
    def num_freqs(self) -> int:
        """Number of frequency bins ``F`` (256 for n_fft 510)."""
        return self.n_fft // 2 + 1

    def num_frames(self, length: int) -> int:
        """Frames ``T`` of the STFT of ``length`` samples (``center=True``)."""
        return length // self.hop_length + 1

    def segment_length(self, num_frames: int) -> int:
        """Samples that give exactly ``num_frames`` frames: ``(num_frames - 1) * hop``
        (32640 samples = 2.04 s at 16 kHz for SGMSE+'s 256 training frames)."""
        return (num_frames - 1) * self.hop_length

    def to_dict(self) -> dict[str, Any]:
        """Plain-data config (for checkpoints loaded with ``weights_only=True``)."""
        return {"sample_rate": self.sample_rate, "n_fft": self.n_fft,
                "hop_length": self.hop_length, "window": self.window_type,
                "spec_factor": self.spec_factor, "spec_abs_exponent": self.spec_abs_exponent,
                "transform_type": self.transform_type}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpecTransform:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"SpecTransform({args})"

    # ---- checks --------------------------------------------------------------------
    @keyword_alias(sr="sample_rate")
    def check_sample_rate(self, sample_rate: int, what: str = "audio") -> None:
        """Raise :class:`SampleRateError` unless ``sample_rate`` (Hz) equals the transform's
        rate. ``sr`` is an older alias of ``sample_rate``."""
        if int(sample_rate) != self.sample_rate:
            raise SampleRateError(
                f"{what} is at {sample_rate} Hz but this SpecTransform (n_fft={self.n_fft}, "
                f"hop={self.hop_length}) was built for {self.sample_rate} Hz; STFT settings "
                f"for one rate give a meaningless spectrogram at another. Fix: "
                f"{se_data.resample_hint(self.sample_rate)}")

    # ---- STFT ----------------------------------------------------------------------
    def window(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tensor:
        """The analysis/synthesis window ``[n_fft]`` (periodic Hann or its square root)."""
        key = (torch.device(device), dtype)
        w = self._windows.get(key)
        if w is None:
            w = torch.hann_window(self.n_fft, periodic=True, dtype=dtype, device=device)
            if self.window_type == "sqrthann":
                w = w.sqrt()
            self._windows[key] = w
        return w

    def stft(self, wave: Tensor) -> Tensor:
        """Complex STFT (uncompressed). ``wave`` real ``[..., L]`` -> complex ``[..., F, T]``."""
        if wave.is_complex():
            raise BadAudioError("stft expects a real waveform, got a complex tensor")
        if wave.shape[-1] < 2:
            raise BadAudioError(f"waveform too short for an STFT: {wave.shape[-1]} samples")
        lead = wave.shape[:-1]
        flat = wave.reshape(-1, wave.shape[-1])
        if not flat.dtype.is_floating_point:
            flat = flat.float()
        spec = torch.stft(flat, n_fft=self.n_fft, hop_length=self.hop_length,
                          window=self.window(flat.device, flat.dtype), center=True,
                          return_complex=True)
        return spec.reshape(*lead, *spec.shape[-2:])

    def istft(self, spec: Tensor, length: int | None = None) -> Tensor:
        """Inverse of :meth:`stft`: complex ``[..., F, T]`` -> real ``[..., L]``."""
        if spec.shape[-2] != self.num_freqs:
            raise ValueError(f"spectrogram has {spec.shape[-2]} frequency bins, this transform "
                             f"expects {self.num_freqs} (n_fft={self.n_fft})")
        lead = spec.shape[:-2]
        flat = spec.reshape(-1, *spec.shape[-2:])
        real_dtype = flat.real.dtype
        wave = torch.istft(flat, n_fft=self.n_fft, hop_length=self.hop_length,
                           window=self.window(flat.device, real_dtype), center=True,
                           length=length)
        return wave.reshape(*lead, wave.shape[-1])

    # ---- amplitude compression -------------------------------------------------------
    def compress(self, spec: Tensor) -> Tensor:
        """``beta * |c|**alpha * exp(j*angle(c))`` (identity for ``transform_type="none"``)."""
        if self.transform_type == "none":
            return spec
        mag = spec.abs()
        if self.spec_abs_exponent != 1.0:
            mag = mag.pow(self.spec_abs_exponent)
        return torch.polar(mag * self.spec_factor, spec.angle())

    def decompress(self, spec: Tensor) -> Tensor:
        """Exact inverse of :meth:`compress`: ``(|c~|/beta)**(1/alpha) * exp(j*angle(c~))``."""
        if self.transform_type == "none":
            return spec
        mag = spec.abs() / self.spec_factor
        if self.spec_abs_exponent != 1.0:
            mag = mag.pow(1.0 / self.spec_abs_exponent)
        return torch.polar(mag, spec.angle())

    # ---- waveform <-> model representation -----------------------------------------------
    @keyword_alias(sr="sample_rate")
    def wave_to_spec(self, wave: Tensor, sample_rate: int) -> Tensor:
        """Checked waveform -> compressed complex spectrogram.

        ``wave``: real ``[..., L]`` at ``sample_rate`` Hz (must equal the transform's
        ``sample_rate``; ``sr`` is an older alias); returns complex ``[..., F, T]``.
        Normalisation (``normalize_by_noisy``) is the caller's job, as in SGMSE+.
        """
        self.check_sample_rate(sample_rate)
        if not torch.isfinite(wave).all():
            raise BadAudioError("waveform contains NaN or Inf samples")
        return self.compress(self.stft(wave))

    def spec_to_wave(self, spec: Tensor, length: int | None = None) -> Tensor:
        """Compressed complex spectrogram ``[..., F, T]`` -> waveform ``[..., L]`` at
        ``sample_rate``; ``length`` trims/pads to the original sample count."""
        return self.istft(self.decompress(spec), length=length)

    @staticmethod
    def pad_frames(spec: Tensor, multiple: int = 64, mode: str = "zero") -> tuple[Tensor, int]:
        """Pad the time axis on the right to a multiple of ``multiple`` frames.

        NCSN++ halves the resolution 6 times (2**6 = 64), so SGMSE+ pads to a multiple
        of 64 before enhancement (``pad_spec``). ``mode``: ``"zero"`` (SGMSE+ at 16 kHz)
        or ``"reflect"``. Returns ``(padded [..., F, T'], T)``.
        """
        T = spec.shape[-1]
        pad = (-T) % multiple
        if pad == 0:
            return spec, T
        if mode == "zero":
            return F.pad(spec, (0, pad)), T
        if mode == "reflect":
            if pad >= T:
                raise ValueError(f"reflect padding of {pad} frames needs more than {T} frames")
            flat = spec.reshape(-1, *spec.shape[-2:])
            re = F.pad(flat.real, (0, pad), mode="reflect")
            im = F.pad(flat.imag, (0, pad), mode="reflect")
            return torch.complex(re, im).reshape(*spec.shape[:-1], T + pad), T
        raise ValueError(f"mode must be 'zero' or 'reflect', got {mode!r}")


def normalize_by_noisy(y: Tensor, *others: Tensor, eps: float = 0.0) -> tuple[Tensor, ...]:
    """SGMSE+'s ``normalize="noisy"``: divide by ``normfac = max|y|`` per utterance.

    ``y``: noisy waveform ``[..., L]``; ``others`` (e.g. the clean ``x``) are scaled by the
    same factor. Returns ``(y / normfac, *others / normfac, normfac [..., 1])``; multiply
    the enhanced waveform by ``normfac`` to undo it. A silent ``y`` is an error.
    """
    normfac = y.abs().amax(dim=-1, keepdim=True)
    if not torch.isfinite(normfac).all():
        raise BadAudioError("noisy waveform contains NaN or Inf samples")
    if (normfac <= eps).any():
        raise BadAudioError("noisy waveform is silent (max |y| = 0); nothing to normalise "
                            "or enhance")
    return (y / normfac, *(o / normfac for o in others), normfac)
