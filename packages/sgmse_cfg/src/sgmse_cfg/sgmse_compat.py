"""``enhance_like_sgmse``: one file as SGMSE+'s ``enhancement.py`` (sgmse 0.1.2) enhances it.

For comparisons with numbers made by sgmse itself. With the same weights and the same
``torch.manual_seed`` before the first file, the output equals sgmse's to float32 precision
(``bench/sgmse_ckpt_fixtures.py``). What it does differently from :func:`sgmse_cfg.enhance`
(this package's path, which ``tools/enhance_sgmse.py`` uses unless ``--sgmse-compat``):

* the noise comes from the **global** torch random stream (``torch.randn_like``), as sgmse
  draws it, not from a per-file ``torch.Generator``; so a file's output depends on the files
  enhanced before it in the same process;
* no chunking: the whole file is one spectrogram (memory grows with its length, and NCSN++'s
  attention quadratically);
* the time axis is padded to a multiple of **64** frames whatever the network's depth
  (``pad_spec``), with zeros for ``ncsnpp`` and by reflection for ``ncsnpp_v2`` /
  ``ncsnpp_48k``;
* the inverse STFT runs over **all padded frames** and is trimmed to the input's length
  afterwards, so the padded frames' content leaks into the last ``n_fft / 2`` samples or so
  (about 12 ms on average at 16 kHz with SGMSE+'s 510 / 128 STFT); this package's path trims
  the spectrogram to the real frames first;
* the Schroedinger bridge runs sgmse's sampler: the network is called at each step's *new*
  time with the state of the previous one, with sgmse's ``1e-8`` regularisers (this
  package's :func:`sb_sampler` calls it at the state's own time);
* ``t_eps`` is enhancement.py's ``--t_eps`` (default 0.03), not the checkpoint's.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import BadAudioError
from .sampling import pc_sampler
from .score_model import ScoreModel
from .sdes import SBVESDE
from .spec_transform import SpecTransform, normalize_by_noisy

__all__ = ["SGMSE_PAD_MULTIPLE", "enhance_like_sgmse", "sgmse_file_order"]

#: sgmse's ``pad_spec`` pads the frames to a multiple of 64, whatever the network's depth
SGMSE_PAD_MULTIPLE = 64
#: the regulariser of sgmse's bridge sampler (``SBVESDE.copy()`` drops the checkpoint's ``eps``)
_SB_EPS = 1e-8


def _spec_fwd(tr: SpecTransform, spec: Tensor) -> Tensor:
    """sgmse's ``spec_fwd``, operation for operation (the bridge's first step amplifies any
    rounding difference of its input about 10^4-fold)."""
    if tr.transform_type == "exponent":
        if tr.spec_abs_exponent != 1:
            spec = spec.abs() ** tr.spec_abs_exponent * torch.exp(1j * spec.angle())
        spec = spec * tr.spec_factor
    return spec


def _spec_back(tr: SpecTransform, spec: Tensor) -> Tensor:
    """sgmse's ``spec_back``, operation for operation."""
    if tr.transform_type == "exponent":
        spec = spec / tr.spec_factor
        if tr.spec_abs_exponent != 1:
            spec = spec.abs() ** (1 / tr.spec_abs_exponent) * torch.exp(1j * spec.angle())
    return spec


def _sgmse_sb_sampler(sde: SBVESDE, model: ScoreModel, y: Tensor, N: int, kind: str) -> Tensor:
    """sgmse's ``get_sb_sampler`` (``"ode"`` / ``"sde"``), formula for formula, global random stream."""
    eps = _SB_EPS
    logk = torch.log(torch.tensor(sde.k))  # float32, as sgmse's torch.log(torch.tensor(self.k))

    def sigmas(t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        sigma_t = torch.sqrt((sde.c * (sde.k ** (2 * t) - 1.0)) / (2 * logk))
        sigma_T = torch.sqrt((sde.c * (sde.k ** (2 * sde.T) - 1.0)) / (2 * logk))
        sigma_bar = torch.sqrt(sigma_T ** 2 - sigma_t ** 2 + eps)
        return sigma_t, sigma_T, sigma_bar

    B = y.shape[0]
    ts = torch.linspace(sde.T, 1e-4, N + 1, device=y.device)
    ones = torch.ones(B, device=y.device)
    t_prev = ts[0] * ones
    sigma_prev, _, sigma_bar_prev = sigmas(t_prev)
    alpha_prev = torch.ones_like(t_prev)
    x = y
    for t in ts[1:]:
        time = t * ones
        sigma_t, sigma_T, sigma_bar = sigmas(time)
        alpha_t = alpha_T = torch.ones_like(time)
        est = model.denoise(x, y, time)
        if kind == "ode":
            w_prev = alpha_t * sigma_t * sigma_bar / (alpha_prev * sigma_prev * sigma_bar_prev + eps)
            w_est = alpha_t / (sigma_T ** 2 + eps) * (sigma_bar ** 2 - sigma_bar_prev * sigma_t * sigma_bar
                                                      / (sigma_prev + eps))
            w_y = alpha_t / (alpha_T * sigma_T ** 2 + eps) * (sigma_t ** 2 - sigma_prev * sigma_t * sigma_bar
                                                              / (sigma_bar_prev + eps))
            x = w_prev[:, None, None, None] * x + w_est[:, None, None, None] * est + w_y[:, None, None, None] * y
        else:
            w_prev = alpha_t * sigma_t ** 2 / (alpha_prev * sigma_prev ** 2 + eps)
            tmp = 1 - sigma_t ** 2 / (sigma_prev ** 2 + eps)
            w_est = alpha_t * tmp
            w_z: Any = (alpha_t * sigma_t * torch.sqrt(tmp))[:, None, None, None]
            z = torch.randn_like(x)  # drawn on the last step too, as sgmse does
            if t == ts[-1]:
                w_z = 0.0
            x = w_prev[:, None, None, None] * x + w_est[:, None, None, None] * est + w_z * z
        alpha_prev, sigma_prev, sigma_bar_prev = alpha_t, sigma_t, sigma_bar
    return x


@torch.no_grad()
def sgmse_file_order(in_dir: str | os.PathLike) -> list[Path]:
    """The files below ``in_dir`` in the order sgmse's ``enhancement.py`` enhances them:
    ``*.wav``, ``*/*.wav``, ``*.flac``, ``*/*.flac``, each sorted (its ``glob('**')`` without
    ``recursive`` goes one folder deep), then the deeper ``.wav`` / ``.flac`` files (suffix in
    any case), which it skips, sorted."""
    root = Path(in_dir)
    found: list[Path] = []
    for pattern in ("*.wav", "*/*.wav", "*.flac", "*/*.flac"):
        found += sorted(f for f in root.glob(pattern) if f.is_file())
    seen = set(found)
    return found + sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in (".wav", ".flac")
                          and f not in seen)


def enhance_like_sgmse(model: ScoreModel, audio: Tensor, sample_rate: int, *, sampler: str | None = None,
                       N: int | None = None, predictor: str = "reverse_diffusion", corrector: str = "ald",
                       snr: float = 0.5, corrector_steps: int = 1, t_eps: float = 0.03,
                       pad_mode: str | None = None) -> Tensor:
    """Enhance one waveform ``audio [L]`` (or ``[1, L]``) at ``sample_rate`` Hz as sgmse's
    ``enhancement.py`` does; returns ``[L]`` on ``audio``'s device (see the module docstring).

    Call ``torch.manual_seed(seed)`` once before the first file to reproduce an
    ``enhancement.py`` run started after the same call. ``sampler`` / ``N`` / ``pad_mode``
    left out follow ``model.info["sampler_defaults"]`` (a model from an SGMSE+ checkpoint:
    the PC sampler with ``N`` 30 for the OUVE SDE, the bridge ODE with the checkpoint's ``N``;
    zero padding for ``ncsnpp``, reflection otherwise) and else PC / 30 / zero padding. The
    OUVE SDE's ODE sampler (sgmse's scipy RK45) is not reproduced: a ``ValueError``.
    """
    defaults = (getattr(model, "info", None) or {}).get("sampler_defaults") or {}
    bridge = isinstance(model.sde, SBVESDE)
    sampler = sampler or defaults.get("sampler") or ("sb_ode" if bridge else "pc")
    if bridge != sampler.startswith("sb_"):
        raise ValueError(f"sampler {sampler!r} does not fit this model's {type(model.sde).__name__}: use "
                         f"{'sb_ode or sb_sde' if bridge else 'pc'}")
    if sampler == "ode":
        raise ValueError("sgmse's probability-flow ODE sampler for the OUVE SDE (scipy RK45) is not reproduced; "
                         "use the PC sampler, or this package's own ODE sampler through sgmse_cfg.enhance")
    if sampler not in ("pc", "sb_ode", "sb_sde"):
        raise ValueError(f"sampler must be 'pc', 'sb_ode' or 'sb_sde', got {sampler!r}")
    if N is None:
        N = defaults.get("N") or (50 if bridge else 30)
    if int(N) != N or N < 1:
        raise ValueError(f"N (sampler steps) must be a positive integer, got {N!r}")
    pad_mode = pad_mode or defaults.get("pad_mode") or "zero"
    tr = model.transform
    tr.check_sample_rate(sample_rate, "noisy waveform")
    wave = audio[0] if audio.ndim == 2 and audio.shape[0] == 1 else audio
    if wave.ndim != 1:
        raise BadAudioError(f"enhance takes one mono waveform [L], got shape {tuple(audio.shape)}")
    if wave.shape[0] < tr.n_fft:
        raise BadAudioError(f"waveform too short: {wave.shape[0]} samples < n_fft={tr.n_fft}")
    device = next(iter(model.parameters())).device
    L = wave.shape[0]
    y, normfac = normalize_by_noisy(wave.to(device=device, dtype=torch.float32))
    if not torch.isfinite(y).all():
        raise BadAudioError("waveform contains NaN or Inf samples")
    Y = _spec_fwd(tr, tr.stft(y))[None, None]  # [1, 1, F, T]
    T = Y.shape[-1]
    if pad_mode == "reflect" and (-T) % SGMSE_PAD_MULTIPLE >= T:
        raise BadAudioError(f"waveform too short for sgmse's reflection padding: {T} frames would need "
                            f"{(-T) % SGMSE_PAD_MULTIPLE} more ({math.ceil(T / SGMSE_PAD_MULTIPLE) * SGMSE_PAD_MULTIPLE} "
                            f"in all)")
    Yp, _ = SpecTransform.pad_frames(Y, SGMSE_PAD_MULTIPLE, mode=pad_mode)
    if bridge:
        X = _sgmse_sb_sampler(model.sde, model, Yp, int(N), sampler[3:])  # type: ignore[arg-type]
    else:
        X, _ = pc_sampler(model.sde, model.score_fn(), Yp, N=int(N), predictor=predictor, corrector=corrector,
                          snr=snr, corrector_steps=corrector_steps, eps=t_eps, generator=None)
    x = tr.istft(_spec_back(tr, X[0, 0]), length=L) * normfac  # every padded frame takes part, then trimmed
    out_dtype = wave.dtype if wave.is_floating_point() else torch.float32
    return x.to(device=audio.device, dtype=out_dtype)
