"""BSRNN: parameter count, the reference's state-dict layout, the reference parity fixture,
equality with the per-band-loop form for every option, odd and tiny T, causality."""

from __future__ import annotations

import json

import pytest
import torch

from bandsplit import BSRNN
from bandsplit._loop_reference import LoopBSRNN


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_the_reference():
    assert _n_params(BSRNN(num_channel=64, num_layer=5)) == 2_963_024        # the published model
    assert _n_params(BSRNN()) == 11_417_488                                   # defaults N=128, L=6
    m = BSRNN()
    assert (m.num_channel, m.num_layer, m.interleaved, m.causal) == (128, 6, False, False)


def test_state_dict_keys_and_shapes_equal_the_reference(shared_data):
    ref = json.loads((shared_data / "reference" / "bsrnn_reference_state_dict_shapes_N64_L5.json").read_text())
    sd = BSRNN(num_channel=64, num_layer=5).state_dict()
    assert list(sd) == list(ref)                                              # same keys, same order
    assert {k: list(v.shape) for k, v in sd.items()} == ref
    assert len(sd) == 410


@pytest.fixture(scope="module")
def parity(shared_data):
    return torch.load(shared_data / "reference" / "bsrnn_reference_parity_N16_L2.pt", weights_only=True)


def test_reference_checkpoint_loads_strictly_and_reproduces_its_output(parity):
    assert parity["config"] == {"num_channel": 16, "num_layer": 2}
    model = BSRNN(num_channel=16, num_layer=2)
    result = model.load_state_dict(parity["state_dict"], strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    model.eval()
    with torch.no_grad():
        y = model(parity["input"])
    want = parity["output"]
    assert y.shape == want.shape == (2, 257, 94) and y.dtype == torch.complex64
    # float32 on both sides: |error| <= 1e-5 + 1e-5 |want| element-wise. (The fixture itself is
    # ~2e-5 away from a float64 evaluation where |want| ~ 80, so a pure 1e-5 absolute bound would
    # test the fixture's rounding, not the model.)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    assert (y - want).abs().max() / want.abs().max() < 1e-6


@pytest.mark.parametrize("reference_ops", [False, True])
def test_loop_reference_reproduces_the_fixture(parity, reference_ops):
    """The per-band-loop forms used by the tests and the bench are the reference's computation."""
    loop = LoopBSRNN(num_channel=16, num_layer=2, reference_ops=reference_ops)
    loop.load_state_dict(parity["state_dict"], strict=True)
    with torch.no_grad():
        y = loop(parity["input"])
    torch.testing.assert_close(y, parity["output"], rtol=1e-5, atol=1e-5)


def test_state_dict_round_trip_reproduces_the_model():
    torch.manual_seed(0)
    a = BSRNN(num_channel=8, num_layer=2)
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.1 * torch.randn_like(p))
    b = BSRNN(num_channel=8, num_layer=2)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(1, 257, 9, dtype=torch.complex64)
    assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("interleaved,causal", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("t", [1, 2, 7])
@pytest.mark.parametrize("reference_ops", [False, True])
def test_equals_the_per_band_loop_form_for_every_option_and_length(interleaved, causal, t, reference_ops):
    gen = torch.Generator().manual_seed(10 * t + 2 * interleaved + causal)
    torch.manual_seed(t)
    ours = BSRNN(num_channel=8, num_layer=2, interleaved=interleaved, causal=causal).double()
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    loop = LoopBSRNN(num_channel=8, num_layer=2, interleaved=interleaved, causal=causal,
                     reference_ops=reference_ops).double()
    loop.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 257, t, dtype=torch.complex128, generator=gen)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), loop(x2)
    assert y1.shape == (2, 257, t) and torch.isfinite(torch.view_as_real(y1)).all()
    torch.testing.assert_close(y1, y2, rtol=1e-10, atol=1e-10)
    g = torch.randn(y1.shape, dtype=y1.dtype, generator=gen)
    (y1 * g).real.sum().backward()
    (y2 * g).real.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-9, atol=1e-10)
    grads2 = {n: p.grad for n, p in loop.named_parameters()}
    for name in ("lstm_t1.weight_hh_l0", "fc_k2.weight", "norm_t2.weight"):
        torch.testing.assert_close(ours.get_parameter(name).grad, grads2[name], rtol=1e-9, atol=1e-10)


def test_options_change_the_function_but_not_the_parameters():
    torch.manual_seed(1)
    base = BSRNN(num_channel=8, num_layer=2)
    x = torch.randn(1, 257, 6, dtype=torch.complex64)
    for kw in ({"interleaved": True}, {"causal": True}):
        other = BSRNN(num_channel=8, num_layer=2, **kw)
        other.load_state_dict(base.state_dict(), strict=True)
        assert (other(x) - base(x)).abs().max() > 1e-4, kw


def test_causal_output_depends_only_on_past_and_one_frame_of_look_ahead():
    torch.manual_seed(2)
    x = torch.randn(1, 257, 12, dtype=torch.complex64)
    x2 = x.clone()
    x2[..., 8:] += torch.randn(1, 257, 4, dtype=torch.complex64)   # change frames >= 8
    causal = BSRNN(num_channel=8, num_layer=2, causal=True)
    y, y2 = causal(x), causal(x2)
    assert torch.equal(y[..., :7], y2[..., :7])                    # frames <= 6 see at most frame 7
    assert (y[..., 7] - y2[..., 7]).abs().max() > 0                # the +1 tap of the mask
    default = BSRNN(num_channel=8, num_layer=2)
    default.load_state_dict(causal.state_dict())
    assert (default(x)[..., :7] - default(x2)[..., :7]).abs().max() > 0   # whole-utterance norms


@pytest.mark.parametrize("interleaved,causal", [(False, False), (True, True)])
def test_chunked_long_input_inference_equals_the_whole_pass(interleaved, causal):
    """No-grad inference runs the LSTMs over chunks of frames (bounded memory); same output."""
    torch.manual_seed(3)
    m = BSRNN(num_channel=8, num_layer=2, interleaved=interleaved, causal=causal).double().eval()
    x = torch.randn(2, 257, 37, dtype=torch.complex128)
    with torch.no_grad():
        m.inference_chunk = 0
        whole = m(x)
        m.inference_chunk = 8                     # 37 frames -> chunks of 8, 8, 8, 8, 5
        chunked = m(x)
    torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=1e-12)
    assert m(x).requires_grad                     # with grad enabled: the whole pass, trainable


def test_rejects_a_real_or_misshaped_input():
    m = BSRNN(num_channel=8, num_layer=1)
    with pytest.raises(ValueError, match="complex STFT"):
        m(torch.randn(1, 257, 5))
    with pytest.raises(ValueError, match="256 frequency bins"):
        m(torch.randn(1, 256, 5, dtype=torch.complex64))
