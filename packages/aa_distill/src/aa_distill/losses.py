"""Time-domain and harmonic losses / metrics for alias-free distillation (auraloss style).

All functions take ``(pred, target)`` in this order (``target`` = the reference: the
bandlimited teacher), shapes ``[B, T]``, and a ``reduction``:

* ``"pooled"`` - one ratio of sums over the whole batch (Carson et al.'s training losses),
* ``"mean"``   - the ratio per item, then the batch mean (auraloss / NAM),
* ``"none"``   - the ratio per item, ``[B]``.

Ratios are linear (use ``10 * log10`` for dB). Nothing here checks for silent targets (a
hot loop must not synchronise with the device): a silent target gives ``inf``/``nan``; pass
``eps`` to regularise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch

from .bandlimit import BandlimitResult, HarmonicAnalysis, bandlimit, harmonic_analysis

_REDUCTIONS = ("pooled", "mean", "none")


def _check(pred: torch.Tensor, target: torch.Tensor, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(f"pred and target must both be [B, T], got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")


def _ratio(num: torch.Tensor, den: torch.Tensor, reduction: str, eps: float) -> torch.Tensor:
    """``num``/``den`` per item (``[B]``), reduced."""
    if reduction == "pooled":
        return num.sum() / (den.sum() + eps)
    r = num / (den + eps)
    return r.mean() if reduction == "mean" else r


def esr(pred: torch.Tensor, target: torch.Tensor, reduction: str = "pooled",
        eps: float = 0.0) -> torch.Tensor:
    """Error-to-signal ratio ``sum (pred - target)^2 / sum target^2``."""
    _check(pred, target, reduction)
    return _ratio((pred - target).pow(2).sum(-1), target.pow(2).sum(-1), reduction, eps)


def dc_loss(pred: torch.Tensor, target: torch.Tensor, reduction: str = "pooled",
            eps: float = 0.0) -> torch.Tensor:
    """DC error ``(mean_t(target - pred))^2 / mean_t(target^2)``.

    ``"pooled"`` reproduces the reference exactly: ``(mean_{b,t}(target - pred))^2 /
    mean_{b,t}(target^2)`` - the batch's DC errors are averaged *before* squaring, so errors
    of opposite sign in different items cancel. ``"mean"`` / ``"none"`` square per item.
    """
    _check(pred, target, reduction)
    if reduction == "pooled":
        return (target - pred).mean().pow(2) / (target.pow(2).mean() + eps)
    return _ratio((target - pred).mean(-1).pow(2), target.pow(2).mean(-1), reduction, eps)


class _RatioLoss(torch.nn.Module):
    """A ratio function as a loss module: ``forward(pred, target) -> (total, {key: total})``.

    Subclasses set ``_key`` (the name of the detached term) and ``_fn`` (the ratio function,
    called as ``_fn(pred, target, reduction, eps)``).
    """

    _key: ClassVar[str]
    _fn: ClassVar[Callable[[torch.Tensor, torch.Tensor, str, float], torch.Tensor]]

    def __init__(self, reduction: str = "pooled", eps: float = 0.0) -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction, self.eps = reduction, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return ``(total, {key: total.detach()})`` for ``pred``, ``target`` of shape ``[B, T]``."""
        total = type(self)._fn(pred, target, self.reduction, self.eps)
        return total, {self._key: total.detach()}


class ESRLoss(_RatioLoss):
    """:func:`esr` as a module: ``forward(pred, target) -> (total, {"esr": total})``, the
    toolkit's loss convention (estimate first; ``total`` keeps its graph, terms are detached)."""

    _key = "esr"
    _fn = staticmethod(esr)


class DCLoss(_RatioLoss):
    """:func:`dc_loss` as a module: ``forward(pred, target) -> (total, {"dc": total})``."""

    _key = "dc"
    _fn = staticmethod(dc_loss)


def asr(x: torch.Tensor | BandlimitResult, f0: torch.Tensor | float | None = None,
        sample_rate: int | None = None, reduction: str = "none", eps: float = 0.0) -> torch.Tensor:
    """Aliasing-to-signal ratio of the last second: ``sum aliases^2 / sum bandlimited^2``
    (the paper's ESR-S), linear, ``[B]`` with ``reduction="none"``.

    ``x``: signals ``[B, T >= fs]`` with ``f0`` (Hz, scalar or ``[B]``) and ``sample_rate``
    (Hz), bandlimited here; or a :class:`BandlimitResult` already computed for them
    (``asr(bandlimit(x, f0, fs))``), which is used as it is: nothing is recomputed and the
    value is the same. With a result, leave ``f0`` out (the result holds it); a
    ``sample_rate`` given with it must be the result's.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if isinstance(x, BandlimitResult):
        if f0 is not None:
            raise TypeError("asr(result): the BandlimitResult already holds f0; call asr(result) or "
                            "asr(x, f0, sample_rate), not both")
        if sample_rate is not None and sample_rate != x.analysis.sample_rate:
            raise ValueError(f"asr(result, sample_rate={sample_rate}): the result was computed at "
                             f"{x.analysis.sample_rate} Hz; pass its rate or leave sample_rate out")
        r = x
    else:
        if f0 is None or sample_rate is None:
            raise TypeError("asr(x, f0, sample_rate) needs f0 (Hz) and sample_rate (Hz) for signals "
                            "x; or pass a BandlimitResult: asr(bandlimit(x, f0, sample_rate))")
        r = bandlimit(x, f0, sample_rate)
    return _ratio(r.aliases.pow(2).sum(-1), r.bandlimited.pow(2).sum(-1), reduction, eps)


def hesr_parts(pred: HarmonicAnalysis, target: HarmonicAnalysis
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-harmonic parts of HESR: ``(error [B, H], reference [B, H], frequencies [B, H])``,
    with ``error = (|P_m| - |T_m|)^2`` and ``reference = |T_m|^2`` (peak-amplitude units,
    zero where a harmonic lies above Nyquist). Sum them over any set of harmonics (e.g. a
    frequency band) and divide to get that set's HESR."""
    if pred.amplitudes.shape != target.amplitudes.shape or not torch.equal(pred.f0, target.f0):
        raise ValueError("pred and target analyses must share f0 and shape")
    p, t = pred.magnitudes, target.magnitudes
    return (p - t).pow(2), t.pow(2), target.frequencies


def hesr(pred: torch.Tensor, target: torch.Tensor, f0: torch.Tensor | float, sample_rate: int,
         reduction: str = "none", eps: float = 0.0) -> torch.Tensor:
    """Harmonic ESR: ESR of the scalloping-corrected harmonic magnitudes ``2|C_m|``
    (``sum_m (|P_m| - |T_m|)^2 / sum_m |T_m|^2`` over ``m f0 <= fs/2``, DC excluded).

    This is the paper's HESR (ESR of the Chebyshev magnitude spectra of the bandlimited
    signals) without the window's main-lobe shape: with non-overlapping main lobes the two
    agree, because each lobe carries ``|C_m|^2 N sum(w^2)`` whatever its bin offset.
    ``pred``, ``target``: ``[B, T >= fs]``.
    """
    _check(pred, target, reduction)
    err, ref, _ = hesr_parts(harmonic_analysis(pred, f0, sample_rate),
                             harmonic_analysis(target, f0, sample_rate))
    return _ratio(err.sum(-1), ref.sum(-1), reduction, eps)


class HarmonicMagnitudeLoss(torch.nn.Module):
    """Weighted squared dB error of the first harmonics' magnitudes (proposed in the research
    notes to keep the teacher's harmonics), built on the scalloping-corrected amplitudes of :func:`harmonic_analysis`
    with one f0 per item (the notes' version used one f0 per batch, a plain rFFT and nearest
    bins).

    ``loss = mean_b sum_k w_k (L_pred,k - L_target,k)^2`` over the harmonics ``k <=
    num_harmonics`` below Nyquist, ``L = 20 log10 max(2|C_k|, floor)`` with the floor
    ``floor_db`` below the target's strongest harmonic (so inaudible harmonics of the target
    cannot dominate), and weights ``1/k`` (``weighting="inverse"``) or ``1``
    (``"uniform"``) normalised to sum to 1 per item.

    ``forward(pred [B, T], target [B, T], f0 [B]) -> (total, {"harmonic": total})``
    (``T >= sample_rate``): ``total`` is the mean over items; with ``reduction="none"`` the
    per-item losses ``[B]``.
    """

    def __init__(self, sample_rate: int, num_harmonics: int = 10, weighting: str = "inverse",
                 floor_db: float = -80.0, reduction: str = "mean") -> None:
        super().__init__()
        if weighting not in ("inverse", "uniform"):
            raise ValueError(f"weighting must be 'inverse' or 'uniform', got {weighting!r}")
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        self.reduction = reduction
        if num_harmonics < 1:
            raise ValueError(f"num_harmonics must be >= 1, got {num_harmonics}")
        self.sample_rate, self.num_harmonics = sample_rate, int(num_harmonics)
        self.weighting, self.floor_db = weighting, float(floor_db)

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                f0: torch.Tensor | float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        _check(pred, target, "none")
        k = self.num_harmonics
        pa = harmonic_analysis(pred, f0, self.sample_rate)
        ta = harmonic_analysis(target, f0, self.sample_rate)
        p, t = pa.magnitudes[:, :k], ta.magnitudes[:, :k]
        valid = ta.valid[:, :k]
        floor = t.amax(-1, keepdim=True).detach() * 10.0 ** (self.floor_db / 20.0)
        floor = floor.clamp_min(torch.finfo(torch.float64).tiny)
        lp = 20.0 * torch.log10(torch.maximum(p, floor))
        lt = 20.0 * torch.log10(torch.maximum(t, floor))
        idx = torch.arange(1, p.shape[-1] + 1, device=p.device, dtype=p.dtype)
        w = (1.0 / idx if self.weighting == "inverse" else torch.ones_like(idx)).expand_as(p)
        w = torch.where(valid, w, torch.zeros_like(w))
        w = w / w.sum(-1, keepdim=True)
        per_item = (w * (lp - lt).pow(2)).sum(-1)
        total = (per_item if self.reduction == "none" else per_item.mean()).to(pred.dtype)
        return total, {"harmonic": total.detach()}


def lambda_weights(lam: float) -> tuple[float, float]:
    """``(esr_weight, nmr_weight) = (1 / (1 + lam), lam / (1 + lam))`` (the paper's λ)."""
    if not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lambda must be a finite number >= 0, got {lam!r}")
    return 1.0 / (1.0 + lam), lam / (1.0 + lam)


def curriculum_lambda(epoch: float, max_epochs: float, start: float = 3.0,
                      end: float = 0.3) -> float:
    """Exponential curriculum ``start * (end / start) ** (epoch / max_epochs)`` (3.0 -> 0.3)."""
    if max_epochs <= 0:
        raise ValueError(f"max_epochs must be > 0, got {max_epochs}")
    if start <= 0 or end <= 0:
        raise ValueError(f"start and end must be > 0, got {start} and {end}")
    return start * (end / start) ** (epoch / max_epochs)

