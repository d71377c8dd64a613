#!/usr/bin/env python
"""Train a score-based diffusion speech enhancer (SGMSE+) with noise-aware conditioning (NASE),
an NC loss and classifier-free-guidance condition dropout.

With no arguments: builds the deterministic demo corpus (16 kHz), trains a small UNet
(SmallUNet, 0.7 M parameters) as a Schroedinger-bridge model (data prediction) with a CNN
noise encoder, input-addition injection, the NC loss over the corpus' 5 noise kinds and
condition dropout p_uncond = 0.1, for 400 steps (Adam 1e-3, about 3 CPU minutes); picks the
checkpoint on the validation split (EMA weights); fills the k-NN bank of training noise
embeddings (saved inside the model); and enhances a few test files with the bridge ODE
(N = 10), printing PESQ / ESTOI / SI-SDR for noisy and enhanced audio. On 8 demo test files
that run gave PESQ-WB 1.55 -> 2.13, ESTOI 0.790 -> 0.831, SI-SDR 4.2 -> 15.0 dB; the same
400 steps with SGMSE+'s OUVE SDE (``--sde ouve``, PC N = 30) gave 1.54 / 0.759 / 7.9 dB, a
score model that short does not yet beat the noisy PESQ.

Recipe with ``--data`` (SGMSE+): OUVE SDE, DSM loss with sigma^2 weighting, Adam 1e-4, EMA
0.999 (with a warm-up, see --no-ema-warmup), 256-frame crops (2.04 s) normalised by
max|noisy|. NASE: loss = DSM + 0.3 CE. Outputs in --out:
``last.pt`` (resume), ``best.pt``, ``model.pt`` (EMA weights + bank, for enhance_sgmse.py
and eval_ood.py), ``log.csv``, ``config.json``, ``results.json``.

Runs unchanged under ``torchrun --nproc_per_node N tools/train_sgmse.py ...`` (DDP; gloo on CPU).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cli  # noqa: E402
import _sgmse_common as common  # noqa: E402
import _train  # noqa: E402

from se_data import TrainingCorpus, iterate_batches, load_audio  # noqa: E402
from sgmse_cfg import (  # noqa: E402
    NCSNPP_PRESETS,
    OUVESDE,
    SBVESDE,
    CNNNoiseEncoder,
    NCSNpp,
    NoiseCondScoreModel,
    PretrainedNoiseEncoder,
    ScoreModel,
    SequenceNoiseEncoder,
    SmallUNet,
    SpecTransform,
    load_audio_encoder,
)

TOOL = "train_sgmse"
SAMPLE_RATE = 16000
#: flags a --resume may change: the shared ones and the final evaluation's
RESUME_FREE = _train.RESUME_FREE | {"test_files", "test_N", "test_sampler"}


def _ints(s: str) -> tuple[int, ...]:
    return tuple(int(v) for v in s.split(",") if v.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train_sgmse.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("score model")
    g.add_argument("--backbone", choices=["smallunet", "ncsnpp"], default="smallunet",
                   help="smallunet: the 0.7 M-parameter CPU UNet; ncsnpp: NCSN++ (see --ncsnpp-preset) (default smallunet)")
    g.add_argument("--ncsnpp-preset", choices=sorted(NCSNPP_PRESETS), default="sgmse",
                   help="NCSN++ configuration: sgmse (SGMSE+'s 65.6 M), storm_m, storm_12m, storm_6m, ... (default sgmse)")
    g.add_argument("--unet-channels", type=_ints, default=(16, 32, 64, 64), metavar="C1,C2,...",
                   help="SmallUNet channels per level (default 16,32,64,64)")
    g.add_argument("--sde", choices=["ouve", "sbve"], default=None,
                   help="ouve: SGMSE+'s OUVE SDE (theta 1.5, sigma 0.05..0.5); sbve: Schroedinger bridge "
                        "(data prediction, sample with sb_ode / sb_sde). Default: ouve (SGMSE+) with --data; sbve "
                        "for the built-in demo run, where a bridge model learns to enhance within its 400 CPU "
                        "steps and an OUVE model does not yet (8 demo test files: PESQ 1.55 -> 2.13 vs 1.54)")

    g = p.add_argument_group("noise conditioning and guidance")
    g.add_argument("--encoder", choices=["none", "cnn", "seq", "pretrained"], default="cnn",
                   help="noise encoder: none (plain SGMSE+), cnn (seed 004's CNN), seq (sequence tokens for "
                        "cross-attention), pretrained (an audio encoder from --encoder-ckpt) (default cnn)")
    g.add_argument("--encoder-channels", type=_ints, default=(16, 32, 64, 64), metavar="C1,C2,...",
                   help="conv widths of the cnn / seq encoders (seed 004: 64,128,256,512) (default 16,32,64,64)")
    g.add_argument("--embed-dim", type=int, default=128, help="noise-embedding width (seed 004: 512) (default 128)")
    g.add_argument("--num-tokens", type=int, default=16, help="tokens of the seq / pretrained encoders (default 16)")
    g.add_argument("--encoder-features", choices=["reim", "reim_logmag"], default="reim_logmag",
                   help="cnn / seq input: real+imag (seed) or real+imag+log-magnitude (default reim_logmag)")
    g.add_argument("--encoder-ckpt", default=None, metavar="PATH",
                   help="local checkpoint {cfg, model} of a pretrained audio encoder (BEATs layout); never downloaded")
    g.add_argument("--finetune-encoder", action="store_true",
                   help="train the pretrained encoder too (NASE fine-tunes BEATs; default: frozen)")
    g.add_argument("--inject", choices=["input_add", "film", "xattn"], default="input_add",
                   help="input_add: NASE's input addition; film: FiLM on the time embedding; xattn: cross-attention "
                        "(needs --backbone ncsnpp) (default input_add)")
    g.add_argument("--nc-weight", type=float, default=0.3,
                   help="weight of the noise-classification cross-entropy (NASE: 0.3; 0 disables the NC head). "
                        "Labels: VoiceBank-DEMAND's training log (10 classes) or the demo corpus' noise kinds (5)")
    g.add_argument("--p-uncond", type=float, default=0.1,
                   help="condition dropout probability for classifier-free guidance (0 disables; default 0.1)")
    g.add_argument("--bank-size", type=int, default=4096,
                   help="training embeddings kept in the model's k-NN bank for adaptive guidance (default 4096)")
    g.add_argument("--knn-k", type=int, default=10, help="neighbours of the k-NN reliability (default 10)")

    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, metavar="DIR",
                   help="a VoiceBank-DEMAND tree ({clean,noisy}_{trainset_28spk,testset}_wav, 16 kHz or --resample) or a "
                        "paired-folder tree ({train,valid,test}/{clean,noisy}); default: the demo corpus")
    g.add_argument("--demo-dir", default="runs/demo-corpus", metavar="DIR",
                   help="where the demo corpus is generated and reused (default runs/demo-corpus)")
    g.add_argument("--resample", action="store_true",
                   help="resample audio at another rate than 16 kHz on load (VoiceBank-DEMAND ships 48 kHz); "
                        "without it such audio is an error naming the fix")
    g.add_argument("--frames", type=int, default=None,
                   help="training crop in STFT frames (SGMSE+: 256 = 2.04 s; default 256, or 128 on the demo corpus)")
    g.add_argument("--batch-size", type=int, default=None,
                   help="utterances per batch and process (SGMSE+: 8; default 8, or 4 on the demo corpus)")
    g.add_argument("--valid-speakers", nargs="*", default=None,
                   help="VoiceBank-DEMAND training speakers held out for validation (default p226 p287)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=None, help="epochs (default: 8 on the demo corpus, 160 otherwise)")
    g.add_argument("--steps-per-epoch", type=int, default=None,
                   help="cap on optimizer steps per epoch (default: 50 on the demo corpus, a full pass otherwise)")
    g.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (default: SGMSE+'s 1e-4; 1e-3 on the demo corpus, where 400 steps must "
                        "show learning in a few CPU minutes)")
    g.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                   help="adam: the recipe's Adam; sgd: plain SGD (for controlled comparisons, e.g. DDP against "
                        "one process; default adam)")
    g.add_argument("--float64", action="store_true",
                   help="train in float64 (model, data and loss): slow, for exactness checks such as a DDP run "
                        "equalling one process with the global batch regardless of float32 reduction order")
    g.add_argument("--ema", type=float, default=0.999, help="EMA decay of the weights (SGMSE+: 0.999)")
    g.add_argument("--no-ema-warmup", action="store_true",
                   help="use the EMA decay from the first step (SGMSE+'s torch_ema). Default: decay "
                        "min(--ema, (1 + step) / (10 + step)) as TensorFlow's ExponentialMovingAverage(num_updates), "
                        "so a short run's EMA is not stuck at the initial weights; the same as SGMSE+ after ~10k steps")
    g.add_argument("--clip", type=float, default=0.0,
                   help="gradient-norm clipping (default 0 = off, as SGMSE+)")

    g = p.add_argument_group("validation, test and runtime")
    g.add_argument("--valid-batches", type=int, default=None,
                   help="validation batches per epoch (default: all of the validation split)")
    g.add_argument("--test-files", type=int, default=None,
                   help="test utterances enhanced and scored at the end (default: 4 on the demo corpus, all otherwise; "
                        "0 skips); the test set never selects a checkpoint")
    g.add_argument("--test-N", type=int, default=None,
                   help="sampler steps for the final test enhancement (default: 30 for PC, 10 for the bridge ODE)")
    g.add_argument("--test-sampler", choices=["pc", "ode", "sb_ode", "sb_sde"], default=None,
                   help="sampler of the final test enhancement (default: pc for --sde ouve, sb_ode for sbve)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt exactly")
    g.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs (needs tensorboard)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    _cli.add_common_args(p)
    args = p.parse_args(argv)
    if args.resume and args.out is None:
        p.error("--resume needs --out DIR (the run to continue)")
    if args.inject == "xattn" and args.backbone != "ncsnpp":
        p.error("--inject xattn needs --backbone ncsnpp (SmallUNet has no cross-attention)")
    if args.inject == "xattn" and args.encoder == "cnn":
        p.error("--inject xattn reads token sequences: use --encoder seq or pretrained")
    if args.encoder == "pretrained" and not args.encoder_ckpt:
        p.error("--encoder pretrained needs --encoder-ckpt PATH (a local file; nothing is downloaded)")
    if not 0.0 <= args.p_uncond < 1.0:
        p.error("--p-uncond must be in [0, 1)")
    return args


# ----------------------------------------------------------------------------- model
def build_model(args: argparse.Namespace, n_classes: int, class_names: tuple[str, ...] | None) -> ScoreModel:
    transform = SpecTransform(sample_rate=SAMPLE_RATE)
    sde = OUVESDE() if args.sde == "ouve" else SBVESDE()
    scaling = "data" if args.sde == "sbve" else None
    ctx = args.embed_dim if args.inject == "xattn" and args.encoder != "none" else None
    if args.backbone == "smallunet":
        backbone: nn.Module = SmallUNet(channels=args.unet_channels)
    else:
        backbone = NCSNpp.preset(args.ncsnpp_preset, **({"context_dim": ctx} if ctx else {}))
    if args.encoder == "none":
        return ScoreModel(backbone, sde, transform, output_scaling=scaling)
    if args.encoder == "cnn":
        enc: nn.Module = CNNNoiseEncoder(args.encoder_features, args.encoder_channels, args.embed_dim)
    elif args.encoder == "seq":
        enc = SequenceNoiseEncoder(args.encoder_features, args.encoder_channels, args.embed_dim, args.num_tokens)
    else:
        try:
            pre = load_audio_encoder(args.encoder_ckpt)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"error: {e}") from e
        enc = PretrainedNoiseEncoder(pre, args.embed_dim, args.num_tokens, freeze=not args.finetune_encoder,
                                     input_sample_rate=SAMPLE_RATE)
    return NoiseCondScoreModel(backbone, enc, inject=args.inject, n_classes=n_classes, class_names=class_names,
                               nc_weight=args.nc_weight, p_uncond=args.p_uncond,
                               bank={"max_size": args.bank_size, "k": args.knn_k}, sde=sde, transform=transform,
                               output_scaling=scaling)


class _LossModule(nn.Module):
    """DDP needs the loss behind ``forward``: ``(x0, y, labels, seed, share) -> (total, terms)``;
    the labels reach the loss when the model has an NC head (``with_labels``)."""

    def __init__(self, model: ScoreModel, with_labels: bool) -> None:
        super().__init__()
        self.model = model
        self.with_labels = with_labels

    def forward(self, x0: torch.Tensor, y: torch.Tensor, labels: torch.Tensor, seed: int,
                share: tuple[int, int] | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        g = torch.Generator(device=x0.device).manual_seed(seed)
        return self.model.loss(x0, y, g, share=share, **({"labels": labels} if self.with_labels else {}))


def _step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of the DSM noise / dropout of one step on one rank: a resumed run redraws exactly."""
    return (seed * 1_000_003 + step) * 1009 + rank


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    e = [p for p in ema.parameters() if p.dtype.is_floating_point]
    m = [p.detach() for p in model.parameters() if p.dtype.is_floating_point]
    torch._foreach_lerp_(e, m, 1.0 - decay)


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    return _train.run_main(parse_args(argv), _run)


def _run(args: argparse.Namespace, info: _train.DistInfo) -> dict[str, Any]:
    device = info.device
    out = _train.open_run_dir(args, TOOL, info)
    log = _train.run_logger(info)

    transform = SpecTransform(sample_rate=SAMPLE_RATE)
    is_demo = args.data is None
    if args.sde is None:
        args.sde = "sbve" if is_demo else "ouve"
    ck = _train.resume_checkpoint(out, TOOL, args, free=RESUME_FREE)
    frames = args.frames or (128 if is_demo else 256)
    seg_seconds = transform.segment_length(frames) / SAMPLE_RATE
    data = _train.open_corpus(args, sample_rate=SAMPLE_RATE, segment=seg_seconds, info=info)
    demo_like = data.is_demo or data.kind == "demo corpus"
    epochs = args.epochs if args.epochs is not None else (8 if demo_like else 160)
    steps_cap = args.steps_per_epoch if args.steps_per_epoch is not None else (50 if demo_like else None)
    lr = args.lr if args.lr is not None else (1e-3 if demo_like else 1e-4)
    batch_size = args.batch_size or (4 if demo_like else 8)
    use_nc = args.encoder != "none" and args.nc_weight > 0 and data.class_names is not None
    if args.encoder != "none" and args.nc_weight > 0 and not use_nc:
        log(f"note: {data.kind} has no noise-class labels: training without the NC loss")

    torch.manual_seed(args.seed)
    n_classes = len(data.class_names) if use_nc else 0
    dtype = torch.float64 if args.float64 else torch.float32
    model = build_model(args, n_classes, data.class_names if use_nc else None).to(device=device, dtype=dtype)
    f = int(model.backbone.downsampling_factor)
    if frames % f:
        raise SystemExit(f"error: --frames {frames} must be a multiple of the backbone's downsampling factor {f}")
    if isinstance(model, NoiseCondScoreModel) and args.p_uncond == 0:
        model.null_embedding.requires_grad_(False)  # never used in training: keep DDP happy
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr) if args.optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    mcfg = model.to_config()

    start_epoch, step, best = 0, 0, _train.BestTracker("valid_dsm", "min")
    history: list[dict[str, Any]] = []
    if ck is not None:
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, step, history = ck["epoch"] + 1, ck["step"], ck["history"]
        best = _train.BestTracker("valid_dsm", "min", ck["best"])
        _train.set_rng_state(ck["rng"])
        log(f"resumed {out}/last.pt at epoch {start_epoch}, step {step}")

    n_params = sum(p.numel() for p in model.parameters())
    if info.is_main and not args.resume:
        (out / "config.json").write_text(json.dumps(
            {"args": vars(args), "model_config": mcfg, "parameters": n_params, "sample_rate": SAMPLE_RATE,
             "frames": frames, "batch_size": batch_size, "epochs": epochs, "steps_per_epoch": steps_cap, "lr": lr,
             "data": data.describe()}, indent=2, default=str))
    log(f"{type(model).__name__} with {type(model.backbone).__name__}: {n_params:,} parameters; data: {data.kind} "
        f"({len(data.train)} train / {len(data.valid)} valid / {len(data.test_pairs)} test); NC classes: "
        f"{n_classes or 'none'}; p_uncond {args.p_uncond if args.encoder != 'none' else '-'}; "
        f"{frames} frames x {batch_size} per batch; Adam lr {lr:g}")

    loss_module = _LossModule(model, with_labels=use_nc)
    ddp = DistributedDataParallel(loss_module) if info.enabled else loss_module
    csv_log = _train.MetricLogger(out, "log", tensorboard=args.tensorboard) if info.is_main else None
    if csv_log is not None and args.resume:
        csv_log.truncate_after("epoch", start_epoch - 1)

    for epoch in range(start_epoch, epochs):
        model.train()
        sums: dict[str, float] = {}
        n_batches = 0
        t0 = time.time()
        batches = iterate_batches(data.train, labels=data.labels if use_nc else None, epoch=epoch, seed=args.seed,
                                         batch_size=batch_size, rank=info.rank, world_size=info.world_size,
                                         max_batches=steps_cap)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not info.is_main, leave=False,
                   dynamic_ncols=True, total=steps_cap)
        for noisy, clean, labels in bar:
            x0, y = common.to_specs(model, noisy.to(device, dtype), clean.to(device, dtype), SAMPLE_RATE)
            # the same seed on every rank: each draws the global batch's t / z / dropout and keeps
            # its own items (share), so N processes train exactly as one with the global batch
            total, terms = ddp(x0, y, labels.to(device), _step_seed(args.seed, step, 0),
                               (info.rank, info.world_size) if info.enabled else None)
            terms = {**terms, "loss": total.detach()}
            _train.check_finite(terms, step=step, epoch=epoch, info=info)
            opt.zero_grad(set_to_none=True)
            total.backward()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, args.clip)
            opt.step()
            decay = args.ema if args.no_ema_warmup else min(args.ema, (1 + step) / (10 + step))
            _ema_update(ema, model, decay)
            step += 1
            n_batches += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            bar.set_postfix(loss=f"{float(terms['loss']):.1f}")
        train_row = {f"train_{k}": v / max(n_batches, 1) for k, v in sums.items()}
        valid_row = _validate(ema, data, args, batch_size, device, info, use_nc)
        row = {"epoch": epoch, "step": step, "seconds": time.time() - t0, **train_row, **valid_row}
        history.append(row)
        improved = best.update(epoch, row)
        if info.is_main:
            csv_log.log(row, step=step)
            ck = {"tool": TOOL, "config": vars(args), "model_config": mcfg, "sample_rate": SAMPLE_RATE,
                  "frames": frames, "class_names": list(data.class_names) if use_nc else None,
                  "versions": _train.package_versions(["sgmse-cfg", "se-data", "se-metrics"]),
                  "epoch": epoch, "step": step, "model": model.state_dict(), "ema": ema.state_dict(),
                  "optimizer": opt.state_dict(), "rng": _train.rng_state(), "best": best.state, "history": history}
            _train.save_epoch(out, ck, improved)
            nc = f"  valid NC acc {valid_row['valid_nc_acc']:.2f}" if "valid_nc_acc" in valid_row else ""
            log(f"epoch {epoch + 1}/{epochs}  step {step}  train loss {train_row.get('train_loss', float('nan')):.2f}  "
                f"valid DSM (EMA) {valid_row['valid_dsm']:.2f}{nc}  ({row['seconds']:.0f} s)"
                f"{'  *best*' if improved else ''}")
        if info.enabled:
            dist.barrier()

    result: dict[str, Any] = {"out": str(out), "best": best.state, "parameters": n_params, "steps": step}
    if info.is_main and (out / "best.pt").exists():
        result.update(_finalise(out, data, args, device, use_nc))
        (out / "results.json").write_text(json.dumps(result, indent=2))
    return result


@torch.no_grad()
def _validate(ema: ScoreModel, data: TrainingCorpus, args: argparse.Namespace, batch_size: int,
              device: torch.device, info: _train.DistInfo, use_nc: bool) -> dict[str, float]:
    """DSM loss of the EMA weights on fixed validation crops (fixed noise), and NC accuracy."""
    ema.eval()
    tot = torch.zeros(4, dtype=torch.float64)  # dsm sum, items, nc-correct, labelled items
    for b, (noisy, clean, labels) in enumerate(iterate_batches(
            data.valid, labels=data.labels if use_nc else None, epoch=0, seed=args.seed, batch_size=batch_size,
            rank=info.rank, world_size=info.world_size, shuffle=False, max_batches=args.valid_batches)):
        dtype = next(ema.parameters()).dtype
        x0, y = common.to_specs(ema, noisy.to(device, dtype), clean.to(device, dtype), SAMPLE_RATE)
        g = torch.Generator(device=device).manual_seed(_step_seed(args.seed, -1 - b, info.rank))
        _, terms = ema.loss(x0, y, g, **({"labels": labels.to(device)} if use_nc else {}))
        if "nc_acc" in terms:  # accuracy over the labelled items: back to counts for the exact total
            n_labelled = int((labels >= 0).sum())
            tot[2] += round(float(terms["nc_acc"]) * n_labelled)
            tot[3] += n_labelled
        tot[0] += float(terms["dsm"]) * x0.shape[0]
        tot[1] += x0.shape[0]
    if info.enabled:
        dist.all_reduce(tot)
    row = {"valid_dsm": float(tot[0] / tot[1].clamp(min=1))}
    if use_nc and tot[3] > 0:
        row["valid_nc_acc"] = float(tot[2] / tot[3])
    return row


@torch.no_grad()
def _finalise(out: Path, data: TrainingCorpus, args: argparse.Namespace, device: torch.device,
              use_nc: bool) -> dict[str, Any]:
    """model.pt from best.pt's EMA weights + the k-NN bank; the final test table."""
    ck = _train.load_checkpoint(out / "best.pt", map_location="cpu")
    model, _ = common.load_model(out / "best.pt", "ema")
    model.to(device)
    res: dict[str, Any] = {}
    if isinstance(model, NoiseCondScoreModel):
        # embed whole training utterances exactly as enhancement does (model.prepare), so that
        # bank and queries are computed the same way (not crops vs whole files)
        n = min(len(data.train), args.bank_size)
        order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(args.seed))[:n].sort().values
        embs = []
        for i in tqdm(order.tolist(), desc="k-NN bank", leave=False, dynamic_ncols=True):
            e = data.train.entries[i]
            noisy, _ = load_audio(e.noisy, SAMPLE_RATE, resample=args.resample, mono=True)
            if noisy.abs().max() == 0 or noisy.shape[0] < model.transform.n_fft:
                continue  # silent or too short: no embedding
            embs.append(model.prepare(noisy.to(device), SAMPLE_RATE)[1].pooled)
        model.fit_bank(torch.cat(embs), generator=torch.Generator().manual_seed(args.seed))
        res["bank"] = {"size": len(model.bank), "tau": float(model.bank.tau)}
        tqdm.write(f"k-NN bank: {len(model.bank)} training utterances embedded, tau = {float(model.bank.tau):.4f}")
    final = {k: ck[k] for k in ("tool", "config", "model_config", "sample_rate", "frames", "class_names",
                                "versions", "epoch", "step", "best")}
    final["ema"] = {k: v.cpu() for k, v in model.state_dict().items()}
    _train.save_checkpoint(out / "model.pt", final)
    n_test = args.test_files if args.test_files is not None else (4 if data.kind == "demo corpus" else None)
    pairs = data.test_pairs if n_test is None else data.test_pairs[:n_test]
    if pairs:
        res["test"] = _test_table(model, pairs, args, out)
    return res


def _test_table(model: ScoreModel, pairs: list, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    sampler = args.test_sampler or ("sb_ode" if args.sde == "sbve" else "pc")
    n_steps = args.test_N or (10 if sampler.startswith("sb_") else 30)
    opts = common.EnhanceOptions(sampler=sampler, N=n_steps)
    rows: dict[str, list[dict[str, float]]] = {"noisy": [], "enhanced": []}
    rtf = []
    for i, (name, noisy_p, clean_p) in enumerate(tqdm(pairs, desc="test set", leave=False, dynamic_ncols=True)):
        noisy, clean = common.load_pair(noisy_p, clean_p, SAMPLE_RATE, args.resample)
        enh, info = common.enhance_wave(model, noisy, SAMPLE_RATE, opts, seed=args.seed + i)
        rows["noisy"].append(common.scores(clean.numpy(), noisy.numpy(), SAMPLE_RATE))
        rows["enhanced"].append(common.scores(clean.numpy(), enh.numpy(), SAMPLE_RATE))
        rtf.append(info["rtf"])
    mean = {k: {c: common.nanmean([r[c] for r in v]) for c in common.METRIC_COLUMNS} for k, v in rows.items()}
    table = common.format_table([(k, v) for k, v in mean.items()])
    print(f"\nHeld-out test set ({len(pairs)} utterances; {sampler} sampler N={n_steps}, conditional score, "
          f"mean RTF {common.nanmean(rtf):.2f}):\n{table}\n", flush=True)
    (out / "test_table.txt").write_text(table + "\n")
    return {"mean": mean, "count": len(pairs), "rtf": common.nanmean(rtf)}


if __name__ == "__main__":
    main()
