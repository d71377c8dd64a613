"""An analytic teacher: a static waveshaper ``tanh(g x)`` run at ``factor`` times the rate.

``OversampledWaveshaper`` maps ``[B, T] -> [B, T]`` at ``sample_rate`` Hz like a ``.nam``
model, so the distillation tools can run anywhere without a capture file:

1. upsample by ``factor``: zero-stuffing and a linear-phase Kaiser FIR interpolation
   filter, evaluated polyphase (one ``ceil(L / factor)``-tap sub-filter per output phase, so
   no multiplication by the stuffed zeros),
2. ``y = tanh(gain * u)`` (or ``hardclip``: ``clamp(gain * u, -1, 1)``),
3. lowpass with the same FIR and keep every ``factor``-th sample, again polyphase (the
   ``factor`` input phases each meet one sub-filter; only the kept samples are computed).

The FIR (:func:`aa_distill.kaiser_lowpass_taps` at ``factor * sample_rate``) passes
``5/12 fs`` (20 kHz at 48 kHz) and stops from ``fs / 2`` with ``attenuation_db``. Both
filters are causal, so the model starts from zero history, has a finite
:attr:`receptive_field` and delays the signal by :attr:`delay` samples. Oversampling
reduces, but does not remove, aliasing: the harmonics of ``tanh(g x)`` above
``factor * fs / 2`` still fold back (this is a teacher to distil, not a reference).

The filter taps are float64 buffers cast to the input's dtype: run it in float64 for targets.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .lowpass import kaiser_lowpass_taps

_SHAPES = ("tanh", "hardclip")


class OversampledWaveshaper(nn.Module):
    """``forward(x [B, T]) -> [B, T]``: ``shape(gain * x)`` computed at ``factor x`` the rate.

    Parameters
    ----------
    sample_rate : Hz of input and output (integer).
    gain : pre-gain ``g`` of the nonlinearity (10: ``tanh(10 x)``, a hard overdrive).
    factor : oversampling factor (8).
    shape : ``"tanh"`` or ``"hardclip"``.
    attenuation_db : stopband attenuation of the resampling FIR (100 dB).
    """

    def __init__(self, sample_rate: int = 48_000, gain: float = 10.0, factor: int = 8,
                 shape: str = "tanh", attenuation_db: float = 100.0) -> None:
        super().__init__()
        if isinstance(sample_rate, bool) or not float(sample_rate).is_integer() or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer number of Hz, got "
                             f"{sample_rate!r}")
        if not math.isfinite(gain) or gain <= 0:
            raise ValueError(f"gain must be a finite number > 0, got {gain!r}")
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor!r}")
        if shape not in _SHAPES:
            raise ValueError(f"shape must be one of {_SHAPES}, got {shape!r}")
        self.sample_rate = int(sample_rate)
        self.gain, self.factor, self.shape = float(gain), factor, shape
        self.attenuation_db = float(attenuation_db)
        if factor > 1:
            fs = self.sample_rate
            taps = kaiser_lowpass_taps(factor * fs, pass_hz=fs * 5 / 12, stop_hz=fs / 2,
                                       attenuation_db=attenuation_db)
            self.register_buffer("taps", torch.from_numpy(taps))
        else:
            self.register_buffer("taps", torch.ones(1, dtype=torch.float64))

    @property
    def num_taps(self) -> int:
        return int(self.taps.numel())

    @property
    def receptive_field(self) -> int:
        """Input samples that one output sample depends on (``1 + ceil(2 (L - 1) / factor)``
        for ``L`` taps; 1 without oversampling)."""
        return 1 + math.ceil(2 * (self.num_taps - 1) / self.factor)

    @property
    def delay(self) -> float:
        """Group delay in samples at ``sample_rate`` (two linear-phase FIRs)."""
        return (self.num_taps - 1) / self.factor

    def describe(self) -> str:
        """A one-line description (recorded by students distilled from it)."""
        return (f"{self.shape}({self.gain:g} x) at {self.factor}x {self.sample_rate} Hz, "
                f"{self.num_taps}-tap {self.attenuation_db:g} dB Kaiser resampling")

    def spec(self) -> dict:
        """JSON-serialisable constructor arguments."""
        return {"sample_rate": self.sample_rate, "gain": self.gain, "factor": self.factor,
                "shape": self.shape, "attenuation_db": self.attenuation_db}

    def _shape(self, u: torch.Tensor) -> torch.Tensor:
        v = self.gain * u
        return torch.tanh(v) if self.shape == "tanh" else v.clamp(-1.0, 1.0)

    def _polyphase(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Interpolation weights ``[r, 1, K]`` and decimation weights ``[1, r, K]`` (``K =
        ceil(L / r)`` taps per phase, time-reversed for ``conv1d``)."""
        r, n = self.factor, self.num_taps
        k = -(-n // r)
        h = F.pad(self.taps, (0, r * k - n))  # zero-padded to r K taps
        j = torch.arange(k, device=h.device)
        q = torch.arange(r, device=h.device)
        up = r * h.view(k, r).T.flip(1)  # up[p, j] = r h[(K-1-j) r + p]
        down = h[r * (k - 1 - j)[None, :] + (r - 1 - q)[:, None]]  # down[q, j] = h[r(K-1-j) + r-1-q]
        return (up[:, None, :].to(device=device, dtype=dtype),
                down[None].to(device=device, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2:
            raise ValueError(f"expected audio of shape [B, T], got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected float32 or float64 audio, got {x.dtype}")
        if self.factor == 1:
            return self._shape(x)
        r, (b, t) = self.factor, x.shape
        up, down = self._polyphase(x.dtype, x.device)
        k = up.shape[-1]
        # interpolation, phase p of u[r n + p] = r sum_k h[r k + p] x[n - k] (causal)
        u = F.conv1d(F.pad(x[:, None, :], (k - 1, 0)), up)  # [B, r, T]
        y = self._shape(u.transpose(1, 2).reshape(b, r * t))
        # decimation out[m] = sum_j h[j] y[r m - j]: with y'[i] = y[i - (r - 1)], phase q of
        # y'[r n + q] meets taps h[r k + r - 1 - q] at n = m - k
        yp = F.pad(y, (r - 1, 1)).view(b, t + 1, r).transpose(1, 2)  # [B, r, T + 1]
        return F.conv1d(F.pad(yp, (k - 1, 0)), down)[:, 0, :t]

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, gain={self.gain}, factor={self.factor}, "
                f"shape={self.shape!r}, taps={self.num_taps}, "
                f"receptive_field={self.receptive_field}")
