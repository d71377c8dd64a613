"""GraphedTrainingForward: clear errors off CUDA; on a CUDA device, replays give the eager numbers."""

from __future__ import annotations

import copy

import pytest
import torch

from bandsplit import BSDT, BSRNN, GraphedTrainingForward


def test_refuses_cpu_tensors_and_real_inputs_with_the_fix_in_the_message():
    model = BSRNN(num_channel=8, num_layer=1)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device.*cpu"):
        GraphedTrainingForward(model, torch.zeros(1, 257, 5, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"complex spectrogram \[B, F, T\]"):
        GraphedTrainingForward(model, torch.zeros(1, 257, 5))


def _max_rel_grad_diff(a: torch.nn.Module, b: torch.nn.Module) -> list[tuple[str, float]]:
    errs = {k: float((p.grad - q.grad).abs().max() / p.grad.abs().max().clamp_min(1e-30))
            for (k, p), q in zip(a.named_parameters(), b.parameters())}
    return sorted(errs.items(), key=lambda kv: -kv[1])[:5]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("name", ["bsrnn", "bsdt"])
def test_replayed_steps_equal_eager_steps_with_accumulation_and_other_shapes_run_eagerly(name):
    torch.manual_seed(0)
    eager = (BSRNN(num_channel=16, num_layer=2) if name == "bsrnn"
             else BSDT(num_channel=16, num_layer=2, num_heads=2)).cuda().train()
    captured = copy.deepcopy(eager)
    gen = torch.Generator().manual_seed(1)
    x = torch.stft(torch.randn(3, 8000, generator=gen), 512, 128, window=torch.hann_window(512),
                   return_complex=True).cuda()
    graphed = GraphedTrainingForward(captured, x)
    assert graphed.replays(x)
    outs = {}
    for m, fwd in ((eager, eager), (captured, graphed)):
        m.zero_grad(set_to_none=True)
        for scale in (0.5, 0.25):   # two batches accumulated without zeroing in between
            y = fwd(x)
            (y - scale * x).abs().mean().backward()
        outs[m is eager] = y.detach().clone()
    torch.testing.assert_close(outs[False], outs[True], rtol=1e-5, atol=1e-6)
    # a further replay must not disturb the accumulated gradients
    graphed(x)
    # the same function up to float32 rounding (a capture may pick other GEMM algorithms)
    worst = _max_rel_grad_diff(eager, captured)
    assert worst[0][1] < 1e-4, worst
    short = x[:1]
    assert not graphed.replays(short)
    torch.testing.assert_close(graphed(short).detach(), eager(short).detach(), rtol=1e-5, atol=1e-6)
