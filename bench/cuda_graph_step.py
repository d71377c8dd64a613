"""Training step of BSRNN and BSDT with and without CUDA graphs (GPU only).

At the bench's 6 x 2 s batch both models' steps are bound by Python-side kernel launches
(BSDT issues about 4x as many operators as BSRNN). This bench measures what replaying the
forward and backward as CUDA graphs (``bandsplit.GraphedTrainingForward``) gives each model
and BSRNN's per-band-loop forms (``bench/bandsplit_speed.py``): the same step, eager vs
graphed, in one run, alternating, with the outputs and gradients checked equal. The loss (L1
on the complex output) runs eagerly in both.

    uv run bench/cuda_graph_step.py --device cuda              # 6 x 2 s, float32
    uv run bench/cuda_graph_step.py --device cuda --amp        # bf16 autocast
    uv run bench/cuda_graph_step.py --device cuda --batch 32
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

from bandsplit import BSDT, BSRNN, GraphedTrainingForward
from bandsplit._loop_reference import LoopBSRNN
from bandsplit_speed import _timed   # the same alternating median timer (bench/ is on sys.path)

N_FFT, HOP, SAMPLE_RATE = 512, 128, 16_000
MODELS = ("bsrnn", "bsrnn-loop", "bsrnn-loop-ref", "bsdt", "bsdt-v1")


def build(name: str, args: argparse.Namespace, bsrnn: nn.Module | None) -> nn.Module:
    kw = dict(num_channel=args.num_channel, num_layer=args.num_layer)
    if name.startswith("bsrnn-loop"):   # BSRNN's weights in the loop form
        loop = LoopBSRNN(**kw, reference_ops=name.endswith("-ref"))
        loop.load_state_dict(bsrnn.state_dict(), strict=True)
        return loop
    if name == "bsrnn":
        return BSRNN(**kw)
    return BSDT(**kw, num_heads=args.num_heads, graph="fixed" if name == "bsdt-v1" else "learned")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="a CUDA device (default cuda)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {MODELS}")
    p.add_argument("--batch", type=int, default=6, help="utterances per batch (default 6)")
    p.add_argument("--seconds", type=float, default=2.0, help="crop length in seconds at 16 kHz (default 2)")
    p.add_argument("--num-channel", type=int, default=64, help="N (default 64)")
    p.add_argument("--num-layer", type=int, default=5, help="L (default 5)")
    p.add_argument("--num-heads", type=int, default=4, help="BSDT heads (default 4)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast in both forms")
    p.add_argument("--repeats", type=int, default=20, help="timed steps per form (median; default 20)")
    args = p.parse_args()
    names = [n for n in args.models.split(",") if n]
    if set(names) - set(MODELS):
        raise SystemExit(f"unknown --models {sorted(set(names) - set(MODELS))}; choose from {MODELS}")
    dev = torch.device(args.device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        raise SystemExit("cuda_graph_step.py measures CUDA graphs: run it with --device cuda on a machine with a GPU")
    gen = torch.Generator().manual_seed(0)
    wave = torch.randn(args.batch, int(args.seconds * SAMPLE_RATE), generator=gen).to(dev)
    x = torch.stft(wave, N_FFT, HOP, window=torch.hann_window(N_FFT, device=dev), return_complex=True)
    target = x * 0.5
    print(f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}; batch {args.batch} x {args.seconds:g} s, "
          f"STFT {tuple(x.shape)}{', bf16 autocast' if args.amp else ', float32'}")
    torch.manual_seed(0)
    bsrnn = build("bsrnn", args, None)
    results: dict[str, dict[str, float]] = {}
    for name in names:
        torch.manual_seed(0)
        eager = (bsrnn if name == "bsrnn" else build(name, args, bsrnn)).to(dev).train()
        captured = copy.deepcopy(eager)
        graphed = GraphedTrainingForward(captured, x, amp=args.amp)

        def eager_fwd(inp: torch.Tensor, m: nn.Module = eager) -> torch.Tensor:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=args.amp):
                return m(inp)

        def step(fwd, params: list[torch.Tensor]) -> torch.Tensor:
            for q in params:
                q.grad = None
            out = fwd(x)
            (out - target).abs().mean().backward()
            return out.detach().clone()

        pe, pg = list(eager.parameters()), list(captured.parameters())
        out_e, out_g = step(eager_fwd, pe), step(graphed, pg)
        d_out = float((out_e - out_g).abs().max() / out_e.abs().max())
        d_grad = max(float((a.grad - b.grad).abs().max() / a.grad.abs().max().clamp_min(1e-30))
                     for a, b in zip(pe, pg) if a.grad is not None)
        for _ in range(3):
            step(eager_fwd, pe)
            step(graphed, pg)
        t = {k: 1e3 * v for k, v in _timed({"eager": lambda: step(eager_fwd, pe),
                                             "graphed": lambda: step(graphed, pg)}, dev, 0, args.repeats).items()}
        results[name] = t
        print(f"{name:15s} eager {t['eager']:7.1f} ms   CUDA graphs {t['graphed']:7.1f} ms "
              f"({t['eager'] / t['graphed']:.2f}x)   graphed vs eager, max relative: output {d_out:.1e}, "
              f"gradients {d_grad:.1e}")
        del eager, captured, graphed
    print()
    for form in ("eager", "graphed"):
        if "bsrnn" not in results:
            break
        base = results["bsrnn"][form]
        for name in names:
            if name != "bsrnn":
                kind = "loop form / BSRNN" if name.startswith("bsrnn-loop") else "BSDT / BSRNN"
                print(f"{form:8s} {name:15s} {kind}: {results[name][form] / base:.2f}x")


if __name__ == "__main__":
    main()
