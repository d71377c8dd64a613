"""The full distillation loss of Carson et al.:

    L = esr_w * ESR + nmr_w * NMR + dc_w * DC (+ harm_w * harmonic-magnitude loss)

with ``(esr_w, nmr_w) = (1/(1+λ), λ/(1+λ))`` (λ = 1 is the reference's 0.5 / 0.5), all
three main terms computed after the Kaiser lowpass pre-emphasis on both signals (designed
for the model's sample rate, pass / stop edges 12 / 16 kHz unless given). λ can change per
call (curriculum, see :func:`aa_distill.curriculum_lambda`).

How the batch is reduced (``reduction``):

* ``"pooled"`` (the reference's choices): ESR and DC pooled over the batch (one ratio of
  sums; ``esr_reduction`` / ``dc_reduction`` can change that), NMR as the geometric mean
  over items, the harmonic term as the mean over items;
* ``"mean"``: every term per item, then the arithmetic mean over the batch;
* ``"none"``: every term and the total per item, ``[B]`` (their mean is ``"mean"``'s value).
"""

from __future__ import annotations

import torch

from .losses import HarmonicMagnitudeLoss, dc_loss, esr, lambda_weights
from .lowpass import KaiserLowpass
from .nmr import NMRLoss

_REDUCTIONS = ("pooled", "mean", "none")


class DistillationLoss(torch.nn.Module):
    """``forward(pred [B, T], target [B, T], f0=None, lam=None) -> (total, terms)``.

    ``target`` is the bandlimited teacher (same length as ``pred``); ``terms`` holds the
    detached values of every term (``"esr"``, ``"nmr"``, ``"dc"``, and ``"harmonic"`` when
    its weight is non-zero; the harmonic term needs ``f0`` and ``T >= sample_rate``). With
    ``reduction="none"`` the total and every term are ``[B]``; otherwise scalars.

    Parameters
    ----------
    sample_rate : Hz of the signals (the lowpass and NMR are built for it).
    lam : default λ (1.0).
    dc_weight : weight of the DC term (1.0 as the reference).
    harmonic_weight : weight of :class:`HarmonicMagnitudeLoss` (0 = off).
    lowpass : apply the Kaiser lowpass first (True as the reference).
    lowpass_hz : its ``(pass, stop)`` edge frequencies in Hz (``(12000, 16000)`` as the
        reference; the stop edge must lie below Nyquist).
    nmr_dtype : compute dtype of the NMR (``torch.float32`` is ~2x cheaper and within
        0.01 dB of float64; ``None`` = the inputs' dtype).
    reduction : ``"pooled"`` (default), ``"mean"`` or ``"none"``; see the module docs.
    esr_reduction, dc_reduction : with ``reduction="pooled"``, see :func:`aa_distill.esr`
        (``"pooled"`` as the reference); ``"mean"`` / ``"none"`` reduce every term per item.
    """

    def __init__(self, sample_rate: float, lam: float = 1.0, dc_weight: float = 1.0,
                 harmonic_weight: float = 0.0, lowpass: bool = True,
                 nmr_dtype: torch.dtype | None = None, esr_reduction: str | None = None,
                 dc_reduction: str | None = None, num_harmonics: int = 10, *,
                 lowpass_hz: tuple[float, float] = (12_000.0, 16_000.0),
                 reduction: str = "pooled") -> None:
        super().__init__()
        lambda_weights(lam)  # validates
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if reduction != "pooled":
            for name, value in (("esr_reduction", esr_reduction), ("dc_reduction", dc_reduction)):
                if value not in (None, reduction):
                    raise ValueError(f"{name}={value!r} contradicts reduction={reduction!r}: with "
                                     f"reduction='mean' or 'none' every term is reduced per item; "
                                     f"leave {name} out")
        for name, value in (("esr_reduction", esr_reduction), ("dc_reduction", dc_reduction)):
            if value not in (None, *_REDUCTIONS):
                raise ValueError(f"{name} must be one of {_REDUCTIONS}, got {value!r}")
        if len(lowpass_hz) != 2:
            raise ValueError(f"lowpass_hz must be (pass_hz, stop_hz), got {lowpass_hz!r}")
        self.sample_rate, self.lam = sample_rate, float(lam)
        self.dc_weight, self.harmonic_weight = float(dc_weight), float(harmonic_weight)
        self.reduction = reduction
        if reduction == "pooled":
            self.esr_reduction, self.dc_reduction = esr_reduction or "pooled", dc_reduction or "pooled"
        else:  # per item, then averaged in forward() for "mean"
            self.esr_reduction = self.dc_reduction = "none"
        self.lowpass = KaiserLowpass(sample_rate, float(lowpass_hz[0]), float(lowpass_hz[1])) \
            if lowpass else None
        self.nmr = NMRLoss(sample_rate, reduction="geometric" if reduction == "pooled" else "none",
                           dtype=nmr_dtype)
        self.harmonic = (HarmonicMagnitudeLoss(int(sample_rate), num_harmonics,
                                               reduction="mean" if reduction == "pooled" else "none")
                         if harmonic_weight > 0 else None)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                f0: torch.Tensor | float | None = None, lam: float | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        w_esr, w_nmr = lambda_weights(self.lam if lam is None else lam)
        p, t = (self.lowpass(pred), self.lowpass(target)) if self.lowpass is not None \
            else (pred, target)
        terms = {"esr": esr(p, t, self.esr_reduction), "nmr": self.nmr(p, t)[0],
                 "dc": dc_loss(p, t, self.dc_reduction)}
        total = w_esr * terms["esr"] + w_nmr * terms["nmr"].to(terms["esr"].dtype) \
            + self.dc_weight * terms["dc"]
        if self.harmonic is not None:
            if f0 is None:
                raise ValueError("the harmonic-magnitude term needs f0")
            terms["harmonic"] = self.harmonic(pred, target, f0)[0]
            total = total + self.harmonic_weight * terms["harmonic"]
        if self.reduction == "mean":
            total = total.mean()
            terms = {k: v.mean() for k, v in terms.items()}
        return total, {k: v.detach() for k, v in terms.items()}

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, lam={self.lam}, dc_weight={self.dc_weight}, "
                f"harmonic_weight={self.harmonic_weight}, reduction={self.reduction!r}")
