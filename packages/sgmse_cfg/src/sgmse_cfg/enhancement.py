"""``enhance``: one noisy waveform through a trained model, with the sampler picked from the
model's SDE and the guidance options of the tools (``tools/enhance_sgmse.py``,
``tools/eval_ood.py``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from se_data import keyword_alias

from .guidance import GuidedCond
from .noise_cond_model import NoiseCondScoreModel
from .noise_encoders import NoiseEncoding
from .score_model import ScoreModel
from .sdes import SBVESDE

__all__ = ["enhance", "enhance_batch", "resolve_sampler"]

#: sampler steps when ``N`` is left out: PC / probability-flow ODE (SGMSE+'s 30) and the
#: Schroedinger-bridge samplers
DEFAULT_N = {"pc": 30, "ode": 30, "sb_ode": 10, "sb_sde": 10}


def resolve_sampler(model: ScoreModel, sampler: str | None = None, N: int | None = None) -> tuple[str, int]:
    """``(sampler, N)`` for ``model``: ``sampler`` left out is ``"sb_ode"`` for a
    Schroedinger-bridge model and ``"pc"`` otherwise, ``N`` left out is 10 for the bridge
    samplers and 30 for PC / ODE. A sampler that does not fit the model's SDE is a
    ``ValueError`` naming the ones that do."""
    bridge = isinstance(model.sde, SBVESDE)
    if sampler is None:
        sampler = "sb_ode" if bridge else "pc"
    if sampler not in DEFAULT_N:
        raise ValueError(f"sampler must be one of {sorted(DEFAULT_N)}, got {sampler!r}")
    if bridge != sampler.startswith("sb_"):
        kind = "Schroedinger-bridge" if bridge else type(model.sde).__name__
        fits = "sb_ode or sb_sde" if bridge else "pc or ode"
        raise ValueError(f"sampler {sampler!r} does not fit this model, trained with the {kind} SDE: use "
                         f"{fits} (or leave the sampler out)")
    if N is None:
        N = DEFAULT_N[sampler]
    if int(N) != N or N < 1:
        raise ValueError(f"N (sampler steps) must be a positive integer, got {N!r}")
    return sampler, int(N)


@keyword_alias(sr="sample_rate")
@torch.no_grad()
def enhance(model: ScoreModel, audio: Tensor, sample_rate: int, *, sampler: str | None = None,
            N: int | None = None, guidance: str | None = None, w: float = 1.0, alpha: float = 0.5,
            noise_ref: Tensor | None = None, batched_cfg: bool = True,
            generator: torch.Generator | None = None, diagnostics: dict[str, Any] | None = None,
            **opts: Any) -> Tensor:
    """Enhance one noisy waveform ``audio [T]`` (or ``[1, T]``) at ``sample_rate`` Hz with
    ``model``; returns the enhanced ``[T]`` at that rate, on ``audio``'s device.

    Args:
        model: a :class:`ScoreModel` or :class:`NoiseCondScoreModel` (e.g. from
            :func:`load_model`), on the device to run on.
        sample_rate: rate (Hz) of ``audio``; must be the model's (``sr``: older alias).
        sampler, N: see :func:`resolve_sampler` (defaults follow the model's SDE).
        guidance: ``"cond"`` (default; the only choice without a noise encoder),
            ``"uncond"``, ``"static"`` (CFG with scale ``w``) or the adaptive ``"nc"`` /
            ``"nc_raw"`` / ``"knn"`` / ``"mix"`` (``w`` the maximum, ``alpha`` the NC weight of
            ``mix``).
        noise_ref: ``[T']`` noise-only recording at the same rate for the noise encoder
            (default: the noisy input itself).
        batched_cfg: CFG halves in one forward of twice the batch (default) or two forwards.
        generator: seeds the sampler (same seed, same output).
        diagnostics: a dict filled with the per-utterance guidance scale ``w``, the
            uncertainty measures (``nc_certainty``, ``nc_confidence``, ``nc_entropy``,
            ``nc_class``, ``nc_class_name``, ``knn_distance``, ``knn_reliability`` where the
            model has them), ``sampler``, ``N`` and ``forwards_per_eval``.
        **opts: passed to :meth:`ScoreModel.enhance`: chunking (``chunk_seconds``,
            ``overlap_seconds``, ``max_chunk_seconds``, ``max_batch``, ``pad_mode``) and
            sampler options (PC: ``predictor``, ``corrector``, ``snr``, ``corrector_steps``;
            ODE: ``method``).

    The noise embedding is computed once from the whole file and shared by every chunk and
    every score evaluation. Wrong rates are a :class:`SampleRateError`, unusable audio a
    :class:`BadAudioError`, options the model cannot honour a ``ValueError``.
    """
    sampler, N = resolve_sampler(model, sampler, N)
    guidance = "cond" if guidance is None else guidance
    diag: dict[str, Any] = {"sampler": sampler, "N": N}
    if isinstance(model, NoiseCondScoreModel):
        gc, enc = model.prepare(audio, sample_rate, guidance=guidance, w=w, alpha=alpha, noise_ref=noise_ref)
        gc.batched = batched_cfg
        out = model.enhance(audio, sample_rate, cond=gc, sampler=sampler, N=N, generator=generator, **opts)
        diag.update(_guidance_diagnostics(model, gc, 0, enc))
    else:
        _check_plain(noise_ref is not None, guidance)
        out = model.enhance(audio, sample_rate, sampler=sampler, N=N, generator=generator, **opts)
        diag["forwards_per_eval"] = 1
    if diagnostics is not None:
        diagnostics.update(diag)
    return out


def _check_plain(has_noise_ref: bool, guidance: str) -> None:
    """A plain :class:`ScoreModel` takes neither a noise reference nor guidance but ``"cond"``."""
    if has_noise_ref:
        raise ValueError("a noise reference needs a noise-conditioned model (NoiseCondScoreModel); this "
                         "model has no noise encoder: leave noise_ref out")
    if guidance != "cond":
        raise ValueError(f"guidance {guidance!r} needs a noise-conditioned model (NoiseCondScoreModel); this "
                         f"model has no noise encoder: use guidance='cond'")


def _guidance_diagnostics(model: NoiseCondScoreModel, gc: GuidedCond, b: int, enc: NoiseEncoding) -> dict[str, Any]:
    """Item ``b``'s guidance scale ``w`` (of ``gc.w`` ``[B]`` or ``[1]``), the uncertainty
    measures of its encoding ``enc`` (batch 1) and ``forwards_per_eval``."""
    diag: dict[str, Any] = {"w": float(gc.w.reshape(-1)[b if gc.w.numel() > 1 else 0].float())}
    for k, v in model.uncertainty(enc).items():
        diag[k] = int(v[0]) if k == "nc_class" else float(v[0])
    if "nc_class" in diag and model.class_names:
        diag["nc_class_name"] = model.class_names[diag["nc_class"]]
    diag["forwards_per_eval"] = gc.forwards_per_eval
    return diag


@torch.no_grad()
def enhance_batch(model: ScoreModel, audios: list[Tensor], sample_rate: int, *, sampler: str | None = None,
                  N: int | None = None, generators: list[torch.Generator] | None = None,
                  guidance: str | None = None, w: float = 1.0, alpha: float = 0.5,
                  noise_refs: list[Tensor | None] | None = None, batched_cfg: bool = True,
                  diagnostics: list[dict[str, Any]] | None = None, **opts: Any) -> list[Tensor]:
    """Enhance several noisy waveforms ``[L_b]`` with one sampler run (a batch of ``len(audios)``);
    returns the enhanced ``[L_b]`` list.

    Item ``b`` equals ``enhance(model, audios[b], sample_rate, generator=generators[b],
    noise_ref=noise_refs[b])`` (same sampler, guidance and options, no chunking) to float
    rounding: each waveform is normalised, transformed and padded on its own, its noise comes
    from its own generator (one per waveform, on the model's device), and for a
    :class:`NoiseCondScoreModel` its condition is computed as alone (its own noise embedding,
    from the whole file or from its noise reference ``noise_refs[b] [L'_b]``, ``None`` for the
    noisy input; its own adaptive guidance scale) and the conditions stacked, guidance applied
    per item. The waveforms must share one padded frame count (:meth:`ScoreModel.padded_frames`:
    bucket files by it, e.g. 1-4 s files in steps of 64 frames at 16 kHz), so none is padded
    beyond what it gets alone. ``guidance``, ``w``, ``alpha``, ``batched_cfg``: as
    :func:`enhance`. ``diagnostics``: a list filled with one dict per item (what
    :func:`enhance` reports). ``**opts``: ``pad_mode`` and the sampler options of :func:`enhance`.
    """
    sampler, N = resolve_sampler(model, sampler, N)
    guidance = "cond" if guidance is None else guidance
    diags: list[dict[str, Any]] = [{"sampler": sampler, "N": N} for _ in audios]
    if isinstance(model, NoiseCondScoreModel):
        if not audios:
            return []
        gc, encs = model.prepare_batch(audios, sample_rate, guidance=guidance, w=w, alpha=alpha,
                                       noise_refs=noise_refs)
        gc.batched = batched_cfg
        outs = model.enhance_batch(list(audios), sample_rate, cond=gc, sampler=sampler, N=N,
                                   generators=generators, **opts)
        for b, (d, enc) in enumerate(zip(diags, encs)):
            d.update(_guidance_diagnostics(model, gc, b, enc))
    else:
        _check_plain(noise_refs is not None and any(r is not None for r in noise_refs), guidance)
        outs = model.enhance_batch(list(audios), sample_rate, sampler=sampler, N=N, generators=generators, **opts)
        for d in diags:
            d["forwards_per_eval"] = 1
    if diagnostics is not None:
        diagnostics.extend(diags)
    return outs
