"""Per-frame compute time of the causal BSRNN streaming on one CPU core at 16 kHz.

A frame is one hop: 128 samples = 8 ms at 16 kHz (n_fft 512), so real time means less than 8 ms
of compute per frame, and the goal's 4x margin at most 2 ms. The causal BSRNN (default N=64, L=5)
runs frame by frame, one ``push`` of one frame at a time, in three forms with the same weights:

- PyTorch eager: ``model.streamer()`` (:class:`bandsplit.BSRNNStreamer`);
- onnxruntime float32: the exported streaming step (``export_onnx(model, path, streaming=True)``,
  static shapes, one frame per run) as an :class:`bandsplit.OnnxStreamer`;
- onnxruntime int8: the same graph quantised by ``bandsplit.quantize_onnx`` (LSTM and MatMul
  weights int8; its PESQ cost is not measured here: see bench/onnx_cpu.py for the offline model).

torch and onnxruntime run with one thread. Each form streams ``--seconds`` of audio per round,
the forms alternate for ``--rounds`` rounds (the machine is shared: compare within one run), and
the median and 95th percentile of the per-frame times are printed with the real-time margin
(8 ms / median). Each form's output is checked against the offline causal model. The STFT /
inverse STFT of one frame (an rfft and irfft of 512 points and the overlap-add) is timed too.

Algorithmic latency: the 512-sample window + one hop of look-ahead = 640 samples = 40 ms.

The int8 graph trades accuracy for speed, so unless ``--train-steps 0`` the causal model is first
trained briefly on the demo corpus (``tools/train_bsdt.py --causal``, as bench/onnx_cpu.py does:
untrained weights make PESQ meaningless), or ``--ckpt`` gives a trained causal BSRNN. Then each of
the seven real pairs in ../shared/data/speech is streamed frame by frame through the fp32 and
int8 streamers and scored (wide-band PESQ against its clean reference): the mean change of int8
against fp32 is the quantisation's cost, which may be at most 0.02 for int8 to count towards the
real-time goal.

    uv run bench/streaming.py                     # ~5 min on an idle 2-core CPU (training ~3 of it)
    uv run bench/streaming.py --train-steps 0     # speed only, untrained weights, ~20 s
    uv run bench/streaming.py --ckpt runs/causal/best.pt
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import bandsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onnx_cpu import real_pairs, train  # noqa: E402 - the sibling bench's training and real pairs

PESQ_ALLOWED = 0.02     # the largest mean PESQ change int8 may cost
MARGIN_GOAL = 4.0       # real time with this margin: compute per frame <= hop / 4


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-channel", type=int, default=64)
    p.add_argument("--num-layer", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2.0, help="audio streamed per form and round (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--train-steps", type=int, default=60,
                   help="demo-corpus training steps of the causal model before the PESQ check (default 60; "
                        "0: untrained weights, no PESQ)")
    p.add_argument("--threads", type=int, default=2,
                   help="torch threads for the training only (default 2); streaming always runs on one thread")
    p.add_argument("--ckpt", default=None, help="a trained causal BSRNN checkpoint of train_bsdt.py instead of training")
    return p.parse_args()


def per_frame_times(streamer, x: torch.Tensor) -> tuple[list[float], torch.Tensor]:
    """Push ``x`` one frame at a time; each push's wall time, and the whole output."""
    times, outs = [], []
    for t in range(x.shape[-1]):
        t0 = time.perf_counter()
        outs.append(streamer.push(x[..., t:t + 1]))
        times.append(time.perf_counter() - t0)
    outs.append(streamer.flush())
    return times, torch.cat(outs, dim=-1)


def stft_frame_time(n: int = 2000) -> float:
    """One frame of streaming analysis + synthesis: window, rfft(512), irfft, window, overlap-add."""
    win = torch.hann_window(512)
    buf, ola = torch.randn(512), torch.zeros(512)
    t0 = time.perf_counter()
    for _ in range(n):
        spec = torch.fft.rfft(buf * win)
        y = torch.fft.irfft(spec, n=512) * win
        ola = torch.cat([ola[128:], ola.new_zeros(128)]) + y
    return (time.perf_counter() - t0) / n


def load_causal(args: argparse.Namespace, work: Path) -> bandsplit.BSRNN:
    """The causal BSRNN to stream: ``--ckpt``, else trained ``--train-steps`` steps, else random."""
    if args.ckpt:
        model = bandsplit.load_model(args.ckpt)
    elif args.train_steps > 0:
        model = bandsplit.load_model(train(args, work, ("--causal",)))
    else:
        torch.manual_seed(0)
        model = bandsplit.BSRNN(args.num_channel, args.num_layer, causal=True)
    if not isinstance(model, bandsplit.BSRNN) or not model.causal:
        sys.exit(f"this bench streams a causal BSRNN; {args.ckpt} holds a {type(model).__name__}"
                 f"{' with causal=False' if isinstance(model, bandsplit.BSRNN) else ''}")
    return model.eval()


def streamed(streamer, spec: torch.Tensor) -> torch.Tensor:
    """The enhanced spectrogram of ``spec`` [1, F, T] streamed one frame per run, then flushed."""
    return torch.cat([streamer.push(spec), streamer.flush()], dim=-1)


def pesq_check(model: bandsplit.BSRNN, forms: dict) -> float | None:
    """Wide-band PESQ of the real pairs streamed through each form; returns int8's mean change."""
    pairs = real_pairs()
    if not pairs:
        print("\n(no PESQ check: the real pairs are not in ../shared/data/speech)")
        return None
    import se_data  # noqa: PLC0415
    from se_metrics import pesq  # noqa: PLC0415

    rows = []
    for clean_path, noisy_path in pairs:
        clean, sr = se_data.load_audio(clean_path, model.stft.sample_rate)
        noisy, _ = se_data.load_audio(noisy_path, model.stft.sample_rate)
        spec = model.stft.stft(noisy.unsqueeze(0))
        scores = [pesq(clean, noisy, sr)]
        for s in forms.values():
            y = model.stft.istft(streamed(s, spec), length=noisy.shape[-1])[0]
            scores.append(pesq(clean, y.clamp(-1, 1), sr))
        rows.append((noisy_path.stem, *scores))
    names = list(forms)
    print(f"\nPESQ (wide-band) on {len(rows)} real pairs, each streamed frame by frame through each form")
    print(f"{'file':<16s} {'noisy':>6s} " + " ".join(f"{n.split()[-1]:>6s}" for n in names) + f" {'int8-fp32':>10s}")
    i32, i8 = 2 + names.index("onnxruntime fp32"), 2 + names.index("onnxruntime int8")
    for r in rows:
        print(f"{r[0]:<16s} " + " ".join(f"{v:6.3f}" for v in r[1:]) + f" {r[i8] - r[i32]:+10.4f}")
    mean = [sum(r[i] for r in rows) / len(rows) for i in range(1, len(rows[0]))]
    delta = mean[i8 - 1] - mean[i32 - 1]
    print(f"{'mean':<16s} " + " ".join(f"{v:6.3f}" for v in mean) + f" {delta:+10.4f}")
    worst = max(abs(r[i8] - r[i32]) for r in rows)
    print(f"int8 changes the mean PESQ by {delta:+.4f} (largest per-file change {worst:.4f}); "
          f"{'within' if abs(delta) <= PESQ_ALLOWED else 'OUTSIDE'} the {PESQ_ALLOWED} allowed")
    return delta


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="streaming_"))
    atexit.register(shutil.rmtree, work, True)   # the trained checkpoint and the graphs
    model = load_causal(args, work)
    torch.set_num_threads(1)
    step = bandsplit.export_onnx(model, work / "step.onnx", streaming=True)
    step8 = bandsplit.quantize_onnx(step, work / "step.int8.onnx")
    forms = {"PyTorch eager": model.streamer(), "onnxruntime fp32": bandsplit.load_onnx(step, threads=1),
             "onnxruntime int8": bandsplit.load_onnx(step8, threads=1)}
    g = torch.Generator().manual_seed(0)
    x = model.stft.stft(0.05 * torch.randn(1, int(args.seconds * 16000), generator=g))
    with torch.inference_mode():
        ref = model(x)
        times: dict[str, list[float]] = {k: [] for k in forms}
        diffs: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, s in forms.items():
                t, y = per_frame_times(s, x)
                times[name] += t[5:]          # the first pushes warm up
                diffs[name] = (y - ref).abs().max().item() / ref.abs().max().item()
    hop_ms = 1000 * model.stft.hop_length / model.stft.sample_rate
    print(f"\ncausal BSRNN N={args.num_channel} L={args.num_layer}, one frame per push (hop {model.stft.hop_length} "
          f"samples = {hop_ms:g} ms at {model.stft.sample_rate} Hz), 1 thread, torch {torch.__version__}, "
          f"onnxruntime {__import__('onnxruntime').__version__}; {x.shape[-1]} frames x {args.rounds} rounds")
    print(f"algorithmic latency: {model.stft.n_fft} + {model.stft.hop_length} samples = "
          f"{1000 * (model.stft.n_fft + model.stft.hop_length) / model.stft.sample_rate:g} ms")
    print(f"{'form':<18s} {'median ms':>10s} {'p95 ms':>8s} {'margin':>8s} {'max diff / peak':>16s}")
    for name, t in times.items():
        med, p95 = statistics.median(t) * 1e3, sorted(t)[int(0.95 * len(t))] * 1e3
        print(f"{name:<18s} {med:10.3f} {p95:8.3f} {hop_ms / med:7.1f}x {diffs[name]:16.2e}")
    print(f"{'STFT + iSTFT':<18s} {stft_frame_time() * 1e3:10.3f}   (one frame: window, rfft/irfft 512, overlap-add)")
    delta = pesq_check(model, forms) if (args.train_steps > 0 or args.ckpt) else None
    if delta is None and not args.ckpt and args.train_steps <= 0:
        print("\n(no PESQ check: untrained weights; run with --train-steps N or --ckpt)")
    margins = {name: hop_ms / statistics.median(t) / 1e3 for name, t in times.items()}
    int8_ok = delta is not None and abs(delta) <= PESQ_ALLOWED
    verdict = [f"{n} {m:.1f}x" for n, m in margins.items() if n != "PyTorch eager"]
    met = margins["onnxruntime fp32"] >= MARGIN_GOAL or (int8_ok and margins["onnxruntime int8"] >= MARGIN_GOAL)
    print(f"\ngoal: real time with {MARGIN_GOAL:g}x margin (<= {hop_ms / MARGIN_GOAL:g} ms per frame) on one core: "
          f"{', '.join(verdict)}; int8 counts only within the PESQ allowance "
          f"({'met' if int8_ok else 'not measured' if delta is None else 'not met'}): goal {'MET' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
