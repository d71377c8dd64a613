#!/usr/bin/env python
"""Resample a tree of audio files (e.g. VoiceBank-DEMAND at 48 kHz) to one rate, keeping the layout.

    uv run tools/resample_dataset.py ~/data/VB-DEMAND ~/data/VB-DEMAND-16k --sr 16000 --workers 8

Every .wav/.flac under SRC is resampled (torchaudio's Kaiser-windowed sinc, in torch; see
se_data.resample) into the same relative path under DST, keeping its subtype and channels;
other files (e.g. log_trainset_28spk.txt) are copied. Re-running the same command resumes:
files already done and valid in DST are skipped unless their source changed since (DST's
.resample_manifest.json records each source's size and SHA-256; changed ones are redone and
listed), and each file is written atomically, so an interrupted run never leaves a half file.
Exits 1 if any file failed (listed at the end), unless --allow-failures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import _argtypes as T
from _cli import add_allow_failures, failure_status
from _outdir import acquire_out_lock, check_no_overlap


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="resample_dataset.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", metavar="SRC", help="source folder, searched recursively for .wav/.flac files")
    p.add_argument("dst", metavar="DST", help="destination folder (created; must not overlap SRC). "
                                              "An existing DST is resumed: valid files in it are kept")
    p.add_argument("--sr", type=T.SAMPLE_RATE_HZ, default=16000, help="target sample rate in Hz (default 16000)")
    p.add_argument("--workers", type=T.WORKERS, default=max(1, (os.cpu_count() or 1)),
                   help="parallel worker processes (default: all CPU cores; 1 = no pool)")
    p.add_argument("--report", default=None, metavar="FILE.json",
                   help="also write the report (counts, failures, rates seen) as JSON to this file "
                        "(refused if it exists)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_allow_failures(p)
    return T.annotate_help(p)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.report and os.path.exists(args.report):
        p.error(f"--report {args.report} already exists; nothing is overwritten")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from se_data.resample_tree import resample_tree  # after parsing: --help stays fast

    check_no_overlap(Path(args.dst), "DST", SRC=args.src)
    if not Path(args.src).is_dir():
        print(f"error: SRC {args.src} is not a folder", file=sys.stderr)
        return 2
    Path(args.dst).mkdir(parents=True, exist_ok=True)
    # a second run into DST stops here; a dead run's lock is taken over (a rerun resumes)
    acquire_out_lock(Path(args.dst), "resample_dataset", resume=True)
    try:
        report = resample_tree(args.src, args.dst, args.sr, workers=args.workers,
                               progress=not args.no_progress)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    rows = [("SRC", str(report.src)), ("DST", str(report.dst)), ("target rate", f"{report.sample_rate} Hz")]
    rows += report.summary_rows()
    w = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    for rel in report.clipped:
        print(f"clipped: {rel} (resampled peak exceeded full scale)")
    for rel, why in report.stale.items():
        print(f"redone: {rel}: {why}")
    for rel, msg in report.failed.items():
        print(f"FAILED: {rel}: {msg}", file=sys.stderr)
    if args.report:
        with open(args.report, "x") as f:
            json.dump(report.to_dict(), f, indent=2)
    n_audio = len(report.resampled) + len(report.copied_audio) + len(report.skipped) + len(report.failed)
    return failure_status(len(report.failed), n_audio, args, "audio file(s)")


if __name__ == "__main__":
    sys.exit(main())
