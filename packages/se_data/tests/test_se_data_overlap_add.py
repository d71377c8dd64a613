"""chunked_apply: the one overlap-add (identity exactness, weights, batching, complex)."""

from __future__ import annotations

import pytest
import torch

from se_data import chunk_starts, chunked_apply, crossfade_weights


@pytest.mark.parametrize("total,chunk,overlap", [(1000, 300, 50), (1000, 1000, 10), (999, 100, 1),
                                                 (1234, 200, 0), (500, 499, 200)])
def test_identity_is_exact_and_starts_cover_the_signal(total, chunk, overlap):
    x = torch.randn(2, total, dtype=torch.float64, generator=torch.Generator().manual_seed(total))
    calls = []

    def fn(c):
        calls.append(c.shape[0])
        assert c.shape[1:] == (2, min(chunk, total))
        return c

    for max_batch in (1, 3):
        calls.clear()
        y = chunked_apply(fn, x, chunk, overlap, max_batch=max_batch)
        torch.testing.assert_close(y, x, rtol=1e-15, atol=0)
        starts = chunk_starts(total, chunk, overlap)
        assert starts[0] == 0 and starts[-1] + min(chunk, total) == total
        assert sum(calls) == len(starts) and max(calls) <= max_batch


def test_ramps_sum_to_one_and_blend_linearly():
    w = crossfade_weights(3, 10, 4, dtype=torch.float64)
    torch.testing.assert_close(w[0, -4:] + w[1, :4], torch.ones(4, dtype=torch.float64))
    assert torch.equal(w[0, :6], torch.ones(6, dtype=torch.float64)) and w[0, -1] == 0.125
    # chunks that return a constant per chunk: the overlap holds the linear blend
    x = torch.zeros(1, 16, dtype=torch.float64)
    counter = iter(range(10))
    y = chunked_apply(lambda c: torch.full_like(c, float(next(counter))), x, 10, 4)
    torch.testing.assert_close(y[0, 6:10], torch.tensor([0.125, 0.375, 0.625, 0.875], dtype=torch.float64))
    assert torch.equal(y[0, :6], torch.zeros(6, dtype=torch.float64)) and torch.equal(y[0, 10:], torch.ones(6, dtype=torch.float64))


def test_complex_output_and_bad_arguments():
    x = torch.randn(3, 50, dtype=torch.complex64)
    torch.testing.assert_close(chunked_apply(lambda c: 2 * c, x, 20, 5, max_batch=2), 2 * x)
    with pytest.raises(ValueError, match="overlap"):
        chunk_starts(100, 10, 10)
    with pytest.raises(ValueError, match="max_batch"):
        chunked_apply(lambda c: c, x, 20, 5, max_batch=0)
