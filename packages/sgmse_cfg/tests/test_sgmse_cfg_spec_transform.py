"""SGMSE+'s compressed complex STFT: shapes, exact inverse, sample-rate guard, normalisation."""

from __future__ import annotations

import math

import pytest
import se_data
import torch

from sgmse_cfg import BadAudioError, SampleRateError, SpecTransform, normalize_by_noisy


def _signal(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000.0
    return 0.3 * torch.sin(2 * math.pi * 440 * t) + 0.1 * torch.randn(n, generator=g)


def test_sgmse_shapes_and_window():
    tr = SpecTransform()
    assert (tr.sample_rate, tr.n_fft, tr.hop_length) == (16000, 510, 128)
    assert tr.num_freqs == 256
    # SGMSE+'s 256-frame training crop is (256 - 1) * 128 = 32640 samples
    assert tr.segment_length(256) == 32640
    spec = tr.wave_to_spec(_signal(32640), 16000)
    assert spec.shape == (256, 256) and spec.dtype == torch.complex64
    w = tr.window()
    assert torch.equal(w, torch.hann_window(510, periodic=True))
    assert w[0] == 0 and w.shape == (510,)


def test_round_trip_waveform_spec_waveform_within_1e5():
    tr = SpecTransform()
    x = torch.stack([_signal(16000 + 77, 1), _signal(16000 + 77, 2)])  # [2, L], L not a hop multiple
    spec = tr.wave_to_spec(x, 16000)
    assert spec.shape == (2, 256, tr.num_frames(x.shape[-1]))
    back = tr.spec_to_wave(spec, length=x.shape[-1])
    assert back.shape == x.shape
    assert (back - x).abs().max().item() < 1e-5


def test_compression_values_and_exact_inverse():
    tr = SpecTransform()
    c = torch.tensor([4.0 + 0j, -9.0 + 0j, 0j, 3.0 + 4.0j], dtype=torch.complex64)
    comp = tr.compress(c)
    # 0.15 * |c|^0.5 * e^{j angle}: |4|->0.3, |-9|->0.45 with phase pi, 0 -> 0, |3+4j|=5 -> 0.15*sqrt(5)
    expected = torch.tensor([0.3 + 0j, -0.45 + 0j, 0j,
                             0.15 * math.sqrt(5) * (3 + 4j) / 5], dtype=torch.complex64)
    assert torch.allclose(comp, expected, atol=1e-7, rtol=0)
    g = torch.Generator().manual_seed(3)
    z = torch.randn(4096, dtype=torch.complex128, generator=g) * 10.0
    assert torch.allclose(tr.decompress(tr.compress(z)), z, rtol=1e-13, atol=1e-13)
    z32 = z.to(torch.complex64)
    rel = ((tr.decompress(tr.compress(z32)) - z32).abs() / z32.abs()).max().item()
    assert rel < 2e-6


def test_none_transform_is_identity():
    tr = SpecTransform(transform_type="none")
    z = torch.randn(8, dtype=torch.complex64)
    assert torch.equal(tr.compress(z), z) and torch.equal(tr.decompress(z), z)


def test_48k_input_to_16k_transform_is_an_error_with_the_fix():
    tr = SpecTransform(sample_rate=16000)
    with pytest.raises(SampleRateError) as err:
        tr.wave_to_spec(torch.zeros(48000), 48000)
    msg = str(err.value)
    assert "48000" in msg and "16000" in msg
    assert msg.endswith(se_data.resample_hint(16000))  # the toolkit's one fix text
    assert "se_data.load_audio" in msg and "resample=True" in msg


def test_sample_rate_error_is_the_toolkits_one_family():
    """``except se_data.SampleRateError`` (what the data loaders raise) also catches the
    transform's error; ``ValueError`` still does."""
    tr = SpecTransform(sample_rate=16000)
    assert issubclass(SampleRateError, se_data.SampleRateError) and issubclass(SampleRateError, ValueError)
    for call in (lambda: tr.check_sample_rate(8000), lambda: tr.wave_to_spec(torch.zeros(800), 8000)):
        try:
            call()
        except se_data.SampleRateError as e:
            assert type(e) is SampleRateError and "8000 Hz" in str(e)
        else:
            raise AssertionError("no error for 8 kHz audio")


def test_sample_rate_keyword_and_its_alias_sr():
    tr = SpecTransform(sample_rate=16000)
    x = _signal(4000)
    ref = tr.wave_to_spec(x, 16000)
    assert torch.equal(tr.wave_to_spec(x, sample_rate=16000), ref)
    assert torch.equal(tr.wave_to_spec(x, sr=16000), ref)
    tr.check_sample_rate(sample_rate=16000)
    tr.check_sample_rate(sr=16000, what="clip")
    with pytest.raises(SampleRateError, match="^clip is at 22050 Hz"):
        tr.check_sample_rate(sr=22050, what="clip")
    with pytest.raises(TypeError, match="not both"):
        tr.wave_to_spec(x, 16000, sr=16000)
    with pytest.raises(TypeError, match="sample_rate"):
        tr.check_sample_rate()


def test_shared_stft_interface():
    """The STFT surface SpecTransform shares with bandsplit's SpectrogramTransform:
    ``sample_rate``, ``n_fft``, ``hop_length``, ``num_freqs``, ``stft`` / ``istft(spec, length)``,
    ``to_dict`` / ``from_dict``."""
    tr = SpecTransform(sample_rate=16000)
    assert (tr.sample_rate, tr.n_fft, tr.hop_length, tr.num_freqs) == (16000, 510, 128, 256)
    x = _signal(4000).double()
    spec = tr.stft(x)
    assert spec.shape == (tr.num_freqs, 4000 // tr.hop_length + 1)
    back = tr.istft(spec, 4000)
    assert back.shape == x.shape and float((back - x).abs().max()) < 1e-12
    clone = SpecTransform.from_dict(tr.to_dict())
    assert clone.to_dict() == tr.to_dict() and torch.equal(clone.stft(x), spec)


def test_non_finite_input_is_an_error():
    tr = SpecTransform()
    x = _signal(4000)
    x[10] = float("nan")
    with pytest.raises(BadAudioError):
        tr.wave_to_spec(x, 16000)


def test_normalize_by_noisy_scales_both_by_max_abs_y():
    y = torch.tensor([[0.5, -2.0, 1.0], [0.1, 0.2, -0.4]])
    x = torch.tensor([[1.0, 1.0, 1.0], [0.4, 0.4, 0.4]])
    yn, xn, fac = normalize_by_noisy(y, x)
    assert torch.equal(fac, torch.tensor([[2.0], [0.4]]))
    assert torch.allclose(yn.abs().amax(-1), torch.ones(2))
    assert torch.allclose(xn, x / fac)
    with pytest.raises(BadAudioError, match="silent"):
        normalize_by_noisy(torch.zeros(1, 100))


def test_pad_frames_to_multiple_of_64():
    spec = torch.randn(1, 1, 256, 100, dtype=torch.complex64)
    padded, T = SpecTransform.pad_frames(spec)
    assert T == 100 and padded.shape[-1] == 128
    assert torch.equal(padded[..., :100], spec) and torch.all(padded[..., 100:] == 0)
    refl, _ = SpecTransform.pad_frames(spec, mode="reflect")
    assert torch.equal(refl[..., 100], spec[..., 98])
    same, T2 = SpecTransform.pad_frames(padded)
    assert same is padded and T2 == 128


def test_config_round_trip():
    tr = SpecTransform(sample_rate=48000, n_fft=1534, hop_length=384, spec_factor=0.065,
                       spec_abs_exponent=0.667)
    tr2 = SpecTransform.from_dict(tr.to_dict())
    assert tr2.to_dict() == tr.to_dict() and tr2.num_freqs == 768
