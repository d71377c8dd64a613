#!/usr/bin/env python
"""Distil a Neural Amp Modeler teacher into an alias-free student (seed 003; Carson, Wright &
Bilbao, DAFx25).

Training data are sine tones (MIDI 21-127, linear amplitude U(0, 1), random phase, 1.2 s at
the teacher's rate). The targets are the teacher's responses, computed once in float64 and
bandlimited by harmonic resynthesis (no aliases), then cached in OUT/targets.pt. The student
(a .nam WaveNet) learns them with

    L = ESR/(1+λ) + NMR·λ/(1+λ) + DC  [+ w_h · harmonic-magnitude loss]

after a 12/16 kHz Kaiser lowpass designed for the actual rate. λ is fixed (--lambda) or
follows seed 003's curriculum 3.0 -> 0.3 (--curriculum). Validation uses the paper's grid
(integer MIDI notes at -36/-18/-6 dBFS); best.pt is chosen on the validation loss, and the
best student is exported to OUT/student.nam with its teacher's SHA-256 and sample rate in the
metadata (tools/analyze_aa.py checks them).

With no --teacher it distils a built-in analytic teacher (a hard clipper run at 8x the rate),
so it runs anywhere; the defaults finish in a minute or two on a 2-core CPU. The paper-size
run:

    uv run tools/train_aa.py --teacher amp.nam --student teacher --num-tones 1600 \\
        --batch-size 40 --epochs 100 --valid-notes 88 --device cuda

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
import _cli  # noqa: E402
import _train  # noqa: E402

from aa_distill import (  # noqa: E402
    WAVENET_PRESETS,
    DistillationLoss,
    KaiserLowpass,
    NamWaveNet,
    SineToneDataset,
    ToneParams,
    bandlimit,
    check_warmup,
    curriculum_lambda,
    dc_loss,
    esr,
    lambda_weights,
    sample_tone_params,
    save_nam,
    student_from_teacher,
    student_wavenet,
    validation_tone_params,
)

TOOL = "train_aa"


# ----------------------------------------------------------------------------- arguments
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train_aa.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _aa_common.add_teacher_args(p, required=False)

    g = p.add_argument_group("student")
    g.add_argument("--student", default="auto", choices=["auto", "teacher", *WAVENET_PRESETS],
                   help="teacher: fine-tune a copy of a WaveNet teacher (Carson et al.'s method); a NAM "
                        "preset name: a fresh WaveNet of that size; auto (default): teacher for a .nam "
                        "WaveNet teacher, nano otherwise")
    g.add_argument("--channels", type=int, nargs=2, default=None, metavar=("C1", "C2"),
                   help="override the preset's channels of the two layer arrays")
    g.add_argument("--dilations1", type=int, nargs="+", default=None, metavar="D",
                   help="override the first layer array's dilations")
    g.add_argument("--dilations2", type=int, nargs="+", default=None, metavar="D",
                   help="override the second layer array's dilations")
    g.add_argument("--kernel-size", type=int, default=3, help="dilated-convolution kernel size (default 3)")
    g.add_argument("--activation", default="Tanh", help="layer activation, a NAM name (default Tanh)")
    g.add_argument("--gated", action="store_true", help="gated activations (tanh x sigmoid)")
    g.add_argument("--head-scale", type=float, default=0.02, help="output scale head_scale (default 0.02)")

    g = p.add_argument_group("data (sine tones at the teacher's rate)")
    g.add_argument("--num-tones", type=int, default=32,
                   help="training tones, drawn once; their teacher targets are cached (default 32; "
                        "the paper uses 1600)")
    g.add_argument("--duration", type=float, default=1.2,
                   help="tone length in s: the last second is the loss window, the rest warm-up that must "
                        "cover the teacher's and student's receptive fields (default 1.2)")
    g.add_argument("--midi-range", type=float, nargs=2, default=(21.0, 127.0), metavar=("LO", "HI"),
                   help="non-integer MIDI notes drawn uniformly in [LO, HI] (default 21 127: 27.5 Hz - "
                        "12.5 kHz)")
    g.add_argument("--amplitude", choices=["linear", "db"], default="linear",
                   help="amplitude distribution: linear U(0, 1) as the paper, or uniform in dB over "
                        "--db-range (default linear)")
    g.add_argument("--db-range", type=float, nargs=2, default=(-60.0, 0.0), metavar=("LO", "HI"),
                   help="dBFS range for --amplitude db (default -60 0)")
    g.add_argument("--valid-notes", type=int, default=6,
                   help="validation notes: this many integer MIDI notes spread over 21-108 (88 = every "
                        "piano key, the paper) at each --valid-levels-db level (default 6)")
    g.add_argument("--valid-levels-db", type=float, nargs="+", default=(-36.0, -18.0, -6.0),
                   metavar="DB", help="validation levels in dBFS (default -36 -18 -6, the paper's)")

    g = p.add_argument_group("loss (seed 003)")
    g.add_argument("--lambda", dest="lam", type=float, default=1.0,
                   help="NMR weight λ: loss = ESR/(1+λ) + NMR·λ/(1+λ) + DC (default 1.0, the reference's "
                        "0.5/0.5; seed 003's experiment B tries 0.3 and 0.1)")
    g.add_argument("--curriculum", action="store_true",
                   help="λ(epoch) = start·(end/start)^(epoch/epochs) instead of a fixed λ (seed 003's "
                        "experiment C); validation then uses λ = end")
    g.add_argument("--curriculum-range", type=float, nargs=2, default=(3.0, 0.3), metavar=("START", "END"),
                   help="curriculum λ start and end (default 3.0 0.3)")
    g.add_argument("--harmonic-weight", type=float, default=0.0,
                   help="weight of the harmonic-magnitude loss (dB error of the first harmonics, 1/k "
                        "weights; seed 003's experiment D, e.g. 0.3; default 0 = off)")
    g.add_argument("--num-harmonics", type=int, default=10,
                   help="harmonics in the harmonic-magnitude loss (default 10)")
    g.add_argument("--dc-weight", type=float, default=1.0, help="weight of the DC term (default 1.0)")
    g.add_argument("--lowpass-hz", type=float, nargs=2, default=(12_000.0, 16_000.0),
                   metavar=("PASS", "STOP"),
                   help="Kaiser lowpass pre-emphasis edges in Hz, 80 dB (default 12000 16000; seed 003's "
                        "experiment A uses 18000 22000)")
    g.add_argument("--no-lowpass", action="store_true", help="compute the loss without the lowpass")

    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=4, help="training epochs (default 4; the paper 100)")
    g.add_argument("--batch-size", type=int, default=8,
                   help="tones per batch and process (default 8; the paper 40)")
    g.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate (default: 5e-4, the reference's, when fine-tuning the teacher; "
                        "4e-3, NAM's trainer default, for a fresh student)")
    g.add_argument("--clip", type=float, default=1.0,
                   help="gradient-norm clipping (default 1.0; 0 = off)")
    g.add_argument("--float64", action="store_true",
                   help="train the student and compute every loss term in float64 (the reference's double "
                        "precision; slower). Default: float32 student, float32 NMR")
    g.add_argument("--nmr-dtype", choices=["float32", "float64"], default=None,
                   help="NMR compute precision (default float32, float64 with --float64)")

    g = p.add_argument_group("run")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last.pt exactly where it stopped (same flags; "
                        "--epochs may grow)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs (needs tensorboard)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default 1 on CPU: the students' narrow convolutions scale badly "
                        "across threads and a busy machine makes extra threads much slower; torch's choice "
                        "on GPU)")
    _cli.add_common_args(p)
    args = p.parse_args(argv)
    if args.resume and args.out is None:
        p.error("--resume needs --out DIR (the run to continue)")
    for name in ("num_tones", "epochs", "batch_size", "valid_notes", "num_harmonics"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.lam < 0 or not math.isfinite(args.lam):
        p.error("--lambda must be a finite number >= 0")
    if args.nmr_dtype is None:
        args.nmr_dtype = "float64" if args.float64 else "float32"
    args.midi_range, args.db_range = list(args.midi_range), list(args.db_range)
    args.valid_levels_db, args.curriculum_range = list(args.valid_levels_db), list(args.curriculum_range)
    args.lowpass_hz = list(args.lowpass_hz)
    return args


# ----------------------------------------------------------------------------- student
def build_student(args: argparse.Namespace, teacher: _aa_common.Teacher) -> tuple[NamWaveNet, str]:
    kind = args.student
    if kind == "auto":
        kind = "teacher" if isinstance(teacher.module, NamWaveNet) else "nano"
    if kind == "teacher":
        if not isinstance(teacher.module, NamWaveNet):
            raise SystemExit(f"error: --student teacher fine-tunes a WaveNet teacher, but {teacher.name} is "
                             f"not one; choose a preset ({', '.join(WAVENET_PRESETS)})")
        if any(v is not None for v in (args.channels, args.dilations1, args.dilations2)):
            raise SystemExit("error: --channels/--dilations* change a fresh student; they do not apply to "
                             "--student teacher")
        return student_from_teacher(teacher.module, torch.float32), "teacher"
    dil = None
    if args.dilations1 is not None or args.dilations2 is not None:
        d1, d2 = WAVENET_PRESETS[kind][2:]
        dil = (tuple(args.dilations1 or d1), tuple(args.dilations2 or d2))
    try:
        s = student_wavenet(kind, sample_rate=teacher.sample_rate,
                            channels=tuple(args.channels) if args.channels else None, dilations=dil,
                            kernel_size=args.kernel_size, activation=args.activation, gated=args.gated,
                            head_scale=args.head_scale, seed=args.seed)
    except ValueError as e:
        raise SystemExit(f"error: student configuration: {e}") from None
    return s, kind


def student_config(student: NamWaveNet, kind: str) -> dict[str, Any]:
    return {"kind": kind, "config": student.nam_config(), "sample_rate": student.sample_rate,
            "receptive_field": student.receptive_field, "num_weights": student.num_weights}


# ----------------------------------------------------------------------------- data
def _params_dict(p: ToneParams) -> dict[str, Any]:
    return {"midi": p.midi, "f0": p.f0, "amplitude": p.amplitude, "phase": p.phase,
            "sample_rate": p.sample_rate, "duration": p.duration}


def _params_from(d: dict[str, Any]) -> ToneParams:
    return ToneParams(d["midi"], d["f0"], d["amplitude"], d["phase"], int(d["sample_rate"]),
                      float(d["duration"]))


def valid_params(args: argparse.Namespace, fs: int) -> ToneParams:
    n = args.valid_notes
    notes = torch.linspace(21, 108, n).round().to(torch.int64).unique() if n > 1 else torch.tensor([69])
    full = validation_tone_params(fs, duration=args.duration, levels_db=tuple(args.valid_levels_db))
    keep = torch.isin(full.midi.to(torch.int64), notes)
    return full.subset(keep)


def data_fingerprint(args: argparse.Namespace, teacher: _aa_common.Teacher) -> dict[str, Any]:
    keys = ("num_tones", "duration", "midi_range", "amplitude", "db_range", "valid_notes",
            "valid_levels_db", "seed", "float64")
    return {"teacher": teacher.record, **{k: getattr(args, k) for k in keys}}


def tone_params(args: argparse.Namespace, teacher: _aa_common.Teacher) -> tuple[ToneParams, ToneParams]:
    """The training tones (seeded by --seed) and the validation grid; every rank builds them (cheap)
    and checks them before any target is computed, so that a bad setting stops all ranks alike."""
    fs = teacher.sample_rate
    try:
        train_p = sample_tone_params(args.num_tones, fs, duration=args.duration, midi_range=tuple(args.midi_range),
                                     amplitude=args.amplitude, db_range=tuple(args.db_range),
                                     generator=torch.Generator().manual_seed(args.seed))
        check_warmup(train_p, teacher.receptive_field, f"the teacher {teacher.name}")
        return train_p, valid_params(args, fs)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


def build_data(args: argparse.Namespace, teacher: _aa_common.Teacher, params: tuple[ToneParams, ToneParams],
               out: Path, device: torch.device, info: _train.DistInfo) -> tuple[SineToneDataset, SineToneDataset]:
    """Training and validation tones with cached bandlimited float64 teacher targets.

    Rank 0 computes them once (or reuses OUT/targets.pt when it matches) and saves them
    atomically; the other ranks then load the file."""
    store = torch.float64 if args.float64 else torch.float32
    fp = data_fingerprint(args, teacher)
    cache = out / "targets.pt"
    data, err = None, None
    if info.is_main:
        if cache.exists():
            ck = _train.load_checkpoint(cache)
            if ck["fingerprint"] != fp:
                err = f"error: {cache} holds targets for other settings ({ck['fingerprint']}); use a new --out"
            data = ck
        else:
            data = {"fingerprint": fp}
            for name, p in zip(("train", "valid"), params):
                with tqdm(total=len(p), desc=f"teacher targets ({name})", unit="tone", leave=False,
                          disable=args.no_progress, dynamic_ncols=True) as bar:
                    t = SineToneDataset.from_teacher(teacher.module, p, batch_size=args.batch_size,
                                                     device=device, store_dtype=store,
                                                     progress=bar.update).targets
                data[name] = {**_params_dict(p), "targets": t}
            _train.save_checkpoint(cache, data)
    err = _train.broadcast_object(err, info)
    if err:
        raise SystemExit(err)
    if info.enabled:
        dist.barrier()
        if not info.is_main:
            data = _train.load_checkpoint(cache)
    return tuple(SineToneDataset(_params_from(data[n]), data[n]["targets"])  # type: ignore[return-value]
                 for n in ("train", "valid"))


# ----------------------------------------------------------------------------- steps
def predict(model: torch.nn.Module, x: torch.Tensor, fs: int, rf: int) -> torch.Tensor:
    """The student's output over the last second of ``x`` [B, T] (valid convolution over the
    last fs + rf - 1 input samples): ``[B, fs]``."""
    return model(x[:, -(fs + rf - 1):], pad_start=False)


@torch.no_grad()
def validate(student: NamWaveNet, loss_fn: DistillationLoss, data: SineToneDataset, lam: float,
             args: argparse.Namespace, device: torch.device, dtype: torch.dtype,
             info: _train.DistInfo) -> dict[str, float]:
    """Per-tone validation metrics averaged over the validation tones (sharded by rank):
    the loss at ``lam`` (mean of per-tone losses), ESR / NMR / DC against the bandlimited
    teacher and the student's own aliasing NMR-S and ASR (mean of per-tone dB)."""
    student.eval()
    fs, rf = data.sample_rate, student.receptive_field
    w_esr, w_nmr = lambda_weights(lam)
    nmr = loss_fn.nmr.nmr
    idx = torch.arange(len(data))[info.rank::info.world_size]
    names = ["loss", "esr_db", "nmr_db", "dc_db", "nmr_s_db", "asr_db"]
    sums = torch.zeros(len(names) + 1, dtype=torch.float64)
    for b in idx.split(args.batch_size):
        x, target, f0 = data.batch(b, device=device, dtype=dtype)
        pred = predict(student, x, fs, rf)
        p, t = (loss_fn.lowpass(pred), loss_fn.lowpass(target)) if loss_fn.lowpass is not None else (pred, target)
        e, n, d = esr(p, t, "none"), nmr(p, t).to(torch.float64), dc_loss(p, t, "none")
        total = (w_esr * e + w_nmr * n + loss_fn.dc_weight * d).to(torch.float64).sum()
        if loss_fn.harmonic is not None:
            total = total + loss_fn.harmonic_weight * loss_fn.harmonic(pred, target, f0).double() * len(b)
        r = bandlimit(pred, f0, fs)
        ns = nmr(pred, r.bandlimited).to(torch.float64)
        a = r.aliases.double().pow(2).sum(-1) / r.bandlimited.double().pow(2).sum(-1)  # ASR (ESR-S)
        db = lambda v: 10 * torch.log10(v.double().clamp_min(1e-30)).sum()  # noqa: E731
        count = torch.tensor(float(len(b)), dtype=torch.float64, device=total.device)
        sums += torch.stack([total, db(e), db(n), db(d), db(ns), db(a), count]).cpu()
    if info.enabled:  # nccl reduces device tensors only
        sums = sums.to(device)
        dist.all_reduce(sums)
        sums = sums.cpu()
    student.train()
    return {f"valid_{k}": float(sums[i] / sums[-1]) for i, k in enumerate(names)}


def make_loss(args: argparse.Namespace, fs: int, device: torch.device) -> DistillationLoss:
    loss_fn = DistillationLoss(fs, lam=args.lam, dc_weight=args.dc_weight, harmonic_weight=args.harmonic_weight,
                               lowpass=not args.no_lowpass, nmr_dtype=getattr(torch, args.nmr_dtype),
                               num_harmonics=args.num_harmonics)
    if not args.no_lowpass and tuple(args.lowpass_hz) != (12_000.0, 16_000.0):
        try:
            loss_fn.lowpass = KaiserLowpass(fs, *args.lowpass_hz)
        except ValueError as e:
            raise SystemExit(f"error: --lowpass-hz: {e}") from None
    return loss_fn.to(device)


def epoch_lambda(args: argparse.Namespace, epoch: int) -> float:
    if args.curriculum:
        return curriculum_lambda(epoch, args.epochs, *args.curriculum_range)
    return args.lam


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif _cli.resolve_device(args.device).type == "cpu":
        torch.set_num_threads(1)
    return _train.run_main(args, _run)


def _run(args: argparse.Namespace, info: _train.DistInfo) -> dict[str, Any]:
    device = info.device
    out = _train.open_run_dir(args, TOOL, info)
    log = _train.run_logger(info)
    teacher = _aa_common.load_teacher(args)
    fs = teacher.sample_rate
    if fs % 2:
        raise SystemExit(f"error: the teacher runs at {fs} Hz; the bandlimiter needs an even rate")
    dtype = torch.float64 if args.float64 else torch.float32

    ck = _train.resume_checkpoint(out, TOOL, args)

    student, kind = build_student(args, teacher)
    student = student.to(device=device, dtype=dtype)
    scfg = student_config(student, kind)
    params = tone_params(args, teacher)
    try:  # before any teacher target is computed
        check_warmup(params[0], student.receptive_field, "the student")
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    train_data, valid_data = build_data(args, teacher, params, out, device, info)
    loss_fn = make_loss(args, fs, device)
    lr = args.lr if args.lr is not None else (5e-4 if kind == "teacher" else 4e-3)
    opt = torch.optim.Adam(student.parameters(), lr=lr)

    start_epoch, step, best = 0, 0, _train.BestTracker("valid_loss", "min")
    history: list[dict[str, float]] = []
    if ck is not None:
        if ck["student_config"] != scfg:
            raise SystemExit(f"error: --resume: the checkpoint's student {ck['student_config']} differs from "
                             f"{scfg}")
        student.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        start_epoch, step, history = ck["epoch"] + 1, ck["step"], ck["history"]
        best = _train.BestTracker("valid_loss", "min", ck["best"])
        _train.set_rng_state(ck["rng"])
        log(f"resumed {out}/last.pt after epoch {start_epoch} (step {step})")
        if args.curriculum and ck["config"]["epochs"] != args.epochs:
            _aa_common.warn(f"--epochs changed from {ck['config']['epochs']} to {args.epochs}: the curriculum λ "
                            f"of the remaining epochs follows the new length")
    elif info.is_main:
        (out / "config.json").write_text(json.dumps(
            {"args": vars(args), "teacher": teacher.record, "student": scfg, "sample_rate": fs}, indent=2))

    log(f"teacher: {teacher.name}, receptive field {teacher.receptive_field}")
    log(f"student: {kind} WaveNet, {student.num_weights:,} weights, receptive field {student.receptive_field}, "
        f"{'float64' if args.float64 else 'float32'}; {len(train_data)} training / {len(valid_data)} validation "
        f"tones of {args.duration} s at {fs} Hz; {info.world_size} process(es) on {device}")
    # the last layer's 1x1 residual conv feeds nothing (as in NAM): DDP must expect unused parameters
    model = DistributedDataParallel(student, find_unused_parameters=True) if info.enabled else student
    csv_log = _train.MetricLogger(out, "log", tensorboard=args.tensorboard) if info.is_main else None
    if csv_log is not None and args.resume:
        csv_log.truncate_after("epoch", start_epoch - 1)
    valid_lam = args.curriculum_range[1] if args.curriculum else args.lam
    rf = student.receptive_field

    for epoch in range(start_epoch, args.epochs):
        lam = epoch_lambda(args, epoch)
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
            pred = predict(model, x, fs, rf)
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
        n_b = max(len(batches), 1)
        train_row = {f"train_{k}": v / n_b for k, v in sums.items()}
        if info.enabled:
            keys = list(train_row)
            vals = _train.all_reduce_mean(torch.tensor([train_row[k] for k in keys], dtype=torch.float64,
                                                       device=device), info).cpu()
            train_row = dict(zip(keys, vals.tolist()))
        valid_row = validate(student, loss_fn, valid_data, valid_lam, args, device, dtype, info)
        v = valid_row["valid_loss"]
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
                f"valid loss {v:.4g}  ESR-T {valid_row['valid_esr_db']:.1f} dB  NMR-T "
                f"{valid_row['valid_nmr_db']:.1f} dB  NMR-S {valid_row['valid_nmr_s_db']:.1f} dB  "
                f"({row['seconds']:.0f} s){'  *best*' if improved else ''}")
        if info.enabled:
            dist.barrier()

    result: dict[str, Any] = {"out": str(out), "best": best.state}
    if info.is_main:
        result["student"] = str(export_student(out, teacher, args, scfg, dtype, log))
        print_summary(best.state, history, teacher, result["student"])
        (out / "results.json").write_text(json.dumps(result, indent=2))
    return result


def export_student(out: Path, teacher: _aa_common.Teacher, args: argparse.Namespace, scfg: dict[str, Any],
                   dtype: torch.dtype, log: Any) -> Path:
    """Write the best checkpoint's student as OUT/student.nam with its teacher record."""
    if not (out / "best.pt").exists():
        raise SystemExit(f"error: no finite validation loss in any epoch: {out}/best.pt was never written, "
                         f"nothing to export")
    ck = _train.load_checkpoint(out / "best.pt")
    student, _ = build_student(args, teacher)
    student = student.to(dtype)
    student.load_state_dict(ck["model"])
    rec = {**teacher.record, "tool": TOOL, "epoch": ck["epoch"], "valid_loss": ck["best"]["value"],
           "lambda": None if args.curriculum else args.lam,
           "curriculum": list(args.curriculum_range) if args.curriculum else None,
           "harmonic_weight": args.harmonic_weight, "lowpass_hz": None if args.no_lowpass else args.lowpass_hz,
           "num_tones": args.num_tones, "seed": args.seed}
    path = out / "student.nam"
    existed = path.exists()
    save_nam(student, path, metadata={_aa_common.METADATA_KEY: rec}, overwrite=True)
    log(f"{'re-exported' if existed else 'exported'} the best student (epoch {ck['epoch'] + 1}) to {path}")
    return path


def print_summary(best: dict[str, Any], history: list[dict[str, float]], teacher: _aa_common.Teacher,
                  student_path: str) -> None:
    rows = [("teacher", teacher.name), ("epochs run", str(len(history))),
            ("best epoch", str(best["epoch"] + 1)),
            ("valid loss", f"{best['value']:.4g}" if best["value"] is not None else "n/a")]
    for key, label in (("valid_esr_db", "ESR-T (dB)"), ("valid_nmr_db", "NMR-T (dB)"),
                       ("valid_nmr_s_db", "NMR-S (dB, aliasing)"), ("valid_asr_db", "ASR (dB)"),
                       ("valid_dc_db", "DC (dB)")):
        if key in best["metrics"]:
            rows.append((f"best {label}", f"{best['metrics'][key]:.2f}"))
    rows.append(("student", student_path))
    w = max(len(r[0]) for r in rows)
    print("\nsummary (validation: mean over tones after the lowpass; NMR-S on the raw output)")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")


if __name__ == "__main__":
    main()
