"""Property-based (hypothesis) fuzzing of the metrics: pesq, stoi, si_sdr, snr, ssnr, lsd, llr,
wss, composite and evaluate_pair.

Pairs of random length, dtype (float16/32/64, integer, bool, complex, torch tensors), amplitude
(1e-12 ... 1e30 and integer extremes) and content (noise, tones, silence, constants, impulses,
NaN / Inf), 2-D and mismatched inputs, and any sample rate: each metric either returns a
finite float (a dict of finite floats for composite / evaluate_pair) or raises
:class:`MetricInputError` or a subclass (:class:`MetricSampleRateError`,
:class:`MetricUndefinedError`): never a raw exception, never NaN or Inf. Examples are
derandomized and few (``SE_FUZZ_EXAMPLES=N`` runs N per test); hypothesis' caches go to the
temp folder, not a ``.hypothesis`` folder in the checkout.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

import se_metrics
from se_metrics import METRICS, MetricInputError


def _fuzz(default_examples: int) -> settings:
    """Bounded, deterministic settings: ``default_examples`` (or ``$SE_FUZZ_EXAMPLES``) examples."""
    raw = os.environ.get("SE_FUZZ_EXAMPLES", "").strip()
    if raw and (not raw.isdigit() or int(raw) < 1):
        raise pytest.UsageError(f"SE_FUZZ_EXAMPLES must be a positive integer, got {raw!r}")
    if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):  # hypothesis' caches: not in the checkout
        set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "se-toolkit-hypothesis")
    return settings(max_examples=int(raw) if raw else default_examples, derandomize=True, database=None,
                    deadline=None, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


SCALAR_METRICS = {
    "pesq_wb": lambda c, e, sr: se_metrics.pesq(c, e, sr, "wb"),
    "pesq_nb": lambda c, e, sr: se_metrics.pesq(c, e, sr, "nb"),
    "stoi": lambda c, e, sr: se_metrics.stoi(c, e, sr),
    "estoi": lambda c, e, sr: se_metrics.stoi(c, e, sr, extended=True),
    "si_sdr": se_metrics.si_sdr,
    "snr": se_metrics.snr,
    "ssnr": se_metrics.ssnr,
    "lsd": se_metrics.lsd,
    "llr": se_metrics.llr,
    "wss": se_metrics.wss,
}


def _finite_or_metric_error(name: str, fn, *args) -> Any:
    """``fn(*args)``: a finite float (or dict of them), or a MetricInputError; None for the latter."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the libraries' own numerical warnings are not the point here
            value = fn(*args)
    except MetricInputError as e:  # MetricSampleRateError, MetricUndefinedError: subclasses
        assert str(e), f"{name}: an empty message"
        return None
    values = value.values() if isinstance(value, dict) else [value]
    for v in values:
        assert type(v) is float and math.isfinite(v), f"{name} returned {value!r}"
    return value


def _score_everything(clean, enhanced, sample_rate) -> dict[str, Any]:
    out = {name: _finite_or_metric_error(name, fn, clean, enhanced, sample_rate) for name, fn in SCALAR_METRICS.items()}
    event(f"metrics scored: {sum(v is not None for v in out.values())} of {len(out)}")  # --hypothesis-show-statistics
    out["composite"] = _finite_or_metric_error("composite", se_metrics.composite, clean, enhanced, sample_rate)
    pair = _finite_or_metric_error("evaluate_pair", se_metrics.evaluate_pair, clean, enhanced, sample_rate)
    if pair is not None:
        assert tuple(pair) == METRICS
    return out


# repeated entries weight the draw towards pairs every metric can score, so most examples reach the metrics' own code
KINDS = ("speechlike", "speechlike", "noise", "tone", "silence", "constant", "impulse",
         "scaled copy", "scaled copy", "clipped")


@st.composite
def signals(draw, n: int, rng_seed: int, like: np.ndarray | None = None) -> np.ndarray:
    """A float64 signal [n] of one kind (before dtype / amplitude)."""
    rng = np.random.default_rng(rng_seed)
    kind = draw(st.sampled_from(KINDS if like is not None else KINDS[:7]))
    t = np.arange(n) / 16000.0
    if kind == "noise":
        return rng.standard_normal(n)
    if kind == "tone":
        return np.sin(2 * np.pi * draw(st.sampled_from((50.0, 440.0, 3000.0, 7999.0))) * t)
    if kind == "speechlike":  # bursts of a modulated harmonic sound with pauses
        env = (np.sin(2 * np.pi * 3.0 * t) > 0).astype(np.float64)
        return env * sum(np.sin(2 * np.pi * k * 140.0 * t) / k for k in range(1, 8)) + 0.01 * rng.standard_normal(n)
    if kind == "silence":
        return np.zeros(n)
    if kind == "constant":
        return np.full(n, draw(st.sampled_from((1e-9, 0.5, -1.0))))
    if kind == "impulse":
        x = np.zeros(n)
        if n:
            x[draw(st.integers(0, n - 1))] = 1.0
        return x
    if kind == "scaled copy":
        return like * draw(st.sampled_from((1.0, -1.0, 1e-7, 0.5, 2.0))) + draw(st.sampled_from((0.0, 1e-3))) * \
            rng.standard_normal(n)
    return np.clip(like * 3.0, -1.0, 1.0)


DTYPES = ("float32", "float64", "float16", "int16", "int32", "uint8", "bool", "complex64", "torch32", "torch64",
          "torchbf16", "list")
AMPLITUDES = (1.0, 1.0, 1e-12, 1e-6, 1e-3, 1e3, 1e30)


def _as(x: np.ndarray, dtype: str, amplitude: float) -> Any:
    """``x * amplitude`` as ``dtype`` (integers span their range, bool is x > 0)."""
    y = x * amplitude
    if dtype in ("int16", "int32", "uint8"):
        info = np.iinfo(dtype)
        return np.clip(np.round(x * (info.max if dtype != "uint8" else 127) + (128 if dtype == "uint8" else 0)),
                       info.min, info.max).astype(dtype)
    if dtype == "bool":
        return x > 0
    if dtype == "complex64":
        return y.astype(np.complex64)
    if dtype.startswith("torch"):
        return torch.from_numpy(y).to({"torch32": torch.float32, "torch64": torch.float64,
                                       "torchbf16": torch.bfloat16}[dtype])
    if dtype == "list":
        return y.tolist()
    with np.errstate(over="ignore"):
        return y.astype(dtype)


RATES = st.sampled_from((16000, 8000, 22050, 44100, 48000, 1, 7, 0, -16000, 16000.0, 16000.5, float("nan"),
                         float("inf"), "16000", True, None, np.int64(16000)))
SPECIALS = ("nan", "inf", "-inf", "short", "2d", "column", "scalar")


@st.composite
def pairs(draw, plausible: bool) -> tuple[Any, Any, Any]:
    """(clean, enhanced, sample_rate). ``plausible``: float / integer / tensor audio of a length
    and rate every metric takes (content and level still vary: silence, constants, 1e-12 ...
    1e30), so the metrics' own code runs; otherwise any rate, dtype, shape and NaN / Inf."""
    if plausible:
        sr = draw(st.sampled_from((16000, 16000, 8000, 44100)))
        n = draw(st.sampled_from((sr, sr + sr // 4)) | st.integers(sr // 4, sr + sr // 4))
        dtype = draw(st.sampled_from(("float32", "float64", "int16", "torch32", "torchbf16")))
    else:
        sr = draw(RATES)
        n = draw(st.sampled_from((0, 1, 2, 100, 479, 600, 2047, 2048, 4000, 6554)) | st.integers(0, 20000))
        dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**32 - 1))
    c = draw(signals(n, seed))
    e = draw(signals(n, seed + 1, like=c))
    c_amp, e_amp = draw(st.sampled_from(AMPLITUDES)), draw(st.sampled_from(AMPLITUDES))
    c_out, e_out = _as(c, dtype, c_amp), _as(e, draw(st.sampled_from((dtype, dtype, "float32", "float64"))), e_amp)
    special = None if plausible else draw(st.sampled_from((None,) + SPECIALS))
    if special in ("nan", "inf", "-inf") and n and isinstance(e_out, np.ndarray) and e_out.dtype.kind == "f":
        e_out = e_out.copy()
        e_out[draw(st.integers(0, n - 1))] = float(special)
    elif special == "short":
        e_out = e_out[:max(n - draw(st.integers(1, 3)), 0)]
    elif special == "2d" and isinstance(c_out, np.ndarray):
        c_out, e_out = np.stack([c_out, c_out]), np.stack([e_out, e_out]) if isinstance(e_out, np.ndarray) else e_out
    elif special == "column" and isinstance(c_out, np.ndarray):
        c_out = c_out[:, None]
    elif special == "scalar":
        c_out = 0.5
    return c_out, e_out, sr


@_fuzz(60)
@given(pair=pairs(plausible=False))
def test_any_input_gives_a_finite_float_or_a_metric_input_error(pair) -> None:
    _score_everything(*pair)


@_fuzz(25)
@given(pair=pairs(plausible=True))
def test_pairs_of_any_content_and_level_give_a_finite_float_or_a_metric_input_error(pair) -> None:
    _score_everything(*pair)


@_fuzz(10)
@given(n=st.sampled_from((16000, 20000)) | st.integers(4000, 20000), seed=st.integers(0, 2**32 - 1),
       gain=st.sampled_from((1.0, 0.3, 1e-4, 1e-7, 0.0)), noise=st.sampled_from((0.0, 1e-4, 0.1, 1.0, 10.0)))
def test_speechlike_pairs_at_16k_score_finite(n: int, seed: int, gain: float, noise: float) -> None:
    """The common case, at the rate every metric is defined at: a (scaled, noisy) copy of a
    speech-like reference; near-silent or silent copies may only be MetricInputErrors."""
    t = np.arange(n) / 16000.0
    rng = np.random.default_rng(seed)
    clean = (np.sin(2 * np.pi * 3.0 * t) > 0) * sum(np.sin(2 * np.pi * k * 130.0 * t) / k for k in range(1, 9))
    clean = 0.3 * clean + 0.003 * rng.standard_normal(n)
    enhanced = gain * clean + noise * 0.05 * rng.standard_normal(n)
    out = _score_everything(clean.astype(np.float32), enhanced.astype(np.float32), 16000)
    if gain == 1.0 and noise <= 0.1 and n >= 16000:  # plainly scorable: every metric is defined (shorter,
        # PESQ may find no utterance and STOI fewer than 30 frames: half of this reference is pauses)
        assert all(v is not None for v in out.values()), {k for k, v in out.items() if v is None}


# ----------------------------------------------------------------------------- regressions found by the fuzzing
def test_bfloat16_tensors_are_scored_as_their_float32_values() -> None:
    """A bfloat16 tensor (autocast output) was a raw TypeError from .numpy(): 'Got unsupported
    ScalarType BFloat16'."""
    t = torch.arange(16000) / 16000.0
    clean = (0.5 * torch.sin(2 * torch.pi * 440.0 * t)).to(torch.bfloat16)
    enhanced = (clean.float() + 0.01 * torch.randn(16000, generator=torch.Generator().manual_seed(0))).to(torch.bfloat16)
    assert se_metrics.si_sdr(clean, enhanced, 16000) == se_metrics.si_sdr(clean.float(), enhanced.float(), 16000)
    assert se_metrics.snr(clean.float().numpy(), enhanced, 16000) == \
        se_metrics.snr(clean.float(), enhanced.float(), 16000)


@pytest.mark.parametrize("extended", [False, True])
@pytest.mark.parametrize("sr", [1, 7, 4000])
def test_stoi_below_8000_hz_is_a_sample_rate_error(sr: int, extended: bool) -> None:
    """pystoi upsamples to 10 kHz: 20000 samples at 1 Hz became 2e8 (a raw MemoryError, or the
    machine's memory exhausted); at 7 Hz half a minute and gigabytes."""
    rng = np.random.default_rng(0)
    clean = rng.standard_normal(20000)
    with pytest.raises(se_metrics.MetricSampleRateError, match=rf"{'ESTOI' if extended else 'STOI'} needs audio at "
                                                               rf"8000 Hz or more.*got {sr} Hz.*resample"):
        se_metrics.stoi(clean, clean + 0.1 * rng.standard_normal(20000), sr, extended=extended)
