"""``ScoreModel``: an SDE, a backbone and the STFT transform tied together, with SGMSE+'s
denoising score-matching loss and a file-level ``enhance``.

Output scaling (how the backbone output ``F`` becomes a score ``s``):

* ``"none"`` -- SGMSE+'s ``ncsnpp`` ("paper" code path): ``s = -F``, where NCSN++ has already
  divided its last feature map by ``t`` (``scale_by_sigma``). Needed to run SGMSE+
  checkpoints; :class:`NCSNpp`'s default.
* ``"sigma"`` -- ``s = -F / std(t)``: the network predicts the normalised noise ``z``
  (the DSM target is ``s = -z / std``); :class:`SmallUNet`'s default.
* ``"data"`` -- the network predicts the clean ``x0`` (sgmse ``data_prediction``, used for the
  Schroedinger bridge): ``s = -(x_t - a x0_hat - b y) / std^2``.

Everything here works on complex spectrograms ``[B, 1, F, T]`` in the compressed domain of
``transform`` (SGMSE+'s 510/128 STFT at 16 kHz by default).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn as nn
from se_data import chunked_apply
from torch import Tensor

from ._batch_random import share_rand
from se_data import keyword_alias

from ._registry import name_of, new_registry, register
from .conditioning import BackboneCond
from .errors import BadAudioError
from .ncsnpp import NCSNpp
from .sampling import DenoiseFn, ScoreFn, ode_sampler, pc_sampler, sb_sampler
from .sdes import SDE, OUVESDE, SBVESDE, batch_view, sde_from_dict
from .small_unet import SmallUNet
from .spec_transform import SpecTransform, normalize_by_noisy

__all__ = ["ScoreModel", "BACKBONES", "OutputScaling", "SAMPLERS", "LossTerms", "register_backbone"]

OutputScaling = Literal["none", "sigma", "data"]
#: what every ``loss`` returns: ``(total, terms)``, ``terms`` detached scalars by name
LossTerms = tuple[Tensor, dict[str, Tensor]]
#: Backbone classes ``ScoreModel.from_config`` can rebuild by name (a read-only view; add
#: with :func:`register_backbone`).
_BACKBONES, BACKBONES = new_registry({"NCSNpp": NCSNpp, "SmallUNet": SmallUNet})
SAMPLERS = ("pc", "ode", "sb_ode", "sb_sde")


def register_backbone(name: str, cls: type[nn.Module]) -> type[nn.Module]:
    """Make backbone class ``cls`` savable in and rebuildable from model configs under ``name``.

    ``cls(**backbone.config)`` must rebuild the architecture; the backbone maps
    ``(x [B, 2, F, T] complex, t [B], cond) -> [B, 1, F, T]`` and has a
    ``downsampling_factor``. Returns ``cls``.
    """
    return register(_BACKBONES, name, cls, kind="backbone", function="register_backbone")


class ScoreModel(nn.Module):
    """Score model ``s(x_t, y, t, cond)`` for complex spectrograms ``[B, 1, F, T]``.

    Args:
        backbone: module ``backbone(x [B, 2, F, T] complex, t [B], cond) -> [B, 1, F, T]``
            with a ``config`` dict and a ``downsampling_factor`` (NCSNpp, SmallUNet).
        sde: forward SDE (default: SGMSE+'s OUVE).
        transform: STFT representation and sample rate (default: SGMSE+'s at 16 kHz).
        output_scaling: ``"none"`` | ``"sigma"`` | ``"data"`` (default: the backbone's
            ``default_output_scaling``; see the module docstring).
        t_eps: smallest training time (SGMSE+: 0.03); also the samplers' default ``eps``
            for the OUVE SDE.
    """

    def __init__(self, backbone: nn.Module, sde: SDE | None = None,
                 transform: SpecTransform | None = None,
                 output_scaling: OutputScaling | None = None, t_eps: float = 0.03) -> None:
        super().__init__()
        self.backbone = backbone
        self.sde = sde if sde is not None else OUVESDE()
        self.transform = transform if transform is not None else SpecTransform()
        scaling = output_scaling or getattr(backbone, "default_output_scaling", "sigma")
        if scaling not in ("none", "sigma", "data"):
            raise ValueError(f"output_scaling must be 'none', 'sigma' or 'data', got {scaling!r}")
        self.output_scaling: str = scaling
        self.t_eps = float(t_eps)
        #: where the weights came from (training config, package versions; filled by
        #: :func:`sgmse_cfg.load_model`, empty for a model built in code)
        self.info: dict[str, Any] = {}

    @property
    def sample_rate(self) -> int:
        """Rate (Hz) of the audio the model takes and returns (its transform's)."""
        return self.transform.sample_rate

    @property
    def stft(self) -> SpecTransform:
        """The model's STFT representation (the same object as ``transform``)."""
        return self.transform

    # ---- config / checkpoints -------------------------------------------------------------
    def to_config(self) -> dict[str, Any]:
        """Plain-data description (rebuild with :meth:`from_config`; safe for
        ``torch.load(weights_only=True)``)."""
        name = name_of(BACKBONES, self.backbone, kind="backbone", function="register_backbone")
        return {"backbone": name, "backbone_config": dict(self.backbone.config),
                "sde": self.sde.to_dict(), "transform": self.transform.to_dict(),
                "output_scaling": self.output_scaling, "t_eps": self.t_eps}

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ScoreModel:
        """Rebuild a model (fresh weights) from :meth:`to_config`."""
        backbone = build_backbone(cfg)
        return cls(backbone, sde_from_dict(cfg["sde"]), SpecTransform.from_dict(cfg["transform"]),
                   output_scaling=cfg["output_scaling"], t_eps=cfg["t_eps"])

    # ---- score / data estimate ---------------------------------------------------------------
    def _coeffs(self, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, b = self.sde.mean_coeffs(t)
        return batch_view(a, like), batch_view(b, like), batch_view(self.sde.std(t), like)

    def backbone_output(self, x_t: Tensor, y: Tensor, t: Tensor,
                        cond: BackboneCond | None = None) -> Tensor:
        """Raw backbone output for ``(x_t, y)`` stacked as ``[B, 2, F, T]``."""
        return self.backbone(torch.cat([x_t, y], dim=1), t, cond)

    def forward(self, x_t: Tensor, y: Tensor, t: Tensor, cond: BackboneCond | None = None) -> Tensor:
        """Score ``[B, 1, F, T]`` at ``x_t`` given ``y`` (both ``[B, 1, F, T]`` complex),
        ``t [B]`` and an optional condition."""
        out = self.backbone_output(x_t, y, t, cond)
        if self.output_scaling == "none":
            return -out
        if self.output_scaling == "sigma":
            return -out / batch_view(self.sde.std(t), out)
        a, b, std = self._coeffs(t, out)
        return -(x_t - a * out - b * y) / std ** 2

    def denoise(self, x_t: Tensor, y: Tensor, t: Tensor, cond: BackboneCond | None = None) -> Tensor:
        """Estimate of ``x0``: the output itself for ``"data"``, else Tweedie's formula
        ``(x_t + std^2 s - b y) / a``."""
        if self.output_scaling == "data":
            return self.backbone_output(x_t, y, t, cond)
        s = self.forward(x_t, y, t, cond)
        a, b, std = self._coeffs(t, x_t)
        return (x_t + std ** 2 * s - b * y) / a

    def score_fn(self, cond: BackboneCond | None = None) -> ScoreFn:
        """``(x, y, t) -> score`` with ``cond`` bound (computed once per utterance)."""
        return lambda x, y, t: self.forward(x, y, t, cond)

    def denoise_fn(self, cond: BackboneCond | None = None) -> DenoiseFn:
        return lambda x, y, t: self.denoise(x, y, t, cond)

    # ---- training -------------------------------------------------------------------------
    def loss(self, x0: Tensor, y: Tensor, generator: torch.Generator | None = None,
             cond: BackboneCond | None = None, *, share: tuple[int, int] | None = None) -> LossTerms:
        """Training loss on clean / noisy spectrograms ``[B, 1, F, T]``: ``(total, terms)``
        with ``terms = {"dsm": total.detach()}`` (subclasses add terms).

        ``t ~ U[t_eps, T]``, ``x_t = mean + std z`` with ``z ~ CN(0, 1)``. For score outputs
        (``"none"``, ``"sigma"``) SGMSE+'s DSM loss with sigma^2 weighting,
        ``mean_batch(0.5 * sum_bins |std s + z|^2)`` (a sum over bins, so values are in the
        hundreds for 256 x 256 spectrograms); for ``"data"`` the data-prediction MSE
        ``mean_batch(mean_bins |x0_hat - x0|^2)`` (reported under the same ``"dsm"`` key).

        ``share=(rank, world)`` (data-parallel training): this batch holds items ``rank,
        rank + world, ...`` of a global batch; ``t`` and ``z`` are drawn for the global batch
        from ``generator`` (seeded alike on every rank) and this rank's items taken, so the
        ranks together draw exactly what one process with the global batch draws.
        """
        B = x0.shape[0]
        dev, rdtype = x0.device, x0.real.dtype
        u = share_rand(B, generator, dev, rdtype, share)
        t = u * (self.sde.T - self.t_eps) + self.t_eps
        x_t, z, std = self.sde.perturb(x0, y, t, generator, share)
        if self.output_scaling == "data":
            err = self.backbone_output(x_t, y, t, cond) - x0
            total = err.abs().pow(2).reshape(B, -1).mean(dim=1).mean()
        else:
            score = self.forward(x_t, y, t, cond)
            res = batch_view(std, score) * score + z
            total = 0.5 * res.abs().pow(2).reshape(B, -1).sum(dim=1).mean()
        return total, {"dsm": total.detach()}

    # ---- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, y: Tensor, *, sampler: str = "pc", N: int = 30,
               cond: BackboneCond | None = None, generator: torch.Generator | None = None,
               eps: float | None = None, **kwargs: Any) -> tuple[Tensor, int]:
        """Run a sampler on compressed noisy spectrograms ``y [B, 1, F, T]`` (``F``, ``T``
        multiples of the backbone's downsampling factor). ``sampler``: ``"pc"`` (kwargs
        ``predictor``, ``corrector``, ``snr``, ``corrector_steps``), ``"ode"`` (``method``),
        ``"sb_ode"``, ``"sb_sde"``. Returns ``(x0_estimate, nfe)``."""
        if sampler in ("pc", "ode"):
            eps = self.t_eps if eps is None else eps
            fn = pc_sampler if sampler == "pc" else ode_sampler
            return fn(self.sde, self.score_fn(cond), y, N=N, eps=eps, generator=generator, **kwargs)
        if sampler in ("sb_ode", "sb_sde"):
            if not isinstance(self.sde, SBVESDE):
                raise ValueError(f"sampler {sampler!r} needs the SBVESDE, this model uses "
                                 f"{type(self.sde).__name__}")
            return sb_sampler(self.sde, self.denoise_fn(cond), y, N=N, kind=sampler[3:],  # type: ignore[arg-type]
                              eps=1e-4 if eps is None else eps, generator=generator)
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")

    def _noisy_wave(self, y_wave: Tensor, sample_rate: int) -> Tensor:
        """``y_wave`` as one waveform ``[L]`` (a ``[1, L]`` batch of one is squeezed) at the
        transform's rate and at least ``n_fft`` samples long; :class:`SampleRateError` or
        :class:`BadAudioError` otherwise."""
        self.transform.check_sample_rate(sample_rate, "noisy waveform")
        if y_wave.ndim == 2 and y_wave.shape[0] == 1:
            y_wave = y_wave[0]
        if y_wave.ndim != 1:
            raise BadAudioError(f"enhance takes one mono waveform [L], got shape {tuple(y_wave.shape)}")
        if y_wave.shape[0] < self.transform.n_fft:
            raise BadAudioError(f"waveform too short: {y_wave.shape[0]} samples < n_fft={self.transform.n_fft}")
        return y_wave

    @keyword_alias(sr="sample_rate")
    @torch.no_grad()
    def enhance(self, y_wave: Tensor, sample_rate: int, *, sampler: str = "pc", N: int = 30,
                cond: BackboneCond | None = None, generator: torch.Generator | None = None,
                chunk_seconds: float | None = None, overlap_seconds: float = 0.5,
                max_chunk_seconds: float = 8.0, max_batch: int = 8, pad_mode: str = "zero",
                **sampler_kwargs: Any) -> Tensor:
        """Enhance one noisy waveform ``y_wave [L]`` at ``sample_rate`` Hz; returns ``[L]`` at
        that rate (``sr`` is an older alias of ``sample_rate``).

        As SGMSE+'s ``enhancement.py``: normalise by ``max|y|``, compressed STFT, pad the
        frames to the backbone's multiple (zero padding), sample, inverse STFT to ``L``
        samples, undo the normalisation. A wrong rate is a :class:`SampleRateError` naming
        the fix. Long files: if ``chunk_seconds`` is given, or the file is longer than
        ``max_chunk_seconds``, the spectrogram is cut into chunks of ``chunk_seconds``
        (default: ``max_chunk_seconds / 2``) overlapping by ``overlap_seconds``, enhanced in
        batches of ``max_batch`` chunks and cross-faded back linearly
        (:func:`se_data.chunked_apply`), so memory stays bounded. ``cond`` must have batch 1
        (it is shared by all chunks).
        """
        y_wave = self._noisy_wave(y_wave, sample_rate)
        tr = self.transform
        device = next(iter(self.parameters()), torch.empty(0)).device
        L = y_wave.shape[0]
        y_norm, normfac = normalize_by_noisy(y_wave.to(device=device, dtype=torch.float32))
        Y = tr.wave_to_spec(y_norm, sample_rate)  # [F, T]
        T = Y.shape[-1]
        f = int(getattr(self.backbone, "downsampling_factor", 1))
        hop_s = tr.hop_length / tr.sample_rate
        if chunk_seconds is None and not self.is_chunked(L, max_chunk_seconds):
            chunk = T
        else:
            chunk = int(round((chunk_seconds or max_chunk_seconds / 2) / hop_s))
        chunk = max(f, math.ceil(chunk / f) * f)
        overlap = min(int(round(overlap_seconds / hop_s)), chunk // 2)

        def enhance_chunks(ys: Tensor) -> Tensor:  # [n, F, t] -> [n, F, t]; t < chunk only unchunked
            spec, frames = SpecTransform.pad_frames(ys[:, None], f, mode=pad_mode)
            X, _ = self.sample(spec, sampler=sampler, N=N, cond=cond, generator=generator, **sampler_kwargs)
            return X[:, 0, :, :frames]

        Xh = chunked_apply(enhance_chunks, Y, chunk, overlap, max_batch=max_batch)
        x = tr.spec_to_wave(Xh, length=L) * normfac
        out_dtype = y_wave.dtype if y_wave.is_floating_point() else torch.float32
        return x.to(device=y_wave.device, dtype=out_dtype)

    def is_chunked(self, num_samples: int, max_chunk_seconds: float = 8.0) -> bool:
        """Whether :meth:`enhance` cuts a waveform of ``num_samples`` samples (at the transform's
        rate) into chunks: its ``num_samples // hop + 1`` frames last longer than
        ``max_chunk_seconds``."""
        hop = self.transform.hop_length
        return (int(num_samples) // hop + 1) * hop / self.transform.sample_rate > max_chunk_seconds

    def padded_frames(self, num_samples: int) -> int:
        """Frames of the spectrogram :meth:`enhance` samples for a waveform of ``num_samples``
        samples without chunking: ``num_samples // hop + 1`` padded up to the backbone's multiple
        (64 for NCSN++). Waveforms with equal counts can share one :meth:`enhance_batch`."""
        f = int(getattr(self.backbone, "downsampling_factor", 1))
        return math.ceil((int(num_samples) // self.transform.hop_length + 1) / f) * f

    @torch.no_grad()
    def enhance_batch(self, y_waves: list[Tensor], sample_rate: int, *, sampler: str = "pc", N: int = 30,
                      generators: list[torch.Generator] | None = None, pad_mode: str = "zero",
                      cond: BackboneCond | None = None, **sampler_kwargs: Any) -> list[Tensor]:
        """Enhance several noisy waveforms ``[L_b]`` in one sampler run; returns the list of
        enhanced ``[L_b]``. Each waveform is prepared as :meth:`enhance` prepares it unchunked
        (normalised by its own ``max|y|``, its own STFT, its frames padded to the backbone's
        multiple) and they must share one padded frame count (:meth:`padded_frames`; bucket
        files by it), so no item is padded beyond what it gets alone. ``generators`` (one per
        waveform, on the model's device) draw each item's noise: item ``b`` then equals
        ``enhance(y_waves[b], ..., generator=generators[b])`` to float rounding. ``cond``: a
        condition of batch ``len(y_waves)`` (item ``b``'s in row ``b``) or 1 (shared); for a
        noise-conditioned model see :meth:`NoiseCondScoreModel.enhance_batch`. No chunking: long
        files go through :meth:`enhance`."""
        if not y_waves:
            return []
        if generators is not None and len(generators) != len(y_waves):
            raise ValueError(f"{len(generators)} generators for {len(y_waves)} waveforms: give one per waveform")
        tr = self.transform
        device = next(iter(self.parameters()), torch.empty(0)).device
        f = int(getattr(self.backbone, "downsampling_factor", 1))
        waves = [self._noisy_wave(w, sample_rate) for w in y_waves]
        padded = {self.padded_frames(w.shape[0]) for w in waves}
        if len(padded) > 1:
            raise ValueError(f"enhance_batch needs waveforms of one padded frame count (model.padded_frames); "
                             f"these give {sorted(padded)}: batch them separately")
        # per item, once per file (not per sampler step): its own normalisation and STFT
        norm = [normalize_by_noisy(w.to(device=device, dtype=torch.float32)) for w in waves]
        specs = [SpecTransform.pad_frames(tr.wave_to_spec(y, sample_rate)[None, None], f, mode=pad_mode)
                 for y, _ in norm]
        X, _ = self.sample(torch.cat([s for s, _ in specs]), sampler=sampler, N=N, cond=cond, generator=generators,
                           **sampler_kwargs)
        out = []
        for b, (w, (_, normfac), (_, frames)) in enumerate(zip(waves, norm, specs)):
            x = tr.spec_to_wave(X[b, 0, :, :frames], length=w.shape[0]) * normfac
            out.append(x.to(device=w.device, dtype=w.dtype if w.is_floating_point() else torch.float32))
        return out


def build_backbone(cfg: dict[str, Any]) -> nn.Module:
    """The backbone of a model config (``cfg["backbone"]`` looked up in :data:`BACKBONES`)."""
    name = cfg["backbone"]
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r} in the model config; known: {sorted(BACKBONES)} "
                         f"(register others with sgmse_cfg.register_backbone before loading)")
    return BACKBONES[name](**cfg["backbone_config"])
