"""Frame masks for padded batches: sliding_mean, the fusion gates, BandwiseAttention and
AdaptiveDifferentialAttention (maps, statistics and gates) give each sequence's valid frames what
the sequence gets alone (float64; the padding holds large values)."""

from __future__ import annotations

import pytest
import torch

from diffattn import (
    AdaptiveDifferentialAttention,
    BandwiseAttention,
    FrequencyAdaptiveFusionGate,
    MultiScaleDynamicFusionGate,
    ScaleDiversityLoss,
    combine_masks,
    differential_maps,
    differential_row_stats,
    row_stats_from_maps,
    scale_diversity_loss,
    sliding_mean,
)

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


def test_diversity_losses_mask() -> None:
    """Masked, a padded batch's scale-diversity loss (both forms, and the gate's own) is the mean of
    its items' losses alone (each item has the same number of sequences); the padding would
    otherwise count."""
    lengths = [11, 4, 2, 11]  # (a 1-frame item has no time course: its correlations are 0)
    g = torch.Generator().manual_seed(4)
    gates = torch.rand(2, 3, 4, 5, 11, dtype=torch.float64, generator=g)  # [L, S, B, K, T]
    valid = torch.arange(11)[None, :] < torch.tensor(lengths)[:, None]    # [B, T]
    gates = torch.where(valid[:, None], gates, 1e3 * torch.rand(gates.shape, dtype=torch.float64, generator=g))
    mask = valid[:, None, :]                                                # [B, 1, T]
    loss = ScaleDiversityLoss()
    alone = [loss(gates[:, :, i:i + 1, :, :n])[0] for i, n in enumerate(lengths)]
    torch.testing.assert_close(loss(gates, mask)[0], torch.stack(alone).mean(), rtol=1e-12, atol=0)
    assert abs(loss(gates)[0] - torch.stack(alone).mean()).item() > 1e-3
    alone_fn = [scale_diversity_loss(gates[0, :, i:i + 1, :, :n]) for i, n in enumerate(lengths)]
    torch.testing.assert_close(scale_diversity_loss(gates[0], mask=mask), torch.stack(alone_fn).mean(),
                               rtol=1e-12, atol=0)
    with pytest.raises(TypeError, match="bool"):
        loss(gates, mask.double())
    with pytest.raises(ValueError, match="does not broadcast"):
        loss(gates, mask[:2])
    # the gate's own loss (return_diversity_loss) with its frame mask
    torch.manual_seed(0)
    gate = MultiScaleDynamicFusionGate(5).double()
    for p in gate.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    x, fmask = _padded((4, 3, max(LENGTHS), 5), 3)
    with torch.no_grad():
        _, div = gate(x, mask=fmask, return_diversity_loss=True)
        per_item = [gate(x[i:i + 1, :, :n], return_diversity_loss=True)[1] for i, n in enumerate(LENGTHS)]
    torch.testing.assert_close(div, torch.stack(per_item).mean(), rtol=1e-12, atol=0)


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


@pytest.mark.parametrize("causal", [False, True])
def test_fused_stats_key_padding_mask_match_explicit_maps(causal: bool) -> None:
    """Any key-padding pattern (valid keys anywhere; the first key valid for causal rows)."""
    g = torch.Generator().manual_seed(4)
    q, k = (2 * torch.randn(3, 4, 9, 8, dtype=torch.float64, generator=g) for _ in range(2))
    km = torch.rand(3, 9, generator=g) < 0.6
    km[:, 0] = True
    a1, a2 = differential_maps(q, k, scale=0.35, attn_mask=km[:, None, None, :], causal=causal)
    ref = row_stats_from_maps(a1, a2, 0.7, combine_masks(km[:, None, None, :], causal, 9, 9, q.device))
    got = differential_row_stats(q, k, 0.7, scale=0.35, causal=causal, key_padding_mask=km)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="bool"):
        differential_row_stats(q, k, 0.7, scale=0.35, key_padding_mask=km.double())


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("num_bands", [None, 3])
@pytest.mark.parametrize("impl", ["sdpa", "naive"])
def test_adaptive_attention_key_padding_mask(causal: bool, num_bands: int | None, impl: str) -> None:
    torch.manual_seed(0)
    attn = AdaptiveDifferentialAttention(8, 2, 1, causal=causal, num_bands=num_bands).double().eval()
    with torch.no_grad():  # a gate that reads the statistics (its last layer starts at 0)
        for p in attn.gate.parameters():
            torch.nn.init.normal_(p, 0.0, 0.5)
    t = max(LENGTHS)
    x, mask = _padded((4, 3, t, 8), 5)                  # [B, K, T, D]; mask [B, 1, T]
    if num_bands is None:
        x, keys = x[:, 0], mask[:, None]                # [B, T, D]; [B, 1, 1, T]
    else:
        keys = mask[:, None].expand(4, 3, 1, t).reshape(12, 1, 1, t)
    with torch.no_grad():
        y = attn(x, keys, impl=impl)
        for i, n in enumerate(LENGTHS):
            torch.testing.assert_close(y[i:i + 1, ..., :n, :], attn(x[i:i + 1, ..., :n, :], impl=impl),
                                       rtol=0, atol=1e-10)
        # the padding would leak without the mask, and an all-valid mask changes nothing
        assert (attn(x, impl=impl)[1, ..., :LENGTHS[1], :] - y[1, ..., :LENGTHS[1], :]).abs().max() > 1e-3
        full = torch.ones(1, 1, 1, t, dtype=torch.bool)
        torch.testing.assert_close(attn(x, full, impl=impl), attn(x, impl=impl), rtol=0, atol=1e-12)
        with pytest.raises(ValueError, match="key-padding mask"):
            attn(x, torch.ones(t, t, dtype=torch.bool))
