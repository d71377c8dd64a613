"""The full distillation loss of seed 003 / Carson et al.:

    L = esr_w * ESR + nmr_w * NMR + dc_w * DC (+ harm_w * harmonic-magnitude loss)

with ``(esr_w, nmr_w) = (1/(1+λ), λ/(1+λ))`` (λ = 1 is the reference's 0.5 / 0.5), all
three main terms computed after the Kaiser lowpass pre-emphasis on both signals (designed
for the model's sample rate), ESR and DC pooled over the batch and NMR as the geometric mean
over items (the reference's choices). λ can change per call (curriculum, see
:func:`aa_distill.curriculum_lambda`).
"""

from __future__ import annotations

import torch

from .losses import HarmonicMagnitudeLoss, dc_loss, esr, lambda_weights
from .lowpass import KaiserLowpass
from .nmr import NMRLoss


class DistillationLoss(torch.nn.Module):
    """``forward(pred [B, T], target [B, T], f0=None, lam=None) -> (total, terms)``.

    ``target`` is the bandlimited teacher (same length as ``pred``); ``terms`` holds the
    detached values of every term (``"esr"``, ``"nmr"``, ``"dc"``, and ``"harmonic"`` when
    its weight is non-zero; the harmonic term needs ``f0`` and ``T >= sample_rate``).

    Parameters
    ----------
    sample_rate : Hz of the signals (the lowpass and NMR are built for it).
    lam : default λ (1.0).
    dc_weight : weight of the DC term (1.0 as the reference).
    harmonic_weight : weight of :class:`HarmonicMagnitudeLoss` (0 = off).
    lowpass : apply the 12/16 kHz Kaiser lowpass first (True as the reference).
    nmr_dtype : compute dtype of the NMR (``torch.float32`` is ~2x cheaper and within
        0.01 dB of float64; ``None`` = the inputs' dtype).
    esr_reduction, dc_reduction : see :func:`aa_distill.esr` (``"pooled"`` as the reference).
    """

    def __init__(self, sample_rate: float, lam: float = 1.0, dc_weight: float = 1.0,
                 harmonic_weight: float = 0.0, lowpass: bool = True,
                 nmr_dtype: torch.dtype | None = None, esr_reduction: str = "pooled",
                 dc_reduction: str = "pooled", num_harmonics: int = 10) -> None:
        super().__init__()
        lambda_weights(lam)  # validates
        self.sample_rate, self.lam = sample_rate, float(lam)
        self.dc_weight, self.harmonic_weight = float(dc_weight), float(harmonic_weight)
        self.esr_reduction, self.dc_reduction = esr_reduction, dc_reduction
        self.lowpass = KaiserLowpass(sample_rate) if lowpass else None
        self.nmr = NMRLoss(sample_rate, reduction="geometric", dtype=nmr_dtype)
        self.harmonic = (HarmonicMagnitudeLoss(int(sample_rate), num_harmonics)
                         if harmonic_weight > 0 else None)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                f0: torch.Tensor | float | None = None, lam: float | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        w_esr, w_nmr = lambda_weights(self.lam if lam is None else lam)
        p, t = (self.lowpass(pred), self.lowpass(target)) if self.lowpass is not None \
            else (pred, target)
        terms = {"esr": esr(p, t, self.esr_reduction), "nmr": self.nmr(p, t),
                 "dc": dc_loss(p, t, self.dc_reduction)}
        total = w_esr * terms["esr"] + w_nmr * terms["nmr"].to(terms["esr"].dtype) \
            + self.dc_weight * terms["dc"]
        if self.harmonic is not None:
            if f0 is None:
                raise ValueError("the harmonic-magnitude term needs f0")
            terms["harmonic"] = self.harmonic(pred, target, f0)
            total = total + self.harmonic_weight * terms["harmonic"]
        return total, {k: v.detach() for k, v in terms.items()}
