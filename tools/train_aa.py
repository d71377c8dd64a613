#!/usr/bin/env python
"""Distil a Neural Amp Modeler teacher into an alias-free student (Carson, Wright & Bilbao,
"Anti-aliasing of neural distortion effects via model fine tuning", DAFx25).

Training data are sine tones (MIDI 21-127, or f0 uniform in Hz with --f0-sampling linear_hz;
linear amplitude U(0, 1); random phase; 1.2 s at the teacher's rate). The targets are the
teacher's responses, computed once in float64 and bandlimited by harmonic resynthesis (no
aliases), then cached in OUT/targets.pt. The student (a .nam WaveNet) learns them with

    L = ESR/(1+λ) + NMR·λ/(1+λ) + DC  [+ w_h · harmonic-magnitude loss]

after a Kaiser lowpass designed for the actual rate (pass / stop edges 12 / 16 kHz unless
--lowpass-hz). λ is fixed (--lambda) or follows the exponential curriculum 3.0 -> 0.3
(--curriculum). Validation uses the paper's grid (integer MIDI notes at -36/-18/-6 dBFS);
best.pt is chosen on the validation loss, and the best student is exported to
OUT/student.nam with its teacher's SHA-256 and sample rate in the
metadata (tools/analyze_aa.py checks them).

With no --teacher it distils a built-in analytic teacher (a hard clipper run at 8x the rate),
so it runs anywhere; the defaults finish in a minute or two on a 2-core CPU. The paper-size
run:

    uv run tools/train_aa.py --teacher amp.nam --student teacher --num-tones 1600 \\
        --batch-size 40 --epochs 100 --valid-notes 88 --device cuda

The research notes' variants: --lambda 0.3 (or 0.5, 0.1, 3; the λ sweep), --curriculum (λ from
3.0 to 0.3), --harmonic-weight 0.3 (the harmonic-magnitude term), and the extended range
--f0-sampling linear_hz --f0-range-hz 27.5 18000 --lowpass-hz 18000 22000.

Runs unchanged under ``torchrun --nproc_per_node N`` (DDP; tones sharded by rank; gloo on
CPU). ``--resume --out DIR`` continues a run exactly where it stopped (bit-identical on CPU).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from se_data import epoch_batches
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _aa_common  # noqa: E402
import _aa_outputs  # noqa: E402
import _argtypes as T  # noqa: E402
import _cli  # noqa: E402
import _run_log  # noqa: E402
import _train  # noqa: E402

from aa_distill import (  # noqa: E402
    AMP_DTYPES, F0_SAMPLINGS, LINEAR_F0_RANGE_HZ, WAVENET_PRESETS, DistillationLoss, NamWaveNet, ToneDataSpec,
    check_warmup, curriculum_lambda, distillation_summary, make_student, predict_last_second, student_config,
    validation_metrics,
)

TOOL = "train_aa"
#: a training f0 in Hz: at least 8 Hz (MIDI 0), where the 120 dB Chebyshev window's main lobe (+-4.75 one-Hz bins)
#: still separates neighbouring harmonics
F0_HZ = T.float_range(8.0, None, noun="a frequency in Hz", unit="Hz")


# ----------------------------------------------------------------------------- arguments
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="train_aa.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _aa_common.add_teacher_args(p, required=False)

    g = p.add_argument_group("student")
    g.add_argument("--student", default="auto", choices=["auto", "teacher", *WAVENET_PRESETS],
                   help="teacher: fine-tune a copy of a WaveNet teacher (Carson et al.'s method); a NAM "
                        "preset name: a fresh WaveNet of that size; auto (default): teacher for a .nam "
                        "WaveNet teacher, nano otherwise")
    g.add_argument("--channels", type=T.positive_int(), nargs=2, default=None, metavar=("C1", "C2"),
                   help="override the preset's channels of the two layer arrays")
    g.add_argument("--dilations1", type=T.positive_int(), nargs="+", metavar="D",
                   help="override the first layer array's dilations")
    g.add_argument("--dilations2", type=T.positive_int(), nargs="+", metavar="D",
                   help="override the second layer array's dilations")
    g.add_argument("--kernel-size", type=T.positive_int(), default=3, help="dilated-convolution kernel size (default 3)")
    g.add_argument("--activation", default="Tanh", help="layer activation, a NAM name (default Tanh)")
    g.add_argument("--gated", action="store_true", help="gated activations (tanh x sigmoid)")
    g.add_argument("--head-scale", type=T.float_range(0.0, None, low_open=True), default=0.02,
                   help="output scale head_scale (default 0.02)")

    g = p.add_argument_group("data (sine tones at the teacher's rate)")
    g.add_argument("--num-tones", type=T.positive_int(), default=32,
                   help="training tones, drawn once; their teacher targets are cached (default 32; the paper 1600)")
    g.add_argument("--duration", type=T.seconds(low=1.0), default=1.2,
                   help="tone length in s: the last second is the loss window, the rest warm-up that must "
                        "cover the teacher's and student's receptive fields (default 1.2)")
    g.add_argument("--f0-sampling", choices=list(F0_SAMPLINGS), default="midi",
                   help="how f0 is drawn: midi = a non-integer MIDI note uniform in --midi-range (log-frequency, "
                        "the paper); linear_hz = uniform in Hz over --f0-range-hz (most tones then lie in the top "
                        "octaves; with 27.5 18000 and --lowpass-hz 18000 22000 this is the extended-range "
                        "experiment) (default midi)")
    g.add_argument("--midi-range", type=T.MIDI_NOTE, nargs=2, default=(21.0, 127.0), metavar=("LO", "HI"),
                   help="with --f0-sampling midi: non-integer MIDI notes drawn uniformly in [LO, HI] (default "
                        "21 127: 27.5 Hz - 12.5 kHz; LO < HI, HI below the teacher's Nyquist)")
    g.add_argument("--f0-range-hz", type=F0_HZ, nargs=2, default=LINEAR_F0_RANGE_HZ, metavar=("LO", "HI"),
                   help="with --f0-sampling linear_hz: f0 drawn uniformly in [LO, HI] Hz (default 27.5 18000; "
                        "LO < HI < the teacher's Nyquist; LO >= 8 Hz, about MIDI 0: the 1 Hz-bin harmonic "
                        "analysis window's main lobe spans +-4.75 bins, so lower harmonics would merge)")
    g.add_argument("--amplitude", choices=["linear", "db"], default="linear",
                   help="amplitude distribution: linear U(0, 1) as the paper, or uniform in dB over "
                        "--db-range (default linear)")
    g.add_argument("--db-range", type=T.LEVEL_DBFS, nargs=2, default=(-60.0, 0.0), metavar=("LO", "HI"),
                   help="dBFS range for --amplitude db (default -60 0; LO <= HI)")
    g.add_argument("--valid-notes", type=T.positive_int(88), default=6,
                   help="validation notes: this many integer MIDI notes spread over 21-108 (88 = every "
                        "piano key, the paper) at each --valid-levels-db level (default 6)")
    g.add_argument("--valid-levels-db", type=T.LEVEL_DBFS, nargs="+", default=(-36.0, -18.0, -6.0),
                   metavar="DB", help="validation levels in dBFS (default -36 -18 -6, the paper's)")

    g = p.add_argument_group("loss")
    g.add_argument("--lambda", dest="lam", type=T.float_range(0.0), default=1.0,
                   help="NMR weight λ: loss = ESR/(1+λ) + NMR·λ/(1+λ) + DC (default 1.0, the reference's "
                        "0.5/0.5; lower, e.g. 0.3 or 0.1, favours fidelity over alias suppression)")
    g.add_argument("--curriculum", action="store_true",
                   help="λ(epoch) = start·(end/start)^(epoch/epochs) instead of a fixed λ (alias suppression "
                        "first, fidelity later); validation then uses λ = end")
    g.add_argument("--curriculum-range", type=T.float_range(0.0, None, low_open=True), nargs=2, default=(3.0, 0.3),
                   metavar=("START", "END"),
                   help="curriculum λ start and end (default 3.0 0.3)")
    g.add_argument("--harmonic-weight", type=T.float_range(0.0), default=0.0,
                   help="weight of the harmonic-magnitude loss (dB error of the first harmonics, 1/k "
                        "weights, to keep the teacher's harmonics; e.g. 0.3; default 0 = off)")
    g.add_argument("--num-harmonics", type=T.positive_int(), default=10,
                   help="harmonics in the harmonic-magnitude loss (default 10)")
    g.add_argument("--dc-weight", type=T.float_range(0.0), default=1.0, help="weight of the DC term (default 1.0)")
    g.add_argument("--lowpass-hz", type=T.FREQUENCY_HZ, nargs=2, default=(12_000.0, 16_000.0), metavar=("PASS", "STOP"),
                   help="Kaiser lowpass pre-emphasis edges in Hz, 80 dB (default 12000 16000, the "
                        "reference's; 18000 22000 lets the loss see most of the 12-20 kHz band; PASS < STOP < "
                        "the teacher's Nyquist)")
    g.add_argument("--no-lowpass", action="store_true", help="compute the loss without the lowpass")

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=T.positive_int(), default=4, help="training epochs (default 4; the paper 100)")
    g.add_argument("--batch-size", type=T.positive_int(), default=8,
                   help="tones per batch and process (default 8; the paper 40)")
    g.add_argument("--lr", type=T.LEARNING_RATE, default=None,
                   help="Adam learning rate (default: 5e-4, the reference's, when fine-tuning the teacher; "
                        "4e-3, NAM's trainer default, for a fresh student)")
    g.add_argument("--clip", type=T.float_range(0.0), default=1.0, help="gradient-norm clipping (default 1.0; 0 = off)")
    g.add_argument("--float64", action="store_true",
                   help="train the student and compute every loss term in float64 (the reference's double "
                        "precision; slower). Default: float32 student, float32 NMR")
    g.add_argument("--amp", choices=sorted(AMP_DTYPES), default=None,
                   help="bf16: the student's forward under bfloat16 autocast (weights, gradients, Adam state and "
                        "every loss term stay float32; validation runs the float32 student). Default: off, float32")
    g.add_argument("--nmr-dtype", choices=["float32", "float64"], default=None,
                   help="NMR compute precision (default float32, float64 with --float64)")

    g = p.add_argument_group("run")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    _cli.add_run_args(g, threads_help="torch CPU threads (default 1 on CPU: the students' narrow convolutions "
                                        "scale badly across threads and a busy machine makes extra threads much "
                                        "slower; torch's choice on GPU; 0 = that default)")
    _cli.add_common_args(p)
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = _cli.parse_with_config(p, argv)
    _cli.check_run_args(p, args)
    _aa_common.check_teacher_args(p, args)
    nyquist = _aa_common.builtin_nyquist(args)  # a .nam teacher's rate is checked when it is loaded
    if args.f0_sampling == "midi":
        T.check_less(p, ("--midi-range LO", args.midi_range[0]), ("HI", args.midi_range[1]))
        if nyquist is not None and 440.0 * 2.0 ** ((args.midi_range[1] - 69.0) / 12.0) >= nyquist:
            p.error(f"--midi-range HI {args.midi_range[1]:g} lies above the built-in teacher's Nyquist "
                    f"({nyquist:g} Hz at --builtin-rate {args.builtin_rate})")
    else:
        T.check_less(p, ("--f0-range-hz LO", args.f0_range_hz[0]), ("HI", args.f0_range_hz[1]))
        T.check_less(p, ("--f0-range-hz HI", args.f0_range_hz[1]), ("the built-in teacher's Nyquist", nyquist))
    T.check_less(p, ("--db-range LO", args.db_range[0]), ("HI", args.db_range[1]), strict=False)
    if not args.no_lowpass:
        T.check_less(p, ("--lowpass-hz PASS", args.lowpass_hz[0]), ("STOP", args.lowpass_hz[1]))
        T.check_less(p, ("--lowpass-hz STOP", args.lowpass_hz[1]), ("the built-in teacher's Nyquist", nyquist))
    if args.amp and args.float64:
        p.error("--float64 is an exactness setting; leave out --amp with it")
    if args.nmr_dtype is None:
        args.nmr_dtype = "float64" if args.float64 else "float32"
    for name in ("midi_range", "f0_range_hz", "db_range", "valid_levels_db", "curriculum_range", "lowpass_hz"):
        setattr(args, name, list(getattr(args, name)))  # as from the command line: resume compares them
    return args


# ----------------------------------------------------------------------------- composition
def build_student(args: argparse.Namespace, teacher: _aa_common.Teacher) -> tuple[NamWaveNet, str]:
    """The student chosen by --student and its overrides (aa_distill.make_student)."""
    try:
        return make_student(teacher.module, args.student, sample_rate=teacher.sample_rate,
                            channels=args.channels, dilations1=args.dilations1, dilations2=args.dilations2,
                            kernel_size=args.kernel_size, activation=args.activation, gated=args.gated,
                            head_scale=args.head_scale, seed=args.seed)
    except ValueError as e:
        raise SystemExit(f"error: --student {args.student} with the teacher {teacher.name}: {e}") from None


def make_loss(args: argparse.Namespace, fs: int, device: torch.device, reduction: str = "pooled"
              ) -> DistillationLoss:
    try:
        return DistillationLoss(fs, lam=args.lam, dc_weight=args.dc_weight, harmonic_weight=args.harmonic_weight,
                                lowpass=not args.no_lowpass, lowpass_hz=tuple(args.lowpass_hz),
                                nmr_dtype=getattr(torch, args.nmr_dtype), num_harmonics=args.num_harmonics,
                                reduction=reduction).to(device)
    except ValueError as e:
        raise SystemExit(f"error: --lowpass-hz: {e}") from None


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if not args.threads and _cli.resolve_device(args.device).type == "cpu":
        torch.set_num_threads(1)  # run_main applies --threads
    return _train.run_main(args, _run)


def _run(args: argparse.Namespace, info: _train.DistInfo) -> dict[str, Any]:
    device = info.device
    out = _train.open_run_dir(args, TOOL, info)
    log = _run_log.run_logger(info)
    teacher = _aa_common.load_teacher(args)
    fs = teacher.sample_rate
    dtype = torch.float64 if args.float64 else torch.float32

    ck = _train.resume_checkpoint(out, TOOL, args)

    student, kind = build_student(args, teacher)
    student = student.to(device=device, dtype=dtype)
    scfg = student_config(student, kind)
    spec = ToneDataSpec(**{k: getattr(args, k) for k in ToneDataSpec.field_names()})
    try:  # every rank checks the tones before any teacher target is computed
        params = spec.tone_params(fs)
        check_warmup(params[0], teacher.receptive_field, f"the teacher {teacher.name}")
        check_warmup(params[0], student.receptive_field, "the student")
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    train_data, valid_data = _aa_outputs.cached_targets(args, teacher, spec, params, out, device, info)
    loss_fn, valid_loss_fn = make_loss(args, fs, device), make_loss(args, fs, device, reduction="none")
    lr = args.lr if args.lr is not None else (5e-4 if kind == "teacher" else 4e-3)
    opt = torch.optim.Adam(student.parameters(), lr=lr)

    if ck is not None and ck["student_config"] != scfg:
        raise SystemExit(f"error: --resume: the checkpoint's student {ck['student_config']} differs from {scfg}")
    start_epoch, step, history, best = _train.restore(ck, _train.BestTracker("valid_loss", "min"), log, out,
                                                      model=student, optimizer=opt)
    if ck is not None:
        if args.curriculum and ck["config"]["epochs"] != args.epochs:
            _aa_common.warn(f"--epochs changed from {ck['config']['epochs']} to {args.epochs}: the curriculum λ "
                            f"of the remaining epochs follows the new length")
    elif info.is_main:
        (out / "config.json").write_text(json.dumps(
            {"args": vars(args), "teacher": teacher.record, "student": scfg, "sample_rate": fs}, indent=2))

    log(f"teacher: {teacher.name}, receptive field {teacher.receptive_field}")
    log(f"student: {kind} WaveNet, {student.num_weights:,} weights, receptive field {student.receptive_field}, "
        f"{'float64' if args.float64 else 'float32'}{' (bf16 forward)' if args.amp else ''}; {len(train_data)} "
        f"training / {len(valid_data)} validation tones of {args.duration} s at {fs} Hz; {info.world_size} "
        f"process(es) on {device}")
    # the last layer's 1x1 residual conv feeds nothing (as in NAM): DDP must expect unused parameters
    model = DistributedDataParallel(student, find_unused_parameters=True) if info.enabled else student
    csv_log = _run_log.open_metric_log(out, args, info, start_epoch)
    valid_lam = args.curriculum_range[1] if args.curriculum else args.lam
    rf = student.receptive_field

    for epoch in range(start_epoch, args.epochs):
        lam = curriculum_lambda(epoch, args.epochs, *args.curriculum_range) if args.curriculum else args.lam
        student.train()
        t0 = time.time()
        sums: dict[str, float] = {}
        try:  # every rank gets the same number of batches; the last may be short
            batches = [torch.tensor(b) for b in epoch_batches(
                len(train_data), epoch=epoch, seed=args.seed, batch_size=args.batch_size, rank=info.rank,
                world_size=info.world_size, drop_last=False)]
        except ValueError as e:
            raise SystemExit(f"error: {e}") from e
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{args.epochs} λ={lam:.3g}", leave=False, unit="batch",
                   disable=not info.is_main or args.no_progress, dynamic_ncols=True)
        for idx in bar:
            x, target, f0 = train_data.batch(idx, device=device, dtype=dtype)
            pred = predict_last_second(model, x, fs, rf, amp=args.amp)
            loss, terms = loss_fn(pred, target, f0, lam=lam)
            _train.check_finite({"loss": loss, **terms}, step=step, epoch=epoch, info=info)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(student.parameters(), args.clip if args.clip > 0 else math.inf)
            opt.step()
            step += 1
            for k, v in {"loss": loss.detach(), **terms, "grad_norm": gn}.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
        means = _train.all_reduce_mean(torch.tensor(list(sums.values()), dtype=torch.float64, device=device)
                                       / max(len(batches), 1), info).cpu()
        train_row = {f"train_{k}": float(v) for k, v in zip(sums, means)}
        # tones sharded by rank; the mean over ranks of the sums and counts has the ratio of the totals
        valid_row = {f"valid_{k}": v for k, v in validation_metrics(
            student, valid_data, valid_loss_fn, lam=valid_lam, batch_size=args.batch_size, device=device,
            dtype=dtype, indices=torch.arange(len(valid_data))[info.rank::info.world_size],
            reduce_sums=lambda v: _train.all_reduce_mean(v.to(device), info).cpu()).items()}
        improved = best.update(epoch, valid_row)
        row = {"epoch": epoch, "step": step, "lambda": lam, "lr": opt.param_groups[0]["lr"],
               "seconds": time.time() - t0, **train_row, **valid_row, "best": int(improved)}
        history.append(row)
        if info.is_main:
            csv_log.log(row, step=step)
            payload = {"tool": TOOL, "config": vars(args), "student_config": scfg, "teacher": teacher.record,
                       "sample_rate": fs, "versions": _train.package_versions(["aa-distill"]),
                       "epoch": epoch, "step": step, "model": student.state_dict(),
                       "optimizer": opt.state_dict(), "rng": _train.rng_state(), "best": best.state,
                       "history": history}
            _train.save_epoch(out, payload, improved)
            log(f"epoch {epoch + 1}/{args.epochs}  λ {lam:.3g}  train loss {train_row['train_loss']:.4g}  "
                f"valid loss {valid_row['valid_loss']:.4g}  ESR-T {valid_row['valid_esr_db']:.1f} dB  NMR-T "
                f"{valid_row['valid_nmr_db']:.1f} dB  NMR-S {valid_row['valid_nmr_s_db']:.1f} dB  "
                f"({row['seconds']:.0f} s){'  *best*' if improved else ''}")
        if info.enabled:
            dist.barrier()

    result: dict[str, Any] = {"out": str(out), "best": best.state}
    if info.is_main:
        result["student"] = str(_aa_outputs.export_student(out, teacher, student, args, log, tool=TOOL))
        print("\n" + distillation_summary(best.state["metrics"], teacher=teacher.name, epochs_run=len(history),
                                          best_epoch=best.state["epoch"], student=result["student"]))
        (out / "results.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
