"""The MetricGAN terms of the BSRNN recipe: the discriminator's update and the generator's loss.

The discriminator ``D(reference, test)`` (:class:`bandsplit.MetricDiscriminator`) sees two
compressed magnitudes ``(|X| + 1e-10)^0.3`` ``[B, 1, F, T]`` and regresses a normalised quality
score in [0, 1] (wide-band PESQ through :func:`bandsplit.pesq_to_target`):

- discriminator: ``MSE(D(|S|^c, |S|^c), 1) + MSE(D(|S|^c, |Ŝ|^c), q)`` where ``q`` is the
  normalised score of the estimate (items without a score, e.g. a silent crop with no PESQ, are
  dropped from the second term instead of skipping the whole batch as the reference does);
- generator: ``MSE(D(|S|^c, |Ŝ|^c), 1)``, added to the reconstruction loss with a weight.

Scores come from the caller (:func:`score_batch` runs any per-utterance metric, e.g.
``se_metrics.pesq``; :func:`submit_score_batch` starts it on a process pool and returns, so
the targets of a step can be computed while its generator update runs), so this module needs
no metric package.
"""

from __future__ import annotations

from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .recipe import compress_magnitude

if TYPE_CHECKING:
    import numpy as np

__all__ = ["PendingBatchScores", "metric_discriminator_loss", "metric_discriminator_step", "metric_generator_loss",
           "score_batch", "submit_score_batch"]


def _check_specs(clean_spec: Tensor, est_spec: Tensor) -> None:
    if not (clean_spec.is_complex() and est_spec.is_complex()) or clean_spec.dim() != 3 \
            or clean_spec.shape != est_spec.shape:
        raise ValueError(f"clean_spec and est_spec must be complex spectrograms [B, F, T] of one shape, got "
                         f"{clean_spec.dtype} {list(clean_spec.shape)} and {est_spec.dtype} {list(est_spec.shape)}")


def metric_generator_loss(disc: nn.Module, clean_spec: Tensor, est_spec: Tensor, *, power: float = 0.3) -> Tensor:
    """The generator's MetricGAN term ``MSE(D(|S|^c, |Ŝ|^c), 1)`` (scalar, differentiable in ``est_spec``).

    ``clean_spec``, ``est_spec``: complex ``[B, F, T]``; ``power``: the magnitude compression ``c``.
    """
    _check_specs(clean_spec, est_spec)
    score = disc(compress_magnitude(clean_spec, power).unsqueeze(1), compress_magnitude(est_spec, power).unsqueeze(1))
    return F.mse_loss(score, torch.ones_like(score))


def metric_discriminator_loss(disc: nn.Module, clean_spec: Tensor, est_spec: Tensor, est_target: Tensor, *,
                              power: float = 0.3) -> Tensor:
    """``MSE(D(|S|^c, |S|^c), 1) + MSE(D(|S|^c[keep], |Ŝ|^c[keep]), q[keep])`` (scalar).

    Args:
        disc: ``D(reference [B, 1, F, T], test [B, 1, F, T]) -> [B, 1]``.
        clean_spec, est_spec: complex ``[B, F, T]`` (pass ``est_spec.detach()`` for a
            discriminator update).
        est_target: ``[B]`` normalised scores ``q`` of the estimates (e.g.
            ``pesq_to_target(pesq_wb)``); non-finite entries mark items without a score, which
            are left out of the second term (no second term when none has one).
        power: the magnitude compression ``c``.
    """
    _check_specs(clean_spec, est_spec)
    b = clean_spec.shape[0]
    if est_target.shape != (b,):
        raise ValueError(f"est_target must hold one score per item, shape [{b}], got {list(est_target.shape)}")
    c_mag = compress_magnitude(clean_spec, power).unsqueeze(1)
    e_mag = compress_magnitude(est_spec, power).unsqueeze(1)
    ref = disc(c_mag, c_mag)
    loss = F.mse_loss(ref, torch.ones_like(ref))
    keep = torch.isfinite(est_target).nonzero().squeeze(1).to(c_mag.device)
    if keep.numel():
        target = est_target.to(device=c_mag.device, dtype=ref.dtype)[keep].unsqueeze(1)
        loss = loss + F.mse_loss(disc(c_mag[keep], e_mag[keep]), target)
    return loss


def metric_discriminator_step(disc: nn.Module, optimizer: torch.optim.Optimizer, clean_spec: Tensor,
                              est_spec: Tensor, est_target: Tensor, *, clip: float | None = 5.0,
                              power: float = 0.3) -> Tensor:
    """One discriminator update on :func:`metric_discriminator_loss`; returns the loss (detached).

    ``est_spec`` is detached here (the generator gets no gradient from this step). Gradients of
    ``disc`` are zeroed first, clipped to norm ``clip`` (``None``: no clipping), then
    ``optimizer.step()``.
    """
    loss = metric_discriminator_loss(disc, clean_spec, est_spec.detach(), est_target, power=power)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(disc.parameters(), clip)
    optimizer.step()
    return loss.detach()


def _score_item(metric: Callable[[np.ndarray, np.ndarray], float], clean: np.ndarray, est: np.ndarray) -> float:
    """One item's score; NaN where the metric raises (module level: it runs in pool workers)."""
    try:
        return float(metric(clean, est))
    except Exception:  # noqa: BLE001 - an item without a score is left out, not the batch
        return float("nan")


class PendingBatchScores:
    """The scores :func:`submit_score_batch` started; :meth:`result` waits for exactly them."""

    def __init__(self, items: list[Future | float], device: torch.device) -> None:
        self._items, self._device = items, device

    def result(self) -> Tensor:
        """``[B]`` float32 scores on the batch's device (NaN where the metric raised)."""
        scores = [i.result() if isinstance(i, Future) else i for i in self._items]
        return torch.tensor(scores, dtype=torch.float32, device=self._device)


def submit_score_batch(metric: Callable[[np.ndarray, np.ndarray], float], clean: Tensor, est: Tensor,
                       executor: Executor | None = None) -> PendingBatchScores:
    """Start :func:`score_batch`'s per-utterance scores of waveforms ``[B, L]`` and return at once.

    With an ``executor`` (e.g. ``se_metrics.metric_pool()``) each item is one task, so the
    caller can go on (e.g. with the generator's backward pass) while they are scored; the
    metric must then pickle by reference (a module-level function or a ``functools.partial``
    of one, not a lambda). Without one the items are scored here, now. Either way
    ``.result()`` equals :func:`score_batch` exactly: the same function on the same rows.
    """
    if clean.dim() != 2 or clean.shape != est.shape:
        raise ValueError(f"clean and est must be waveforms [B, L] of one shape, got {list(clean.shape)} and "
                         f"{list(est.shape)}")
    c, e = clean.detach().cpu().numpy(), est.detach().cpu().numpy()
    if executor is None:
        items: list[Future | float] = [_score_item(metric, c[i], e[i]) for i in range(c.shape[0])]
    else:
        items = [executor.submit(_score_item, metric, c[i], e[i]) for i in range(c.shape[0])]
    return PendingBatchScores(items, clean.device)


def score_batch(metric: Callable[[np.ndarray, np.ndarray], float], clean: Tensor, est: Tensor,
                executor: Executor | None = None) -> Tensor:
    """Per-utterance scores ``[B]`` (float32, on ``clean``'s device) of waveforms ``[B, L]``.

    ``metric(clean_row, est_row)`` gets float NumPy rows (e.g. ``lambda c, e: se_metrics.pesq(c, e,
    16000, mode="wb")``); an item whose metric raises (a silent crop has no PESQ) scores NaN,
    which :func:`metric_discriminator_loss` leaves out. The metric runs on the CPU, item by
    item, or in parallel on ``executor`` (see :func:`submit_score_batch`; same values).
    """
    return submit_score_batch(metric, clean, est, executor).result()
