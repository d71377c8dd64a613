"""The STFT that BSRNN-family models expect: 16 kHz, n_fft 512, hop 128, periodic Hann.

Models in this package map a complex spectrogram ``[B, 257, T]`` to one of the same shape; the
transform carries the sample rate it was built for and refuses audio at another rate (48 kHz
audio fed to 16 kHz STFT settings silently trains or runs a broken model).

The names follow ``sgmse_cfg.SpecTransform`` (``n_fft``, ``hop_length``, ``sample_rate``,
``num_freqs``, ``check_sample_rate``, ``stft``, ``istft``, ``to_dict`` / ``from_dict``), so code
written against one STFT reads the same with the other. The earlier names ``hop``,
``num_bins`` and ``check_rate`` still work.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from se_data import SampleRateError, resample_hint
from torch import Tensor, nn

__all__ = ["SampleRateMismatchError", "SpectrogramTransform"]


class SampleRateMismatchError(SampleRateError):
    """Audio (or a module) at another sample rate than a model's STFT was built for.

    A subclass of :class:`se_data.SampleRateError` (and so of ``ValueError``): ``except
    se_data.SampleRateError`` catches it together with the rate errors of the other packages.
    """


def _positive_int(value: Any, name: str) -> int:
    try:
        ok = not isinstance(value, bool) and int(value) == value and value > 0
    except (TypeError, ValueError, OverflowError):  # None, a string, NaN, inf
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class SpectrogramTransform(nn.Module):
    """Complex STFT / inverse with a fixed sample rate (periodic Hann window, centred frames).

    Args:
        n_fft: FFT size in samples (512 at 16 kHz: 32 ms, ``num_freqs = 257`` bins).
        hop_length: hop between frames in samples (128 at 16 kHz: 8 ms); ``<= n_fft``.
        sample_rate: the rate (Hz) the transform and any model using it were built for.
        hop: the earlier name of ``hop_length`` (deprecated; still accepted).

    Shapes: ``stft(x)``: real ``[..., L]`` -> complex ``[..., num_freqs, T]`` with
    ``T = L // hop_length + 1`` (reflect padding of ``n_fft // 2`` at both ends);
    ``istft(X, length)`` inverts it to ``[..., length]``. The window is a non-persistent
    buffer (it follows ``.to(device)`` and is not part of a state dict).
    """

    window: Tensor

    def __init__(self, n_fft: int = 512, hop_length: int | None = None, sample_rate: int = 16000, *,
                 hop: int | None = None) -> None:
        super().__init__()
        if hop is not None:
            if hop_length is not None:
                raise TypeError("give hop_length or its deprecated alias hop, not both")
            warnings.warn("SpectrogramTransform(hop=...) is deprecated; use hop_length=...", DeprecationWarning,
                          stacklevel=2)
            hop_length = hop
        self.n_fft = _positive_int(n_fft, "n_fft")
        self.hop_length = _positive_int(128 if hop_length is None else hop_length, "hop_length")
        self.sample_rate = _positive_int(sample_rate, "sample_rate (Hz)")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length ({self.hop_length}) > n_fft ({self.n_fft}) leaves samples outside "
                             f"every frame; use hop_length <= n_fft (n_fft // 4 is usual)")
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)

    # ---- configuration ---------------------------------------------------------------
    @property
    def hop(self) -> int:
        """Alias of :attr:`hop_length` (read-only; the earlier name)."""
        return self.hop_length

    @property
    def num_freqs(self) -> int:
        """Frequency bins ``F = n_fft // 2 + 1`` (257 for n_fft 512)."""
        return self.n_fft // 2 + 1

    @property
    def num_bins(self) -> int:
        """Alias of :attr:`num_freqs` (the earlier name)."""
        return self.num_freqs

    def num_frames(self, length: int) -> int:
        """Frames ``T = length // hop_length + 1`` of the STFT of ``length`` samples."""
        return int(length) // self.hop_length + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain-data settings (for checkpoints loaded with ``weights_only=True``)."""
        return {"sample_rate": self.sample_rate, "n_fft": self.n_fft, "hop_length": self.hop_length,
                "window": "hann"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SpectrogramTransform:
        """Inverse of :meth:`to_dict`. Also reads the older key ``hop`` (as checkpoints of
        ``tools/train_bsdt.py`` store it); ``window`` may only be ``"hann"``."""
        d = dict(d)
        window = d.pop("window", "hann")
        if window != "hann":
            raise ValueError(f"SpectrogramTransform has a periodic Hann window only, got window={window!r}")
        if "hop" in d:
            if "hop_length" in d and d["hop_length"] != d["hop"]:
                raise ValueError(f"STFT settings give hop_length={d['hop_length']} and hop={d['hop']}; give one")
            d["hop_length"] = d.pop("hop")
        missing = [k for k in ("n_fft", "hop_length", "sample_rate") if k not in d]
        unknown = sorted(set(d) - {"n_fft", "hop_length", "sample_rate"})
        if missing or unknown:
            raise ValueError(f"STFT settings need n_fft, hop_length and sample_rate (Hz); "
                             f"missing {missing}, unknown {unknown} in {d}")
        return cls(n_fft=d["n_fft"], hop_length=d["hop_length"], sample_rate=d["sample_rate"])

    # ---- checks --------------------------------------------------------------------
    def check_sample_rate(self, sample_rate: int, what: str = "audio") -> None:
        """Raise :class:`SampleRateMismatchError` unless ``sample_rate`` (Hz) is this transform's."""
        if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or int(sample_rate) != self.sample_rate:
            raise SampleRateMismatchError(
                f"{what} is at {sample_rate} Hz but this model's STFT (n_fft {self.n_fft}, hop_length "
                f"{self.hop_length}) was built for {self.sample_rate} Hz; STFT settings for one rate give a "
                f"meaningless spectrogram at another. Fix: {resample_hint(self.sample_rate)}")

    def check_rate(self, sample_rate: int, what: str = "audio") -> None:
        """Alias of :meth:`check_sample_rate` (the earlier name)."""
        self.check_sample_rate(sample_rate, what)

    # ---- STFT ----------------------------------------------------------------------
    def stft(self, wave: Tensor) -> Tensor:
        """Real ``[..., L]`` -> complex ``[..., n_fft // 2 + 1, L // hop_length + 1]``."""
        lead = wave.shape[:-1]
        spec = torch.stft(wave.reshape(-1, wave.shape[-1]), self.n_fft, self.hop_length,
                          window=self.window.to(wave.device, wave.dtype), onesided=True, return_complex=True,
                          center=True, pad_mode="reflect")
        return spec.reshape(*lead, *spec.shape[-2:])

    def istft(self, spec: Tensor, length: int) -> Tensor:
        """Complex ``[..., n_fft // 2 + 1, T]`` -> real ``[..., length]`` (inverse of :meth:`stft`)."""
        lead = spec.shape[:-2]
        wave = torch.istft(spec.reshape(-1, *spec.shape[-2:]), self.n_fft, self.hop_length,
                           window=self.window.to(spec.device, spec.real.dtype), onesided=True, center=True,
                           length=int(length))
        return wave.reshape(*lead, wave.shape[-1])

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop_length={self.hop_length}, sample_rate={self.sample_rate}"
