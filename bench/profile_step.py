"""Where a bandsplit model's training step spends its time: a torch.profiler table of one
forward + backward (L1 on the complex output), top operators by self device time, plus a
micro-benchmark of the ways to compute BSRNN's GroupNorm(1, N) on ``[B, T, K, N]`` features.

    uv run bench/profile_step.py --model bsrnn --batch 6             # CPU
    uv run bench/profile_step.py --model bsrnn --batch 32 --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from bandsplit import BSDT, BSRNN

N_FFT, HOP = 512, 128


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _median_ms(fn, dev: torch.device, repeats: int = 5) -> float:
    fn()
    _sync(dev)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2] * 1e3


def norm_variants(b: int, t: int, k: int, n: int, dev: torch.device) -> None:
    """GroupNorm(1, N) over (T, K, N) of channels-last features: forward + backward, ms."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, t, k, n, generator=g).to(dev).requires_grad_(True)
    w = torch.randn(n, generator=g).to(dev).requires_grad_(True)
    bias = torch.randn(n, generator=g).to(dev).requires_grad_(True)
    gy = torch.randn(b, t, k, n, generator=g).to(dev)

    def layer_norm_expanded():
        shape = x.shape[1:]
        return F.layer_norm(x, shape, w.expand(shape), bias.expand(shape), 1e-5)

    def group_norm_permuted():
        y = F.group_norm(x.permute(0, 3, 1, 2), 1, w, bias, 1e-5)
        return y.permute(0, 2, 3, 1)

    def layer_norm_then_affine():
        return F.layer_norm(x, x.shape[1:], eps=1e-5) * w + bias

    def var_mean_manual():
        var, mean = torch.var_mean(x, dim=(1, 2, 3), keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + 1e-5) * w + bias

    ref = layer_norm_expanded()
    print(f"\nGroupNorm(1, {n}) on [{b}, {t}, {k}, {n}] channels-last, forward + backward:")
    for fn in (layer_norm_expanded, group_norm_permuted, layer_norm_then_affine, var_mean_manual):
        err = float((fn() - ref).detach().abs().max())

        def step(fn=fn):
            x.grad = w.grad = bias.grad = None
            fn().backward(gy)

        print(f"  {fn.__name__:24s} {_median_ms(step, dev):8.2f} ms   max |diff| {err:.1e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="bsrnn", choices=["bsrnn", "bsdt"], help="model (default bsrnn)")
    p.add_argument("--num-channel", type=int, default=64, help="N (default 64, the published BSRNN)")
    p.add_argument("--num-layer", type=int, default=5, help="L (default 5)")
    p.add_argument("--num-heads", type=int, default=4, help="BSDT heads (default 4, as bench/bandsplit_speed.py)")
    p.add_argument("--batch", type=int, default=6, help="utterances of --seconds (default 6)")
    p.add_argument("--seconds", type=float, default=2.0, help="crop length at 16 kHz (default 2)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--rows", type=int, default=25, help="operators to list (default 25)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast for the forward pass (as train_bsdt --amp)")
    p.add_argument("--no-extras", action="store_true",
                   help="only the step's profile: skip the GroupNorm variants and the inference timings")
    p.add_argument("--inference-seconds", type=float, default=10.0,
                   help="BSRNN: utterance length for the chunked / unchunked inference timing (default 10)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    kw = {} if args.model == "bsrnn" else {"num_heads": args.num_heads}
    model = (BSRNN if args.model == "bsrnn" else BSDT)(num_channel=args.num_channel, num_layer=args.num_layer,
                                                       **kw).to(dev).train()
    wave = torch.randn(args.batch, int(args.seconds * 16000), generator=torch.Generator().manual_seed(1)).to(dev)
    x = torch.stft(wave, N_FFT, HOP, window=torch.hann_window(N_FFT, device=dev), return_complex=True)
    target = x * 0.5

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.amp):
            out = model(x)
        (out - target).abs().mean().backward()

    print(f"{args.model} N={args.num_channel} L={args.num_layer}, batch {args.batch} x {args.seconds:g} s, "
          f"STFT {tuple(x.shape)}, {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'CPU'}"
          f"{', bf16 autocast' if args.amp else ''}")
    print(f"training step: {_median_ms(step, dev):.1f} ms (median of 5)")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=acts) as prof:
        step()
        _sync(dev)
    key = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=60))
    if args.model == "bsrnn" and not args.no_extras:
        t = x.shape[-1]
        norm_variants(args.batch, t, len(model.band_widths), args.num_channel, dev)
        long = torch.randn(1, int(args.inference_seconds * 16000), generator=torch.Generator().manual_seed(2)).to(dev)
        spec = torch.stft(long, N_FFT, HOP, window=torch.hann_window(N_FFT, device=dev), return_complex=True)
        model.eval()
        print(f"\nno-grad inference on {args.inference_seconds:g} s ({spec.shape[-1]} frames):")
        outs = {}
        for chunk in (0, 1024, 4096):
            model.inference_chunk = chunk
            with torch.no_grad():
                outs[chunk] = model(spec)
                ms = _median_ms(lambda: model(spec), dev, 3)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
                with torch.no_grad():
                    model(spec)
                peak = f", peak {torch.cuda.max_memory_allocated(dev) / 2**20:.0f} MiB"
            else:
                peak = ""
            d = float((outs[chunk] - outs[0]).abs().max() / outs[0].abs().max())
            print(f"  inference_chunk {chunk:5d}: {ms:8.1f} ms (RTF {ms / 1e3 / args.inference_seconds:.4f}){peak}, "
                  f"rel. diff to unchunked {d:.1e}")


if __name__ == "__main__":
    main()
