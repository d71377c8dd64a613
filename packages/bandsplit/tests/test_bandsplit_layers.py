"""BandSplit / MaskDecoder / apply_fir_mask against straightforward per-band-loop references.

The loop references (``bandsplit._loop_reference``) are written the way the widely used BSRNN
reimplementation writes its layers (one GroupNorm + Linear per band, registered as
``norm{k}``/``fc{k}`` etc.), so these tests also check that our per-band state dict loads into
per-band modules and back.
"""

from __future__ import annotations

import pytest
import torch

from bandsplit import BSRNN_BAND_WIDTHS, BandSplit, MaskDecoder, apply_fir_mask, band_centers_hz, band_centres_hz, band_edges
from bandsplit import check_band_widths
from bandsplit.bands import width_groups
from bandsplit._loop_reference import LoopBandSplit, LoopMaskDecoder, reference_fir


def _randomise(module, gen):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5 + (0.3 if p.dim() == 1 else 0.0))


def _flat_grads(ours, loop):
    """Our flat-parameter grads vs the loop model's per-band grads concatenated in the same order."""
    pairs = []
    for name, (template, shapes, _) in ours._ragged.items():
        ref = torch.cat([loop.get_parameter(template.format(b + 1)).grad.reshape(-1)
                         for b in range(len(shapes))])
        pairs.append((name, getattr(ours, name).grad, ref))
    return pairs


WIDTH_CASES = [
    (2, 3, 3, 8, 1),                 # mixed small widths
    (5, 1, 7, 2, 9, 4),              # unsorted
    (4,),                            # a single band
]


@pytest.mark.parametrize("widths", WIDTH_CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_band_split_equals_per_band_loop_forward_and_backward(widths, causal):
    gen = torch.Generator().manual_seed(sum(widths) + causal)
    n, b, t = 6, 2, 7
    ours = BandSplit(widths, n, causal=causal).double()
    _randomise(ours, gen)
    loop = LoopBandSplit(widths, n, causal=causal).double()
    loop.load_state_dict(ours.state_dict(), strict=True)       # per-band keys load into per-band modules
    x = torch.randn(b, sum(widths), t, dtype=torch.complex128, generator=gen) * 3
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), loop(x2)
    assert y1.shape == (b, t, len(widths), n)
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    g = torch.randn(y1.shape, dtype=y1.dtype, generator=gen)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)
    for name, got, want in _flat_grads(ours, loop):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=f"grad of {name}")


@pytest.mark.parametrize("widths", WIDTH_CASES)
@pytest.mark.parametrize("causal", [False, True])
def test_mask_decoder_equals_per_band_loop_forward_and_backward(widths, causal):
    gen = torch.Generator().manual_seed(100 + sum(widths) + causal)
    n, b, t = 5, 2, 6
    ours = MaskDecoder(widths, n, causal=causal).double()
    _randomise(ours, gen)
    loop = LoopMaskDecoder(widths, n, causal=causal).double()
    loop.load_state_dict(ours.state_dict(), strict=True)
    h = torch.randn(b, t, len(widths), n, dtype=torch.float64, generator=gen)
    h1, h2 = h.clone().requires_grad_(), h.clone().requires_grad_()
    m1, m2 = ours(h1), loop(h2)
    assert m1.shape == (b, sum(widths), t, 3) and m1.is_complex()
    torch.testing.assert_close(m1, m2, rtol=1e-12, atol=1e-12)
    g = torch.randn(m1.shape, dtype=m1.dtype, generator=gen)
    (m1 * g).real.sum().backward()
    (m2 * g).real.sum().backward()
    torch.testing.assert_close(h1.grad, h2.grad, rtol=1e-10, atol=1e-12)
    for name, got, want in _flat_grads(ours, loop):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=f"grad of {name}")


def test_loop_state_dict_loads_back_into_vectorised_layers():
    gen = torch.Generator().manual_seed(7)
    widths = (3, 1, 4)
    loop = LoopMaskDecoder(widths, 4)
    _randomise(loop, gen)
    ours = MaskDecoder(widths, 4)
    ours.load_state_dict(loop.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(loop.state_dict())
    for k, v in loop.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v), k
    h = torch.randn(1, 5, 3, 4, generator=gen)
    torch.testing.assert_close(ours(h), loop(h), rtol=1e-5, atol=1e-6)


def _graph_size(t):
    seen, stack = set(), [t.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return len(seen)


def test_autograd_graph_does_not_grow_with_the_number_of_bands():
    """No Python loop over bands: the autograd graph's size depends on the number of width
    classes (grouped matmuls), not on the number of bands."""
    def sizes(widths):
        x = torch.randn(1, sum(widths), 5, dtype=torch.complex64, requires_grad=True)
        feats = BandSplit(widths, 8)(x)
        m = MaskDecoder(widths, 8)(feats)
        return _graph_size(feats), _graph_size(apply_fir_mask(m, x.detach()))

    assert sizes((64, 64, 64, 65)) == sizes((32,) * 7 + (33,))          # 4 vs 8 bands, one class
    assert sizes(BSRNN_BAND_WIDTHS) == sizes(BSRNN_BAND_WIDTHS * 3)      # 31 vs 93 bands, 3 classes
    x = torch.randn(1, 257, 5, dtype=torch.complex64, requires_grad=True)
    loop_split = _graph_size(LoopBandSplit(BSRNN_BAND_WIDTHS, 8)(x))
    loop_decoder = _graph_size(LoopMaskDecoder(BSRNN_BAND_WIDTHS, 8)(torch.randn(1, 5, 31, 8, requires_grad=True)))
    ours = sizes(BSRNN_BAND_WIDTHS)
    assert 4 * ours[0] < loop_split and 4 * ours[1] < loop_decoder


def test_width_groups_pad_little_and_cover_every_band_once():
    groups = width_groups(BSRNN_BAND_WIDTHS)
    assert [(cap, len(m)) for cap, m in groups] == [(3, 11), (8, 12), (17, 8)]
    for widths in [BSRNN_BAND_WIDTHS, (5, 1, 7, 2, 9, 4), tuple(range(1, 40)), (4,)]:
        groups = width_groups(widths)
        assert 1 <= len(groups) <= 4
        assert sorted(k for _, m in groups for k in m) == list(range(len(widths)))
        assert all(widths[k] <= cap for cap, m in groups for k in m)


def test_bad_band_widths_raise_with_the_widths_in_the_message():
    with pytest.raises(ValueError, match=r"sum to 30 bins.*257.*\[10, 20\]"):
        BandSplit([10, 20], 8, n_freq=257)
    with pytest.raises(ValueError, match="positive integers"):
        MaskDecoder([3, 0, 2], 8)
    with pytest.raises(ValueError, match="positive integers"):
        check_band_widths([2.5, 3])
    with pytest.raises(ValueError, match="empty"):
        BandSplit([], 8)
    bs = BandSplit([2, 3], 4)
    with pytest.raises(ValueError, match=r"6 frequency bins.*sum to 5.*\[2, 3\]"):
        bs(torch.zeros(1, 6, 3, dtype=torch.complex64))


def test_bsrnn_band_table_has_31_bands_covering_257_bins():
    assert len(BSRNN_BAND_WIDTHS) == 31 and sum(BSRNN_BAND_WIDTHS) == 257
    edges = band_edges(BSRNN_BAND_WIDTHS)
    assert edges[0] == (0, 2) and edges[-1] == (240, 257)
    c = band_centres_hz(BSRNN_BAND_WIDTHS, 16000, 512)
    assert band_centers_hz is band_centres_hz  # the earlier spelling
    assert c.shape == (31,)
    assert c[0].item() == pytest.approx(15.625)        # bins 0, 1 -> 0 and 31.25 Hz
    assert c[-1].item() == pytest.approx(248 * 31.25)  # bins 240..256
    assert torch.all(c[1:] > c[:-1])
    with pytest.raises(ValueError, match="257"):
        band_centres_hz(BSRNN_BAND_WIDTHS, 16000, 1024)


@pytest.mark.parametrize("t", [1, 2, 3, 8])
def test_apply_fir_mask_is_the_three_tap_time_filter(t):
    gen = torch.Generator().manual_seed(t)
    m = torch.randn(2, 5, t, 3, dtype=torch.complex128, generator=gen)
    x = torch.randn(2, 5, t, dtype=torch.complex128, generator=gen)
    s = apply_fir_mask(m, x)
    xp = torch.nn.functional.pad(x, (1, 1))  # zeros outside the signal
    want = torch.stack([m[..., i, 0] * xp[..., i] + m[..., i, 1] * xp[..., i + 1] + m[..., i, 2] * xp[..., i + 2]
                        for i in range(t)], dim=-1)
    torch.testing.assert_close(s, want, rtol=0, atol=1e-12)
    if t >= 2:
        torch.testing.assert_close(s, reference_fir(m, x), rtol=0, atol=1e-12)


def test_apply_fir_mask_lookahead_and_gradient():
    gen = torch.Generator().manual_seed(3)
    m = torch.randn(1, 2, 6, 3, dtype=torch.complex128, generator=gen)
    x = torch.randn(1, 2, 6, dtype=torch.complex128, generator=gen)
    s0 = apply_fir_mask(m, x, lookahead=0)     # taps at t-2, t-1, t: causal
    assert torch.allclose(s0[..., 0], m[..., 0, 2] * x[..., 0])
    assert torch.allclose(s0[..., 4], m[..., 4, 0] * x[..., 2] + m[..., 4, 1] * x[..., 3] + m[..., 4, 2] * x[..., 4])
    with pytest.raises(ValueError, match="lookahead"):
        apply_fir_mask(m, x, lookahead=3)
    with pytest.raises(ValueError, match="does not match"):
        apply_fir_mask(m[:, :, :5], x)
    assert torch.autograd.gradcheck(lambda a, b: apply_fir_mask(a, b),
                                    (m[:, :, :3].clone().requires_grad_(), x[:, :, :3].clone().requires_grad_()))


def test_bad_state_dict_shapes_and_partial_loads_name_the_band_keys():
    ours = BandSplit((2, 3), 4)
    sd = ours.state_dict()
    bad = dict(sd)
    bad["fc2.weight"] = torch.zeros(4, 5)
    with pytest.raises(RuntimeError, match=r"size mismatch for fc2\.weight.*\(4, 6\)"):
        ours.load_state_dict(bad)
    partial = {k: v.clone() + 1.0 for k, v in sd.items() if k != "fc1.weight"}
    result = BandSplit((2, 3), 4).load_state_dict(partial, strict=False)
    assert result.missing_keys == ["fc1.weight"] and result.unexpected_keys == []
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*\"fc1\.weight\""):
        BandSplit((2, 3), 4).load_state_dict(partial, strict=True)
    fresh = BandSplit((2, 3), 4)
    fresh.load_state_dict(partial, strict=False)
    assert torch.equal(fresh.state_dict()["fc2.weight"], partial["fc2.weight"])
