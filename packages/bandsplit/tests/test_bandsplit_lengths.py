"""Padded batches of different-length utterances: ``model(spec, lengths=...)`` and
``bandsplit.enhance(model, [waves...])`` give each item what it gets alone.

Model-level checks run in float64 (rounding far below the tolerance at any thread count); the
real-speech check runs in float32 at the 1e-5 the tools promise. The padded frames are filled
with large random values, so a leak of the padding into the valid frames could not hide."""

from __future__ import annotations

import pytest
import se_data
import torch
from diffattn import MultiScaleDynamicFusionGate
from torch import nn

import bandsplit
from bandsplit import SpectrogramTransform

SR = 16000
LENGTHS = [23, 9, 3, 1, 23]  # frames; one item fills the batch (1 and 3: shorter than the 601-
# and 801-bin nets' frames behind the adapter, which zero-pads such an item before its STFT)


def _live_gates(model: nn.Module) -> nn.Module:
    """Non-zero weights in the adaptive attention's gates (their last layer starts at 0, a constant
    gate that would ignore the attention statistics a padded batch must get right)."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, MultiScaleDynamicFusionGate):
                for p in m.parameters():
                    p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return model


def _erb_unet_adapter(**kw: object) -> nn.Module:
    """The 601-bin ERB-UNet behind its 257-bin adapter (small)."""
    return bandsplit.ERBUNetAdapter(bandsplit.ERBUNet(depth=2, transformer_layers=1, d_model=16, num_heads=2, **kw))


def _models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "bsrnn": bandsplit.BSRNN(8, 2),
        "bsrnn-interleaved": bandsplit.BSRNN(8, 1, interleaved=True),
        "bsdt": bandsplit.BSDT(8, 2, 2),
        "bsdt-per-band-standard": bandsplit.BSDT(8, 1, 2, temporal_sharing="per_band", attention="standard",
                                                 graph="fixed"),
        "bsdt-dynamic": bandsplit.BSDT(8, 1, 2, fusion="dynamic", graph="dense"),
        "bsdt-fixed-fusion": bandsplit.BSDT(8, 1, 2, fusion="fixed", windows=(4,)),
        "erb-unet257": bandsplit.ERBUNet257(depth=2, transformer_layers=1, d_model=16, num_heads=2),
        "erb-unet257-standard-plain": bandsplit.ERBUNet257(depth=2, transformer_layers=1, d_model=16, num_heads=2,
                                                           attention="standard", conv="plain"),
        "erb-unet257-net2-shapes": bandsplit.ERBUNet257(depth=2, transformer_layers=1, d_model=16, num_heads=2,
                                                        skip_align="truncate", mask_resize="bilinear"),
        "erb-unet257-adaptive": _live_gates(bandsplit.ERBUNet257(depth=2, transformer_layers=1, d_model=16,
                                                                 num_heads=2, attention="adaptive")),
        "erb-unet-adapter": _erb_unet_adapter(),
        "erb-unet-adapter-adaptive": _live_gates(_erb_unet_adapter(attention="adaptive")),
        "erb-unet-801-adapter": bandsplit.ERBUNetAdapter(bandsplit.ERBUNet(n_fft=1600, hop=100, depth=2,
                                                                           transformer_layers=1, d_model=16,
                                                                           num_heads=2)),
    }


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    return {k: m.double().eval() for k, m in _models().items()}


def _padded_batch(lengths: list[int], n_freq: int = 257) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(lengths), n_freq, max(lengths), dtype=torch.complex128, generator=g)
    junk = 1e3 * torch.randn(x.shape, dtype=torch.complex128, generator=g)
    valid = torch.arange(max(lengths))[None, None, :] < torch.tensor(lengths)[:, None, None]
    return torch.where(valid, x, junk)


@pytest.mark.parametrize("name", list(_models()))
def test_lengths_give_each_item_its_own_output(models: dict[str, nn.Module], name: str) -> None:
    model = models[name]
    x = _padded_batch(LENGTHS)
    with torch.no_grad():
        batched = model(x, lengths=torch.tensor(LENGTHS))
        for i, n in enumerate(LENGTHS):
            alone = model(x[i:i + 1, :, :n])
            torch.testing.assert_close(batched[i:i + 1, :, :n], alone, rtol=0, atol=1e-10)
            assert batched[i, :, n:].abs().max().item() == 0 if n < x.shape[-1] else True
        # every item full length: the masked path gives the unmasked numbers
        full = _padded_batch([x.shape[-1]] * 2)
        torch.testing.assert_close(model(full, lengths=[x.shape[-1]] * 2), model(full), rtol=0, atol=1e-12)


def test_lengths_are_checked(models: dict[str, nn.Module]) -> None:
    x = _padded_batch([5, 5])
    for bad, why in (([5], "2 integer frame counts"), ([5, 6], r"1 \.\. 5"), ([0, 5], r"1 \.\. 5"),
                     ([2.0, 5.0], "integer")):
        with pytest.raises(ValueError, match=why):
            models["bsrnn"](x, lengths=torch.tensor(bad))


class _NetWithoutLengths(nn.Module):
    """A net at its own STFT (what ERBUNetAdapter wraps) that takes no ``lengths``."""

    n_fft, hop, sample_rate = 1200, 100, SR

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x


def test_models_without_lengths_say_so() -> None:
    adapter = bandsplit.ERBUNetAdapter(_NetWithoutLengths())
    assert not bandsplit.supports_lengths(adapter)
    with pytest.raises(TypeError, match="one at a time"):
        adapter(_padded_batch([4, 2]).to(torch.complex64), lengths=[4, 2])
    assert all(bandsplit.supports_lengths(m) for m in _models().values())


def test_adapter_padded_batch_changes_the_input(models: dict[str, nn.Module]) -> None:
    """The adapter's batched equality is no identity: its net changes every item (so a leak of
    the padded tail into the net's input or output could not hide in the residual form)."""
    x = _padded_batch(LENGTHS)
    with torch.no_grad():
        y = models["erb-unet-adapter-adaptive"](x, lengths=LENGTHS)
    for i, n in enumerate(LENGTHS):
        assert (y[i, :, :n] - x[i, :, :n]).abs().max().item() > 1e-2


class _NoLengths(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stft = SpectrogramTransform(512, 128, SR)
        self.sample_rate = SR

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        return spec * 0.5


def test_enhance_list_without_lengths_support_names_the_fix() -> None:
    m = _NoLengths()
    waves = [torch.randn(1000), torch.randn(2000)]
    with pytest.raises(TypeError, match="one at a time"):
        bandsplit.enhance(m, waves, SR)
    # equal lengths need no lengths: a plain batch, equal to the [B, T] call bit for bit
    same = [torch.randn(1500), torch.randn(1500)]
    out = bandsplit.enhance(m, same, SR)
    torch.testing.assert_close(torch.stack(out), bandsplit.enhance(m, torch.stack(same), SR), rtol=0, atol=0)


def test_enhance_list_of_synthetic_waves_float64(models: dict[str, nn.Module]) -> None:
    g = torch.Generator().manual_seed(2)
    waves = [0.3 * torch.randn(n, dtype=torch.float64, generator=g) for n in (4000, 513, 2777, 640)]
    waves.append(0.3 * torch.randn(2, 1900, dtype=torch.float64, generator=g))  # a 2-channel file
    for name in ("bsrnn", "bsdt", "erb-unet-adapter-adaptive"):
        out = bandsplit.enhance(models[name], waves, SR)
        assert [o.shape for o in out] == [w.shape for w in waves]
        for o, w in zip(out, waves):
            torch.testing.assert_close(o, bandsplit.enhance(models[name], w, SR), rtol=0, atol=1e-12)
    # a list of one is the single path, bit for bit
    one = bandsplit.enhance(models["bsrnn"], waves[:1], SR)[0]
    assert torch.equal(one, bandsplit.enhance(models["bsrnn"], waves[0], SR))


def test_enhance_list_long_items_are_chunked_alone(models: dict[str, nn.Module]) -> None:
    g = torch.Generator().manual_seed(3)
    waves = [0.3 * torch.randn(n, dtype=torch.float64, generator=g) for n in (9000, 2000, 3000)]
    out = bandsplit.enhance(models["bsrnn"], waves, SR, chunk_seconds=0.25, overlap_seconds=0.05)
    for o, w in zip(out, waves):
        ref = bandsplit.enhance(models["bsrnn"], w, SR, chunk_seconds=0.25, overlap_seconds=0.05)
        torch.testing.assert_close(o, ref, rtol=0, atol=1e-12)


def test_enhance_list_real_speech_float32(shared_data) -> None:
    """Real VoiceBank+DEMAND noisy files of different lengths (cropped to keep the test fast)."""
    folder = shared_data / "speech" / "voicebank16k" / "noisy"
    waves = [se_data.load_audio(folder / f"p287_00{i}.wav", SR)[0][: 4000 + 3001 * i] for i in (1, 2, 3)]
    assert len({w.shape[-1] for w in waves}) == 3
    torch.manual_seed(0)
    adaptive = {"attention": "adaptive"}
    for model in (bandsplit.BSRNN(16, 2).eval(), bandsplit.BSDT(16, 1, 2).eval(),
                  bandsplit.ERBUNet257(depth=2, transformer_layers=1, d_model=16, num_heads=2).eval(),
                  _live_gates(bandsplit.ERBUNet257(depth=2, transformer_layers=1, d_model=16, num_heads=2,
                                                   **adaptive)).eval(),  # type: ignore[arg-type]
                  _live_gates(_erb_unet_adapter(**adaptive)).eval()):
        out = bandsplit.enhance(model, waves, SR)
        for o, w in zip(out, waves):
            alone = bandsplit.enhance(model, w, SR)
            assert (o - alone).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", ["bsdt-dynamic", "bsdt-adaptive", "erb-unet257-adaptive"])
def test_scale_diversity_loss_of_a_padded_batch_is_the_items_mean(name: str) -> None:
    """analysis["valid_frames"] as the loss's mask: a padded batch's scale-diversity loss is the
    mean of its items' losses alone (every item has the same number of gate sequences), and the
    padded frames would change it without the mask."""
    from diffattn import ScaleDiversityLoss

    torch.manual_seed(0)
    model = {"bsdt-dynamic": lambda: bandsplit.BSDT(8, 2, 2, fusion="dynamic", graph="dense"),
             "bsdt-adaptive": lambda: bandsplit.BSDT(8, 1, 2, fusion="adaptive"),
             "erb-unet257-adaptive": lambda: bandsplit.ERBUNet257(depth=2, transformer_layers=1, d_model=16,
                                                                  num_heads=2, attention="adaptive")}[name]()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():  # gates that vary over time (at init they are constant: a loss of 0)
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    model = model.double().eval()
    lengths = [23, 9, 17]
    x = _padded_batch(lengths)
    loss = ScaleDiversityLoss()
    with torch.no_grad():
        _, an = model(x, return_analysis=True, lengths=lengths)
        assert an["valid_frames"].shape == (3, 1, 23) and an["valid_frames"].sum().item() == sum(lengths)
        batched = loss(an["scale_gates"], an["valid_frames"])[0].item()
        alone = [loss(model(x[i:i + 1, :, :n], return_analysis=True)[1]["scale_gates"])[0].item()
                 for i, n in enumerate(lengths)]
        unmasked = loss(an["scale_gates"])[0].item()
    assert min(alone) > 1e-3
    assert batched == pytest.approx(sum(alone) / len(alone), rel=1e-10, abs=1e-12)
    assert abs(unmasked - batched) > 1e-3
