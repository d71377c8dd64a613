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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("name", ["bsrnn", "bsdt"])
def test_replayed_step_equals_the_eager_step_and_other_shapes_run_eagerly(name):
    torch.manual_seed(0)
    eager = (BSRNN(num_channel=16, num_layer=2) if name == "bsrnn"
             else BSDT(num_channel=16, num_layer=2, num_heads=2)).cuda().train()
    captured = copy.deepcopy(eager)
    gen = torch.Generator().manual_seed(1)
    x = torch.stft(torch.randn(3, 8000, generator=gen), 512, 128, window=torch.hann_window(512),
                   return_complex=True).cuda()
    graphed = GraphedTrainingForward(captured, x)
    for _ in range(2):   # two replays: the static buffers are reused
        for m, fwd in ((eager, eager), (captured, graphed)):
            m.zero_grad(set_to_none=True)
            (fwd(x) - 0.5 * x).abs().mean().backward()
        assert graphed.replays(x)
        torch.testing.assert_close(graphed(x).detach(), eager(x).detach(), rtol=1e-5, atol=1e-6)
        for (k, a), b in zip(eager.named_parameters(), captured.parameters()):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7, msg=k)
    short = x[:1]
    assert not graphed.replays(short)
    torch.testing.assert_close(graphed(short).detach(), eager(short).detach(), rtol=1e-5, atol=1e-6)
