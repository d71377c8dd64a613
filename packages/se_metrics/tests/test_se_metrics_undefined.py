"""Metrics at the edges: every metric on every edge case gives a finite number or a
MetricUndefinedError with a reason, never a raw ValueError, NaN or a value set by a floor."""

from __future__ import annotations

import math

import numpy as np
import pytest

import se_metrics as sm
from se_metrics.pesq_stoi import pesq_min_samples, stoi_min_samples

SR = 16000
SINGLE = {
    "pesq_wb": lambda c, e: sm.pesq(c, e, SR, "wb"), "pesq_nb": lambda c, e: sm.pesq(c, e, SR, "nb"),
    "stoi": lambda c, e: sm.stoi(c, e, SR), "estoi": lambda c, e: sm.stoi(c, e, SR, extended=True),
    "si_sdr": lambda c, e: sm.si_sdr(c, e, SR), "snr": lambda c, e: sm.snr(c, e, SR),
    "ssnr": lambda c, e: sm.ssnr(c, e, SR), "lsd": lambda c, e: sm.lsd(c, e, SR),
    "llr": lambda c, e: sm.llr(c, e, SR), "wss": lambda c, e: sm.wss(c, e, SR),
    "composite": lambda c, e: sm.composite(c, e, SR),
}
COMPOSITE = ("csig", "cbak", "covl")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    """A noise burst with a syllable-rate envelope (enough for PESQ's voice detection); RMS ~0.07."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return 0.1 * rng.standard_normal(n) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))


def _edge_cases() -> dict[str, tuple[np.ndarray, np.ndarray, set[str], str]]:
    """name -> (clean, estimate, metrics defined among SINGLE, reason of the undefined ones)."""
    c = _speechlike(SR)
    rng = np.random.default_rng(5)
    short = {n: _speechlike(n) for n in (int(0.1 * SR), int(0.3 * SR))}
    noise = 1e-9 * rng.standard_normal(SR)

    def below(e: np.ndarray) -> str:  # "RMS r, d dB" of an estimate's varying part against c's RMS
        ac = _rms(e - e.mean())
        return f"RMS {ac:.2g}, {20 * math.log10(_rms(c) / ac):.0f} dB below the reference, beyond the 100 dB limit)"

    return {
        "all_zero": (c, np.zeros(SR), {"snr", "ssnr"}, "silent estimate (every sample is 0)"),
        "noise_1e-9": (c, noise, {"snr", "ssnr"}, f"near-silent estimate ({below(noise)}"),
        "copy_1e-7": (c, 1e-7 * c, {"snr", "ssnr"}, f"near-silent estimate ({below(1e-7 * c)}"),
        "dc_0.3": (c, np.full(SR, 0.3), {"snr", "ssnr"}, "DC-only estimate (every sample is 0.3)"),
        "dc_plus_1e-9": (c, 0.3 + 1e-9 * rng.standard_normal(SR), {"snr", "ssnr"}, "DC-only estimate (offset 0.3, "),
        "clipped": (c, np.clip(30 * c, -1, 1), set(SINGLE), ""),
        "0.1s": (short[1600], short[1600] + 0.3 * _speechlike(1600, 1), {"si_sdr", "snr", "ssnr", "llr", "wss"},
                 "too short (1600 samples = 0.100 s, needs "),
        "0.3s": (short[4800], short[4800] + 0.3 * _speechlike(4800, 1), set(SINGLE) - {"stoi", "estoi"},
                 "too short (4800 samples = 0.300 s, needs 6554 = 0.410 s)"),
    }


CASES = _edge_cases()


@pytest.mark.parametrize("metric", sorted(SINGLE))
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_metric_is_finite_or_undefined_with_a_reason(case, metric):
    c, e, defined, reason = CASES[case]
    if metric in defined:
        got = SINGLE[metric](c, e)
        for v in (got.values() if isinstance(got, dict) else [got]):
            assert isinstance(v, float) and math.isfinite(v), (case, metric, got)
        return
    with pytest.raises(sm.MetricUndefinedError) as info:
        SINGLE[metric](c, e)
    assert isinstance(info.value, sm.MetricInputError)  # callers catching the parent still catch it
    if metric == "composite":
        assert info.value.reason.startswith("needs pesq_wb, which is undefined (")
        assert "CSIG / CBAK / COVL" in str(info.value)
    else:
        assert info.value.reason.startswith(reason), (case, metric, info.value.reason)
        assert "undefined" in str(info.value)


def test_silent_estimate_values_that_stay_defined():
    c = _speechlike(SR)
    assert sm.snr(c, np.zeros(SR), SR) == 0.0  # the error is the reference itself: exactly 0 dB
    assert abs(sm.ssnr(c, np.zeros(SR), SR)) < 1e-9
    assert sm.snr(c, np.full(SR, 0.3), SR) < -10  # a DC offset is an error SNR counts


def test_clipped_speech_scores_like_the_formulas():
    """Hard clipping is distortion every metric can measure: defined and worse than the clean copy."""
    c = _speechlike(SR)
    e = np.clip(30 * c, -1, 1)
    assert np.count_nonzero(np.abs(e) >= 1) > SR // 2
    assert sm.pesq(c, e, SR) < sm.pesq(c, c, SR)
    assert sm.si_sdr(c, e, SR) < 10 and sm.lsd(c, e, SR) > sm.lsd(c, 0.5 * c, SR)


def test_near_silent_limit_is_100_db_below_the_reference():
    c = 4 * _speechlike(SR)  # RMS ~0.27: at -99 dB the estimate is still above the 1e-6 silence floor
    just_audible = c * 10 ** (-99 / 20)
    assert sm.si_sdr(c, just_audible, SR) > 40  # a quiet copy is a copy (scale-invariant up to the 1e-12)
    assert sm.pesq(c, just_audible, SR) > 4
    for db in (-101, -140):
        with pytest.raises(sm.MetricUndefinedError, match=rf"near-silent estimate .*{-db} dB below the reference"):
            sm.pesq(c, c * 10 ** (db / 20), SR)
    # below the absolute floor the estimate is silent however quiet the reference is
    q = 1e-4 * _speechlike(SR)  # reference RMS ~7e-6
    with pytest.raises(sm.MetricUndefinedError, match=rf"silent estimate \(RMS {_rms(0.1 * q):.2g} < 1e-06\)"):
        sm.si_sdr(q, 0.1 * q, SR)


@pytest.mark.parametrize("metric, n_min", [
    ("pesq_wb", 4000), ("pesq_nb", 4000), ("stoi", 6554), ("estoi", 6554), ("si_sdr", 2), ("snr", 1),
    ("ssnr", 600), ("llr", 600), ("wss", 600), ("lsd", 2048), ("composite", 4000)])
def test_each_metric_has_its_own_minimum_length(metric, n_min):
    c = _speechlike(n_min + 8000, seed=3)[8000:]  # PESQ's voice detection needs the envelope's peak
    e = c + 0.3 * _speechlike(n_min, 4)
    got = SINGLE[metric](c, e)
    assert all(math.isfinite(v) for v in (got.values() if isinstance(got, dict) else [got]))
    if metric == "si_sdr":  # one sample is constant: nothing is left once the mean is removed
        with pytest.raises(sm.MetricUndefinedError, match="DC-only estimate"):
            sm.si_sdr(c[:1], e[:1], SR)
    elif n_min > 1:
        with pytest.raises(sm.MetricUndefinedError, match="too short") as info:
            SINGLE[metric](c[:-1], e[:-1])
        assert f"({n_min - 1} samples = {(n_min - 1) / SR:.3f} s, needs {n_min} = {n_min / SR:.3f} s)" \
            in info.value.reason


def test_documented_minimums_follow_the_rate():
    assert [pesq_min_samples(r) for r in (8000, 16000)] == [2000, 4000]
    assert [stoi_min_samples(r) for r in (8000, 10000, 16000, 48000)] == [3277, 4097, 6554, 19661]


@pytest.mark.parametrize("case", sorted(CASES))
def test_evaluate_pair_defined_splits_values_and_reasons(case):
    c, e, defined, reason = CASES[case]
    values, undefined = sm.evaluate_pair_defined(c, e, SR)
    assert list(values) + list(undefined) != [] and set(values).isdisjoint(undefined)
    assert set(values) | set(undefined) == set(sm.METRICS)
    assert list(values) == [m for m in sm.METRICS if m in values]  # METRICS order
    assert all(math.isfinite(v) for v in values.values())
    want = {m for m in sm.METRICS if m in defined or (m in COMPOSITE and "composite" in defined)}
    assert set(values) == want
    for m, why in undefined.items():
        assert why.startswith("needs pesq_wb") if m in COMPOSITE else why.startswith(reason), (m, why)
    # the default raises naming every undefined metric; undefined="nan" records NaN instead
    nan = sm.evaluate_pair(c, e, SR, undefined="nan")
    assert list(nan) == list(sm.METRICS)
    assert {m for m, v in nan.items() if math.isnan(v)} == set(undefined)
    assert all(nan[m] == v for m, v in values.items() if m != "estoi")  # ESTOI wobbles in the last ulps
    if undefined:
        with pytest.raises(sm.MetricUndefinedError, match=rf"{len(undefined)} metric\(s\) undefined") as info:
            sm.evaluate_pair(c, e, SR)
        assert sm.evaluate.split_undefined(info.value.reason) == undefined
    else:
        assert set(sm.evaluate_pair(c, e, SR)) == set(sm.METRICS)


def test_undefined_text_round_trip_and_bad_mode():
    why = {"pesq_wb": "silent estimate (every sample is 0)", "pesq_nb": "silent estimate (every sample is 0)",
           "csig": "needs pesq_wb, which is undefined (x; y)"}
    text = sm.evaluate.join_undefined(why)
    assert text == ("pesq_wb, pesq_nb: silent estimate (every sample is 0); "
                    "csig: needs pesq_wb, which is undefined (x, y)")
    assert sm.evaluate.split_undefined(text) == {**why, "csig": "needs pesq_wb, which is undefined (x, y)"}
    assert sm.evaluate.join_undefined({}) == "" and sm.evaluate.split_undefined("") == {}
    with pytest.raises(ValueError, match="not an 'undefined' entry"):
        sm.evaluate.split_undefined("no separator here")
    c = _speechlike(SR)
    with pytest.raises(ValueError, match="undefined must be one of"):
        sm.evaluate_pair(c, c, SR, undefined="skip")


def test_score_pair_nan_only_for_undefined_metrics():
    c = _speechlike(int(0.1 * SR))
    got = sm.score_pair(c, c + 0.3 * _speechlike(c.shape[0], 1), SR, ["pesq_wb", "si_sdr", "lsd", "csig"])
    assert math.isnan(got["pesq_wb"]) and math.isnan(got["lsd"]) and math.isnan(got["csig"])
    assert math.isfinite(got["si_sdr"])  # defined on 0.1 s
    with pytest.raises(sm.MetricUndefinedError, match="too short"):
        sm.score_pair(c, c, SR, ["lsd"], on_error="raise")
