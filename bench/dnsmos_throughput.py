#!/usr/bin/env python
"""DNSMOS throughput on the CPU: se_metrics.dnsmos against speechmos's own dnsmos.run, and the
evaluator's non-intrusive mode (tools/eval_dir.py ENHANCED_DIR) over a process pool.

Clips: the 12 real VoiceBank-DEMAND files of ../shared/data (6 clean, 6 noisy, 2-7 s: each
one 9.01 s window after repetition) plus a 33 s real noise (windows 0..6 scored), each
repeated --repeats times. Timed, on the same float64 arrays:

* se_metrics.dnsmos with onnxruntime's default threads, and with threads=1;
* speechmos.dnsmos.run (its own code: librosa features, one window per onnxruntime call);
* se_metrics.evaluate_dir(DIR, None, ...) with --workers processes (pool start-up, reading and
  writing the CSV included; one onnxruntime thread per worker).

Prints wall time, clips/s, windows/s and seconds of audio per second for each, the ratios,
the CPU seconds per window of the in-process runs (less sensitive to other load than the wall
time), the load average, and the largest |difference| between the two implementations per
score. The P.835 model dominates
(about 0.4 s per 9.01 s window on one core); timings on a shared machine depend on its load.

    uv run bench/dnsmos_throughput.py [--repeats 1] [--workers N] [--no-peer] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

import se_metrics as sm
from se_metrics import non_intrusive as ni

REPO = Path(__file__).resolve().parent.parent
PEER_KEYS = {"dnsmos_sig": "sig_mos", "dnsmos_bak": "bak_mos", "dnsmos_ovrl": "ovrl_mos", "dnsmos_p808": "p808_mos"}


def clips(data: Path) -> list[Path]:
    vb = data / "speech" / "voicebank16k"
    return sorted(vb.glob("clean/*.wav")) + sorted(vb.glob("noisy/*.wav")) + [data / "noise" / "noise1.wav"]


def timed(fn, items):
    """Wall time, CPU time of this process (all its threads) and the results."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = [fn(x) for x in items]
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=1, help="copies of the 13 clips (default 1)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help=f"evaluator processes (default: all cores = {os.cpu_count()})")
    p.add_argument("--no-peer", action="store_true", help="skip speechmos's own implementation")
    p.add_argument("--data", type=Path, default=Path(os.environ.get("SE_SHARED_DATA", REPO.parent / "shared" / "data")),
                   help="the shared real-data folder (default ../shared/data or $SE_SHARED_DATA)")
    args = p.parse_args()
    if not (args.data / "speech" / "voicebank16k").is_dir():
        sys.exit(f"error: real data not found under {args.data}; pass --data or set SE_SHARED_DATA")
    paths = clips(args.data) * args.repeats
    audio = [sf.read(f, dtype="float64")[0] for f in paths]
    n_windows = sum(ni.windows(x).shape[0] for x in audio)
    audio_s = sum(x.size for x in audio) / ni.SAMPLE_RATE
    print(f"{len(audio)} clips, {audio_s:.1f} s of audio, {n_windows} windows of 9.01 s; "
          f"{os.cpu_count()} CPU cores; onnxruntime {__import__('onnxruntime').__version__}")

    load0 = f"{os.getloadavg()[0]:.2f}"
    sm.dnsmos(audio[0], 16000)  # load the models before timing
    sm.dnsmos(audio[0], 16000, threads=1)
    rows: list[tuple[str, float, float | None]] = []
    t_def, c_def, ours = timed(lambda x: sm.dnsmos(x, 16000), audio)
    rows.append(("se_metrics.dnsmos (onnxruntime threads: default)", t_def, c_def))
    t_one, c_one, _ = timed(lambda x: sm.dnsmos(x, 16000, threads=1), audio)
    rows.append(("se_metrics.dnsmos (threads=1)", t_one, c_one))
    worst = None
    if not args.no_peer:
        from speechmos import dnsmos as peer

        peer.run(audio[0], 16000)
        t_peer, c_peer, theirs = timed(lambda x: peer.run(x, 16000), audio)
        rows.append(("speechmos.dnsmos.run (its defaults)", t_peer, c_peer))
        worst = {k: max(abs(a[k] - float(b[v])) for a, b in zip(ours, theirs)) for k, v in PEER_KEYS.items()}

    tmp = Path(tempfile.mkdtemp(prefix="dnsmos_bench_"))
    try:
        for i, f in enumerate(paths):
            shutil.copy(f, tmp / f"{i:03d}_{f.name}")
        t0 = time.perf_counter()
        summary = sm.evaluate_dir(tmp, None, tmp / "out", workers=args.workers, progress=False)
        rows.append((f"evaluate_dir, non-intrusive, {args.workers} worker(s), start-up included",
                     time.perf_counter() - t0, None))
        assert summary["enhanced"]["n_ok"] == len(paths), summary["enhanced"]["failures"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    w = max(len(r[0]) for r in rows)
    print(f"load average before: {load0}, after: {os.getloadavg()[0]:.2f} (timings assume an idle machine)")
    print(f"{'':{w}s}  {'wall s':>7s}  {'clips/s':>7s}  {'windows/s':>9s}  {'audio s/s':>9s}  "
          f"{'vs threads=1':>12s}  {'CPU s/window':>12s}")
    for name, t, c in rows:
        cpu = f"{c / n_windows:12.3f}" if c is not None else f"{'-':>12s}"
        print(f"{name:{w}s}  {t:7.2f}  {len(audio) / t:7.2f}  {n_windows / t:9.2f}  {audio_s / t:9.1f}  "
              f"{t_one / t:11.2f}x  {cpu}")
    if worst is not None:
        print("max |se_metrics - speechmos| over the clips: "
              + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
