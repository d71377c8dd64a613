"""bandsplit.enhance: the model owns its STFT; exact length, chunked overlap-add through
se_data.chunked_apply, checked rate, NaN and too-short input; enhance_waveform as its alias."""

from __future__ import annotations

import pytest
import se_data
import torch
from torch import Tensor, nn

import bandsplit
from bandsplit import SampleRateMismatchError, SpectrogramTransform, enhance, enhance_waveform

SR = 16000


class _Gain(nn.Module):
    """A spectrogram 'model' that scales its input: enhance must return gain * audio."""

    def __init__(self, gain: float, sample_rate: int = SR) -> None:
        super().__init__()
        self.gain = gain
        self.stft = SpectrogramTransform(512, 128, sample_rate)
        self.sample_rate = sample_rate
        self.calls: list[tuple[int, ...]] = []

    def forward(self, spec: Tensor) -> Tensor:
        self.calls.append(tuple(spec.shape))
        return self.gain * spec


class _EnergyNormalise(nn.Module):
    """Output depends on the whole input it sees (divides by its RMS): chunking changes the result."""

    def __init__(self) -> None:
        super().__init__()
        self.stft = SpectrogramTransform(512, 128, SR)
        self.sample_rate = SR

    def forward(self, spec: Tensor) -> Tensor:
        return spec / spec.abs().square().mean(dim=(-2, -1), keepdim=True).sqrt()


def _noise(*shape: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("shape", [(12_345,), (3, 12_345)])
@pytest.mark.parametrize("chunk_seconds", [None, 0.25])
def test_scaling_model_returns_scaled_audio_of_the_same_shape(shape: tuple[int, ...], chunk_seconds: float | None):
    model = _Gain(0.5).double()
    x = _noise(*shape)
    y = enhance(model, x, SR, chunk_seconds=chunk_seconds, overlap_seconds=0.05)
    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y, 0.5 * x, rtol=0, atol=1e-12)   # float64: STFT round trip + the ramps
    assert len(model.calls) == (1 if chunk_seconds is None else len(se_data.chunk_starts(12_345, 4000, 800)))


def test_chunked_path_is_se_data_chunked_apply_of_whole_chunk_enhancement():
    model = _EnergyNormalise().double()
    x = _noise(2, 30_000)
    chunk, overlap = 8000, 1600
    got = enhance(model, x, SR, chunk_seconds=0.5, overlap_seconds=0.1)

    def per_chunk(chunks: Tensor) -> Tensor:   # [n, 2, chunk]: each chunk enhanced on its own, one pass
        return torch.stack([enhance(model, c, SR) for c in chunks])

    ref = se_data.chunked_apply(per_chunk, x, chunk, overlap)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    whole = enhance(model, x, SR)
    assert float((got - whole).abs().max()) > 1e-3   # not vacuous: chunking does change this model's output
    # signals no longer than a chunk run in one pass
    torch.testing.assert_close(enhance(model, x[:, :8000], SR, chunk_seconds=0.5), enhance(model, x[:, :8000], SR),
                               rtol=0, atol=0)


def test_batch_rows_are_enhanced_independently_by_a_real_model():
    torch.manual_seed(0)
    model = bandsplit.build_model(preset="bsdt-demo").double().eval()
    x = 0.1 * _noise(2, 6000)
    y = enhance(model, x, SR)
    for i in range(2):
        torch.testing.assert_close(y[i], enhance(model, x[i], SR), rtol=1e-9, atol=1e-12)
    assert float((y - x).abs().max()) > 1e-3   # an untrained model still changes the audio


def test_enhance_waveform_is_the_earlier_name_with_an_optional_stft():
    model = _Gain(2.0).double()
    x = _noise(5000)
    ref = enhance(model, x, SR)
    torch.testing.assert_close(enhance_waveform(model, x, SR), ref, rtol=0, atol=0)
    bare = nn.Identity()   # a model without .stft works when the transform is given, as before
    stft = SpectrogramTransform(512, 128, SR).double()
    torch.testing.assert_close(enhance_waveform(bare, x, SR, stft, chunk_seconds=0.2), x, rtol=0, atol=1e-12)
    with pytest.raises(TypeError, match="model.stft = bandsplit.SpectrogramTransform"):
        enhance(bare, x, SR)


def test_wrong_rate_nan_and_short_audio_are_refused_clearly():
    model = _Gain(1.0)
    x = torch.randn(4000)
    with pytest.raises(se_data.SampleRateError) as info:
        enhance(model, x, 48000)
    assert isinstance(info.value, SampleRateMismatchError) and se_data.resample_hint(SR) in str(info.value)
    bad = x.clone()
    bad[10] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        enhance(model, bad, SR)
    with pytest.raises(ValueError, match=r"511 samples .* at least n_fft = 512"):
        enhance(model, x[:511], SR)
    with pytest.raises(TypeError, match="float"):
        enhance(model, torch.zeros(4000, dtype=torch.int16), SR)
    with pytest.raises(ValueError, match=r"\[T\] or \[B, T\]"):
        enhance(model, torch.zeros(1, 1, 4000), SR)
    with pytest.raises(ValueError, match="chunk_seconds"):
        enhance(model, x, SR, chunk_seconds=0.01)
    with pytest.raises(ValueError, match="overlap_seconds"):
        enhance(model, x, SR, chunk_seconds=0.1, overlap_seconds=0.0)
    model.sample_rate = 8000   # a model whose rate disagrees with its own STFT
    with pytest.raises(SampleRateMismatchError, match="8000 Hz"):
        enhance(model, x, SR)


def test_every_registry_model_enhances_without_a_separate_stft():
    torch.manual_seed(0)
    x = 0.1 * torch.randn(1, 3000)
    for name in bandsplit.MODEL_NAMES:
        cfg = {"name": name, "num_channel": 8, "num_layer": 1} if name.startswith(("bsrnn", "bsdt")) else \
            {"name": name, "base_channels": 2, "depth": 2, "d_model": 16, "transformer_layers": 1, "num_heads": 2}
        model = bandsplit.build_model(cfg).eval()
        assert model.sample_rate == model.stft.sample_rate == SR and model.stft.num_freqs == 257
        y = enhance(model, x, SR)
        assert y.shape == x.shape and bool(torch.isfinite(y).all()), name
