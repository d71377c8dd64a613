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

    uv run bench/streaming.py            # ~1-2 min on the 2-core CPU
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

import bandsplit


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-channel", type=int, default=64)
    p.add_argument("--num-layer", type=int, default=5)
    p.add_argument("--seconds", type=float, default=2.0, help="audio streamed per form and round (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
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


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = bandsplit.BSRNN(args.num_channel, args.num_layer, causal=True).eval()
    work = Path(tempfile.mkdtemp(prefix="streaming_"))
    atexit.register(shutil.rmtree, work, True)   # the trained checkpoint and the graphs
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


if __name__ == "__main__":
    main()
