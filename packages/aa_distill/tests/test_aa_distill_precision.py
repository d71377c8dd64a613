"""The student's bf16 mixed precision (amp_forward / predict_last_second(amp="bf16")): the forward
really runs in bfloat16, the output and every loss term come back in float32 within bfloat16's
rounding of the float32 step, gradients reach every trained parameter in float32, and amp=None
is the plain forward bit for bit."""

from __future__ import annotations

import pytest
import torch

from aa_distill import (
    AMP_DTYPES,
    DistillationLoss,
    OversampledWaveshaper,
    SineToneDataset,
    amp_autocast,
    amp_forward,
    predict_last_second,
    sample_tone_params,
    student_wavenet,
)

FS = 48_000
# bfloat16 keeps 8 significant bits: one rounding is <= 2^-8 = 3.9e-3 relative. The student's output
# passes ~10 roundings (layers' inputs and weights), which partly cancel: ~1e-2 relative at most; the
# loss is a ratio of sums of squares of that output, so the same order.
BF16_REL = 2e-2


@pytest.fixture(scope="module")
def batch():
    """Two training tones (x [2, 1.2 s], float32) with the 2x hard clipper's bandlimited targets."""
    teacher = OversampledWaveshaper(FS, gain=10.0, factor=2, shape="hardclip").to(torch.float64).eval()
    p = sample_tone_params(2, FS, generator=torch.Generator().manual_seed(5))
    data = SineToneDataset.from_teacher(teacher, p, batch_size=2, store_dtype=torch.float32)
    return data.batch(torch.arange(2), dtype=torch.float32)


@pytest.fixture(scope="module")
def student():
    """A fresh 'nano'-preset student with shorter dilations (rf 85), float32."""
    return student_wavenet("nano", sample_rate=FS, dilations=((1, 2, 4, 8), (1, 2, 4, 8, 16, 32)), seed=3)


def _step(student, batch, amp):
    """The distillation step's forward and loss: (pred, total, terms), graph kept."""
    x, target, f0 = batch
    loss_fn = DistillationLoss(FS, nmr_dtype=torch.float32)
    pred = predict_last_second(student, x, FS, student.receptive_field, amp=amp)
    total, terms = loss_fn(pred, target, f0)
    return pred, total, terms


def _cos(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    fa, fb = (torch.cat([t.double().flatten() for t in v]) for v in (a, b))
    return float(fa @ fb / (fa.norm() * fb.norm()))


def test_bf16_step_matches_float32_within_bf16_rounding(student, batch):
    params = [p for p in student.parameters()]
    pred32, total32, terms32 = _step(student, batch, None)
    pred16, total16, terms16 = _step(student, batch, "bf16")
    # the output and every loss term are float32 (the loss never sees bfloat16)
    assert pred16.dtype == torch.float32 and total16.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in terms16.values())
    assert torch.isfinite(total16)
    # the forward did run in bfloat16: the output differs from float32, by about bfloat16's rounding
    rel_out = float((pred16 - pred32).detach().double().norm() / pred32.detach().double().norm())
    assert 1e-4 < rel_out < BF16_REL
    assert float(total16.detach()) == pytest.approx(float(total32.detach()), rel=BF16_REL)
    for k in terms32:
        assert float(terms16[k]) == pytest.approx(float(terms32[k]), rel=BF16_REL), k
    # gradients reach the same parameters as in float32 (all but the last 1x1 residual conv, which
    # feeds nothing), in float32 (the parameters' dtype) and finite
    g32 = torch.autograd.grad(total32, params, retain_graph=True, allow_unused=True)
    g16 = torch.autograd.grad(total16, params, retain_graph=True, allow_unused=True)
    used = [g is not None for g in g32]
    assert [g is not None for g in g16] == used and sum(used) == len(params) - 2
    assert all(g.dtype == torch.float32 and bool(torch.isfinite(g).all()) for g in g16 if g is not None)
    # the bf16 backward through the student matches float32's: the same output gradient taken back
    # through both graphs gives parameter gradients that point the same way within bf16's rounding.
    # (The loss's own gradient dL/dpred is not compared: on an untrained student NMR's magnitude-
    # spectrum gradient in quiet bins follows the prediction's phase there, which bf16's rounding
    # noise changes.)
    up = torch.randn(pred32.shape, generator=torch.Generator().manual_seed(0))
    n32 = torch.autograd.grad(pred32, params, up, allow_unused=True)
    n16 = torch.autograd.grad(pred16, params, up, allow_unused=True)
    assert _cos([g for g in n16 if g is not None], [g for g in n32 if g is not None]) > 1 - BF16_REL


def test_amp_none_is_the_plain_forward_bit_for_bit(student, batch):
    x = batch[0]
    seg = x[:, -(FS + student.receptive_field - 1):]
    with torch.no_grad():
        plain = student(seg, pad_start=False)
        assert torch.equal(predict_last_second(student, x, FS, student.receptive_field), plain)
        assert torch.equal(amp_forward(student, seg, pad_start=False), plain)


class _Probe(torch.nn.Module):
    """A one-conv model that records the dtype its convolution computed in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 1, 3)
        self.seen: torch.dtype | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x[:, None])
        self.seen = y.dtype
        return y[:, 0]


def test_amp_forward_runs_the_convolutions_in_bf16_and_returns_float32():
    m, x = _Probe(), torch.randn(2, 64)
    y = amp_forward(m, x, amp="bf16")
    assert m.seen == torch.bfloat16 and y.dtype == torch.float32
    amp_forward(m, x)
    assert m.seen == torch.float32
    with amp_autocast("bf16", "cpu"):
        assert m.conv(x[:, None]).dtype == AMP_DTYPES["bf16"]
    with amp_autocast(None, "cpu"):
        assert m.conv(x[:, None]).dtype == torch.float32


def test_amp_refuses_float64_and_unknown_modes():
    m = _Probe()
    with pytest.raises(ValueError, match="float64 input"):
        amp_forward(m.double(), torch.randn(2, 64, dtype=torch.float64), amp="bf16")
    with pytest.raises(ValueError, match="amp must be None"):
        amp_forward(m, torch.randn(2, 64), amp="fp16")
    with pytest.raises(ValueError, match="amp must be None"):
        amp_autocast("bfloat16", "cpu")
