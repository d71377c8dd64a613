"""Classifier-free guidance (one batched forward) and uncertainty-adaptive guidance scales.

Guided score (Ho & Salimans 2022, in the convention of moonx010's noise-conditioned sgmse fork):
``s = s_uncond + w (s_cond - s_uncond)``: ``w = 1`` is the plain conditional score, ``w = 0``
the unconditional one (``y`` stays an input either way: it defines the SDE mean; only the
noise embedding is replaced by the learned null embedding). Some speech papers write
``(1 + w) s_cond - w s_uncond``; that is this formula at ``w + 1``.
:func:`guided_score` evaluates both halves in ONE forward of batch ``2B``.

Adaptive guidance (this toolkit's design; no public reference): a per-utterance
``w_i = w_max * u_i`` with a reliability ``u_i`` in [0, 1] of the noise embedding,
computed once per utterance:

* ``"nc"``: NC-head confidence rescaled so a uniform posterior gives 0 and a one-hot one 1,
  ``u = (max softmax - 1/C) / (1 - 1/C)`` (the raw max softmax never goes below 1/C);
* ``"nc_raw"``: the raw rule ``u = max softmax`` (the maximum softmax probability, the
  baseline confidence of Hendrycks & Gimpel 2017), for comparison with ``"nc"``: it lies in
  [1/C, 1], so even a uniform posterior keeps ``w = w_max / C`` of the conditioning;
* ``"knn"``: ``u = 1 / (1 + d / tau)`` with ``d`` the mean distance to the ``k`` nearest
  embeddings of a bank of training embeddings (:class:`EmbeddingBank`, saved in the model's
  state dict, so inside every checkpoint); ``tau`` is the distance at which ``u = 1/2``
  (fitted to a quantile of the bank's own distances; :meth:`EmbeddingBank.set_tau` changes it);
* ``"mix"``: ``alpha * u_nc + (1 - alpha) * u_knn``;
* ``"static"``: ``u = 1`` (the baseline: a fixed ``w``).

``"cond"`` and ``"uncond"`` are the two un-guided scores (one forward of batch ``B`` each).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn as nn
from torch import Tensor

from .conditioning import BackboneCond

__all__ = [
    "ADAPTIVE_MODES",
    "EmbeddingBank",
    "GUIDANCE_MODES",
    "GuidedCond",
    "expand_cond",
    "guidance_weights",
    "guided_score",
    "nc_certainty",
    "nc_confidence",
    "nc_entropy",
]

GUIDANCE_MODES = ("cond", "uncond", "static", "nc", "nc_raw", "knn", "mix")
ADAPTIVE_MODES = ("nc", "nc_raw", "knn", "mix")

ScoreForward = Callable[[Tensor, Tensor, Tensor, BackboneCond], Tensor]


def expand_cond(cond: BackboneCond, batch: int) -> BackboneCond:
    """Broadcast every field of ``cond`` from batch 1 to ``batch`` (fields already of size
    ``batch`` are kept); e.g. one utterance's condition shared by its chunks."""
    out: dict[str, Tensor | None] = {}
    for f in fields(BackboneCond):
        v = getattr(cond, f.name)
        if v is not None and v.shape[0] != batch:
            if v.shape[0] != 1:
                raise ValueError(f"condition field {f.name!r} has batch {v.shape[0]}, cannot "
                                 f"broadcast to {batch}")
            v = v.expand(batch, *v.shape[1:])
        out[f.name] = v
    return BackboneCond(**out)


def guided_score(forward: ScoreForward, x: Tensor, y: Tensor, t: Tensor, cond: BackboneCond,
                 null: BackboneCond, w: Tensor | float) -> Tensor:
    """``s_u + w (s_c - s_u)`` from ONE forward of batch ``2B``.

    ``forward(x, y, t, cond) -> score`` (e.g. ``ScoreModel.forward``); ``x, y [B, ...]``,
    ``t [B]``; ``cond`` / ``null`` with batch ``B`` or 1; ``w`` a float, ``[B]`` or ``[1]``
    (per-utterance scales).
    """
    B = x.shape[0]
    both = BackboneCond.cat([expand_cond(cond, B), expand_cond(null, B)])
    out = forward(torch.cat([x, x]), torch.cat([y, y]), torch.cat([t, t]), both)
    s_c, s_u = out[:B], out[B:]
    if isinstance(w, Tensor):
        w = w.to(device=out.device, dtype=out.real.dtype).reshape(-1, *([1] * (out.ndim - 1)))
    return s_u + w * (s_c - s_u)


@dataclass
class GuidedCond:
    """What a sampler's score function needs for (guided) sampling of one batch.

    ``mode``: ``"cond"`` (``cond`` only), ``"uncond"`` (``null`` only) or ``"cfg"``
    (:func:`guided_score` with ``w [B]`` or ``[1]``). ``cond`` / ``null`` may have batch 1
    (shared by all items, e.g. the chunks of one long file). ``w`` is kept for reporting in
    the un-guided modes (1 or 0). ``batched=False`` computes the two CFG halves with two
    forwards of batch ``B`` instead of one of ``2B`` (same result; on a CPU a batch of 2 costs
    more than two of 1, see ``bench/sampler_speed.py``; on a GPU the batched form is cheaper).
    """

    cond: BackboneCond
    null: BackboneCond
    w: Tensor
    mode: str = "cfg"
    batched: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("cond", "uncond", "cfg"):
            raise ValueError(f"GuidedCond.mode must be 'cond', 'uncond' or 'cfg', got {self.mode!r}")

    def score(self, forward: ScoreForward, x: Tensor, y: Tensor, t: Tensor) -> Tensor:
        if self.mode == "cond":
            return forward(x, y, t, expand_cond(self.cond, x.shape[0]))
        if self.mode == "uncond":
            return forward(x, y, t, expand_cond(self.null, x.shape[0]))
        w = self.w
        if w.numel() == 1 and x.shape[0] != 1:
            w = w.reshape(1).expand(x.shape[0])
        if not self.batched:
            B = x.shape[0]
            s_c = forward(x, y, t, expand_cond(self.cond, B))
            s_u = forward(x, y, t, expand_cond(self.null, B))
            return s_u + w.to(device=s_c.device, dtype=s_c.real.dtype).reshape(-1, *([1] * (s_c.ndim - 1))) * (s_c - s_u)
        return guided_score(forward, x, y, t, self.cond, self.null, w)

    @property
    def forwards_per_eval(self) -> int:
        """Backbone work per score evaluation in batch-B forwards: 2 for CFG, else 1."""
        return 2 if self.mode == "cfg" else 1


# ---------------------------------------------------------------------------- adaptive w
def nc_certainty(logits: Tensor) -> Tensor:
    """``[B, C]`` logits -> ``(max softmax - 1/C) / (1 - 1/C)`` in [0, 1], ``[B]``."""
    C = logits.shape[-1]
    p = torch.softmax(logits.float(), dim=-1).amax(dim=-1)
    return ((p - 1.0 / C) / (1.0 - 1.0 / C)).clamp(0.0, 1.0)


def nc_confidence(logits: Tensor) -> Tensor:
    """``[B, C]`` logits -> the raw maximum softmax probability in [1/C, 1], ``[B]``."""
    return torch.softmax(logits.float(), dim=-1).amax(dim=-1)


def nc_entropy(logits: Tensor) -> Tensor:
    """``[B, C]`` logits -> the entropy of the softmax divided by ``log C``, in [0, 1], ``[B]``
    (0: one-hot, 1: uniform)."""
    C = logits.shape[-1]
    logp = torch.log_softmax(logits.float(), dim=-1)
    h = -(logp.exp() * logp).sum(dim=-1)
    return (h / math.log(C)).clamp(0.0, 1.0) if C > 1 else torch.zeros_like(h)


class EmbeddingBank(nn.Module):
    """A bank of training noise embeddings for k-NN reliability ``1 / (1 + d / tau)``.

    The embeddings and ``tau`` are buffers, so they travel in the model's ``state_dict`` (a
    checkpoint carries its bank). Loading a state dict resizes the bank to the stored one.

    Args:
        dim: embedding width ``D``.
        max_size: at most this many embeddings are kept (a seeded random subset).
        k: neighbours averaged in the distance.
        metric: ``"cosine"`` (distance between L2-normalised embeddings, in [0, 2]; the
            usual choice for k-NN out-of-distribution scores) or ``"euclidean"``.
        quantile: :meth:`fit` sets ``tau`` to this quantile of the bank's own leave-one-out
            k-NN distances, so that ``u >= 0.5`` for that share of training embeddings.
    """

    def __init__(self, dim: int, max_size: int = 4096, k: int = 10, metric: str = "cosine",
                 quantile: float = 0.95) -> None:
        super().__init__()
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
        if k < 1 or max_size < 2:
            raise ValueError(f"need k >= 1 and max_size >= 2, got k={k}, max_size={max_size}")
        self.dim, self.max_size, self.k, self.metric = int(dim), int(max_size), int(k), metric
        self.quantile = float(quantile)
        self.config: dict[str, Any] = dict(max_size=max_size, k=k, metric=metric, quantile=quantile)
        self.register_buffer("embeddings", torch.zeros(0, dim))
        self.register_buffer("tau", torch.tensor(float("nan")))

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    @property
    def is_fitted(self) -> bool:
        return len(self) >= 2 and bool(torch.isfinite(self.tau))

    def _prep(self, e: Tensor) -> Tensor:
        e = e.float()
        return torch.nn.functional.normalize(e, dim=-1) if self.metric == "cosine" else e

    @torch.no_grad()
    def fit(self, embeddings: Tensor, generator: torch.Generator | None = None,
            tau: float | None = None) -> EmbeddingBank:
        """Store ``embeddings [N, D]`` (a random subset of ``max_size`` if larger) and set
        ``tau`` (given, or the ``quantile`` of leave-one-out k-NN distances)."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"bank embeddings must be [N, {self.dim}], got {tuple(embeddings.shape)}")
        if embeddings.shape[0] < 2:
            raise ValueError("the bank needs at least 2 embeddings")
        if not torch.isfinite(embeddings).all():
            raise ValueError("bank embeddings contain NaN/Inf")
        e = embeddings.detach().float()
        if e.shape[0] > self.max_size:
            idx = torch.randperm(e.shape[0], generator=generator)[: self.max_size]
            e = e[idx.sort().values.to(e.device)]
        self.embeddings = e.to(self.tau.device)
        if tau is None:
            d = self._knn(self._prep(self.embeddings), exclude_self=True)
            tau = float(torch.quantile(d, self.quantile))
            tau = max(tau, 1e-8)
        self.tau = torch.tensor(float(tau), device=self.embeddings.device)
        return self

    @torch.no_grad()
    def set_tau(self, tau: float) -> EmbeddingBank:
        """Replace the fitted ``tau`` (the distance where the reliability is 1/2) by ``tau > 0``."""
        tau = float(tau)
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
        self.tau = torch.tensor(tau, device=self.tau.device)
        return self

    def _knn(self, q: Tensor, exclude_self: bool = False) -> Tensor:
        bank = self._prep(self.embeddings)
        d = torch.cdist(q, bank)  # [B, N]
        n = bank.shape[0] - (1 if exclude_self else 0)
        k = min(self.k, n)
        if exclude_self:
            d = d + torch.diag(torch.full((bank.shape[0],), float("inf"), device=d.device))
        return d.topk(k, dim=1, largest=False).values.mean(dim=1)

    def distance(self, pooled: Tensor) -> Tensor:
        """Mean distance ``[B]`` of ``pooled [B, D]`` to its ``k`` nearest bank embeddings."""
        if len(self) < 2:
            raise RuntimeError("the embedding bank is empty: fit it on training embeddings first "
                               "(NoiseCondScoreModel.fit_bank; tools/train_sgmse.py does this at the "
                               "end of training)")
        return self._knn(self._prep(pooled.to(self.embeddings.device)))

    def reliability(self, pooled: Tensor) -> Tensor:
        """``1 / (1 + d / tau)`` in (0, 1], ``[B]``."""
        return 1.0 / (1.0 + self.distance(pooled) / self.tau)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        key = prefix + "embeddings"
        if key in state_dict:  # the bank's size is data, not architecture
            self.embeddings = torch.empty_like(state_dict[key], device=self.embeddings.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def guidance_weights(mode: str, *, w: float = 1.0, logits: Tensor | None = None,
                     pooled: Tensor | None = None, bank: EmbeddingBank | None = None,
                     alpha: float = 0.5, batch: int | None = None) -> Tensor:
    """Per-utterance guidance scales ``[B]`` (``w * u``; see the module docstring).

    ``mode``: ``"static"`` / ``"cond"`` (``w``; ``cond`` is ``w = 1``), ``"uncond"`` (0),
    ``"nc"`` / ``"nc_raw"`` (need ``logits [B, C]``), ``"knn"`` (needs ``pooled [B, D]`` and a fitted
    ``bank``), ``"mix"`` (both, weighted by ``alpha``).
    """
    if mode not in GUIDANCE_MODES:
        raise ValueError(f"guidance mode must be one of {GUIDANCE_MODES}, got {mode!r}")
    ref = logits if logits is not None else pooled
    B = batch if batch is not None else (ref.shape[0] if ref is not None else 1)
    dev = ref.device if ref is not None else None
    if mode in ("static", "cond", "uncond"):
        val = {"static": float(w), "cond": 1.0, "uncond": 0.0}[mode]
        return torch.full((B,), val, device=dev)
    parts = []
    if mode in ("nc", "nc_raw", "mix"):
        if logits is None:
            raise ValueError(f"guidance {mode!r} needs NC logits: the model has no NC head "
                             f"(train with an NC loss, or use 'knn' / 'static')")
        parts.append(nc_confidence(logits) if mode == "nc_raw" else nc_certainty(logits))
    if mode in ("knn", "mix"):
        if pooled is None or bank is None:
            raise ValueError(f"guidance {mode!r} needs embeddings and a fitted embedding bank")
        parts.append(bank.reliability(pooled).to(parts[0].device if parts else pooled.device))
    if mode == "mix":
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        u = alpha * parts[0] + (1.0 - alpha) * parts[1]
    else:
        u = parts[0]
    return float(w) * u
