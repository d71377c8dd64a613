"""Kaiser-window FIR lowpass used as the loss pre-emphasis (Carson et al.: pass 12 kHz,
stop 16 kHz, 80 dB), designed for the sample rate actually in use.

The reference training script built this filter without passing ``fs``, so its 48 kHz models
were trained with the 44.1 kHz design (edges 13.06 / 17.41 kHz). Here the rate is required.

Order (Kaiser's formula, as the reference): ``N = ceil((A - 7.95) / (14.36 * df))`` with
``df = (f_stop - f_pass) / fs``, rounded up to even; ``N + 1`` taps from
``scipy.signal.firwin`` with cutoff ``(f_pass + f_stop) / 2`` and a Kaiser window of
``beta = kaiser_beta(A)``. 48 kHz -> 63 taps, 44.1 kHz -> 57 taps.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import firwin, kaiser_beta


def kaiser_lowpass_taps(sample_rate: float, pass_hz: float = 12_000.0, stop_hz: float = 16_000.0,
                        attenuation_db: float = 80.0) -> np.ndarray:
    """Linear-phase lowpass taps (float64, odd length) for ``sample_rate`` Hz."""
    fs = float(sample_rate)
    if not math.isfinite(fs) or fs <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    if not 0 < pass_hz < stop_hz:
        raise ValueError(f"need 0 < pass_hz < stop_hz, got {pass_hz} and {stop_hz}")
    if stop_hz >= fs / 2:
        raise ValueError(f"the stopband edge {stop_hz} Hz must lie below Nyquist "
                         f"({fs / 2} Hz at {fs} Hz); lower pass_hz/stop_hz for this rate")
    if attenuation_db <= 21:
        raise ValueError(f"attenuation_db must exceed 21 dB for this design, got {attenuation_db}")
    df = (stop_hz - pass_hz) / fs
    order = int(math.ceil((attenuation_db - 7.95) / 14.36 / df))
    order += order % 2
    return firwin(order + 1, cutoff=(pass_hz + stop_hz) / 2, fs=fs,
                  window=("kaiser", kaiser_beta(attenuation_db))).astype(np.float64)


class KaiserLowpass(torch.nn.Module):
    """Zero-phase FIR lowpass: ``forward(x [B, T]) -> [B, T]`` (same length; the signal is
    zero-padded by ``(taps - 1) / 2`` at both ends, as the reference does).

    The taps are a float64 buffer, cast to the input's dtype at run time.
    """

    def __init__(self, sample_rate: float, pass_hz: float = 12_000.0, stop_hz: float = 16_000.0,
                 attenuation_db: float = 80.0) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.pass_hz, self.stop_hz, self.attenuation_db = pass_hz, stop_hz, attenuation_db
        taps = kaiser_lowpass_taps(sample_rate, pass_hz, stop_hz, attenuation_db)
        self.register_buffer("taps", torch.from_numpy(taps))

    @property
    def num_taps(self) -> int:
        return int(self.taps.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"expected [B, T] signals, got {tuple(x.shape)}")
        k = self.taps.to(dtype=x.dtype, device=x.device).view(1, 1, -1)
        # symmetric taps: correlation == convolution
        return F.conv1d(x[:, None, :], k, padding=self.num_taps // 2)[:, 0, :]

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, pass_hz={self.pass_hz}, stop_hz={self.stop_hz}, "
                f"attenuation_db={self.attenuation_db}, taps={self.num_taps}")
