"""Plumbing shared by tools/train_sgmse.py, enhance_sgmse.py and eval_ood.py (not a public API).

* checkpoints -> models (EMA or live weights) with the tools' exits, and one-file
  enhancement with timing; the sampling flags -> options;
* the tables' columns (scores and means: ``se_metrics.labelled_scores`` / ``mean_rows`` /
  ``format_metric_table``), train_sgmse's test-set table, a CSV of per-file rows, folder
  listing and paired loading.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

import _argtypes as T
from se_data import load_audio
from se_metrics import DEFAULT_TABLE_METRICS, METRIC_LABELS, format_metric_table, labelled_scores, mean_rows
import sgmse_cfg
from sgmse_cfg import CheckpointError, ScoreModel, resolve_sampler


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
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if opts.amp else contextlib.nullcontext()
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


def enhance_waves(model: ScoreModel, waves: list[torch.Tensor], sr: int, opts: EnhanceOptions, seeds: list[int],
                  noise_refs: list[torch.Tensor | None] | None = None) -> list[tuple[torch.Tensor, dict[str, Any]]]:
    """Waveforms ``[L_b]`` of one padded frame count in one ``sgmse_cfg.enhance_batch`` run, file
    b's noise from a generator seeded ``seeds[b]`` (as :func:`enhance_wave`) and, for a
    noise-conditioned model, its own condition (from ``noise_refs[b]`` where given). Returns
    ``(enhanced [L_b] on CPU, info)`` per file as :func:`enhance_wave`, ``wall_s`` the batch's time
    shared out evenly."""
    device = next(model.parameters()).device
    gens = [torch.Generator(device=device).manual_seed(s) for s in seeds]
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if opts.amp else contextlib.nullcontext()
    diags: list[dict[str, Any]] = []
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad(), ctx:
        outs = sgmse_cfg.enhance_batch(model, waves, sr, sampler=opts.sampler, N=opts.N, generators=gens,
                                       guidance=opts.guidance, w=opts.w, alpha=opts.alpha, noise_refs=noise_refs,
                                       batched_cfg=opts.batched_cfg, diagnostics=diags, **opts.sampler_kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall_s = (time.perf_counter() - t0) / len(waves)
    res = []
    for w, o, d in zip(waves, outs, diags):
        info = {"seconds": w.shape[-1] / sr, **{k: v for k, v in d.items() if k not in ("sampler", "N")}}
        res.append((o.float().cpu(), {**info, "wall_s": wall_s, "rtf": wall_s / info["seconds"]}))
    return res


def enhance_wave_like_sgmse(model: ScoreModel, wave: torch.Tensor, sr: int, opts: EnhanceOptions,
                            t_eps: float | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """One file through ``sgmse_cfg.enhance_like_sgmse`` (global random stream; ``t_eps`` None:
    its default 0.03), timed: ``(enhanced [L] on CPU, {"seconds", "wall_s", "rtf"})``."""
    device = next(model.parameters()).device
    kw = opts.sampler_kwargs
    pc = {k: kw[k] for k in ("predictor", "corrector", "snr", "corrector_steps") if k in kw}
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = sgmse_cfg.enhance_like_sgmse(model, wave.to(device), sr, sampler=opts.sampler, N=opts.N,
                                       t_eps=0.03 if t_eps is None else t_eps, pad_mode=kw.get("pad_mode"), **pc)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall_s = time.perf_counter() - t0
    seconds = wave.shape[-1] / sr
    return out.float().cpu(), {"seconds": seconds, "wall_s": wall_s, "rtf": wall_s / seconds}


def add_sampler_args(p: argparse.ArgumentParser, *, default_N: int = 30) -> None:
    g = p.add_argument_group("sampling and guidance")
    p.set_defaults(default_N=default_N)  # --N for pc / ode when left out (options_from_args)
    g.add_argument("--sampler", choices=["pc", "ode", "sb_ode", "sb_sde"], default=None,
                   help="pc: predictor-corrector (SGMSE+'s default); ode: probability-flow ODE (Heun); "
                        "sb_ode / sb_sde: Schroedinger-bridge samplers (models trained with --sde sbve) "
                        "(default: sb_ode for a bridge model, pc otherwise)")
    g.add_argument("--N", type=T.positive_int(), default=None,
                   help=f"sampler steps (default {default_N} for pc / ode, 10 for the bridge samplers; PC: 2N score "
                        f"evaluations)")
    g.add_argument("--predictor", choices=["reverse_diffusion", "euler_maruyama", "none"], default="reverse_diffusion",
                   help="PC predictor (default reverse_diffusion)")
    g.add_argument("--corrector", choices=["ald", "none"], default="ald", help="PC corrector (default ald)")
    g.add_argument("--snr", type=T.float_range(0.0, None, low_open=True), default=0.5,
                   help="annealed-Langevin corrector snr, a step-size ratio, not dB (default 0.5)")
    g.add_argument("--corrector-steps", type=T.nonneg_int(), default=1,
                   help="corrector steps per PC step (default 1; 0 = no correction, as --corrector none)")
    g.add_argument("--ode-method", choices=["heun", "euler"], default="heun", help="ODE solver (default heun)")
    g.add_argument("--guidance", choices=["cond", "uncond", "static", "nc", "knn", "mix"], default="cond",
                   help="cond: conditional score (NASE, no CFG); uncond: null condition; static: CFG with a fixed "
                        "--w; nc / knn / mix: per-utterance w = --w x reliability from NC confidence, k-NN "
                        "distance to the training bank, or alpha-mix of both (default cond)")
    g.add_argument("--w", type=T.GUIDANCE_SCALE, default=1.0,
                   help="guidance scale (static) or its maximum (adaptive); s = s_u + w (s_c - s_u) (default 1)")
    g.add_argument("--alpha", type=T.PROBABILITY.but(noun="a weight"), default=0.5,
                   help="mix: weight of the NC term (default 0.5)")
    g.add_argument("--max-chunk-seconds", type=T.seconds(), default=8.0,
                   help="files longer than this are enhanced in overlapping chunks (default 8)")
    g.add_argument("--chunk-seconds", type=T.seconds(), default=None,
                   help="chunk length for long files (default: half of --max-chunk-seconds)")
    g.add_argument("--overlap-seconds", type=T.seconds(low_open=False), default=0.5,
                   help="chunk cross-fade (default 0.5; less than --chunk-seconds; at most half a chunk is used)")
    g.add_argument("--amp", action="store_true",
                   help="bf16 autocast for the backbone (complex I/O stays float32); GPU speed option")
    g.add_argument("--cfg-two-forwards", action="store_true",
                   help="compute the CFG halves with two forwards of batch 1 instead of one of batch 2 (same "
                        "output; faster on a CPU, slower on a GPU)")


def check_sampler_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Checks between the sampling flags, right after parsing (``p.error``)."""
    T.check_less(p, ("--overlap-seconds", args.overlap_seconds), ("--chunk-seconds", args.chunk_seconds),
                 why="chunks must advance")


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


# ----------------------------------------------------------------------------- tables and files
#: the tables' metric columns (se_metrics.labelled_scores' headings) and their width
COLUMNS = tuple(METRIC_LABELS[m] for m in DEFAULT_TABLE_METRICS)
WIDTH = 13


def write_rows_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows as CSV under the union of their keys (first-seen order); a missing value is empty."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def test_table(model: ScoreModel, pairs: list[tuple[str, Path, Path]], opts: EnhanceOptions, *, seed: int,
               resample: bool, out: Path) -> dict[str, Any]:
    """Enhance the test pairs ``(name, noisy, clean)`` (file ``i`` with seed ``seed + i``), print
    the mean PESQ-WB / ESTOI / SI-SDR table of noisy and enhanced audio, write it to
    ``out/test_table.txt``; ``{"mean": {row: {column: mean}}, "count", "rtf"}``."""
    sr = model.sample_rate
    rows: dict[str, list[dict[str, float]]] = {"noisy": [], "enhanced": []}
    rtf = []
    for i, (_, noisy_p, clean_p) in enumerate(tqdm(pairs, desc="test set", leave=False, dynamic_ncols=True)):
        noisy, clean = load_pair(noisy_p, clean_p, sr, resample, mono=True)  # the corpus checked channels
        enh, info = enhance_wave(model, noisy, sr, opts, seed=seed + i)
        rows["noisy"].append(labelled_scores(clean.numpy(), noisy.numpy(), sr))
        rows["enhanced"].append(labelled_scores(clean.numpy(), enh.numpy(), sr))
        rtf.append(info["rtf"])
    mean = mean_rows(rows, COLUMNS)
    table = format_metric_table(mean, COLUMNS, width=WIDTH)
    print(f"\nHeld-out test set ({len(pairs)} utterances; {opts.sampler} sampler N={opts.N}, conditional score, "
          f"mean RTF {sum(rtf) / len(rtf):.2f}):\n{table}\n", flush=True)
    (out / "test_table.txt").write_text(table + "\n")
    return {"mean": mean, "count": len(pairs), "rtf": sum(rtf) / len(rtf)}


def list_wavs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".wav", ".flac"))


def load_pair(noisy: Path, clean: Path, sr: int, resample: bool, *, mono: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(noisy [T], clean [T])`` at ``sr`` Hz, trimmed to the shorter; a multi-channel file is an
    error naming it unless ``mono`` (mean downmix)."""
    y, _ = load_audio(noisy, sr, resample=resample, mono=mono)
    x, _ = load_audio(clean, sr, resample=resample, mono=mono)
    n = min(len(y), len(x))
    return y[:n], x[:n]
