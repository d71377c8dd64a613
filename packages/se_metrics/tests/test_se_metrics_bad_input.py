"""Bad input gets a MetricInputError (a ValueError) naming the problem and the fix; a metric
undefined for a valid pair raises its subclass MetricUndefinedError (edge cases in
test_se_metrics_undefined.py)."""

from __future__ import annotations

import numpy as np
import pytest

import se_metrics as sm

SR = 16000
ALL = [
    ("pesq_wb", lambda c, e, sr: sm.pesq(c, e, sr, "wb")),
    ("pesq_nb", lambda c, e, sr: sm.pesq(c, e, sr, "nb")),
    ("stoi", sm.stoi),
    ("estoi", lambda c, e, sr: sm.stoi(c, e, sr, extended=True)),
    ("si_sdr", sm.si_sdr), ("snr", sm.snr), ("ssnr", sm.ssnr), ("lsd", sm.lsd),
    ("llr", sm.llr), ("wss", sm.wss), ("composite", sm.composite), ("evaluate_pair", sm.evaluate_pair),
]
IDS = [name for name, _ in ALL]
FUNCS = [f for _, f in ALL]


def _speechlike(n, seed=0):
    """A noise burst with a syllable-rate envelope (enough for PESQ's voice detection)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return 0.1 * rng.standard_normal(n) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))


def test_error_is_a_value_error():
    assert issubclass(sm.MetricInputError, ValueError)
    assert issubclass(sm.MetricUndefinedError, sm.MetricInputError)


@pytest.mark.parametrize("fn", FUNCS, ids=IDS)
def test_length_mismatch(fn):
    c = _speechlike(SR)
    with pytest.raises(sm.MetricInputError, match=r"differ in length \(16000 vs 15990.*trim"):
        fn(c, c[:15990], SR)


@pytest.mark.parametrize("fn", FUNCS, ids=IDS)
def test_empty_pair(fn):
    with pytest.raises(sm.MetricInputError, match=r"empty \(0 samples\)") as info:
        fn(np.zeros(0), np.zeros(0), SR)
    assert not isinstance(info.value, sm.MetricUndefinedError)  # a mistake upstream, not a missing score


@pytest.mark.parametrize("fn", FUNCS, ids=IDS)
def test_silent_reference(fn):
    with pytest.raises(sm.MetricInputError, match="reference is silent"):
        fn(np.zeros(SR), _speechlike(SR), SR)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("fn", FUNCS, ids=IDS)
@pytest.mark.parametrize("which", ["clean", "enhanced"])
def test_nan_inf(fn, bad, which):
    c = _speechlike(SR)
    e = c.copy()
    (c if which == "clean" else e)[100] = bad
    with pytest.raises(sm.MetricInputError, match=rf"{which}.*1 NaN/Inf sample"):
        fn(c, e, SR)


@pytest.mark.parametrize("fn", FUNCS, ids=IDS)
def test_stereo_rejected(fn):
    st = np.stack([_speechlike(SR, 0), _speechlike(SR, 1)], axis=1)  # soundfile layout [T, C]
    with pytest.raises(sm.MetricInputError, match=r"1-D signal \[T\], got shape \(16000, 2\).*downmix"):
        fn(st, st, SR)


def test_row_vector_rejected_with_reshape_hint():
    c = _speechlike(SR)[None, :]
    with pytest.raises(sm.MetricInputError, match=r"shape \(1, 16000\).*reshape\(-1\)"):
        sm.snr(c, c, SR)


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 11025])
@pytest.mark.parametrize("mode", ["wb", "nb"])
def test_pesq_unsupported_rate(sr, mode):
    c = _speechlike(sr)
    with pytest.raises(sm.MetricInputError, match=rf"only at 8000 or 16000 Hz, got {sr} Hz.*resample"):
        sm.pesq(c, c, sr, mode)


def test_pesq_wb_at_8k():
    c = _speechlike(8000)
    with pytest.raises(sm.MetricInputError, match="wide-band PESQ needs 16000 Hz.*mode='nb'"):
        sm.pesq(c, c, 8000, "wb")


def test_pesq_bad_mode():
    c = _speechlike(SR)
    with pytest.raises(sm.MetricInputError, match="'wb'.*'nb'"):
        sm.pesq(c, c, SR, "swb")


@pytest.mark.parametrize("fn", [sm.composite, sm.evaluate_pair], ids=["composite", "evaluate_pair"])
def test_composite_needs_16k(fn):
    c = _speechlike(48000)
    with pytest.raises(sm.MetricInputError, match="16000 Hz, got 48000 Hz"):
        fn(c, c, 48000)


@pytest.mark.parametrize("sr", [0, -16000, 16000.5, "16000", None, True])
def test_bad_sample_rate_value(sr):
    c = _speechlike(SR)
    with pytest.raises(sm.MetricInputError, match="positive whole number of Hz"):
        sm.snr(c, c, sr)


def test_stoi_too_little_speech_is_an_error_not_1e5():
    """pystoi returns 1e-5 with a warning when <30 frames of speech remain: STOI is undefined."""
    c = np.zeros(SR)
    c[:3000] = _speechlike(3000)  # 0.19 s of sound in 1 s, rest digital silence
    with pytest.raises(sm.MetricUndefinedError, match="fewer than 30 frames") as info:
        sm.stoi(c, c, SR)
    assert info.value.reason == "too little speech (fewer than 30 STOI frames)"


def test_pesq_no_utterance_is_an_error():
    """A reference with only a 50 ms burst (not silent by RMS, but PESQ's voice detection finds
    no utterance): the library's NoUtterancesError becomes ours."""
    c = np.zeros(SR)
    c[:800] = _speechlike(800)
    with pytest.raises(sm.MetricUndefinedError, match="PESQ is undefined.*found no speech utterance") as info:
        sm.pesq(c, _speechlike(SR), SR)
    assert info.value.reason == "PESQ found no utterance"
