#!/usr/bin/env python
"""Train BSRNN / BSDT / ERB-UNet speech enhancers (the toolkit's main job).

With no arguments: builds the deterministic demo corpus (synthetic speech-like signals in
synthetic noise, 16 kHz), trains a small BSDT on it for a few minutes on a CPU, picks the
checkpoint on the held-out *validation* split, then enhances the held-out *test* split and
prints a table of PESQ (wide-band), ESTOI and SI-SDR for the noisy input and the enhanced
output. Everything lands in ``--out``: checkpoints (``last.pt``, ``best.pt``), ``log.csv``,
``enhanced/*.wav``, ``results.json`` and plots.

Runs unchanged under ``torchrun --nproc_per_node N tools/train_bsdt.py ...`` (DDP; gloo on CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _argtypes as T  # noqa: E402
import _cli  # noqa: E402
import _run_log  # noqa: E402
import _train  # noqa: E402
from _bsdt_models import add_model_args, check_model_args, model_config, model_size  # noqa: E402
from _bsdt_report import PESQ_WB, SAMPLE_RATE, evaluate_test_set, validate, write_plots  # noqa: E402

import bandsplit  # noqa: E402
import diffattn  # noqa: E402
from se_data import iterate_batches  # noqa: E402
from bandsplit import (  # noqa: E402
    BSRNNLoss, MetricDiscriminator, metric_discriminator_step, metric_generator_loss,
    pesq_to_target, submit_score_batch)

TOOL = "train_bsdt"
#: flags a --resume may change: the shared ones, the final evaluation's and where PESQ is computed
RESUME_FREE = _train.RESUME_FREE | {"test_files", "no_test", "metric_workers"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="train_bsdt.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)

    g = p.add_argument_group("data")
    _cli.add_corpus_args(g)
    _cli.add_noise_augment_args(g)
    g.add_argument("--segment", type=T.seconds(), default=2.0, help="training crop length in seconds (default 2.0)")
    g.add_argument("--batch-size", type=T.positive_int(), default=6,
                   help="utterances per batch and per process (default 6)")

    g = p.add_argument_group("optimisation (the BSRNN recipe)")
    g.add_argument("--epochs", type=T.positive_int(), default=None,
                   help="training epochs (default: 3 on the demo corpus, about 5 CPU-minutes; 120 otherwise)")
    g.add_argument("--steps-per-epoch", type=T.optional(T.positive_int()), default=None,
                   help="cap on optimizer steps per epoch (default, or none: a full pass over the training set)")
    g.add_argument("--lr", type=T.LEARNING_RATE, default=1e-3, help="learning rate (default 1e-3)")
    g.add_argument("--lr-step", type=T.positive_int(), default=10, help="StepLR step size in epochs (default 10)")
    g.add_argument("--lr-gamma", type=T.float_range(0.0, 1.0, low_open=True), default=0.98,
                   help="StepLR decay factor (default 0.98; 1 = constant)")
    g.add_argument("--clip", type=T.float_range(0.0, None, low_open=True), default=5.0,
                   help="gradient-norm clipping (default 5; always on)")
    g.add_argument("--amp", action="store_true",
                   help="bf16 autocast for the model's training forward (a GPU speed option; the loss, the "
                        "complex STFT and mask, validation and test stay float32)")
    _cli.add_optimizer_args(g)
    g.add_argument("--cuda-graphs", action="store_true",
                   help="replay the model's training forward + backward as CUDA graphs (one launch each instead "
                        "of hundreds; same numbers). A CUDA speed option for small batches, where the step is "
                        "bound by Python-side launches (BSDT's 6 x 2 s step 1.3-1.7x faster on an H100, the demo "
                        "epoch 2.1x on an H200; tested with BSRNN and BSDT). Batches of the full --batch-size "
                        "replay; a shorter last batch and validation run eagerly. Single process only (not "
                        "under torchrun)")
    g.add_argument("--loss", choices=["recipe", "l1"], default="recipe",
                   help="recipe: 0.5 complex-L1 + 0.5 L1 on 0.3-compressed magnitudes; l1: plain L1 on the "
                        "real/imaginary parts (default recipe)")
    g.add_argument("--gan", action="store_true",
                   help="add the MetricGAN discriminator trained on PESQ targets (generator term from "
                        "--gan-start on)")
    g.add_argument("--gan-start", type=T.PROBABILITY.but(noun="a fraction"), default=0.5,
                   help="fraction of the epochs after which the generator's adversarial term is used (default 0.5)")
    g.add_argument("--gan-weight", type=T.float_range(0.0), default=1.0,
                   help="weight of the generator's adversarial term (default 1)")

    g = p.add_argument_group("validation, output and runtime")
    g.add_argument("--valid-batches", type=T.optional(T.positive_int()), default=None,
                   help="validation-loss batches per epoch (fixed crops of the validation split; default, or none: "
                        "all of it)")
    g.add_argument("--valid-pesq-files", type=T.nonneg_int(), default=8,
                   help="validation utterances scored with PESQ each epoch (default 8; 0: validation loss only)")
    g.add_argument("--select-on", choices=["pesq", "loss"], default="pesq",
                   help="validation quantity that picks best.pt (default pesq; loss when --valid-pesq-files 0)")
    g.add_argument("--test-files", type=T.optional(T.positive_int()), default=None,
                   help="test utterances enhanced and scored at the end (default, or none: all; --no-test skips "
                        "the test set)")
    g.add_argument("--no-test", action="store_true", help="skip the final test-set evaluation")
    g.add_argument("--metric-workers", type=T.nonneg_int(64), default=None,
                   help="processes scoring PESQ for the MetricGAN targets (--gan) and the validation utterances, "
                        "while this process trains or enhances on; the same values as scoring here item by item "
                        f"(default: the CPU cores, at most 4 = {_default_metric_workers()} here; 0: in this process)")
    _cli.add_run_args(g)
    _cli.add_common_args(p)
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = _cli.parse_with_config(p, argv)
    _cli.check_run_args(p, args)
    _cli.check_noise_augment_args(p, args)
    check_model_args(p, args)
    if args.valid_pesq_files == 0 and args.select_on == "pesq":
        args.select_on = "loss"
    return args


def _default_metric_workers() -> int:
    return min(4, os.cpu_count() or 1)




def spectral_l1(est: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    loss = F.l1_loss(torch.view_as_real(est), torch.view_as_real(clean))
    return loss, {"l1": loss}


# ----------------------------------------------------------------------------- training
def main(argv: list[str] | None = None) -> dict[str, Any]:
    return _train.run_main(parse_args(argv), _run)


def _run(args: argparse.Namespace, info: _train.DistInfo) -> dict[str, Any]:
    device = info.device
    if args.cuda_graphs and (device.type != "cuda" or info.enabled):
        raise SystemExit("error: --cuda-graphs needs a single-process CUDA run (--device cuda, not under torchrun); "
                         f"this run is on {device}{' with ' + str(info.world_size) + ' processes' if info.enabled else ''}. "
                         "Leave out --cuda-graphs")
    out = _train.open_run_dir(args, TOOL, info)
    log = _run_log.run_logger(info)
    ck = _train.resume_checkpoint(out, TOOL, args, free=RESUME_FREE)

    data = _train.open_corpus(args, sample_rate=SAMPLE_RATE, segment=args.segment, info=info)
    train_set, _ = _train.training_set(args, data)  # --noise-dir: augmented on the fly
    epochs = args.epochs if args.epochs is not None else (3 if data.is_demo else 120)

    torch.manual_seed(args.seed)
    mcfg = model_config(args)
    if args.float64 and (args.amp or args.cuda_graphs):
        raise SystemExit("error: --float64 is an exactness setting; leave out --amp / --cuda-graphs with it")
    dtype = torch.float64 if args.float64 else torch.float32
    model = bandsplit.build_model(mcfg).to(device=device, dtype=dtype)
    stft = model.stft  # the model's own STFT (n_fft 512, hop_length 128 at SAMPLE_RATE)
    stft.check_sample_rate(SAMPLE_RATE, what="the training data")
    criterion = BSRNNLoss() if args.loss == "recipe" else spectral_l1
    diversity = diffattn.ScaleDiversityLoss() if args.diversity_weight > 0 else None
    opt = _train.make_optimizer(model.parameters(), args.optimizer, args.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=args.lr_step, gamma=args.lr_gamma)
    disc = opt_d = None
    if args.gan:
        disc = MetricDiscriminator().to(device)
        opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr)

    start_epoch, step = 0, 0
    best = _train.BestTracker("valid_pesq" if args.select_on == "pesq" else "valid_loss",
                              "max" if args.select_on == "pesq" else "min")
    history: list[dict[str, float]] = []
    gan_state = {} if disc is None else {"discriminator": disc, "optimizer_d": opt_d}
    start_epoch, step, history, best = _train.restore(ck, best, log, out, model=model, optimizer=opt,
                                                      scheduler=sched, **gan_state)

    n_params = sum(p.numel() for p in model.parameters())
    size, size_keys = model_size(args)
    if info.is_main and ck is None:
        (out / "config.json").write_text(json.dumps(
            {"args": vars(args), "model_config": mcfg, "size": size, "parameters": n_params,
             "sample_rate": SAMPLE_RATE, "data": data.describe(), "epochs": epochs,
             "noise_augmentation": train_set.describe() if train_set is not data.train else None}, indent=2))
    log(f"model {mcfg['name']} at its {size} size ({', '.join(f'{k}={v}' for k, v in size_keys.items())}"
        f"{'; --data gives the research size' if size == 'demo' else ''}): {n_params:,} parameters; "
        f"data: {data.describe()['kind']} "
        f"({len(data.train)} train / {len(data.valid)} valid / {len(data.test_pairs)} test utterances)")

    ddp_model = DistributedDataParallel(model) if info.enabled else model
    graphed: bandsplit.GraphedTrainingForward | None = None   # captured on the first full batch
    csv_log = _run_log.open_metric_log(out, args, info, start_epoch)
    gan_start = int(math.ceil(args.gan_start * epochs))
    workers = _default_metric_workers() if args.metric_workers is None else args.metric_workers
    # PESQ in worker processes (closed when the run ends); each step waits for its own batch's
    # scores before its discriminator update, so nothing is in flight at a checkpoint
    pool = _train.metric_pool(workers) if args.gan or args.valid_pesq_files > 0 else None

    for epoch in range(start_epoch, epochs):
        model.train()
        sums: dict[str, float] = {}
        n_batches = 0
        t0 = time.time()
        batches = iterate_batches(train_set, epoch=epoch, seed=args.seed, batch_size=args.batch_size,
                                  rank=info.rank, world_size=info.world_size, max_batches=args.steps_per_epoch,
                                  num_workers=args.num_workers)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not info.is_main, leave=False,
                   dynamic_ncols=True)
        for noisy, clean, _ in bar:
            noisy, clean = noisy.to(device, dtype), clean.to(device, dtype)
            noisy_spec, clean_spec = stft.stft(noisy), stft.stft(clean)
            if args.cuda_graphs and graphed is None and noisy_spec.shape[0] == args.batch_size:
                # the capture's side stream owns the parameters' gradient accumulators; autograd
                # warns once that replayed backwards accumulate across streams (it synchronises them)
                warnings.filterwarnings("ignore", message="The AccumulateGrad node's stream does not match")
                graphed = bandsplit.GraphedTrainingForward(model, noisy_spec, amp=args.amp)
            if graphed is not None and graphed.replays(noisy_spec):
                est_spec = graphed(noisy_spec)
            else:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
                    if diversity is None:
                        est_spec = ddp_model(noisy_spec)
                    else:
                        est_spec, analysis = ddp_model(noisy_spec, return_analysis=True)
            targets = None
            if disc is not None:  # this batch's PESQ targets, scored while the generator updates
                est_audio = stft.istft(est_spec.detach(), length=clean.shape[-1])
                targets = submit_score_batch(PESQ_WB, clean, est_audio, pool)
            loss, parts = criterion(est_spec, clean_spec)
            if diversity is not None:  # the fusion scales' gates pushed apart (diffattn.ScaleDiversityLoss)
                div, _ = diversity(analysis["scale_gates"].float())
                loss = loss + args.diversity_weight * div
                parts = {**parts, "diversity": div}
            if disc is not None and epoch >= gan_start:
                adv = metric_generator_loss(disc, clean_spec, est_spec)
                loss = loss + args.gan_weight * adv
                parts = {**parts, "g_adv": adv}
            _train.check_finite({"loss": loss, **parts}, step=step, epoch=epoch, info=info)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            if targets is not None:  # MetricGAN update on wide-band PESQ targets of this very batch; items
                # without a PESQ (e.g. a silent crop) are left out of the estimate's term
                d_loss = metric_discriminator_step(disc, opt_d, clean_spec, est_spec.detach(),
                                                   pesq_to_target(targets.result()), clip=args.clip)
                parts = {**parts, "d_loss": d_loss}
            step += 1
            n_batches += 1
            for k, v in {"loss": loss, **parts}.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        sched.step()
        train_seconds = time.time() - t0  # the epoch's training steps alone (the row's "seconds" adds validation)
        train_row = {f"train_{k}": v / max(n_batches, 1) for k, v in sums.items()}
        valid_row = validate(model, stft, criterion, data, args, device, info, pool=pool)
        row = {"epoch": epoch, "step": step, "lr": opt.param_groups[0]["lr"], "seconds": time.time() - t0,
               "train_seconds": train_seconds, **train_row, **valid_row}
        history.append(row)
        improved = best.update(epoch, row)
        if info.is_main:
            csv_log.log(row, step=step)
            ck = {"tool": TOOL, "config": vars(args), "model_config": mcfg, "sample_rate": SAMPLE_RATE,
                  "stft": {"n_fft": stft.n_fft, "hop": stft.hop_length}, "versions": _train.package_versions(
                      ["bandsplit", "diffattn", "se-data", "se-metrics"]),
                  "epoch": epoch, "step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                  "scheduler": sched.state_dict(), "rng": _train.rng_state(), "best": best.state,
                  "history": history}
            if disc is not None:
                ck.update(discriminator=disc.state_dict(), optimizer_d=opt_d.state_dict())
            _train.save_epoch(out, ck, improved)
            log(f"epoch {epoch + 1}/{epochs}  train loss {train_row.get('train_loss', float('nan')):.4f}  "
                f"valid loss {valid_row['valid_loss']:.4f}  valid PESQ {valid_row.get('valid_pesq', float('nan')):.3f}"
                f"  ({row['seconds']:.0f} s){'  *best*' if improved else ''}")
        if info.enabled:
            dist.barrier()

    result: dict[str, Any] = {"out": str(out), "best": best.state, "parameters": n_params, "size": size,
                              "model_config": mcfg}
    if info.is_main and not args.no_test and (out / "best.pt").exists():
        ck = _train.load_checkpoint(out / "best.pt", map_location="cpu")
        model.load_state_dict(ck["model"])
        table = evaluate_test_set(model, stft, data, out, args, device)
        result["test"] = table
        write_plots(model, stft, data, out, history, device)
        (out / "results.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
