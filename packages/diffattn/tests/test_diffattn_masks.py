"""Frame masks for padded batches: sliding_mean, the fusion gates and BandwiseAttention give each
sequence's valid frames what the sequence gets alone (float64; the padding holds large values)."""

from __future__ import annotations

import pytest
import torch

from diffattn import BandwiseAttention, FrequencyAdaptiveFusionGate, MultiScaleDynamicFusionGate, sliding_mean

LENGTHS = [11, 4, 1, 11]


def _padded(shape: tuple[int, ...], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, K, T, D]`` values, large junk past each item's length; bool mask ``[B, 1, T]``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, dtype=torch.float64, generator=g)
    valid = torch.arange(shape[2])[None, :] < torch.tensor(LENGTHS)[:, None]          # [B, T]
    x = torch.where(valid[:, None, :, None], x, 1e4 * torch.randn(shape, dtype=torch.float64, generator=g))
    return x, valid[:, None]


@pytest.mark.parametrize("kernel", [1, 3, 9])
def test_sliding_mean_mask(kernel: int) -> None:
    x, mask = _padded((4, 3, max(LENGTHS), 5), 0)
    y = sliding_mean(x, kernel, mask)
    for i, n in enumerate(LENGTHS):
        torch.testing.assert_close(y[i, :, :n], sliding_mean(x[i, :, :n], kernel), rtol=0, atol=1e-12)
    full = torch.ones(4, 1, max(LENGTHS), dtype=torch.bool)
    assert torch.equal(sliding_mean(x, kernel, full), sliding_mean(x, kernel))
    # a frame with no valid frame in its window reads 0
    if kernel == 3:
        assert y[2, :, 3:].abs().max().item() == 0


def test_frequency_adaptive_gate_mask() -> None:
    torch.manual_seed(0)
    gate = FrequencyAdaptiveFusionGate(5, 3).double()
    nn_init = torch.nn.init
    for p in gate.parameters():  # non-trivial weights (the last layer starts at 0)
        nn_init.normal_(p, 0.0, 0.5)
    x, mask = _padded((4, 3, max(LENGTHS), 5), 1)
    w = gate(x, mask=mask)
    for i, n in enumerate(LENGTHS):
        torch.testing.assert_close(w[i:i + 1], gate(x[i:i + 1, :, :n]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("blocks", [False, True])
def test_dynamic_gate_mask(blocks: bool) -> None:
    torch.manual_seed(0)
    gate = MultiScaleDynamicFusionGate(5).double()
    for p in gate.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    if blocks:  # the inference path that runs whole sequences in blocks
        gate.block_elements = 2 * max(LENGTHS) * 5
    x, mask = _padded((4, 3, max(LENGTHS), 5), 2)
    with torch.no_grad():
        g = gate(x, mask=mask)
        for i, n in enumerate(LENGTHS):
            torch.testing.assert_close(g[i, :, :n], gate(x[i:i + 1, :, :n])[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["differential", "standard"])
@pytest.mark.parametrize("impl", ["auto", "naive"])
def test_bandwise_attention_key_padding_mask(kind: str, impl: str) -> None:
    torch.manual_seed(0)
    attn = BandwiseAttention(8, 2, 3, kind=kind, impl=impl).double()  # type: ignore[arg-type]
    x, mask = _padded((4, 3, max(LENGTHS), 8), 3)
    keys = mask[:, None].expand(4, 3, 1, max(LENGTHS)).reshape(12, 1, 1, max(LENGTHS))
    with torch.no_grad():
        y = attn(x, keys)
        for i, n in enumerate(LENGTHS):
            torch.testing.assert_close(y[i, :, :n], attn(x[i:i + 1, :, :n])[0], rtol=0, atol=1e-10)
