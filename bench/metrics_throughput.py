#!/usr/bin/env python
"""Throughput of se_metrics' batch evaluator against a plain sequential pesq + pystoi loop.

Like with like: both compute the same four metrics (PESQ-WB, PESQ-NB, STOI, ESTOI) of the
same real pairs, at the scale of the VoiceBank-DEMAND test set (824 files by default: the 7
shared pairs in ../shared/data repeated). The baseline is a plain Python loop in this process
calling pesq.pesq (wb, nb) and pystoi.stoi (STOI, ESTOI) on the float64 arrays soundfile
reads; the evaluator is ``se_metrics.evaluate_dir(..., metrics=(the four))`` with --workers
processes (pool start-up, file fingerprints and the CSV included). Both legs run in the same
invocation, alternating over --blocks blocks of the files (each block: one leg, then the
other; which goes first alternates), so a changing load on the machine from others falls on
both; the ratio is what to read. Prints both times, the ratio, and the largest |difference| per metric
(PESQ and STOI are bit-identical; ESTOI adds pystoi's random dither from NumPy's global
stream, so it differs from run to run by ~1e-15 however it is computed). It also prints the
machine's parallel headroom before and after (the same PESQ work in --workers processes at
once against one process): on a shared machine the pool's gain is bounded by it.
About 8 minutes for the default 824 files on an idle 2-core machine (--files 112: about one).

    uv run bench/metrics_throughput.py [--files 824] [--blocks 4] [--workers N] [--single] [--data ../shared/data]
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

FOUR = ("pesq_wb", "pesq_nb", "stoi", "estoi")

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


def _pesq_burst(args: tuple[str, str, int]) -> float:
    """Wall seconds of ``n`` wide-band PESQ calls on one pair (the headroom probe's unit of work)."""
    c_path, e_path, n = args
    clean, sr = sf.read(c_path)
    enh, _ = sf.read(e_path)
    t0 = time.perf_counter()
    for _ in range(n):
        pesq.pesq(sr, clean, enh, "wb")
    return time.perf_counter() - t0


def parallel_headroom(pair: tuple[str, Path, Path], workers: int, n: int = 6) -> float:
    """How many cores this process can use right now: the same PESQ burst in one process and in
    ``workers`` processes at once, ``workers x t_one / t_parallel`` (about ``workers`` on free
    cores, about 1 when others hold them)."""
    from concurrent.futures import ProcessPoolExecutor

    job = (str(pair[1]), str(pair[2]), n)
    t_one = _pesq_burst(job)
    with ProcessPoolExecutor(workers) as ex:
        list(ex.map(int, range(workers)))  # started before timing
        t0 = time.perf_counter()
        list(ex.map(_pesq_burst, [job] * workers))
        t_par = time.perf_counter() - t0
    return workers * t_one / t_par


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=824,
                   help="files to score, the 7 shared pairs repeated (default 824, the VoiceBank-DEMAND test set's "
                        "size; 112 takes a tenth of the time)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help=f"evaluator processes (default: all cores = {os.cpu_count()})")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("SE_SHARED_DATA", REPO.parent / "shared" / "data")),
                   help="the shared real-data folder (default ../shared/data or $SE_SHARED_DATA)")
    p.add_argument("--blocks", type=int, default=4,
                   help="the files in this many blocks, each scored by both legs in turn (default 4)")
    p.add_argument("--single", action="store_true",
                   help="also time the evaluator in one process (its per-file cost without the pool)")
    args = p.parse_args()
    if not (args.data / "speech" / "speech.wav").exists():
        sys.exit(f"error: real data not found under {args.data}; pass --data or set SE_SHARED_DATA")

    tmp = Path(tempfile.mkdtemp(prefix="se_metrics_bench_"))
    try:
        pairs = shared_pairs(args.data)
        blocks: list[list[tuple[str, Path, Path]]] = [[] for _ in range(args.blocks)]
        for k in range(args.files):
            name, c, e = pairs[k % len(pairs)]
            b = k * args.blocks // args.files
            rel = f"rep{k // len(pairs)}/{name}"
            for root, src in (("enh", e), ("clean", c)):
                (tmp / root / f"b{b}" / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, tmp / root / f"b{b}" / rel)
            blocks[b].append((rel, tmp / "clean" / f"b{b}" / rel, tmp / "enh" / f"b{b}" / rel))
        files = [f for blk in blocks for f in blk]
        audio_s = sum(sf.info(c).duration for _, c, _ in files)

        headroom = [parallel_headroom(pairs[1], args.workers)]
        t_seq = t_eval = t_one = 0.0
        diff = dict.fromkeys(FOUR, 0.0)
        errors = []
        for b, blk in enumerate(blocks):  # the legs alternate block by block: a changing load falls on both
            def leg_seq() -> float:
                t0 = time.perf_counter()
                seq.update(sequential(blk))
                return time.perf_counter() - t0

            def leg_eval(workers: int, out: str) -> float:
                t0 = time.perf_counter()
                evaluate_dir(tmp / "enh" / f"b{b}", tmp / "clean" / f"b{b}", tmp / out / f"b{b}", workers=workers,
                             progress=False, metrics=FOUR)
                return time.perf_counter() - t0

            seq: dict[str, dict[str, float]] = {}
            if b % 2 == 0:
                t_seq += leg_seq()
                t_eval += leg_eval(args.workers, "out")
            else:
                t_eval += leg_eval(args.workers, "out")
                t_seq += leg_seq()
            if args.single:
                t_one += leg_eval(1, "out1")
            with open(tmp / "out" / f"b{b}" / "per_file.csv", newline="") as fh:
                rows = {r["file"]: r for r in csv.DictReader(fh)}
            for m in FOUR:
                diff[m] = max(diff[m], *(abs(float(rows[f][m]) - seq[f][m]) if rows[f][m] else float("inf")
                                         for f in seq))
            errors += [f for f in seq if rows[f]["error"]]
        headroom.append(parallel_headroom(pairs[1], args.workers))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n = len(files)
    print(f"{n} real utterances, {audio_s:.1f} s of 16 kHz audio, {os.cpu_count()} CPU cores")
    print(f"{'sequential pesq(wb,nb) + pystoi(stoi,estoi) loop':58s} {t_seq:7.2f} s  ({t_seq / n * 1e3:.0f} ms/file)")
    print(f"{f'se_metrics.evaluate_dir, {args.workers} workers, the same 4 metrics':58s} {t_eval:7.2f} s  "
          f"({t_eval / n * 1e3:.0f} ms/file, pool start-up included, {args.blocks} pools)")
    if args.single:
        print(f"{'se_metrics.evaluate_dir, 1 process, the same 4 metrics':58s} {t_one:7.2f} s  "
              f"({t_one / n * 1e3:.0f} ms/file)")
    print(f"ratio sequential / evaluator: {t_seq / t_eval:.2f}x")
    print(f"parallel headroom of this machine for {args.workers} processes, before / after: "
          f"{headroom[0]:.2f} / {headroom[1]:.2f} (the same PESQ work in {args.workers} processes at once against one; "
          f"{args.workers} on free cores, near 1 when others hold them: the pool can only gain that much)")
    print("max |evaluator - sequential|: " + ", ".join(f"{m} {d:.1e}" for m, d in diff.items())
          + " (ESTOI: pystoi's random dither, ~1e-15 run to run)")
    if errors:
        print(f"evaluator failures: {errors}")
    ok = all(diff[m] == 0 for m in ("pesq_wb", "pesq_nb", "stoi")) and diff["estoi"] < 1e-12 and not errors
    print("values identical" if ok else "VALUES DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
