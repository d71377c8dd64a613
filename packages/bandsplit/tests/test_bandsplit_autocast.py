"""Mixed precision: every model trains under ``torch.autocast`` (bf16) and stays close to its
float32 output; reduced-precision real/imaginary pairs (what CUDA autocast hands the last
layers) become complex64, while float64 models keep complex128."""

from __future__ import annotations

import pytest
import torch

from bandsplit import MaskDecoder, build_model
from bandsplit._complex import as_complex
from bandsplit._loop_reference import LoopMaskDecoder


def test_as_complex_upcasts_reduced_precision_only():
    x = torch.randn(3, 4, 2)
    assert as_complex(x.bfloat16()).dtype == torch.complex64
    assert as_complex(x.half()).dtype == torch.complex64
    assert as_complex(x.double()).dtype == torch.complex128
    torch.testing.assert_close(as_complex(x), torch.view_as_complex(x))


@pytest.mark.parametrize("form", ["vectorised", "loop", "loop-ref"])
def test_mask_decoder_in_bf16_returns_complex64(form):
    """Also the bench's loop forms: they time both forms under CUDA autocast, where the GLU's
    output stays bf16 (CPU autocast runs it in float32, so only a bf16 module shows it here)."""
    torch.manual_seed(0)
    dec = (MaskDecoder([4, 4, 8], 8) if form == "vectorised"
           else LoopMaskDecoder([4, 4, 8], 8, reference_ops=form == "loop-ref"))
    h = torch.randn(2, 5, 3, 8)
    if form == "loop-ref":
        h = h.permute(0, 3, 1, 2)  # the reference's [B, N, T, K]
    with torch.no_grad():
        ref = dec(h)
        got = dec.to(torch.bfloat16)(h.bfloat16())
    assert got.dtype == torch.complex64 and got.shape == ref.shape == (2, 16, 5, 3)
    assert float((got - ref).abs().max() / ref.abs().max()) < 0.05


@pytest.mark.parametrize("name", ["bsrnn", "bsdt", "erb-unet-257"])
def test_models_train_under_bf16_autocast(name):
    torch.manual_seed(0)
    cfg = {"name": name} if name == "erb-unet-257" else {"name": name, "num_channel": 16, "num_layer": 1}
    model = build_model(cfg)
    x = torch.stft(torch.randn(2, 8000, generator=torch.Generator().manual_seed(1)), 512, 128,
                   window=torch.hann_window(512), return_complex=True)
    with torch.no_grad():
        ref = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert y.dtype == torch.complex64 and y.shape == x.shape
    assert float((y - ref).detach().abs().max() / ref.abs().max()) < 0.05
    (y - x).abs().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
