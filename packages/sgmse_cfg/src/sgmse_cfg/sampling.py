"""Reverse-process samplers for SGMSE+-style SDEs, free of host synchronisation.

* :func:`pc_sampler`: predictor-corrector sampling of the reverse SDE (SGMSE+'s default:
  reverse-diffusion predictor + annealed Langevin corrector, ``snr = 0.5``, ``N = 30``,
  ``eps = 0.03``, corrector before predictor, the noise-free mean of the last step
  returned; 60 score evaluations).
* :func:`ode_sampler`: the probability-flow ODE, integrated with a fixed-step Euler or
  Heun scheme (SGMSE+ uses scipy's adaptive RK45 on the host, which syncs every step and
  whose denoising step crashes in its HEAD), followed by one noise-free
  reverse-diffusion step from ``eps`` to 0.
* :func:`sb_sampler`: the Schroedinger bridge's first-order ODE and SDE samplers (sgmse's
  ``get_sb_sampler``, after NeMo) driven by a data-prediction function ``x0_hat``.

All samplers take a seeded ``torch.Generator`` (on ``y``'s device), precompute their time
grid as a tensor on the device and never call ``.item()`` or branch on tensor values inside
the loop, so a GPU runs them without host round trips. They return ``(x0_estimate, nfe)``
where ``nfe`` (number of network evaluations) is known without looking at any tensor.

``score_fn(x, y, t) -> score`` and ``denoise_fn(x, y, t) -> x0_hat`` take ``x, y`` of shape
``[B, ...]`` (complex spectrograms ``[B, 1, F, T]`` in SGMSE+) and ``t`` of shape ``[B]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from ._batch_random import Generators, randn_items
from .sdes import SDE, SBVESDE, batch_view

__all__ = ["ScoreFn", "DenoiseFn", "pc_sampler", "ode_sampler", "sb_sampler",
           "reverse_diffusion_step", "euler_maruyama_step", "ald_step",
           "PREDICTORS", "CORRECTORS"]

ScoreFn = Callable[[Tensor, Tensor, Tensor], Tensor]
DenoiseFn = Callable[[Tensor, Tensor, Tensor], Tensor]

PREDICTORS = ("reverse_diffusion", "euler_maruyama", "none")
CORRECTORS = ("ald", "none")


def _noise(x: Tensor, generator: Generators) -> Tensor:
    return randn_items(tuple(x.shape), generator, dtype=x.dtype, device=x.device)


def _check_generator(generator: Generators, y: Tensor) -> None:
    """One generator, or one per item of ``y`` (each item's noise from its own), on ``y``'s device."""
    if generator is None:
        return
    gens = [generator] if isinstance(generator, torch.Generator) else list(generator)
    if not isinstance(generator, torch.Generator) and len(gens) != y.shape[0]:
        raise ValueError(f"{len(gens)} generators for a batch of {y.shape[0]}: give one per item (or one)")
    for g in gens:
        if g.device.type != y.device.type:
            raise ValueError(f"generator is on {g.device} but y is on {y.device}; create it "
                             f"with torch.Generator(device=y.device).manual_seed(seed)")


def _start(sde: SDE, y: Tensor, x_T: Tensor | None, generator: Generators) -> Tensor:
    if x_T is None:
        return sde.prior_sampling(y, generator)
    if x_T.shape != y.shape:
        raise ValueError(f"x_T has shape {tuple(x_T.shape)}, y has {tuple(y.shape)}")
    return x_T


# ---- predictors and correctors (one step each) -------------------------------------------
# ``t`` is the per-batch time ``[B]`` handed to the score; ``g``, ``std`` and ``dt`` are the
# SDE's diffusion, marginal std and step size at that time (0-d tensors or ``[B]``),
# precomputed by the samplers for the whole grid so that no step evaluates the schedule.
def reverse_diffusion_step(sde: SDE, score_fn: ScoreFn, x: Tensor, y: Tensor, t: Tensor,
                           dt: Tensor, g: Tensor, generator: Generators,
                           probability_flow: bool = False) -> tuple[Tensor, Tensor]:
    """SGMSE+'s ``ReverseDiffusionPredictor``: with ``f = drift dt``, ``G = g sqrt(dt)``,
    ``x_mean = x - (f - G^2 s)`` and ``x = x_mean + G z``. Returns ``(x, x_mean)``."""
    f = sde.drift(x, y, t) * batch_view(dt, x)
    G2 = batch_view(g ** 2 * dt, x)
    s = score_fn(x, y, t)
    if probability_flow:
        x_mean = x - (f - 0.5 * G2 * s)
        return x_mean, x_mean
    x_mean = x - (f - G2 * s)
    return x_mean + torch.sqrt(G2) * _noise(x, generator), x_mean


def euler_maruyama_step(sde: SDE, score_fn: ScoreFn, x: Tensor, y: Tensor, t: Tensor,
                        dt: Tensor, g: Tensor, generator: Generators
                        ) -> tuple[Tensor, Tensor]:
    """Euler-Maruyama step of the reverse SDE ``dx = [f - g^2 s] dt + g dw`` backwards by
    ``dt > 0``. SGMSE+'s version uses the fixed ``dt = 1/N`` whatever the grid; this one uses
    the actual step, which for the OUVE SDE makes it the same update as the
    reverse-diffusion predictor. Returns ``(x, x_mean)``."""
    dtb, gb = batch_view(dt, x), batch_view(g, x)
    x_mean = x - (sde.drift(x, y, t) - gb ** 2 * score_fn(x, y, t)) * dtb
    return x_mean + gb * torch.sqrt(dtb) * _noise(x, generator), x_mean


def ald_step(score_fn: ScoreFn, x: Tensor, y: Tensor, t: Tensor, std: Tensor, snr: float,
             generator: Generators) -> tuple[Tensor, Tensor]:
    """SGMSE+'s annealed Langevin dynamics corrector: ``eps = 2 (snr std(t))^2``,
    ``x_mean = x + eps s``, ``x = x_mean + sqrt(2 eps) z``. Returns ``(x, x_mean)``."""
    step = batch_view(2.0 * (snr * std) ** 2, x)
    x_mean = x + step * score_fn(x, y, t)
    return x_mean + torch.sqrt(2.0 * step) * _noise(x, generator), x_mean


# ---- samplers -------------------------------------------------------------------------
@torch.no_grad()
def pc_sampler(sde: SDE, score_fn: ScoreFn, y: Tensor, *, N: int = 30,
               predictor: str = "reverse_diffusion", corrector: str = "ald", snr: float = 0.5,
               corrector_steps: int = 1, eps: float = 0.03, denoise: bool = True,
               generator: Generators = None, x_T: Tensor | None = None
               ) -> tuple[Tensor, int]:
    """Predictor-corrector sampler (SGMSE+'s ``get_pc_sampler``).

    Time grid ``linspace(T, eps, N)``; step ``i`` uses ``dt = t_i - t_{i+1}`` and the last
    step goes from ``eps`` to 0 (``dt = eps``). Each step runs the corrector first, then the
    predictor. Returns ``(x_mean of the last predictor step if denoise else x, nfe)`` with
    ``nfe = N * (corrector_steps + 1)`` (60 for the defaults).

    Args:
        sde: forward SDE (OUVE for SGMSE+).
        score_fn: ``(x, y, t[B]) -> score``.
        y: conditioning / noisy observation ``[B, ...]``.
        N: number of time steps.
        predictor: ``"reverse_diffusion"`` | ``"euler_maruyama"`` | ``"none"``.
        corrector: ``"ald"`` | ``"none"``.
        snr: corrector signal-to-noise ratio (SGMSE+ enhancement default 0.5).
        corrector_steps: corrector iterations per time step.
        eps: last time point of the grid.
        denoise: return the noise-free mean of the last predictor step.
        generator: seeded generator on ``y``'s device, or one per item of ``y`` (each item's noise
            from its own generator, as in a batch of one).
        x_T: starting state (default: ``sde.prior_sampling(y)``).
    """
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    if corrector not in CORRECTORS:
        raise ValueError(f"corrector must be one of {CORRECTORS}, got {corrector!r}")
    if N < 1:
        raise ValueError(f"N must be >= 1, got {N}")
    _check_generator(generator, y)
    x = _start(sde, y, x_T, generator)
    ts = torch.linspace(sde.T, eps, N, device=y.device, dtype=y.real.dtype)
    dts = torch.cat([ts[:-1] - ts[1:], ts[-1:]])  # last step: eps -> 0
    gs, stds = sde.diffusion(ts), sde.std(ts)
    B = y.shape[0]
    x_mean = x
    for i in range(N):
        t = ts[i].expand(B)
        if corrector == "ald":
            for _ in range(corrector_steps):
                x, x_mean = ald_step(score_fn, x, y, t, stds[i], snr, generator)
        if predictor == "reverse_diffusion":
            x, x_mean = reverse_diffusion_step(sde, score_fn, x, y, t, dts[i], gs[i], generator)
        elif predictor == "euler_maruyama":
            x, x_mean = euler_maruyama_step(sde, score_fn, x, y, t, dts[i], gs[i], generator)
    nfe = N * ((corrector_steps if corrector != "none" else 0) + (predictor != "none"))
    return (x_mean if denoise else x), nfe


@torch.no_grad()
def ode_sampler(sde: SDE, score_fn: ScoreFn, y: Tensor, *, N: int = 30,
                method: Literal["heun", "euler"] = "heun", eps: float = 0.03,
                denoise: bool = True, generator: Generators = None,
                x_T: Tensor | None = None) -> tuple[Tensor, int]:
    """Probability-flow ODE ``dx/dt = f(x, y, t) - g(t)^2 s(x, y, t) / 2`` from ``T`` to
    ``eps`` on the grid ``linspace(T, eps, N + 1)``, fixed-step Euler (``N`` evaluations)
    or Heun (``2N``), then, if ``denoise``, one noise-free reverse-diffusion step from
    ``eps`` to 0 (+1 evaluation). The only randomness is ``x_T`` (default: the SDE prior).
    Returns ``(x0_estimate, nfe)``.
    """
    if method not in ("heun", "euler"):
        raise ValueError(f"method must be 'heun' or 'euler', got {method!r}")
    if N < 1:
        raise ValueError(f"N must be >= 1, got {N}")
    _check_generator(generator, y)
    x = _start(sde, y, x_T, generator)
    ts = torch.linspace(sde.T, eps, N + 1, device=y.device, dtype=y.real.dtype)
    half_g2 = 0.5 * sde.diffusion(ts) ** 2
    B = y.shape[0]

    def velocity(x: Tensor, i: int) -> Tensor:
        t = ts[i].expand(B)
        return sde.drift(x, y, t) - half_g2[i] * score_fn(x, y, t)

    for i in range(N):
        h = ts[i + 1] - ts[i]  # negative: integrating backwards in time
        v0 = velocity(x, i)
        x_euler = x + h * v0
        if method == "euler":
            x = x_euler
        else:
            x = x + 0.5 * h * (v0 + velocity(x_euler, i + 1))
    nfe = N * (2 if method == "heun" else 1)
    if denoise:
        t_eps = ts[-1]
        _, x = reverse_diffusion_step(sde, score_fn, x, y, t_eps.expand(B), t_eps,
                                      sde.diffusion(t_eps), None)
        nfe += 1
    return x, nfe


@torch.no_grad()
def sb_sampler(sde: SBVESDE, denoise_fn: DenoiseFn, y: Tensor, *, N: int = 50,
               kind: Literal["ode", "sde"] = "ode", eps: float = 1e-4,
               generator: Generators = None) -> tuple[Tensor, int]:
    """Schroedinger-bridge samplers (sgmse ``get_sb_sampler``), ``N`` network evaluations.

    Grid ``linspace(T, eps, N + 1)``, start ``x_T = y``; at each step the network's data
    estimate ``x0_hat = denoise_fn(x_p, y, p)`` is plugged into

    * ODE: ``x_t = m_t + (s_t / s_p) (x_p - m_p)`` with ``m = a x0_hat + b y`` and
      ``s = sigma sigma_bar / sigma_T`` the bridge marginal mean and std; this is sgmse's
      ``x_t = (sig_t sbar_t)/(sig_p sbar_p) x_p + (sbar_t^2 - sbar_p sig_t sbar_t/sig_p)
      x0_hat / sig_T^2 + (sig_t^2 - sig_p sig_t sbar_t / sbar_p) y / sig_T^2`` rewritten so
      that the first step (``sbar_p = 0``, ``x_p = y``) needs no ``1e-8`` regulariser.
      Given ``y`` it is deterministic.
    * SDE: ``x_t = r x_p + (1 - r) x0_hat + sig_t sqrt(1 - r) z`` with
      ``r = sig_t^2 / sig_p^2``, no noise on the last step.

    Returns ``(x_eps, N)``.
    """
    if kind not in ("ode", "sde"):
        raise ValueError(f"kind must be 'ode' or 'sde', got {kind!r}")
    if not isinstance(sde, SBVESDE):
        raise TypeError(f"sb_sampler needs an SBVESDE, got {type(sde).__name__}")
    if N < 1:
        raise ValueError(f"N must be >= 1, got {N}")
    _check_generator(generator, y)
    ts = torch.linspace(sde.T, eps, N + 1, device=y.device, dtype=y.real.dtype)
    a, b = sde.mean_coeffs(ts)
    std, sig = sde.std(ts), sde.sigma(ts)
    # x_t = m_t + (s_t / s_p)(x_p - m_p); 0/0 at the start (s_T = 0, x_T = m_T = y) -> 0
    ratio = torch.where(std[:-1] > 0, std[1:] / std[:-1], torch.zeros_like(std[1:]))
    r = sig[1:] ** 2 / sig[:-1] ** 2
    noise_scale = sig[1:] * torch.sqrt(1.0 - r)
    B = y.shape[0]
    x = sde.prior_sampling(y)
    for i in range(N):
        x0_hat = denoise_fn(x, y, ts[i].expand(B))
        if kind == "ode":
            m_p = a[i] * x0_hat + b[i] * y
            m_t = a[i + 1] * x0_hat + b[i + 1] * y
            x = m_t + ratio[i] * (x - m_p)
        else:
            x = r[i] * x + (1.0 - r[i]) * x0_hat
            if i < N - 1:
                x = x + noise_scale[i] * _noise(x, generator)
    return x, N
