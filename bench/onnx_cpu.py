"""CPU real-time factor of BSRNN: per-band-loop form vs PyTorch eager vs onnxruntime (float32, int8),
and the PESQ change of int8 dynamic quantisation on the real VoiceBank pairs.

1. The model: BSRNN (default N=64, L=5, the published size). Unless ``--train-steps 0``, it is
   first trained briefly on the demo corpus with ``tools/train_bsdt.py`` (the toolkit's recipe,
   batch 4 x 1 s crops, into a temporary folder), so that PESQ means something; or
   ``--ckpt best.pt`` gives a trained model.
2. The forms, all with the same weights: the per-band-loop form (``bandsplit._loop_reference``,
   the reference's computation), the vectorised PyTorch model (eager), and its ONNX export run by
   onnxruntime in float32 and int8 (``bandsplit.quantize_onnx``). Each is checked against eager.
3. RTF: model time (spectrogram in, spectrogram out; the STFTs are the same for every form and
   left out) over the audio duration, on one ``--seconds`` utterance, ``--threads`` threads for
   torch and onnxruntime alike; the forms alternate ``--repeats`` times and the best time of each
   is kept (the machine is shared: compare within one run).
4. PESQ (wide-band) of each pair in ``../shared/data/speech`` (the six VoiceBank pairs and PESQ's
   own pair) enhanced by ``bandsplit.enhance`` with eager, onnxruntime float32 and int8; the mean
   change of int8 against float32 is the quantisation's cost (the goal allows 0.02).

    uv run bench/onnx_cpu.py                         # ~10 min on the 2-core CPU (training ~half of it)
    uv run bench/onnx_cpu.py --train-steps 0 --quick # speed only, untrained weights
    uv run bench/onnx_cpu.py --ckpt runs/x/best.pt   # a trained BSRNN
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import bandsplit
from bandsplit._loop_reference import LoopBSRNN

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO.parent / "shared" / "data" / "speech"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-channel", type=int, default=64)
    p.add_argument("--num-layer", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime threads (default 2: the CPU's cores)")
    p.add_argument("--seconds", type=float, default=10.0, help="utterance length for the RTF (default 10)")
    p.add_argument("--repeats", type=int, default=5, help="alternating timing rounds (default 5)")
    p.add_argument("--train-steps", type=int, default=60,
                   help="demo-corpus training steps before the PESQ check (default 60; 0: untrained, no PESQ)")
    p.add_argument("--ckpt", default=None, help="a trained BSRNN checkpoint of train_bsdt.py instead of training")
    p.add_argument("--quick", action="store_true", help="3 s utterance, 2 rounds")
    return p.parse_args()


def train(args: argparse.Namespace, folder: Path, extra: tuple[str, ...] = ()) -> Path:
    """Train a BSRNN of ``args``' size for ``args.train_steps`` demo-corpus steps with train_bsdt.py
    (``extra``: more of its flags, e.g. ``("--causal",)``); returns the checkpoint."""
    cmd = [sys.executable, str(REPO / "tools" / "train_bsdt.py"), "--model", "bsrnn", "--num-channel",
           str(args.num_channel), "--num-layer", str(args.num_layer), "--epochs", "1", "--steps-per-epoch",
           str(args.train_steps), "--batch-size", "4", "--segment", "1.0", "--valid-pesq-files", "0",
           "--valid-batches", "2", "--no-test", "--threads", str(args.threads), "--out", str(folder / "run"),
           "--demo-dir", str(REPO / "runs" / "demo-corpus"), *extra]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"training failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    print(f"trained {args.train_steps} steps (batch 4 x 1 s, demo corpus) in {time.time() - t0:.0f} s")
    return folder / "run" / "last.pt"


def real_pairs() -> list[tuple[Path, Path]]:
    """``(clean, noisy)`` paths of the seven real pairs in ../shared/data/speech (the six
    VoiceBank-DEMAND pairs and PESQ's own pair); empty where they are not all there."""
    pairs = [(SPEECH / "voicebank16k" / "clean" / p.name, p)
             for p in sorted((SPEECH / "voicebank16k" / "noisy").glob("*.wav"))]
    pairs.append((SPEECH / "speech.wav", SPEECH / "speech_bab_0dB.wav"))
    return pairs if all(c.exists() and n.exists() for c, n in pairs) else []


def best_time(fn, x) -> float:
    t0 = time.perf_counter()
    fn(x)
    return time.perf_counter() - t0


def main() -> None:
    args = parse_args()
    if args.quick:
        args.seconds, args.repeats = 3.0, 2
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="onnx_cpu_"))
    atexit.register(shutil.rmtree, work, True)   # the trained checkpoint and the graphs
    if args.ckpt:
        model = bandsplit.load_model(args.ckpt)
    elif args.train_steps > 0:
        model = bandsplit.load_model(train(args, work))
    else:
        torch.manual_seed(0)
        model = bandsplit.BSRNN(args.num_channel, args.num_layer).eval()
    if not isinstance(model, bandsplit.BSRNN):
        sys.exit(f"this bench compares BSRNN forms; the checkpoint holds a {type(model).__name__}")
    loop = LoopBSRNN(model.num_channel, model.num_layer, model.band_widths, interleaved=model.interleaved,
                     causal=model.causal).eval()
    loop.load_state_dict(model.state_dict())
    t0 = time.time()
    f32 = bandsplit.export_onnx(model, work / "model.onnx")
    i8 = bandsplit.quantize_onnx(f32, work / "model.int8.onnx")
    export_s = time.time() - t0
    ort32, ort8 = bandsplit.load_onnx(f32, threads=args.threads), bandsplit.load_onnx(i8, threads=args.threads)
    forms = {"loop (per band)": loop, "PyTorch eager": model, "onnxruntime fp32": ort32, "onnxruntime int8": ort8}

    g = torch.Generator().manual_seed(0)
    x = model.stft.stft(0.05 * torch.randn(1, int(args.seconds * 16000), generator=g))
    with torch.inference_mode():
        ref = model(x)
        diffs = {name: (f(x) - ref).abs().max().item() / ref.abs().max().item() for name, f in forms.items()}
        times: dict[str, list[float]] = {name: [] for name in forms}
        for _ in range(args.repeats):
            for name, f in forms.items():
                times[name].append(best_time(f, x))
    print(f"\nBSRNN N={model.num_channel} L={model.num_layer}, {args.seconds:g} s utterance ({x.shape[-1]} frames), "
          f"{args.threads} thread(s), torch {torch.__version__}, onnxruntime "
          f"{__import__('onnxruntime').__version__}; export + int8 copy {export_s:.1f} s")
    base, eager = min(times["loop (per band)"]), min(times["PyTorch eager"])
    print(f"{'form':<18s} {'RTF':>7s} {'vs loop':>8s} {'vs eager':>9s} {'max diff / peak':>16s}")
    for name in forms:
        t = min(times[name])
        print(f"{name:<18s} {t / args.seconds:7.4f} {base / t:7.2f}x {eager / t:8.2f}x {diffs[name]:16.2e}")

    if args.train_steps <= 0 and not args.ckpt:
        print("\n(no PESQ check: untrained weights; run with --train-steps N or --ckpt)")
        return
    pairs = real_pairs()
    if not pairs:
        print(f"\n(no PESQ check: the real pairs are not in {SPEECH})")
        return
    import se_data  # noqa: PLC0415
    from se_metrics import pesq  # noqa: PLC0415

    rows = []
    for clean_path, noisy_path in pairs:
        clean, sr = se_data.load_audio(clean_path, 16000)
        noisy, _ = se_data.load_audio(noisy_path, 16000)
        scores = [pesq(clean, noisy, sr)]
        for f in (model, ort32, ort8):
            scores.append(pesq(clean, bandsplit.enhance(f, noisy, sr).clamp(-1, 1), sr))
        rows.append((noisy_path.stem, *scores))
    print(f"\nPESQ (wide-band) on {len(rows)} real pairs; the model enhanced by each runtime")
    print(f"{'file':<16s} {'noisy':>6s} {'eager':>6s} {'fp32':>6s} {'int8':>6s} {'int8-fp32':>10s}")
    for name, *s in rows:
        print(f"{name:<16s} {s[0]:6.3f} {s[1]:6.3f} {s[2]:6.3f} {s[3]:6.3f} {s[3] - s[2]:+10.4f}")
    mean = [sum(r[i] for r in rows) / len(rows) for i in range(1, 5)]
    delta = mean[3] - mean[2]
    print(f"{'mean':<16s} {mean[0]:6.3f} {mean[1]:6.3f} {mean[2]:6.3f} {mean[3]:6.3f} {delta:+10.4f}")
    worst = max(abs(r[4] - r[3]) for r in rows)
    print(f"int8 dynamic quantisation changes mean PESQ by {delta:+.4f} (largest per-file change {worst:.4f}); "
          f"{'within' if abs(delta) <= 0.02 else 'OUTSIDE'} the 0.02 allowed")


if __name__ == "__main__":
    main()
