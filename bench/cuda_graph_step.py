"""Training step of BSRNN and BSDT with and without CUDA graphs (GPU only).

At the bench's 6 x 2 s batch both models' steps are bound by Python-side kernel launches
(BSDT issues about 4x as many operators as BSRNN). This bench measures what replaying the
forward and backward as CUDA graphs (``torch.cuda.make_graphed_callables``) gives each model:
the same step, eager vs graphed, in one run, alternating, with the outputs and gradients
checked equal. The loss (L1 on the complex output) runs eagerly in both.

    uv run bench/cuda_graph_step.py --device cuda            # 6 x 2 s
    uv run bench/cuda_graph_step.py --device cuda --batch 32
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

from bandsplit import BSDT, BSRNN

N_FFT, HOP, SAMPLE_RATE = 512, 128, 16_000


class _RealIO(nn.Module):
    """``[B, F, T, 2]`` real in/out around a complex-STFT model (graph capture takes real tensors)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, xr: torch.Tensor) -> torch.Tensor:
        return torch.view_as_real(self.model(torch.view_as_complex(xr)))


def _median_ms(fns: dict, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fns[name]()
            torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t0)
    return {k: 1e3 * sorted(v)[len(v) // 2] for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="a CUDA device (default cuda)")
    p.add_argument("--batch", type=int, default=6, help="utterances per batch (default 6)")
    p.add_argument("--seconds", type=float, default=2.0, help="crop length in seconds at 16 kHz (default 2)")
    p.add_argument("--num-channel", type=int, default=64, help="N (default 64)")
    p.add_argument("--num-layer", type=int, default=5, help="L (default 5)")
    p.add_argument("--num-heads", type=int, default=4, help="BSDT heads (default 4)")
    p.add_argument("--repeats", type=int, default=20, help="timed steps per form (median; default 20)")
    args = p.parse_args()
    dev = torch.device(args.device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        raise SystemExit("cuda_graph_step.py measures CUDA graphs: run it with --device cuda on a machine with a GPU")
    gen = torch.Generator().manual_seed(0)
    wave = torch.randn(args.batch, int(args.seconds * SAMPLE_RATE), generator=gen).to(dev)
    x = torch.stft(wave, N_FFT, HOP, window=torch.hann_window(N_FFT, device=dev), return_complex=True)
    xr = torch.view_as_real(x).contiguous()
    target = xr * 0.5
    print(f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}; batch {args.batch} x {args.seconds:g} s, "
          f"STFT {tuple(x.shape)}")
    results = {}
    for name in ("bsrnn", "bsdt"):
        torch.manual_seed(0)
        kw = dict(num_channel=args.num_channel, num_layer=args.num_layer)
        base = BSRNN(**kw) if name == "bsrnn" else BSDT(**kw, num_heads=args.num_heads)
        eager = _RealIO(base).to(dev).train()
        graphed_model = copy.deepcopy(eager)
        graphed = torch.cuda.make_graphed_callables(graphed_model, (xr,))

        def step(m: nn.Module, params: list[torch.Tensor]) -> None:
            for q in params:
                q.grad = None
            (m(xr) - target).abs().mean().backward()

        pe, pg = list(eager.parameters()), list(graphed_model.parameters())
        outs = []
        for m, params in ((eager, pe), (graphed, pg)):
            for q in params:
                q.grad = None
            out = m(xr)
            (out - target).abs().mean().backward()
            outs.append(out.detach().clone())
        d_out = float((outs[0] - outs[1]).abs().max() / outs[0].abs().max())
        d_grad = max(float((a.grad - b.grad).abs().max() / a.grad.abs().max().clamp_min(1e-30))
                     for a, b in zip(pe, pg) if a.grad is not None)
        for _ in range(3):
            step(eager, pe)
            step(graphed, pg)
        t = _median_ms({"eager": lambda: step(eager, pe), "graphed": lambda: step(graphed, pg)}, args.repeats)
        results[name] = t
        print(f"{name}: eager {t['eager']:.1f} ms, CUDA graphs {t['graphed']:.1f} ms "
              f"({t['eager'] / t['graphed']:.2f}x); graphed vs eager: output {d_out:.1e}, gradients {d_grad:.1e} "
              f"(max relative)")
    for form in ("eager", "graphed"):
        print(f"BSDT / BSRNN step, {form}: {results['bsdt'][form] / results['bsrnn'][form]:.2f}x")


if __name__ == "__main__":
    main()
