"""Plumbing shared by tools/train_sgmse.py, enhance_sgmse.py and eval_ood.py (not a public API).

* data: waveform crops -> the model's spectrograms (the corpus and its batches are
  ``se_data.open_training_corpus`` / ``se_data.iterate_batches``);
* checkpoints -> models (EMA or live weights), and one-file enhancement with timing;
* per-file metrics (PESQ-WB, ESTOI, SI-SDR) and a plain-text table.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from se_data import load_audio
import sgmse_cfg
from sgmse_cfg import CheckpointError, ScoreModel, resolve_sampler

METRIC_COLUMNS = ("PESQ-WB", "ESTOI", "SI-SDR (dB)")


# ----------------------------------------------------------------------------- data
def to_specs(model: ScoreModel, noisy: torch.Tensor, clean: torch.Tensor, sr: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveform crops ``[B, L]`` -> compressed spectrograms ``(x0, y) [B, 1, F, T]``, normalised
    by max|noisy| per utterance (SGMSE+'s ``normalize="noisy"``; silent crops are left at 0)."""
    normfac = noisy.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8)
    tr = model.transform
    return tr.wave_to_spec(clean / normfac, sr)[:, None], tr.wave_to_spec(noisy / normfac, sr)[:, None]


# ----------------------------------------------------------------------------- models
def load_model(path: str | Path, weights: str = "ema", map_location: str | torch.device = "cpu"
               ) -> tuple[ScoreModel, dict[str, Any]]:
    """``sgmse_cfg.load_model`` with the tools' exits: ``(model in eval mode, model.info)``."""
    try:
        model = sgmse_cfg.load_model(path, weights=weights, map_location=map_location)  # type: ignore[arg-type]
    except (FileNotFoundError, CheckpointError) as e:
        fix = str(e).replace("weights='ema'", "--weights ema").replace("weights='live'", "--weights live")
        raise SystemExit(f"error: {fix}") from e
    return model, model.info


@dataclass
class EnhanceOptions:
    sampler: str = "pc"
    N: int = 30
    guidance: str = "cond"
    w: float = 1.0
    alpha: float = 0.5
    sampler_kwargs: dict[str, Any] = field(default_factory=dict)
    max_chunk_seconds: float = 8.0
    chunk_seconds: float | None = None
    overlap_seconds: float = 0.5
    amp: bool = False
    batched_cfg: bool = True


def enhance_wave(model: ScoreModel, wave: torch.Tensor, sr: int, opts: EnhanceOptions, seed: int,
                 noise_ref: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Enhance one waveform ``[L]`` with ``sgmse_cfg.enhance``; returns ``(enhanced [L] on CPU,
    info)`` with the guidance scale, uncertainty diagnostics, NFE, wall time and real-time
    factor. ``noise_ref [L']`` (same rate): a separate noise recording for the noise encoder
    instead of the noisy input."""
    if not isinstance(model, sgmse_cfg.NoiseCondScoreModel):
        if noise_ref is not None:
            raise SystemExit("error: a noise reference needs a noise-conditioned model; this checkpoint "
                             "has no noise encoder")
        if opts.guidance != "cond":
            raise SystemExit(f"error: guidance {opts.guidance!r} needs a noise-conditioned model; this "
                             f"checkpoint has no noise encoder (use --guidance cond)")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    info: dict[str, Any] = {"seconds": wave.shape[-1] / sr}
    diag: dict[str, Any] = {}
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if opts.amp else _null_ctx()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad(), ctx:
        out = sgmse_cfg.enhance(model, wave, sr, sampler=opts.sampler, N=opts.N, guidance=opts.guidance, w=opts.w,
                                alpha=opts.alpha, noise_ref=noise_ref, batched_cfg=opts.batched_cfg, generator=gen,
                                diagnostics=diag, max_chunk_seconds=opts.max_chunk_seconds,
                                chunk_seconds=opts.chunk_seconds, overlap_seconds=opts.overlap_seconds,
                                **opts.sampler_kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall_s = time.perf_counter() - t0
    info.update({k: v for k, v in diag.items() if k not in ("sampler", "N")})  # those are run-wide settings
    info["wall_s"] = wall_s
    info["rtf"] = wall_s / info["seconds"]
    return out.float().cpu(), info


class _null_ctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


def add_sampler_args(p: argparse.ArgumentParser, *, default_N: int = 30) -> None:
    g = p.add_argument_group("sampling and guidance")
    p.set_defaults(default_N=default_N)  # --N for pc / ode when left out (options_from_args)
    g.add_argument("--sampler", choices=["pc", "ode", "sb_ode", "sb_sde"], default=None,
                   help="pc: predictor-corrector (SGMSE+'s default); ode: probability-flow ODE (Heun); "
                        "sb_ode / sb_sde: Schroedinger-bridge samplers (models trained with --sde sbve) "
                        "(default: sb_ode for a bridge model, pc otherwise)")
    g.add_argument("--N", type=int, default=None,
                   help=f"sampler steps (default {default_N} for pc / ode, 10 for the bridge samplers; PC: 2N score "
                        f"evaluations)")
    g.add_argument("--predictor", choices=["reverse_diffusion", "euler_maruyama", "none"], default="reverse_diffusion",
                   help="PC predictor (default reverse_diffusion)")
    g.add_argument("--corrector", choices=["ald", "none"], default="ald", help="PC corrector (default ald)")
    g.add_argument("--snr", type=float, default=0.5, help="annealed-Langevin corrector snr (default 0.5)")
    g.add_argument("--corrector-steps", type=int, default=1, help="corrector steps per PC step (default 1)")
    g.add_argument("--ode-method", choices=["heun", "euler"], default="heun", help="ODE solver (default heun)")
    g.add_argument("--guidance", choices=["cond", "uncond", "static", "nc", "knn", "mix"], default="cond",
                   help="cond: conditional score (NASE, no CFG); uncond: null condition; static: CFG with a fixed "
                        "--w; nc / knn / mix: per-utterance w = --w x reliability from NC confidence, k-NN "
                        "distance to the training bank, or alpha-mix of both (default cond)")
    g.add_argument("--w", type=float, default=1.0,
                   help="guidance scale (static) or its maximum (adaptive); s = s_u + w (s_c - s_u) (default 1)")
    g.add_argument("--alpha", type=float, default=0.5, help="mix: weight of the NC term (default 0.5)")
    g.add_argument("--max-chunk-seconds", type=float, default=8.0,
                   help="files longer than this are enhanced in overlapping chunks (default 8)")
    g.add_argument("--chunk-seconds", type=float, default=None,
                   help="chunk length for long files (default: half of --max-chunk-seconds)")
    g.add_argument("--overlap-seconds", type=float, default=0.5, help="chunk cross-fade (default 0.5)")
    g.add_argument("--amp", action="store_true",
                   help="bf16 autocast for the backbone (complex I/O stays float32); GPU speed option")
    g.add_argument("--cfg-two-forwards", action="store_true",
                   help="compute the CFG halves with two forwards of batch 1 instead of one of batch 2 (same "
                        "output; faster on a CPU, slower on a GPU)")


def options_from_args(args: argparse.Namespace, model: ScoreModel) -> EnhanceOptions:
    """Sampling options from the command line; ``--sampler`` / ``--N`` left out follow the
    model's SDE (``sgmse_cfg.resolve_sampler``: the bridge samplers for a bridge model, PC
    otherwise)."""
    try:
        args.sampler, n_default = resolve_sampler(model, args.sampler)
    except ValueError as e:
        raise SystemExit(f"error: --sampler: {e}") from e
    if args.N is None:
        args.N = n_default if args.sampler.startswith("sb_") else args.default_N
    kw: dict[str, Any] = {}
    if args.sampler == "pc":
        kw = dict(predictor=args.predictor, corrector=args.corrector, snr=args.snr,
                  corrector_steps=args.corrector_steps)
    elif args.sampler == "ode":
        kw = dict(method=args.ode_method)
    return EnhanceOptions(sampler=args.sampler, N=args.N, guidance=args.guidance, w=args.w, alpha=args.alpha,
                          sampler_kwargs=kw, max_chunk_seconds=args.max_chunk_seconds,
                          chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap_seconds, amp=args.amp,
                          batched_cfg=not args.cfg_two_forwards)


# ----------------------------------------------------------------------------- metrics
def scores(clean: np.ndarray, test: np.ndarray, sr: int) -> dict[str, float]:
    """PESQ-WB, ESTOI, SI-SDR of ``test`` against ``clean`` (NaN where a metric is undefined)."""
    from se_metrics import pesq, si_sdr, stoi

    out: dict[str, float] = {}
    for name, fn in (("PESQ-WB", lambda: pesq(clean, test, sr, mode="wb")),
                     ("ESTOI", lambda: stoi(clean, test, sr, extended=True)),
                     ("SI-SDR (dB)", lambda: si_sdr(clean, test, sr))):
        try:
            out[name] = float(fn())
        except Exception:  # noqa: BLE001 - e.g. no speech for PESQ; counted as missing
            out[name] = float("nan")
    return out


def format_table(rows: list[tuple[str, dict[str, float]]], extra: tuple[str, ...] = ()) -> str:
    """Rows ``(label, {column: value})`` -> aligned text; columns: the metrics, then ``extra``."""
    cols = METRIC_COLUMNS + extra
    w0 = max([len(r[0]) for r in rows] + [10])
    head = f"{'':{w0}s}" + "".join(f"{c:>13s}" for c in cols)
    lines = [head, "-" * len(head)]
    for label, vals in rows:
        cells = []
        for c in cols:
            v = vals.get(c, float("nan"))
            cells.append(f"{v:13d}" if isinstance(v, int) else f"{v:13.3f}")
        lines.append(f"{label:{w0}s}" + "".join(cells))
    return "\n".join(lines)


def nanmean(values: list[float]) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(vals)) if vals else float("nan")


def list_wavs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".wav", ".flac"))


def load_pair(noisy: Path, clean: Path, sr: int, resample: bool) -> tuple[torch.Tensor, torch.Tensor]:
    y, _ = load_audio(noisy, sr, resample=resample, mono=True)
    x, _ = load_audio(clean, sr, resample=resample, mono=True)
    n = min(len(y), len(x))
    return y[:n], x[:n]
