"""MetricGAN terms: hand-computed losses, unscored items dropped, shapes, and a discriminator that learns."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from bandsplit import (
    MetricDiscriminator,
    compress_magnitude,
    metric_discriminator_loss,
    metric_discriminator_step,
    metric_generator_loss,
    pesq_to_target,
    score_batch,
)


class _MeanGap(nn.Module):
    """D(ref, test) = w * mean(test - ref) + b per item: losses computable by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(0.25, dtype=torch.float64))

    def forward(self, ref: Tensor, test: Tensor) -> Tensor:
        assert ref.dim() == 4 and ref.shape[1] == 1 and ref.shape == test.shape
        return (self.w * (test - ref).mean(dim=(1, 2, 3)) + self.b).unsqueeze(1)


def _specs(b: int = 3, f: int = 17, t: int = 9) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(b, f, t, generator=g, dtype=torch.complex128)
    est = 0.5 * clean + 0.3 * torch.randn(b, f, t, generator=g, dtype=torch.complex128)
    return clean, est


def test_losses_equal_hand_computed_values() -> None:
    disc = _MeanGap()
    clean, est = _specs()
    gap = (compress_magnitude(est) - compress_magnitude(clean)).mean(dim=(1, 2)).tolist()  # D(c, e) - b per item
    d_ce = [g + 0.25 for g in gap]
    # generator: mean (D(c, e) - 1)^2
    want_g = sum((d - 1) ** 2 for d in d_ce) / 3
    assert float(metric_generator_loss(disc, clean, est).detach()) == pytest.approx(want_g, rel=1e-12)
    # discriminator: D(c, c) = 0.25 for every item -> (0.25 - 1)^2, plus the scored items' term
    target = torch.tensor([0.7, float("nan"), 0.2], dtype=torch.float64)   # item 1 has no score
    want_d = (0.25 - 1) ** 2 + ((d_ce[0] - 0.7) ** 2 + (d_ce[2] - 0.2) ** 2) / 2
    assert float(metric_discriminator_loss(disc, clean, est, target).detach()) == pytest.approx(want_d, rel=1e-12)
    # no item scored: only the clean/clean term
    none = torch.full((3,), float("nan"), dtype=torch.float64)
    assert float(metric_discriminator_loss(disc, clean, est, none).detach()) == pytest.approx(0.5625, rel=1e-12)


def test_generator_term_is_differentiable_in_the_estimate_only_when_asked() -> None:
    disc = _MeanGap()
    clean, est = _specs()
    est = est.clone().requires_grad_(True)
    metric_generator_loss(disc, clean, est).backward()
    assert est.grad is not None and float(est.grad.abs().sum()) > 0
    opt = torch.optim.SGD(disc.parameters(), lr=0.1)
    est.grad = None
    metric_discriminator_step(disc, opt, clean, est, torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64))
    assert est.grad is None   # the discriminator step detaches the estimate


def test_discriminator_shapes_and_learning_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    disc = MetricDiscriminator()
    assert sum(p.numel() for p in disc.parameters()) == 181_650
    clean, est = (s.to(torch.complex64) for s in _specs(b=4, f=257, t=32))
    c = compress_magnitude(clean).unsqueeze(1)
    out = disc(c, compress_magnitude(est).unsqueeze(1))
    assert out.shape == (4, 1) and bool(((out >= 0) & (out <= 1.2)).all())   # [0, beta]
    target = pesq_to_target(torch.tensor([1.0, 2.0, 3.0, float("nan")]))
    assert target[:3].tolist() == pytest.approx([0.3, 0.5, 0.7])

    def eval_loss() -> float:
        disc.eval()   # no dropout: the same function before and after
        with torch.no_grad():
            v = float(metric_discriminator_loss(disc, clean, est, target))
        disc.train()
        return v

    before = eval_loss()
    opt = torch.optim.Adam(disc.parameters(), lr=1e-3)
    for _ in range(40):
        loss = metric_discriminator_step(disc, opt, clean, est, target, clip=5.0)
        assert loss.requires_grad is False and math.isfinite(float(loss))
    after = eval_loss()
    assert after < 0.5 * before, (before, after)


#: three items of two samples, the middle one silent (unscorable)
_CLEAN = torch.tensor([[1.0, 2.0], [0.0, 0.0], [3.0, 1.0]])
_EST = torch.tensor([[1.0, 1.0], [0.0, 0.0], [2.0, 2.0]])


def _squared_error_or_silent(c, e) -> float:
    if not c.any():
        raise ValueError("silent")
    return float(((c - e) ** 2).sum())


def test_score_batch_marks_unscorable_items_nan() -> None:
    clean, est, metric = _CLEAN, _EST, _squared_error_or_silent
    s = score_batch(metric, clean, est)
    assert s.dtype == torch.float32 and s.shape == (3,)
    assert s[0] == 1.0 and math.isnan(s[1]) and s[2] == 2.0
    with pytest.raises(ValueError, match="one shape"):
        score_batch(metric, clean, est[:2])


def test_mismatched_inputs_are_refused() -> None:
    disc = _MeanGap()
    clean, est = _specs()
    with pytest.raises(ValueError, match="one score per item"):
        metric_discriminator_loss(disc, clean, est, torch.zeros(2))
    with pytest.raises(ValueError, match="complex spectrograms"):
        metric_generator_loss(disc, clean.abs(), est)


def test_submitted_scores_equal_in_place_scores() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from bandsplit import submit_score_batch

    clean, est, metric = _CLEAN, _EST, _squared_error_or_silent
    with ThreadPoolExecutor(2) as pool:
        pending = submit_score_batch(metric, clean, est, pool)
        got = pending.result()
    want = score_batch(metric, clean, est)
    assert torch.equal(got.nan_to_num(-1.0), want.nan_to_num(-1.0)) and math.isnan(got[1])
    with ThreadPoolExecutor(1) as one:
        assert torch.equal(score_batch(metric, clean, est, one).nan_to_num(-1.0), want.nan_to_num(-1.0))
