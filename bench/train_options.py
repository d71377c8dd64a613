"""Training-speed options of ``tools/train_bsdt.py`` against float32 eager, with the quality check:
every option, after the same short demo run, must give validation PESQ within 0.02 of the
float32 eager run.

    uv run bench/train_options.py --device cuda                       # published BSRNN size (N=64, L=5)
    uv run bench/train_options.py --device cpu --steps 20 --num-channel 16 --num-layer 1   # a CPU smoke run

Each option is one ``train_bsdt.py`` run on the demo corpus (same seed, same batches: 6 x 2 s
crops, ``--steps`` steps, one epoch, validation PESQ on ``--valid-pesq-files`` utterances, no
test set). The table prints each run's training time per step (the epoch's ``train_seconds`` in
the run's own ``log.csv``, validation excluded), the speed-up over float32 eager, the validation
PESQ and its difference to float32 eager. The per-band-loop baseline ("loop-ref") of the
training step alone is ``bench/bandsplit_speed.py`` (its "loop / vectorised" column), measured
in the same GPU session by ``bench/gpu_checks.sh --part speed``.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: option name -> extra train_bsdt flags; the CUDA-only ones are skipped on a CPU
OPTIONS: dict[str, tuple[list[str], bool]] = {
    "float32 eager": ([], False),
    "bf16 autocast": (["--amp"], False),
    "CUDA graphs": (["--cuda-graphs"], True),
    "bf16 + CUDA graphs": (["--amp", "--cuda-graphs"], True),
}


def run(name: str, flags: list[str], args: argparse.Namespace, work: Path) -> dict[str, float]:
    out = work / name.replace(" ", "_").replace("+", "and")
    cmd = [sys.executable, str(ROOT / "tools" / "train_bsdt.py"), "--model", args.model,
           "--num-channel", str(args.num_channel), "--num-layer", str(args.num_layer), "--device", args.device,
           "--epochs", "1", "--steps-per-epoch", str(args.steps), "--batch-size", "6", "--segment", "2.0",
           "--valid-pesq-files", str(args.valid_pesq_files), "--no-test", "--seed", str(args.seed),
           "--demo-dir", str(args.demo_dir), "--out", str(out), *flags]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        print(f"{name}: train_bsdt failed (exit {done.returncode}):\n{done.stderr[-2000:]}", flush=True)
        return {}
    with open(out / "log.csv", newline="") as f:
        row = list(csv.DictReader(f))[-1]
    return {"step_ms": 1000.0 * float(row["train_seconds"]) / args.steps, "pesq": float(row["valid_pesq"]),
            "wall": wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--model", default="bsrnn", help="train_bsdt --model (default bsrnn)")
    p.add_argument("--num-channel", type=int, default=64, help="N (default 64, the published BSRNN)")
    p.add_argument("--num-layer", type=int, default=5, help="L (default 5, the published BSRNN)")
    p.add_argument("--steps", type=int, default=300, help="training steps of each run (default 300)")
    p.add_argument("--valid-pesq-files", type=int, default=16, help="validation PESQ utterances (default 16)")
    p.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS), metavar="OPTION",
                   help=f"options to run (default all: {', '.join(OPTIONS)})")
    p.add_argument("--demo-dir", type=Path, default=ROOT / "runs" / "demo-corpus",
                   help="the demo corpus (built once, shared)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if "float32 eager" not in args.options:
        p.error("the float32 eager run is the baseline of every ratio; keep it in --options")
    print(f"train_bsdt --model {args.model} N={args.num_channel} L={args.num_layer}, 6 x 2 s crops, {args.steps} "
          f"steps, valid PESQ on {args.valid_pesq_files} utterances, device {args.device}", flush=True)
    res: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="train-options-") as tmp:
        for name in args.options:
            flags, cuda_only = OPTIONS[name]
            if cuda_only and not args.device.startswith("cuda"):
                continue
            res[name] = run(name, flags, args, Path(tmp))
    base = res.get("float32 eager") or {}
    head = f"{'option':20s} {'ms/step':>9s} {'speed-up':>9s} {'valid PESQ':>11s} {'Δ PESQ':>8s}  within 0.02"
    print("\n" + head + "\n" + "-" * len(head))
    for name, r in res.items():
        if not r or not base:
            print(f"{name:20s} failed")
            continue
        d = r["pesq"] - base["pesq"]
        print(f"{name:20s} {r['step_ms']:9.1f} {base['step_ms'] / r['step_ms']:8.2f}x {r['pesq']:11.3f} {d:+8.3f}  "
              f"{'yes' if abs(d) <= 0.02 else 'NO'}")
    return 0 if base and all(res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
