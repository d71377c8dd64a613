#!/usr/bin/env python
"""The teacher/student aliasing analysis: how much a teacher aliases, and how a distilled
student compares, per tone and per frequency band.

Tones from 27.5 Hz to 12 kHz (50 log-spaced by default) at several levels, 1.2 s each (the
last second is analysed; the rest covers the models' receptive fields), run through the
teacher and the student from zero history in float64. Per tone and model:

  NMR-S   NMR(y, ~y): audibility of the model's own aliases (~y = y bandlimited by harmonic
          resynthesis); target: < -10 dB in every band
  NMR-T   NMR(y, ~y_T) against the bandlimited teacher
  ESR-T   ESR(y, ~y_T)
  HESR-T  ESR of the harmonic magnitudes against the teacher's (the teacher is the reference,
          so this is the research notes' HESR-R; target < -15 dB; the teacher's own is -inf)
  ASR     alias energy / bandlimited energy (the paper's ESR-S)

Per band (20-500, 500-2k, 2k-8k, 8k-12k, 12k-20k Hz) each metric's frequency-resolved parts
are grouped by frequency: the masking model's bands for NMR, the harmonics for HESR, the alias
(or error) components for ASR (ESR). Aggregates are means of per-tone dB values. NMR depends on
the level: compare teacher and student at the same level (per_band.csv has a row per level).

The teacher/student pair is checked first: a student whose sample rate differs, or whose
metadata names another teacher (SHA-256 of the .nam file, or other built-in settings), is
refused; a student without that record gets a warning (the pairing cannot be verified).

Outputs in --out (CSV floats to 6 significant digits, -inf / inf / nan spelled so):

  per_tone.csv       model, f0_hz, level_db, nmr_s_db, nmr_t_db, esr_t_db, hesr_t_db, asr_db
                     (broadband values, one row per model and tone)
  per_tone_band.csv  model, f0_hz, level_db, band, band_lo_hz, band_hi_hz, the five *_db values
                     of that tone in that band (nan: the band holds nothing for it), nmr_s_pass,
                     hesr_t_pass, meets_targets (True / False, empty when undefined): the items a
                     study averages (mean and CI over tones and seeds)
  per_band.csv       model, band, band_lo_hz, band_hi_hz, level_db ("all" or a level),
                     num_tones, the five *_db means over tones, nmr_s_pass, hesr_t_pass,
                     meets_targets (of those means)
  summary.json       the run (teacher record, student, pairing, sample_rate, num_tones, f_range,
                     levels_db, seconds), "overall" (broadband means per model), "targets_db"
                     ({"nmr_s": -10, "hesr_t": -15}), "per_band" ({model: {band: {"band_hz",
                     "num_tones", "<metric>_db", "nmr_s_pass", "hesr_t_pass", "meets_targets"}}},
                     the means over every tone and level) and "meets_targets" ({model: true /
                     false / null}: every band passes). In "per_band" a finite value is a JSON
                     number, -inf / inf the strings "-inf" / "inf", nan null.
  per_band.png, spectrograms.png (unless --no-plots)
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _aa_common  # noqa: E402
import _argtypes as T  # noqa: E402
import _cli  # noqa: E402

from aa_distill import (  # noqa: E402
    ANALYSIS_BANDS_HZ,
    ANALYSIS_METRICS,
    ANALYSIS_TARGETS_DB,
    analyse_outputs,
    analysis_tone_params,
    band_label,
    check_warmup,
    model_outputs,
    overall_rows,
    per_band_rows,
    per_tone_band_rows,
    per_tone_rows,
    target_summary,
)

TOOL = "analyze_aa"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="analyze_aa.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _aa_common.add_teacher_args(p, required=True)
    p.add_argument("--student", default=None, metavar="S.nam",
                   help="the distilled student (.nam); without it only the teacher is analysed")
    g = p.add_argument_group("tones")
    g.add_argument("--num-tones", type=T.positive_int(), default=50,
                   help="log-spaced fundamentals from --f-range (default 50, as the research notes' baseline "
                        "analysis)")
    g.add_argument("--f-range", type=T.float_range(1.0, None, noun="a frequency in Hz", unit="Hz"), nargs=2,
                   default=(27.5, 12_000.0), metavar=("LO", "HI"),
                   help="lowest and highest f0 in Hz (default 27.5 12000; LO <= HI < the teacher's Nyquist)")
    g.add_argument("--levels-db", type=T.LEVEL_DBFS, nargs="+", default=(-36.0, -18.0, -6.0), metavar="DB",
                   help="tone levels in dBFS peak (default -36 -18 -6, the paper's validation levels)")
    g.add_argument("--duration", type=T.seconds(low=1.0), default=1.2,
                   help="tone length in s; the last second is analysed (default 1.2)")
    g = p.add_argument_group("computation and output")
    g.add_argument("--float32", action="store_true",
                   help="run the models in float32 (default float64; the metrics are always float64)")
    g.add_argument("--batch-size", type=T.positive_int(), default=16, help="tones per batch (default 16)")
    g.add_argument("--spectrogram-tones", type=T.nonneg_int(), default=3,
                   help="highest tones (at the loudest level) shown in spectrograms.png (default 3; 0 = none)")
    g.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--threads", type=T.THREADS, default=None, help=_cli.THREADS_HELP)
    _cli.add_common_args(p, seed=False)
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    _aa_common.check_teacher_args(p, args)
    T.check_less(p, ("--f-range LO", args.f_range[0]), ("HI", args.f_range[1]), strict=False)
    T.check_less(p, ("--f-range HI", args.f_range[1]), ("the built-in teacher's Nyquist",
                                                          _aa_common.builtin_nyquist(args)))
    return args


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else (f"{v:.6g}" if math.isfinite(v) else ("inf" if v > 0 else "-inf"))
    return v


def _json_number(v: Any) -> Any:
    """A finite float as itself, -inf / inf as strings, nan as None (JSON has no such numbers)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _json_number(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_number(x) for x in v]
    return v


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: _fmt(v) for k, v in r.items()} for r in rows)


def _cell(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    return "-inf" if v == -math.inf else f"{v:7.2f}"


def _verdict(row: dict[str, Any]) -> str:
    """``yes``, ``NO (NMR-S, HESR-T)`` naming the failed targets, or ``n/a``."""
    if row["meets_targets"] is None:
        return "n/a"
    failed = [ANALYSIS_METRICS[k] for k in ANALYSIS_TARGETS_DB if row[f"{k}_pass"] is False]
    return "yes" if not failed else f"NO ({', '.join(failed)})"


def print_tables(band_rows: list[dict[str, Any]], overall: list[dict[str, Any]], has_student: bool,
                 verdicts: dict[str, Any]) -> None:
    models = ["teacher", "student"] if has_student else ["teacher"]
    print("\nper band (dB, mean over all tones and levels; targets in every band: NMR-S < -10, "
          "HESR-T (= HESR-R) < -15)")
    cols = [(m, k) for k in ("nmr_s", "nmr_t", "esr_t", "hesr_t", "asr") for m in models
            if not (m == "teacher" and k in ("nmr_t", "esr_t", "hesr_t"))]
    head = "  band      " + "".join(f"{(m[0].upper() + ' ' + ANALYSIS_METRICS[k]):>12}" for m, k in cols)
    if has_student:
        head += "   student meets targets"
    print(head)
    by = {(r["model"], r["band"]): r for r in band_rows if r["level_db"] == "all"}
    for band in ANALYSIS_BANDS_HZ:
        lab = band_label(band)
        line = f"  {lab:<9} " + "".join(f"{_cell(by[(m, lab)][k + '_db']):>12}" for m, k in cols)
        if has_student:
            line += "   " + _verdict(by[("student", lab)])
        print(line)
    if has_student:
        ok = verdicts["meets_targets"].get("student")
        print(f"  student meets the targets in every band: {'n/a' if ok is None else ('yes' if ok else 'NO')}")
    print("\noverall (dB, mean over tones of the broadband per-tone values; T = teacher, S = student)")
    print("  model     " + "".join(f"{v:>10}" for v in ANALYSIS_METRICS.values()))
    for r in overall:
        print(f"  {r['model']:<9} " + "".join(f"{_cell(r[k + '_db']):>10}" for k in ANALYSIS_METRICS))
    print("  (the teacher is the reference: its HESR-T is -inf and its NMR-T / ESR-T equal NMR-S / ASR)")


def plot_per_band(path: Path, band_rows: list[dict[str, Any]], has_student: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [band_label(b) for b in ANALYSIS_BANDS_HZ]
    by = {(r["model"], r["band"]): r for r in band_rows if r["level_db"] == "all"}
    models = ["teacher", "student"] if has_student else ["teacher"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    x = torch.arange(len(labels)).numpy()
    width = 0.8 / len(models)
    for ax, key, target, title in ((axes[0], "nmr_s", -10.0, "NMR-S (aliasing audibility)"),
                                   (axes[1], "hesr_t", -15.0, "HESR-T (= HESR-R, teacher is the reference)")):
        for i, m in enumerate(models):
            vals = [by[(m, lab)][key + "_db"] for lab in labels]
            shown = [v if math.isfinite(v) else float("nan") for v in vals]
            ax.bar(x + (i - (len(models) - 1) / 2) * width, shown, width, label=m)
            for j, v in enumerate(vals):
                if v == -math.inf:
                    ax.annotate("-inf", (x[j] + (i - (len(models) - 1) / 2) * width, 0), ha="center",
                                va="bottom", fontsize=8)
        ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:g} dB")
        ax.set_xticks(x, labels)
        ax.set_xlabel("band (Hz)")
        ax.set_ylabel("dB")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_spectrograms(path: Path, outputs: dict[str, torch.Tensor], f0: torch.Tensor, idx: list[int],
                      fs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(outputs)
    fig, axes = plt.subplots(len(models), len(idx), figsize=(4.2 * len(idx), 3.2 * len(models)), squeeze=False)
    win = torch.hann_window(2048, dtype=torch.float64)
    for r, m in enumerate(models):
        for c, i in enumerate(idx):
            spec = torch.stft(outputs[m][i], 2048, 512, window=win, center=False, return_complex=True).abs()
            db = 20 * torch.log10(spec / spec.max() + 1e-12)
            ax = axes[r][c]
            ax.imshow(db.numpy(), origin="lower", aspect="auto", vmin=-120, vmax=0, cmap="magma",
                      extent=(0, outputs[m].shape[-1] / fs, 0, fs / 2000))
            ax.set_title(f"{m}, f0 = {float(f0[i]):.0f} Hz", fontsize=9)
            ax.set_xlabel("time (s)")
            ax.set_ylabel("kHz")
    fig.suptitle("last second, dB re the peak (aliases: lines off the harmonic grid)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def spectrogram_tones(params: Any, args: argparse.Namespace) -> list[int]:
    """The highest tones at the loudest level, skipping f0 that divide the rate (fs / f0 an
    integer, e.g. 12 kHz at 48 kHz: every alias then lands on a harmonic, nothing to see)."""
    loud = int(torch.argmax(torch.as_tensor(list(args.levels_db))))
    idx = list(range(loud * args.num_tones, (loud + 1) * args.num_tones))
    ratio = params.sample_rate / params.f0[idx]
    keep = [i for i, r in zip(idx, ratio.tolist()) if abs(r - round(r)) > 1e-6] or idx
    return keep[-args.spectrogram_tones:]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _cli.resolve_device(args.device)
    teacher = _aa_common.load_teacher(args)
    student = None
    pairing = None
    if args.student is not None:
        student = _aa_common.load_student(args.student)
        pairing = _aa_common.check_pair(teacher, student, args.student)
        if pairing == "unverified":
            _aa_common.warn(f"cannot verify that {Path(args.student).name} was distilled from {teacher.name}: it "
                            f"records no teacher (no metadata['aa_distill']); its sample rate matches "
                            f"({teacher.sample_rate} Hz). A mismatched pair makes every comparison meaningless.")
        else:
            print(f"pair verified: {Path(args.student).name} records {teacher.name} as its teacher")
    fs = teacher.sample_rate
    try:
        params = analysis_tone_params(fs, num_tones=args.num_tones, f_min=args.f_range[0], f_max=args.f_range[1],
                                      levels_db=tuple(args.levels_db), duration=args.duration)
        check_warmup(params, teacher.receptive_field, f"the teacher {teacher.name}")
        if student is not None:
            check_warmup(params, student.receptive_field, "the student")
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    out = _cli.prepare_out_dir(args.out, TOOL)
    levels = torch.as_tensor(list(args.levels_db), dtype=torch.float64).repeat_interleave(args.num_tones)
    dtype = torch.float32 if args.float32 else torch.float64

    t0 = time.time()
    models = {"teacher": teacher.module, **({"student": student} if student is not None else {})}
    outputs = {}
    for name, mod in models.items():
        with tqdm(total=len(params), desc=f"{name} outputs", unit="tone", leave=False,
                  disable=args.no_progress, dynamic_ncols=True) as bar:
            outputs[name] = model_outputs(mod, params, batch_size=args.batch_size, device=device, dtype=dtype,
                                            progress=bar.update)
    with tqdm(total=len(params), desc="metrics", unit="tone", leave=False, disable=args.no_progress,
              dynamic_ncols=True) as bar:
        metrics = analyse_outputs(outputs, params.f0, fs, batch_size=args.batch_size, device=device,
                                    progress=bar.update)
    seconds = time.time() - t0

    tone_rows = per_tone_rows(params, levels, metrics)
    band_rows = per_band_rows(levels, metrics)
    overall = overall_rows(metrics)
    verdicts = target_summary(band_rows)
    write_csv(out / "per_tone.csv", tone_rows)
    write_csv(out / "per_tone_band.csv", per_tone_band_rows(params, levels, metrics))
    write_csv(out / "per_band.csv", band_rows)
    summary = {"teacher": teacher.record, "student": str(args.student) if args.student else None,
               "pairing": pairing, "sample_rate": fs, "num_tones": args.num_tones, "f_range": list(args.f_range),
               "levels_db": list(args.levels_db), "seconds": seconds,
               "overall": [{k: _fmt(v) for k, v in r.items()} for r in overall],
               **_json_number(verdicts)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not args.no_plots:
        plot_per_band(out / "per_band.png", band_rows, student is not None)
        if args.spectrogram_tones:
            idx = spectrogram_tones(params, args)
            plot_spectrograms(out / "spectrograms.png", outputs, params.f0, idx, fs)
    print(f"teacher: {teacher.name}" + (f"\nstudent: {args.student}" if args.student else ""))
    print(f"{len(params)} tones ({args.num_tones} f0 from {args.f_range[0]:g} to {args.f_range[1]:g} Hz x "
          f"{len(args.levels_db)} levels) at {fs} Hz in {seconds:.1f} s")
    print_tables(band_rows, overall, student is not None, verdicts)
    print(f"\nwrote {out}/per_tone.csv, per_tone_band.csv, per_band.csv, summary.json"
          + ("" if args.no_plots else ", plots"))
    return summary


if __name__ == "__main__":
    main()
