#!/usr/bin/env python
"""Throughput of se_metrics' batch evaluator against a plain sequential pesq + pystoi loop.

Both score the same real pairs (the 7 shared pairs in ../shared/data, each repeated --repeats
times): the evaluator (all metrics, --workers processes, pool start-up included) and a plain
Python loop calling pesq.pesq (wb, nb) and pystoi.stoi (STOI, ESTOI) on the same float64 arrays.
Prints both times, the ratio, and whether the PESQ / STOI / ESTOI values are identical.

The evaluator also computes SI-SDR, SNR, SSNR, LSD, LLR, WSS and the composite (about +20 %
per file); timings on a shared machine depend on its load: run it on an idle one.

    uv run bench/metrics_throughput.py [--repeats 4] [--workers N] [--single] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pesq
import pystoi
import soundfile as sf

from se_metrics import evaluate_dir

REPO = Path(__file__).resolve().parent.parent


def shared_pairs(data: Path) -> list[tuple[str, Path, Path]]:
    """(name, clean, noisy) of the 7 shared real pairs."""
    sp = data / "speech"
    pairs = [("speech_bab_0dB.wav", sp / "speech.wav", sp / "speech_bab_0dB.wav")]
    for i in range(1, 7):
        n = f"p287_00{i}.wav"
        pairs.append((n, sp / "voicebank16k" / "clean" / n, sp / "voicebank16k" / "noisy" / n))
    return pairs


def sequential(files: list[tuple[str, Path, Path]]) -> dict[str, dict[str, float]]:
    out = {}
    for rel, c, e in files:
        clean, sr = sf.read(c)
        enh, _ = sf.read(e)
        out[rel] = {"pesq_wb": pesq.pesq(sr, clean, enh, "wb"), "pesq_nb": pesq.pesq(sr, clean, enh, "nb"),
                    "stoi": float(pystoi.stoi(clean, enh, sr)),
                    "estoi": float(pystoi.stoi(clean, enh, sr, extended=True))}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=4, help="copies of the 7 pairs to score (default 4 = 28 files)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help=f"evaluator processes (default: all cores = {os.cpu_count()})")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("SE_SHARED_DATA", REPO.parent / "shared" / "data")),
                   help="the shared real-data folder (default ../shared/data or $SE_SHARED_DATA)")
    p.add_argument("--single", action="store_true",
                   help="also time the evaluator in one process (shows the cost of its extra metrics)")
    args = p.parse_args()
    if not (args.data / "speech" / "speech.wav").exists():
        sys.exit(f"error: real data not found under {args.data}; pass --data or set SE_SHARED_DATA")

    tmp = Path(tempfile.mkdtemp(prefix="se_metrics_bench_"))
    try:
        files = []
        for r in range(args.repeats):
            for name, c, e in shared_pairs(args.data):
                rel = f"rep{r}/{name}"
                for root, src in (("enh", e), ("clean", c)):
                    (tmp / root / f"rep{r}").mkdir(parents=True, exist_ok=True)
                    shutil.copy(src, tmp / root / rel)
                files.append((rel, tmp / "clean" / rel, tmp / "enh" / rel))
        audio_s = sum(sf.info(c).duration for _, c, _ in files)

        t0 = time.perf_counter()
        seq = sequential(files)
        t_seq = time.perf_counter() - t0

        t0 = time.perf_counter()
        evaluate_dir(tmp / "enh", tmp / "clean", tmp / "out", workers=args.workers, progress=False)
        t_eval = time.perf_counter() - t0
        t_one = None
        if args.single:
            t0 = time.perf_counter()
            evaluate_dir(tmp / "enh", tmp / "clean", tmp / "out1", workers=1, progress=False)
            t_one = time.perf_counter() - t0
        with open(tmp / "out" / "per_file.csv", newline="") as fh:
            rows = {r["file"]: r for r in csv.DictReader(fh)}

        exact = ["pesq_wb", "pesq_nb", "stoi"]
        n_exact = sum(float(rows[f][m]) == seq[f][m] for f in seq for m in exact)
        estoi_dev = max(abs(float(rows[f]["estoi"]) - seq[f]["estoi"]) for f in seq)
        errors = [f for f in seq if rows[f]["error"]]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n = len(files)
    print(f"{n} real utterances, {audio_s:.1f} s of 16 kHz audio, {os.cpu_count()} CPU cores")
    print(f"{'sequential pesq(wb,nb) + pystoi(stoi,estoi) loop':55s} {t_seq:7.2f} s  ({t_seq / n * 1e3:.0f} ms/file)")
    print(f"{f'se_metrics.evaluate_dir, {args.workers} workers, all 11 metrics':55s} {t_eval:7.2f} s  "
          f"({t_eval / n * 1e3:.0f} ms/file, pool start-up included)")
    if t_one is not None:
        print(f"{'se_metrics.evaluate_dir, 1 process, all 11 metrics':55s} {t_one:7.2f} s  "
              f"({t_one / n * 1e3:.0f} ms/file)")
    print(f"ratio sequential / evaluator: {t_seq / t_eval:.2f}x")
    print(f"PESQ-WB, PESQ-NB, STOI identical: {n_exact}/{n * len(exact)} values bit-identical; "
          f"ESTOI max |diff| {estoi_dev:.1e} (pystoi's ESTOI itself varies ~1e-15 run to run)")
    if errors:
        print(f"evaluator failures: {errors}")
    ok = n_exact == n * len(exact) and estoi_dev < 1e-12 and not errors
    print("values identical" if ok else "VALUES DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
