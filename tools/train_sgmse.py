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
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _argtypes as T  # noqa: E402
import _cli  # noqa: E402
import _sgmse_common as common  # noqa: E402
import _run_log  # noqa: E402
import _train  # noqa: E402

from se_data import TrainingCorpus, iterate_batches  # noqa: E402
from sgmse_cfg import (  # noqa: E402
    NCSNPP_PRESETS,
    NoiseCondScoreModel,
    SeededLoss,
    SpecTransform,
    build_model,
    check_encoder_checkpoint,
    count_parameters,
    crops_to_specs,
    ema_decay,
    ema_update,
    final_checkpoint,
    fit_bank_on_files,
    resolve_sampler,
    step_seed,
    validate,
)

TOOL = "train_sgmse"
SAMPLE_RATE = 16000
#: flags a --resume may change: the shared ones and the final evaluation's
RESUME_FREE = _train.RESUME_FREE | {"test_files", "test_N", "test_sampler"}
#: flags that are sgmse_cfg.build_model's options of the same names
MODEL_FLAGS = ("sde", "backbone", "unet_channels", "ncsnpp_preset", "encoder", "encoder_features",
               "encoder_channels", "embed_dim", "num_tokens", "encoder_ckpt", "encoder_arch", "finetune_encoder", "inject",
               "nc_weight", "p_uncond", "bank_size", "knn_k")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train_sgmse.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("score model")
    g.add_argument("--backbone", choices=["smallunet", "ncsnpp"], default="smallunet",
                   help="smallunet: the 0.7 M-parameter CPU UNet; ncsnpp: NCSN++ (see --ncsnpp-preset) (default smallunet)")
    g.add_argument("--ncsnpp-preset", choices=sorted(NCSNPP_PRESETS), default="sgmse",
                   help="NCSN++ configuration: sgmse (SGMSE+'s 65.6 M), storm_m, storm_12m, storm_6m, ... (default sgmse)")
    g.add_argument("--unet-channels", type=T.int_list(1), default=(16, 32, 64, 64), metavar="C1,C2,...",
                   help="SmallUNet channels per level (default 16,32,64,64)")
    g.add_argument("--sde", choices=["ouve", "sbve"], default=None,
                   help="ouve: SGMSE+'s OUVE SDE (theta 1.5, sigma 0.05..0.5); sbve: Schroedinger bridge "
                        "(data prediction, sample with sb_ode / sb_sde). Default: ouve (SGMSE+) with --data; sbve "
                        "for the built-in demo run, where a bridge model learns to enhance within its 400 CPU "
                        "steps and an OUVE model does not yet (8 demo test files: PESQ 1.55 -> 2.13 vs 1.54)")

    g = p.add_argument_group("noise conditioning and guidance")
    g.add_argument("--encoder", choices=["none", "cnn", "seq", "pretrained"], default="cnn",
                   help="noise encoder: none (plain SGMSE+), cnn (a CNN trained from scratch), seq (sequence tokens for "
                        "cross-attention), pretrained (an audio encoder from --encoder-ckpt) (default cnn)")
    g.add_argument("--encoder-channels", type=T.int_list(1), default=(16, 32, 64, 64), metavar="C1,C2,...",
                   help="cnn / seq encoder conv widths (default 16,32,64,64; noise-conditioning design: 64,128,256,512)")
    g.add_argument("--embed-dim", type=T.positive_int(), default=128,
                   help="noise-embedding width (512 in the noise-conditioning design) (default 128)")
    g.add_argument("--num-tokens", type=T.positive_int(), default=16,
                   help="tokens of the seq / pretrained encoders (default 16)")
    g.add_argument("--encoder-features", choices=["reim", "reim_logmag"], default="reim_logmag",
                   help="cnn / seq input: real+imag (the noise-conditioning design's) or real+imag+log-magnitude "
                        "(default reim_logmag)")
    g.add_argument("--encoder-ckpt", default=None, metavar="PATH",
                   help="local checkpoint of a pretrained audio encoder as published (BEATs_iter3*.pt, PANNs "
                        "Cnn14_mAP=0.431.pth, LAION-CLAP 630k-*.pt; see packages/sgmse_cfg/README.md for where) or "
                        "saved by sgmse_cfg.save_audio_encoder; never downloaded. Checked when the command line is "
                        "parsed: a file of another architecture is refused naming this flag")
    g.add_argument("--encoder-arch", choices=["auto", "beats", "cnn14", "clap"], default="auto",
                   help="architecture --encoder-ckpt must hold: beats, cnn14 (PANNs), clap (LAION-CLAP's audio "
                        "branch + projection), or auto: detected from its tensor names (default auto)")
    g.add_argument("--finetune-encoder", action="store_true",
                   help="train the pretrained encoder too (NASE fine-tunes BEATs; default: frozen)")
    g.add_argument("--inject", choices=["input_add", "film", "xattn"], default="input_add",
                   help="input_add: NASE's input addition; film: FiLM on the time embedding; xattn: cross-attention "
                        "(needs --backbone ncsnpp) (default input_add)")
    g.add_argument("--nc-weight", type=T.float_range(0.0), default=0.3,
                   help="weight of the noise-classification cross-entropy (NASE: 0.3; 0 disables the NC head). "
                        "Labels: VoiceBank-DEMAND's training log (10 classes) or the demo corpus' noise kinds (5)")
    g.add_argument("--p-uncond", type=T.float_range(0.0, 1.0, high_open=True, noun="a probability"), default=0.1,
                   help="condition dropout probability for classifier-free guidance (0 disables; default 0.1)")
    g.add_argument("--bank-size", type=T.int_range(2), default=4096,
                   help="training embeddings kept in the model's k-NN bank for adaptive guidance (default 4096)")
    g.add_argument("--knn-k", type=T.positive_int(), default=10,
                   help="neighbours of the k-NN reliability (default 10; less than --bank-size)")

    g = p.add_argument_group("data")
    _cli.add_corpus_args(g)
    _cli.add_noise_augment_args(g)
    g.add_argument("--frames", type=T.positive_int(), default=None,
                   help="training crop in STFT frames (SGMSE+: 256 = 2.04 s; default 256, or 128 on the demo corpus)")
    g.add_argument("--batch-size", type=T.positive_int(), default=None,
                   help="utterances per batch and process (SGMSE+: 8; default 8, or 4 on the demo corpus)")

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=T.positive_int(), default=None,
                   help="epochs (default: 8 on the demo corpus, 160 otherwise)")
    g.add_argument("--steps-per-epoch", type=T.positive_int(), default=None,
                   help="cap on optimizer steps per epoch (default: 50 on the demo corpus, a full pass otherwise)")
    g.add_argument("--lr", type=T.LEARNING_RATE, default=None,
                   help="Adam learning rate (default: SGMSE+'s 1e-4; 1e-3 on the demo corpus, where 400 steps must "
                        "show learning in a few CPU minutes)")
    _cli.add_optimizer_args(g, adam_is="SGMSE+'s Adam")
    g.add_argument("--ema", type=T.float_range(0.0, 1.0, high_open=True), default=0.999,
                   help="EMA decay of the weights (SGMSE+: 0.999; 0 = no averaging)")
    g.add_argument("--no-ema-warmup", action="store_true",
                   help="use the EMA decay from the first step (SGMSE+'s torch_ema). Default: decay "
                        "min(--ema, (1 + step) / (10 + step)) as TensorFlow's ExponentialMovingAverage(num_updates), "
                        "so a short run's EMA is not stuck at the initial weights; the same as SGMSE+ after ~10k steps")
    g.add_argument("--clip", type=T.float_range(0.0), default=0.0,
                   help="gradient-norm clipping (default 0 = off, as SGMSE+)")

    g = p.add_argument_group("validation, test and runtime")
    g.add_argument("--valid-batches", type=T.optional(T.positive_int()), default=None,
                   help="validation batches per epoch (default, or none: all of the validation split)")
    g.add_argument("--test-files", type=T.nonneg_int(), default=None,
                   help="test utterances enhanced and scored at the end (default: 4 on the demo corpus, all otherwise; "
                        "0 skips); the test set never selects a checkpoint")
    g.add_argument("--test-N", type=T.positive_int(), default=None,
                   help="sampler steps for the final test enhancement (default: 30 for PC, 10 for the bridge ODE)")
    g.add_argument("--test-sampler", choices=["pc", "ode", "sb_ode", "sb_sde"], default=None,
                   help="sampler of the final test enhancement (default: pc for --sde ouve, sb_ode for sbve)")
    _cli.add_run_args(g)
    _cli.add_common_args(p)
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = _cli.parse_with_config(p, argv)
    _cli.check_run_args(p, args)
    _cli.check_noise_augment_args(p, args)
    T.check_less(p, ("--knn-k", args.knn_k), ("--bank-size", args.bank_size),
                 why="the k-NN reliability needs more bank entries than neighbours")
    if args.inject == "xattn" and args.backbone != "ncsnpp":
        p.error("--inject xattn needs --backbone ncsnpp (SmallUNet has no cross-attention)")
    if args.inject == "xattn" and args.encoder == "cnn":
        p.error("--inject xattn reads token sequences: use --encoder seq or pretrained")
    if args.encoder == "pretrained" and not args.encoder_ckpt:
        p.error("--encoder pretrained needs --encoder-ckpt PATH (a local file; nothing is downloaded)")
    if args.encoder != "pretrained" and (args.encoder_ckpt or args.encoder_arch != "auto"):
        p.error("--encoder-ckpt / --encoder-arch need --encoder pretrained")
    if args.encoder == "pretrained":
        try:  # before any output exists: a wrong file is a usage error naming the flag
            check_encoder_checkpoint(args.encoder_ckpt, args.encoder_arch)
        except (FileNotFoundError, ValueError) as e:
            p.error(f"argument --encoder-ckpt: {e}")
    return args


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    return _train.run_main(parse_args(argv), _run)


def _run(args: argparse.Namespace, info: _train.DistInfo) -> dict[str, Any]:
    device = info.device
    out = _train.open_run_dir(args, TOOL, info)
    log = _run_log.run_logger(info)

    is_demo = args.data is None
    if args.sde is None:
        args.sde = "sbve" if is_demo else "ouve"
    ck = _train.resume_checkpoint(out, TOOL, args, free=RESUME_FREE)
    frames = args.frames or (128 if is_demo else 256)
    segment = SpecTransform(sample_rate=SAMPLE_RATE).segment_length(frames) / SAMPLE_RATE
    data = _train.open_corpus(args, sample_rate=SAMPLE_RATE, segment=segment, info=info)
    demo_like = data.is_demo or data.kind == "demo corpus"
    epochs = args.epochs if args.epochs is not None else (8 if demo_like else 160)
    steps_cap = args.steps_per_epoch if args.steps_per_epoch is not None else (50 if demo_like else None)
    lr = args.lr if args.lr is not None else (1e-3 if demo_like else 1e-4)
    batch_size = args.batch_size or (4 if demo_like else 8)
    train_set, class_names = _train.training_set(args, data)  # --noise-dir: augmented on the fly
    use_nc = args.encoder != "none" and args.nc_weight > 0 and class_names is not None
    if args.encoder != "none" and args.nc_weight > 0 and not use_nc:
        source = f"--dns-root {args.dns_root}" if args.dns_root else data.kind  # DNS mixtures carry no classes
        log(f"note: {source} has no noise-class labels: training without the NC loss")

    torch.manual_seed(args.seed)
    n_classes = len(class_names) if use_nc else 0
    dtype = torch.float64 if args.float64 else torch.float32
    try:
        model = build_model(sample_rate=SAMPLE_RATE, n_classes=n_classes, class_names=class_names if use_nc
                            else None, **{k: getattr(args, k) for k in MODEL_FLAGS}).to(device=device, dtype=dtype)
        test_sampler = resolve_sampler(model, args.test_sampler, args.test_N)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from e
    f = int(model.backbone.downsampling_factor)
    if frames % f:
        raise SystemExit(f"error: --frames {frames} must be a multiple of the backbone's downsampling factor {f}")
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = _train.make_optimizer(params, args.optimizer, lr)
    mcfg = model.to_config()

    start_epoch, step, history, best = _train.restore(ck, _train.BestTracker("valid_dsm", "min"), log, out,
                                                      model=model, ema=ema, optimizer=opt)

    n_params = count_parameters(model)
    if info.is_main and ck is None:
        (out / "config.json").write_text(json.dumps(
            {"args": vars(args), "model_config": mcfg, "parameters": n_params, "sample_rate": SAMPLE_RATE,
             "frames": frames, "batch_size": batch_size, "epochs": epochs, "steps_per_epoch": steps_cap, "lr": lr,
             "data": data.describe(),
             "noise_augmentation": train_set.describe() if train_set is not data.train else None},
            indent=2, default=str))
    log(f"{type(model).__name__} with {type(model.backbone).__name__}: {n_params:,} parameters; data: {data.kind} "
        f"({len(data.train)} train / {len(data.valid)} valid / {len(data.test_pairs)} test); NC classes: "
        f"{n_classes or 'none'}; p_uncond {args.p_uncond if args.encoder != 'none' else '-'}; "
        f"{frames} frames x {batch_size} per batch; Adam lr {lr:g}")

    loss_module = SeededLoss(model, with_labels=use_nc)
    ddp = DistributedDataParallel(loss_module) if info.enabled else loss_module
    csv_log = _run_log.open_metric_log(out, args, info, start_epoch)

    def batches(split: Any, **kw: Any) -> Any:
        # with augmentation an item's own noise class wins over the corpus' name -> label map
        return iterate_batches(split, labels=(data.labels or {}) if use_nc else None, seed=args.seed, batch_size=batch_size,
                               rank=info.rank, world_size=info.world_size, num_workers=args.num_workers, **kw)

    for epoch in range(start_epoch, epochs):
        model.train()
        sums: dict[str, float] = {}
        n_batches = 0
        t0 = time.time()
        bar = tqdm(batches(train_set, epoch=epoch, max_batches=steps_cap), desc=f"epoch {epoch + 1}/{epochs}",
                   disable=not info.is_main, leave=False, dynamic_ncols=True, total=steps_cap)
        for noisy, clean, labels in bar:
            x0, y = crops_to_specs(model, noisy.to(device, dtype), clean.to(device, dtype), SAMPLE_RATE)
            # the same seed on every rank: each draws the global batch's t / z / dropout and keeps
            # its own items (share), so N processes train exactly as one with the global batch
            total, terms = ddp(x0, y, labels.to(device), step_seed(args.seed, step),
                               (info.rank, info.world_size) if info.enabled else None)
            terms = {**terms, "loss": total.detach()}
            _train.check_finite(terms, step=step, epoch=epoch, info=info)
            opt.zero_grad(set_to_none=True)
            total.backward()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, args.clip)
            opt.step()
            ema_update(ema, model, ema_decay(args.ema, step, warmup=not args.no_ema_warmup))
            step += 1
            n_batches += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            bar.set_postfix(loss=f"{float(terms['loss']):.1f}")
        train_row = {f"train_{k}": v / max(n_batches, 1) for k, v in sums.items()}
        valid_row = validate(ema, batches(data.valid, epoch=0, shuffle=False, max_batches=args.valid_batches),
                             sample_rate=SAMPLE_RATE, seed=args.seed, rank=info.rank, with_labels=use_nc,
                             reduce=dist.all_reduce if info.enabled else None)
        row = {"epoch": epoch, "step": step, "seconds": time.time() - t0, **train_row, **valid_row}
        history.append(row)
        improved = best.update(epoch, row)
        if info.is_main:
            csv_log.log(row, step=step)
            ck = {"tool": TOOL, "config": vars(args), "model_config": mcfg, "sample_rate": SAMPLE_RATE,
                  "frames": frames, "class_names": list(class_names) if use_nc else None,
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
        result.update(_finalise(out, data, args, device, test_sampler))
        (out / "results.json").write_text(json.dumps(result, indent=2))
    return result


@torch.no_grad()
def _finalise(out: Path, data: TrainingCorpus, args: argparse.Namespace, device: torch.device,
              test_sampler: tuple[str, int]) -> dict[str, Any]:
    """model.pt from best.pt's EMA weights + the k-NN bank of whole training files; the final test table."""
    model, _ = common.load_model(out / "best.pt", "ema")
    model.to(device)
    res: dict[str, Any] = {}
    if isinstance(model, NoiseCondScoreModel):
        bank = fit_bank_on_files(model, [e.noisy for e in data.train.entries], sample_rate=SAMPLE_RATE,
                                 max_files=args.bank_size, seed=args.seed, resample=args.resample,
                                 progress=lambda it: tqdm(it, desc="k-NN bank", leave=False, dynamic_ncols=True))
        res["bank"] = {"size": len(bank), "tau": float(bank.tau)}
        tqdm.write(f"k-NN bank: {len(bank)} training utterances embedded, tau = {float(bank.tau):.4f}")
    _train.save_checkpoint(out / "model.pt", final_checkpoint(model))
    n_test = args.test_files if args.test_files is not None else (4 if data.kind == "demo corpus" else None)
    pairs = data.test_pairs if n_test is None else data.test_pairs[:n_test]
    if pairs:
        sampler, n_steps = test_sampler
        res["test"] = common.test_table(model, pairs, common.EnhanceOptions(sampler=sampler, N=n_steps),
                                        seed=args.seed, resample=args.resample, out=out)
    return res


if __name__ == "__main__":
    main()
