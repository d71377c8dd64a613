"""SpectrogramTransform: the shared STFT names, their earlier aliases, settings round trip, rate check."""

from __future__ import annotations

import warnings

import pytest
import se_data
import torch

import bandsplit
from bandsplit import SampleRateMismatchError, SpectrogramTransform


def test_names_match_the_shared_stft_concept() -> None:
    t = SpectrogramTransform(n_fft=512, hop_length=128, sample_rate=16000)
    assert (t.n_fft, t.hop_length, t.sample_rate, t.num_freqs) == (512, 128, 16000, 257)
    assert t.num_frames(32000) == 251
    assert t.to_dict() == {"sample_rate": 16000, "n_fft": 512, "hop_length": 128, "window": "hann"}
    # positional order (n_fft, hop_length, sample_rate) as before
    assert SpectrogramTransform(400, 100, 8000).to_dict() == {"sample_rate": 8000, "n_fft": 400,
                                                              "hop_length": 100, "window": "hann"}


def test_earlier_names_still_work() -> None:
    t = SpectrogramTransform(1200, 100, 16000)
    assert t.hop == 100 and t.num_bins == 601
    with pytest.raises(AttributeError):
        t.hop = 50  # read-only alias
    with pytest.warns(DeprecationWarning, match="hop_length"):
        old = SpectrogramTransform(512, hop=64, sample_rate=16000)
    assert old.hop_length == 64 and old.hop == 64
    with pytest.raises(TypeError, match="not both"):
        SpectrogramTransform(512, hop_length=128, hop=128)
    t.check_rate(16000)
    with pytest.raises(SampleRateMismatchError):
        t.check_rate(48000)


def test_from_dict_round_trip_and_the_checkpoint_key_hop() -> None:
    t = SpectrogramTransform(512, 128, 16000)
    assert SpectrogramTransform.from_dict(t.to_dict()).to_dict() == t.to_dict()
    # tools/train_bsdt.py stores {"n_fft": 512, "hop": 128} next to "sample_rate"
    assert SpectrogramTransform.from_dict({"n_fft": 512, "hop": 128, "sample_rate": 16000}).to_dict() == t.to_dict()
    with pytest.raises(ValueError, match="missing"):
        SpectrogramTransform.from_dict({"n_fft": 512, "hop_length": 128})
    with pytest.raises(ValueError, match="unknown"):
        SpectrogramTransform.from_dict({**t.to_dict(), "spec_factor": 0.15})
    with pytest.raises(ValueError, match="Hann"):
        SpectrogramTransform.from_dict({**t.to_dict(), "window": "sqrthann"})


@pytest.mark.parametrize("kwargs", [{"n_fft": 0}, {"hop_length": 600}, {"sample_rate": -1}, {"sample_rate": 16000.5}])
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SpectrogramTransform(**kwargs)


def test_rate_error_is_the_shared_family_and_names_a_pip_fix() -> None:
    t = SpectrogramTransform(512, 128, 16000)
    t.check_sample_rate(16000)
    with pytest.raises(se_data.SampleRateError) as info:
        t.check_sample_rate(48000, what="noisy.wav")
    assert isinstance(info.value, SampleRateMismatchError) and isinstance(info.value, ValueError)
    msg = str(info.value)
    assert "noisy.wav is at 48000 Hz" in msg and "16000 Hz" in msg
    assert se_data.resample_hint(16000) in msg
    assert issubclass(bandsplit.SampleRateMismatchError, se_data.SampleRateError)


def test_stft_equals_torch_stft_and_inverts_for_any_leading_shape() -> None:
    t = SpectrogramTransform(512, 128, 16000).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4000, generator=g, dtype=torch.float64)
    spec = t.stft(x)
    assert spec.shape == (2, 3, 257, 4000 // 128 + 1) and spec.dtype == torch.complex128
    ref = torch.stft(x.reshape(6, 4000), 512, 128, window=torch.hann_window(512).double(),
                     center=True, pad_mode="reflect", return_complex=True)
    assert torch.equal(spec.reshape(6, 257, -1), ref)
    assert t.stft(x[0, 0]).shape == (257, 32)
    y = t.istft(spec, length=4000)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x, rtol=0, atol=1e-12)


def test_window_follows_the_module_and_is_not_in_the_state_dict() -> None:
    t = SpectrogramTransform(512, 128, 16000)
    assert dict(t.state_dict()) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert t.double().window.dtype == torch.float64
