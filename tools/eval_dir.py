#!/usr/bin/env python
"""Score a folder of enhanced wavs against their clean references (and optionally the noisy
inputs): PESQ-WB/NB, STOI, ESTOI, SI-SDR, SNR, SSNR, LSD, CSIG/CBAK/COVL; with --dnsmos also
DNSMOS P.835 (SIG, BAK, OVRL) and P.808; with ENHANCED_DIR alone, DNSMOS only (non-intrusive).

Writes DIR/per_file.csv, DIR/summary.json (and DIR/per_file_noisy.csv with --noisy-dir), prints
a table. Re-running with the same --out resumes: rows whose scored file and clean reference are
unchanged (same size and SHA-256, recorded in the CSV) are kept; failed rows, new files and rows
whose inputs changed are computed, and the table says how many were recomputed and why. A metric
undefined for a file (e.g. PESQ of a silent output) is an empty cell with its reason, not a failure:
the exit status is 1 only for files that cannot be read or compared.

Examples:
    uv run tools/eval_dir.py runs/enhance-X/enhanced data/vb16k/clean_testset_wav \\
        --noisy-dir data/vb16k/noisy_testset_wav --out runs/eval-X [--dnsmos]
    uv run tools/eval_dir.py recordings/ --out runs/dnsmos-X      # no clean reference: DNSMOS only
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from _cli import add_allow_failures, failure_status
from se_metrics import (DNSMOS_METRICS, METRICS, DnsmosUnavailableError, MetricInputError, dnsmos_model_info,
                        evaluate_dir, format_summary_table, is_evaluation_dir)

# _cli is imported inside the functions: the evaluator's worker processes may re-import this
# script's top level and need only se_metrics.


def build_parser() -> argparse.ArgumentParser:
    import _argtypes as T
    from _cli import add_common_args

    p = argparse.ArgumentParser(
        prog="eval_dir.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.fill(
               "Files are paired by their path relative to ENHANCED_DIR (or, failing that, by a "
               "unique file name below CLEAN_DIR / NOISY_DIR). A file that cannot be compared (missing "
               "partner, unreadable, silent reference, NaN, length mismatch, multi-channel) is a failure: "
               "recorded with its reason in the 'error' column and summary.json, never a number, and the "
               "exit status is 1 (--allow-failures: 0). A metric that is undefined for a pair it can "
               "compare (a silent, DC-only or near-silent estimate; too short for PESQ or STOI; no speech "
               "found by PESQ) is left empty with its reason in the 'undefined' column, out of the means, "
               "counted in the summary; every defined metric is still computed and the exit status stays "
               "0. Clipped estimates are scored and noted. Running again with the same --out resumes: "
               "rows whose two input files are unchanged (size and SHA-256 recorded per row) are kept; "
               "changed, failed and missing files are (re)computed and counted with the reason; other "
               "settings than the first run's are refused. DNSMOS (--dnsmos, or ENHANCED_DIR alone) needs "
               "the dnsmos extra (pip install 'se-metrics[dnsmos]': onnxruntime and speechmos's ONNX models); "
               "it scores each file alone at 16 kHz, resampling other rates. While running, --out holds "
               "OUT/.lock: a second "
               "evaluation into it stops at once and names the holder (a dead holder's lock is taken over). "
               "Exit status: 0, 1 when any file failed, 2 for a bad command line.", width=100))
    p.add_argument("enhanced_dir", metavar="ENHANCED_DIR",
                   help="folder of enhanced *.wav files (searched recursively); the 'file' column is "
                        "the path relative to it")
    p.add_argument("clean_dir", metavar="CLEAN_DIR", nargs="?", default=None,
                   help="folder of clean reference *.wav files with the same relative paths or names; "
                        "left out: non-intrusive mode, DNSMOS only (P.835 SIG / BAK / OVRL and P.808 of "
                        "each file alone)")
    add_common_args(p, device=False, seed=False)
    p.add_argument("--noisy-dir", default=None, metavar="NOISY_DIR",
                   help="folder of the unprocessed noisy inputs: also scores noisy vs clean (without "
                        "CLEAN_DIR: the noisy files' DNSMOS) into per_file_noisy.csv, and summary.json gets "
                        "'enhanced', 'noisy' and 'delta' (enhanced - noisy per file) sections")
    p.add_argument("--workers", type=T.WORKERS, default=os.cpu_count() or 1, metavar="N",
                   help="worker processes, one utterance per task, never padded "
                        f"(default: all cores = {os.cpu_count()}); 1 runs in this process")
    p.add_argument("--sr", type=T.SAMPLE_RATE_HZ, default=16000, metavar="HZ",
                   help="sample rate the metrics run at, in Hz (default 16000; wide-band PESQ and "
                        "the composite measures need 16000). Files at another rate are resampled "
                        "with scipy.signal.resample_poly and listed in summary.json")
    p.add_argument("--dnsmos", action="store_true",
                   help="also score DNSMOS P.835 (SIG, BAK, OVRL; non-personalised) and P.808 MOS of each "
                        "enhanced (and noisy) file: the official ONNX models run with onnxruntime (the "
                        "dnsmos extra); columns dnsmos_sig, dnsmos_bak, dnsmos_ovrl, dnsmos_p808. Implied "
                        "without CLEAN_DIR")
    p.add_argument("--metrics", default=None, metavar="NAME[,NAME...]",
                   help="comma-separated metrics to compute (default: all): with CLEAN_DIR (a clean reference "
                        f"needed) {', '.join(METRICS)}; with or without it (non-intrusive) "
                        f"{', '.join(DNSMOS_METRICS)}. Only what the chosen ones need is computed, and the CSV "
                        "and summary hold only them; a DNSMOS name implies --dnsmos (--dnsmos with no DNSMOS "
                        "name: all four). Resuming into --out needs the same choice")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_allow_failures(p)
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.sr != 16000:
        p.error(f"--sr {args.sr}: wide-band PESQ, the composite measures and DNSMOS are defined at 16000 Hz only; "
                f"files at other rates are resampled to it on reading, so leave --sr out")
    if args.metrics is not None:
        args.metrics = _check_metrics(p, args.metrics, args.clean_dir is not None)
        args.dnsmos = args.dnsmos or any(m in DNSMOS_METRICS for m in args.metrics)
    return args


def _check_metrics(p: argparse.ArgumentParser, text: str, intrusive: bool) -> list[str]:
    """--metrics as a list of names, or ``p.error`` (exit status 2) naming the valid ones."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    valid = (f"valid: {', '.join(METRICS)} (these need CLEAN_DIR, a clean reference) and "
             f"{', '.join(DNSMOS_METRICS)} (DNSMOS, with or without CLEAN_DIR)")
    unknown = [m for m in names if m not in METRICS + DNSMOS_METRICS]
    if unknown or not names:
        p.error(f"--metrics {text!r}: " + (f"unknown metric(s) {', '.join(unknown)}" if unknown else "no name")
                + f"; {valid}")
    if len(set(names)) != len(names):
        p.error(f"--metrics {text!r}: each metric once; {valid}")
    needs_clean = [m for m in names if m in METRICS]
    if needs_clean and not intrusive:
        p.error(f"--metrics: {', '.join(needs_clean)}: a clean reference is needed; give CLEAN_DIR, or choose only "
                f"{', '.join(DNSMOS_METRICS)} (ENHANCED_DIR alone scores DNSMOS)")
    if intrusive and not needs_clean:
        p.error(f"--metrics: only DNSMOS scores chosen with CLEAN_DIR: add at least one of {', '.join(METRICS)}, "
                f"or leave CLEAN_DIR out to score DNSMOS alone")
    return names


def main(argv: list[str] | None = None) -> int:
    from _cli import prepare_out_dir
    from _outdir import acquire_out_lock, check_no_overlap

    args = parse_args(argv)
    if args.dnsmos or args.clean_dir is None:
        try:  # before any output folder is made: a missing extra is named at once
            dnsmos_model_info()
        except DnsmosUnavailableError as err:
            sys.exit(f"error: {'ENHANCED_DIR alone (non-intrusive mode)' if args.clean_dir is None else '--dnsmos'} "
                     f"scores DNSMOS: {err}")
    if args.out is not None:
        check_no_overlap(Path(args.out), "--out", ENHANCED_DIR=args.enhanced_dir, CLEAN_DIR=args.clean_dir,
                         **{"--noisy-dir": args.noisy_dir})
    if args.out is not None and is_evaluation_dir(args.out):
        out = Path(args.out)  # resume: the evaluator keeps rows whose inputs are unchanged
        acquire_out_lock(out, "eval_dir", resume=True)
        print(f"resuming the evaluation in {out}", file=sys.stderr)
    else:
        out = prepare_out_dir(args.out, "eval_dir")
    try:
        summary = evaluate_dir(args.enhanced_dir, args.clean_dir, out, sample_rate=args.sr,
                               workers=args.workers, noisy_dir=args.noisy_dir, progress=not args.no_progress,
                               dnsmos=args.dnsmos, metrics=args.metrics)
    except MetricInputError as err:
        sys.exit(f"error: {err}")
    print(format_summary_table(summary, out))
    # a file that cannot be read or compared is a failure; a metric that is undefined for a pair is not
    enhanced = summary["enhanced"]
    return failure_status(len(enhanced["failures"]), enhanced["n_files"], args, "enhanced file(s)")


if __name__ == "__main__":
    raise SystemExit(main())
