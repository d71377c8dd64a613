"""Forward SDEs of SGMSE+: the Ornstein-Uhlenbeck variance-exploding SDE (OUVE) and the
Schroedinger-bridge variance-exploding SDE (SB-VE), with closed-form marginals.

Conventions (as in sp-uhh/sgmse):

* time runs over ``[0, T]`` with ``T = 1``; ``x`` is the state (complex spectrogram
  ``[B, C, F, T]`` or any ``[B, ...]`` tensor), ``y`` the noisy observation;
* ``t`` is a ``[B]`` tensor (or a 0-d tensor / float broadcast over the batch);
* ``std`` is the standard deviation of the perturbation in the sense
  ``E|x_t - mean|^2 = std^2`` per element. For complex tensors the noise is circular,
  ``CN(0, 1)`` (real and imaginary parts of variance 1/2 each, what ``torch.randn``
  gives for a complex dtype), so the same formulas hold for real and complex states;
* the "score" used by every sampler is ``-(x_t - mean) / std^2`` for a Gaussian
  perturbation (the DSM target ``-z / std``). For complex states that is half the
  gradient of the log-density with respect to (Re, Im), which is exactly what the
  reverse SDE ``dx = [f - g^2 s] dt + g dw`` needs with complex ``CN`` Wiener noise.

Every method is vectorised and free of host synchronisation.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import torch
from torch import Tensor

from ._batch_random import Generators, share_draw

__all__ = ["SDE", "OUVESDE", "SBVESDE", "sde_from_dict", "batch_view"]


def batch_view(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-batch vector ``[B]`` (or scalar) to broadcast against ``like [B, ...]``."""
    if v.ndim == 0:
        return v
    return v.reshape(v.shape[0], *([1] * (like.ndim - 1)))


def _as_time(t: Tensor | float, ref: Tensor | None = None) -> Tensor:
    if isinstance(t, Tensor):
        return t if t.is_floating_point() else t.float()
    if ref is not None and (ref.is_floating_point() or ref.is_complex()):
        return torch.tensor(float(t), device=ref.device, dtype=ref.real.dtype)
    return torch.tensor(float(t), device=ref.device if ref is not None else None)


def _randn_like(x: Tensor, generator: Generators, share: tuple[int, int] | None = None) -> Tensor:
    """Standard (circular complex) normal noise with ``x``'s shape, dtype and device; with
    ``share=(rank, world)`` this rank's items of a global batch (see :func:`share_draw`)."""
    return share_draw(torch.randn, tuple(x.shape), share, dtype=x.dtype, device=x.device, generator=generator)


class SDE(abc.ABC):
    """A forward SDE ``dx = f(x, y, t) dt + g(t) dw`` whose perturbation kernel is Gaussian
    with mean ``a(t) x0 + b(t) y`` and standard deviation ``std(t)``."""

    name: str = "sde"
    T: float = 1.0

    @abc.abstractmethod
    def drift(self, x: Tensor, y: Tensor, t: Tensor) -> Tensor:
        """Drift ``f(x, y, t)``; shape of ``x``."""

    @abc.abstractmethod
    def diffusion(self, t: Tensor) -> Tensor:
        """Diffusion coefficient ``g(t)``; shape of ``t``."""

    @abc.abstractmethod
    def mean_coeffs(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(a(t), b(t))`` with ``mean = a x0 + b y``; shapes of ``t``."""

    @abc.abstractmethod
    def std(self, t: Tensor) -> Tensor:
        """Standard deviation of the perturbation kernel at ``t``; shape of ``t``."""

    @abc.abstractmethod
    def prior_sampling(self, y: Tensor, generator: Generators = None) -> Tensor:
        """A sample ``x_T`` of the reverse process' starting distribution given ``y``."""

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Plain-data config, ``{"name": ..., **params}``."""

    # ---- derived quantities ------------------------------------------------------------
    def sde(self, x: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Drift ``f`` (shape of ``x``) and diffusion ``g(t)`` (shape of ``t``)."""
        return self.drift(x, y, t), self.diffusion(t)

    def mean(self, x0: Tensor, y: Tensor, t: Tensor | float) -> Tensor:
        """Mean of ``x_t`` given ``x0`` and ``y``."""
        t = _as_time(t, x0)
        a, b = self.mean_coeffs(t)
        return batch_view(a, x0) * x0 + batch_view(b, y) * y

    def marginal_prob(self, x0: Tensor, y: Tensor, t: Tensor | float) -> tuple[Tensor, Tensor]:
        """``(mean, std)`` of ``x_t | x0, y``; ``std`` has the shape of ``t``."""
        t = _as_time(t, x0)
        return self.mean(x0, y, t), self.std(t)

    def perturb(self, x0: Tensor, y: Tensor, t: Tensor, generator: torch.Generator | None = None,
                share: tuple[int, int] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Sample ``x_t = mean + std * z``; returns ``(x_t, z, std)``. ``share``: see
        :meth:`ScoreModel.loss` (the noise of this rank's items of a global batch)."""
        mean, std = self.marginal_prob(x0, y, t)
        z = _randn_like(x0, generator, share)
        return mean + batch_view(std, x0) * z, z, std

    def __repr__(self) -> str:
        d = self.to_dict()
        name = d.pop("name")
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in d.items())}) [{name}]"


class OUVESDE(SDE):
    """SGMSE+'s Ornstein-Uhlenbeck variance-exploding SDE.

    ``dx = theta (y - x) dt + g(t) dw`` with
    ``g(t) = sigma_min (sigma_max/sigma_min)^t sqrt(2 L)``, ``L = ln(sigma_max/sigma_min)``.

    Marginal: ``mean = e^{-theta t} x0 + (1 - e^{-theta t}) y`` and
    ``std^2 = sigma_min^2 e^{-2 theta t} (e^{2 (theta + L) t} - 1) L / (theta + L)``
    (std(1) = 0.389 for the defaults, not sigma_max). Prior: ``x_T = y + std(1) z``
    (which ignores the ``e^{-theta}`` share of ``x0`` left in the true mean at ``T``:
    SGMSE+'s known prior mismatch, kept for compatibility).
    """

    name = "ouve"

    def __init__(self, theta: float = 1.5, sigma_min: float = 0.05, sigma_max: float = 0.5) -> None:
        if not (0 < sigma_min < sigma_max):
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        if theta <= 0:
            raise ValueError(f"theta must be positive, got {theta}")
        self.theta = float(theta)
        self.sigma_min = float(sigma_min)
        self.sigma_max = float(sigma_max)
        self.logsig = math.log(self.sigma_max / self.sigma_min)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "theta": self.theta, "sigma_min": self.sigma_min,
                "sigma_max": self.sigma_max}

    def drift(self, x: Tensor, y: Tensor, t: Tensor) -> Tensor:
        return self.theta * (y - x)

    def diffusion(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.exp(self.logsig * t) * math.sqrt(2.0 * self.logsig)

    def mean_coeffs(self, t: Tensor) -> tuple[Tensor, Tensor]:
        a = torch.exp(-self.theta * t)
        return a, 1.0 - a

    def std(self, t: Tensor) -> Tensor:
        th, L = self.theta, self.logsig
        var = (self.sigma_min ** 2 * torch.exp(-2.0 * th * t)
               * torch.expm1(2.0 * (th + L) * t) * L / (th + L))
        return torch.sqrt(var)

    def prior_sampling(self, y: Tensor, generator: Generators = None) -> Tensor:
        std1 = self.std(torch.ones((), dtype=y.real.dtype, device=y.device))
        return y + std1 * _randn_like(y, generator)


class SBVESDE(SDE):
    """Schroedinger-bridge variance-exploding SDE (Jukic et al. 2024; sgmse ``"sbve"``).

    Reference process ``dx = g(t) dw``, ``g(t) = sqrt(c) k^t`` (no drift, ``alpha_t = 1``),
    with ``sigma_t^2 = c (k^{2t} - 1) / (2 ln k)`` and ``sigma_bar_t^2 = sigma_T^2 - sigma_t^2``.
    The bridge from ``x0`` (t = 0) to ``y`` (t = T) has the Gaussian marginal
    ``mean = (sigma_bar_t^2 x0 + sigma_t^2 y) / sigma_T^2`` and
    ``std = sigma_t sigma_bar_t / sigma_T``; it starts the reverse process at ``x_T = y``
    (no noise). :meth:`sde` returns the bridge's own forward SDE, i.e. the reference
    process conditioned on ending at ``y``:
    ``dx = g^2 (y - x) / sigma_bar_t^2 dt + g dw`` (singular at ``t = T``).
    """

    name = "sbve"

    def __init__(self, k: float = 2.6, c: float = 0.4) -> None:
        if k <= 1 or c <= 0:
            raise ValueError(f"need k > 1 and c > 0, got k={k}, c={c}")
        self.k = float(k)
        self.c = float(c)
        self.logk = math.log(self.k)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.k, "c": self.c}

    def sigma(self, t: Tensor) -> Tensor:
        """``sigma_t`` of the reference process."""
        return torch.sqrt(self.c * torch.expm1(2.0 * self.logk * t) / (2.0 * self.logk))

    @property
    def sigma_T(self) -> float:
        return math.sqrt(self.c * math.expm1(2.0 * self.logk * self.T) / (2.0 * self.logk))

    def sigma_bar(self, t: Tensor) -> Tensor:
        """``sigma_bar_t = sqrt(sigma_T^2 - sigma_t^2)``, written as
        ``sqrt(c k^{2t} (k^{2(T-t)} - 1) / (2 ln k))`` so that it is exactly 0 at ``t = T``."""
        var_bar = (self.c / (2.0 * self.logk)) * torch.exp(2.0 * self.logk * t) * torch.expm1(
            2.0 * self.logk * (self.T - t))
        return torch.sqrt(var_bar.clamp_min(0.0))

    def drift(self, x: Tensor, y: Tensor, t: Tensor) -> Tensor:
        g2 = self.c * torch.exp(2.0 * self.logk * t)
        return batch_view(g2 / self.sigma_bar(t) ** 2, x) * (y - x)

    def diffusion(self, t: Tensor) -> Tensor:
        return math.sqrt(self.c) * torch.exp(self.logk * t)

    def mean_coeffs(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``a = sigma_bar_t^2 / sigma_T^2`` and ``b = 1 - a = sigma_t^2 / sigma_T^2`` (exactly
        ``(0, 1)`` at ``t = T``)."""
        a = self.sigma_bar(t) ** 2 / self.sigma_T ** 2
        return a, 1.0 - a

    def std(self, t: Tensor) -> Tensor:
        return self.sigma(t) * self.sigma_bar(t) / self.sigma_T

    def prior_sampling(self, y: Tensor, generator: Generators = None) -> Tensor:
        return y.clone()


def sde_from_dict(d: dict[str, Any]) -> SDE:
    """Rebuild an SDE from :meth:`SDE.to_dict`."""
    d = dict(d)
    name = d.pop("name")
    classes: dict[str, type[SDE]] = {"ouve": OUVESDE, "sbve": SBVESDE}
    if name not in classes:
        raise ValueError(f"unknown SDE {name!r}; known: {sorted(classes)}")
    return classes[name](**d)
