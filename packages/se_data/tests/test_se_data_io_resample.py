"""resample(): length, pass-band flatness, stop-band attenuation, agreement with scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal as ss
import torch

from se_data import load_audio, resample, resampled_length


def _tone_gain_db(f_hz: float, orig: int = 48000, new: int = 16000, seconds: float = 2.0) -> float:
    t = torch.arange(int(orig * seconds), dtype=torch.float64) / orig
    x = torch.sin(2 * math.pi * f_hz * t).to(torch.float32)
    y = resample(x, orig, new).double()
    edge = int(0.1 * new)  # skip the on/off transients of the abrupt tone
    return 10 * math.log10(y[edge:-edge].pow(2).mean().item() / 0.5)


def test_passband_1khz_is_flat():
    assert abs(_tone_gain_db(1000.0)) < 0.1


@pytest.mark.parametrize("f_hz", [10000.0, 16000.0])
def test_above_new_nyquist_is_attenuated(f_hz):
    assert _tone_gain_db(f_hz) < -60.0


@pytest.mark.parametrize("n,orig,new,expected", [(324960, 48000, 16000, 108320), (1000, 44100, 16000, 363),
                                                 (7, 16000, 48000, 21), (5, 16000, 16000, 5)])
def test_resampled_length(n, orig, new, expected):
    assert resampled_length(n, orig, new) == expected
    assert resample(torch.zeros(n), orig, new).shape == (expected,)


def test_batch_shape_dtype_and_identity():
    x = torch.randn(2, 3, 4800)
    y = resample(x, 48000, 16000)
    assert y.shape == (2, 3, 1600) and y.dtype == torch.float32
    assert torch.allclose(y[1, 2], resample(x[1, 2], 48000, 16000), atol=1e-6)  # per-row == batched
    assert resample(x, 16000, 16000) is x
    assert resample(np.zeros(30, np.int16), 48000, 16000).dtype == torch.float32
    with pytest.raises(ValueError, match="positive integer"):
        resample(x, 48000.0, 16000)  # type: ignore[arg-type]


def test_real_48k_speech_to_16k(shared_data):
    x48, sr = load_audio(shared_data / "speech" / "p286_011_48k.wav")
    assert sr == 48000
    y = resample(x48, 48000, 16000)
    assert y.shape == (108320,)
    y2, sr2 = load_audio(shared_data / "speech" / "p286_011_48k.wav", 16000, resample=True)
    assert sr2 == 16000 and torch.equal(y, y2)
    # agrees with an independent polyphase resampler (scipy, Kaiser window): differences come
    # only from the two filters' transition bands, so the "error" is > 30 dB below the signal
    ref = ss.resample_poly(x48.double().numpy(), 1, 3, window=("kaiser", 14.0))
    err = y.double().numpy() - ref
    assert 10 * np.log10(np.sum(ref ** 2) / np.sum(err ** 2)) > 30.0
    # speech energy below 7 kHz is kept: energy ratio within 0.2 dB
    assert abs(10 * np.log10(y.double().pow(2).mean().item() / x48.double().pow(2).mean().item())) < 0.2


@pytest.mark.parametrize("orig,new", [(48000, 16000), (16000, 48000), (44100, 16000), (22050, 16000),
                                      (8000, 16000), (32000, 24000)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kaiser", [True, False])
def test_sinc_resample_equals_torchaudio_bit_for_bit(orig, new, dtype, kaiser):
    """The torch-only resampler computes torchaudio's kernel with the same operations, so the
    default "kaiser_best" filter and torchaudio's own default (Hann) give identical samples."""
    ta = pytest.importorskip("torchaudio.functional")
    from se_data import RESAMPLE_FILTER, sinc_resample

    g = torch.Generator().manual_seed(orig + new)
    x = torch.randn(2, 3001, generator=g, dtype=dtype)
    kw = RESAMPLE_FILTER if kaiser else {}
    want = ta.resample(x, orig, new, **kw)
    got = sinc_resample(x, orig, new, **kw)
    assert got.dtype == dtype and got.shape == want.shape
    assert torch.equal(got, want)
    if kaiser:
        assert torch.equal(resample(x, orig, new), want)


def test_sinc_resample_rejects_bad_arguments():
    from se_data import sinc_resample

    with pytest.raises(ValueError, match="resampling_method"):
        sinc_resample(torch.zeros(100), 48000, 16000, resampling_method="linear")
    with pytest.raises(TypeError, match="floating"):
        sinc_resample(torch.zeros(100, dtype=torch.int16), 48000, 16000)
    with pytest.raises(ValueError, match="sample rate"):
        sinc_resample(torch.zeros(100), 48000.5, 16000)
    with pytest.raises(TypeError, match="not both"):
        resample(torch.zeros(100), 48000, orig_sr=48000, new_sample_rate=16000)
    assert resample(torch.zeros(96), orig_sr=48000, new_sr=16000).shape == (32,)
