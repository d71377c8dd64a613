"""The public API's conventions: ``sample_rate`` (``sr=`` kept as an alias), the sample-rate
error family shared with se_data, one SI-SDR shared with se_data, and the report helpers."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import se_data

import se_metrics as sm

SR = 16000


def _speechlike(n, seed=0):
    """A noise burst with a syllable-rate envelope (enough for PESQ's voice detection)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return 0.1 * rng.standard_normal(n) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))


@pytest.fixture(scope="module")
def pair():
    c = _speechlike(SR)
    return c, c + 0.3 * _speechlike(SR, 1)


SINGLE = {
    "pesq": sm.pesq, "stoi": sm.stoi, "si_sdr": sm.si_sdr, "snr": sm.snr, "ssnr": sm.ssnr,
    "lsd": sm.lsd, "llr": sm.llr, "wss": sm.wss, "composite": sm.composite,
    "evaluate_pair": sm.evaluate_pair,
}


def _same(a, b):
    """Equal, except pystoi's ESTOI, which varies in the last ulps between calls on the same
    arrays (its summation order depends on memory alignment)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == b[k] or (k == "estoi" and abs(a[k] - b[k]) < 1e-12), k
        return True
    return a == b


@pytest.mark.parametrize("name", sorted(SINGLE))
def test_sample_rate_keyword_and_sr_alias_agree(pair, name):
    fn = SINGLE[name]
    c, e = pair
    positional = fn(c, e, SR)
    assert _same(fn(c, e, sample_rate=SR), positional)
    assert _same(fn(c, e, sr=SR), positional)
    assert _same(fn(clean=c, enhanced=e, sr=SR), positional)
    with pytest.raises(TypeError, match="sample_rate or its earlier name sr, not both"):
        fn(c, e, SR, sr=SR)
    with pytest.raises(TypeError, match="sample_rate or its earlier name sr, not both"):
        fn(c, e, sample_rate=SR, sr=SR)
    with pytest.raises(TypeError, match="sample_rate"):
        fn(c, e)


def test_keyword_arguments_after_the_rate_still_work(pair):
    c, e = pair
    assert sm.pesq(c, e, sr=SR, mode="nb") == sm.pesq(c, e, SR, "nb")
    assert sm.stoi(c, e, sr=SR, extended=True) == pytest.approx(sm.stoi(c, e, SR, True), abs=1e-12)


# ----------------------------------------------------------------------------- rate errors
WRONG_RATE = [
    ("pesq at 44.1 kHz", lambda: sm.pesq(_speechlike(44100), _speechlike(44100), 44100)),
    ("pesq wb at 8 kHz", lambda: sm.pesq(_speechlike(8000), _speechlike(8000), sr=8000)),
    ("composite at 48 kHz", lambda: sm.composite(_speechlike(48000), _speechlike(48000), 48000)),
    ("evaluate_pair at 48 kHz", lambda: sm.evaluate_pair(_speechlike(48000), _speechlike(48000), 48000)),
    ("score_pair pesq at 22.05 kHz",
     lambda: sm.score_pair(_speechlike(22050), _speechlike(22050), 22050, ["pesq_wb"], on_error="raise")),
]


@pytest.mark.parametrize("call", [c for _, c in WRONG_RATE], ids=[n for n, _ in WRONG_RATE])
def test_wrong_rate_is_the_shared_sample_rate_error_naming_se_data_resample(call):
    with pytest.raises(sm.MetricSampleRateError) as info:
        call()
    err = info.value
    assert isinstance(err, se_data.SampleRateError) and isinstance(err, sm.MetricInputError)
    assert isinstance(err, ValueError)
    assert "se_data.resample(audio, orig_sample_rate, 16000)" in str(err)


def test_too_low_rate_for_frames_is_a_sample_rate_error():
    c = _speechlike(100)  # 0.25 s at 100 Hz passes the length check; a 7.5 ms hop is < 1 sample
    with pytest.raises(se_data.SampleRateError, match=r"too low.*se_data\.resample"):
        sm.ssnr(c, c, 100)


def test_evaluate_dir_wrong_rate(tmp_path):
    (tmp_path / "e").mkdir()
    for kw in ({"sample_rate": 8000}, {"sr": 8000}):
        with pytest.raises(se_data.SampleRateError, match="sample_rate=8000.*resample"):
            sm.evaluate_dir(tmp_path / "e", tmp_path / "e", tmp_path / "o", **kw)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("bad", [0, -16000, 16000.5, "16000", None, float("inf")])
def test_invalid_rate_value_is_an_input_error_not_a_rate_mismatch(bad):
    c = _speechlike(SR)
    with pytest.raises(sm.MetricInputError, match="positive whole number of Hz") as info:
        sm.snr(c, c, bad)
    assert not isinstance(info.value, se_data.SampleRateError)


# ----------------------------------------------------------------------------- one SI-SDR
def _edge_pairs():
    rng = np.random.default_rng(7)
    s = rng.standard_normal(SR)
    n = rng.standard_normal(SR)
    return {
        "noisy": (s, s + 0.5 * n),
        "identical": (s, s.copy()),
        "scaled_and_offset": (s, -3.0 * s + 0.2),
        "float32": (s.astype(np.float32), (s + n).astype(np.float32)),
        "int16": ((s * 3000).astype(np.int16), ((s + n) * 3000).astype(np.int16)),
        "pure_noise": (s, n),
        "silent_estimate": (s, np.zeros(SR)),
        "constant_estimate": (s, np.full(SR, 0.25)),
        "constant_reference": (np.full(SR, 0.5), s),
    }


@pytest.mark.parametrize("case", sorted(_edge_pairs()))
def test_si_sdr_is_se_data_si_sdr_db_on_every_input(case):
    ref, est = _edge_pairs()[case]
    try:
        want = se_data.si_sdr_db(ref.astype(np.float64), est.astype(np.float64))
    except ValueError as err:  # undefined in both; both name the constant signal
        with pytest.raises(sm.MetricUndefinedError) as info:
            sm.si_sdr(ref, est, SR)
        if "the reference is silent" in str(err):
            assert str(info.value).startswith(str(err))
        else:
            assert "estimate is silent" in str(err)
            assert re.match(r"SI-SDR is undefined for a (silent|DC-only) estimate \(every sample is ", str(info.value))
        return
    assert sm.si_sdr(ref, est, SR) == want
    assert math.isfinite(want)


def test_si_sdr_known_values():
    rng = np.random.default_rng(3)
    s = rng.standard_normal(SR)
    s -= s.mean()
    n = rng.standard_normal(SR)
    n -= n.mean()
    n -= (n @ s) / (s @ s) * s  # zero-mean and orthogonal to s
    n *= math.sqrt((s @ s) / (n @ n) / 10.0)  # energy ratio exactly 10 dB
    assert sm.si_sdr(s, s + n, SR) == pytest.approx(10.0, abs=1e-9)
    assert sm.si_sdr(s, 0.01 * (s + n), SR) == pytest.approx(10.0, abs=1e-9)  # scale invariant
    e = float(np.sum((s - s.mean()) ** 2))
    assert sm.si_sdr(s, s, SR) == pytest.approx(10 * math.log10((e + 1e-12) / 1e-12), rel=1e-12)


@pytest.mark.parametrize("est", [np.zeros(SR), np.full(SR, -0.1)], ids=["zeros", "dc"])
def test_silent_estimate_raises_in_both_packages(est):
    s = _speechlike(SR)
    with pytest.raises(sm.MetricUndefinedError, match=r"SI-SDR is undefined for a (silent|DC-only) estimate"):
        sm.si_sdr(s, est, SR)
    with pytest.raises(ValueError, match="estimate is silent"):
        se_data.si_sdr_db(s, est)


# ----------------------------------------------------------------------------- report helpers
def test_score_pair_equals_the_single_metrics(pair):
    c, e = pair
    names = ["pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "snr", "ssnr", "lsd", "llr", "wss",
             "csig", "cbak", "covl"]
    got = sm.score_pair(c, e, SR, names)
    assert list(got) == names and set(names) == set(sm.METRIC_LABELS)
    comp = sm.composite(c, e, SR)
    want = {"pesq_wb": sm.pesq(c, e, SR, "wb"), "pesq_nb": sm.pesq(c, e, SR, "nb"),
            "stoi": sm.stoi(c, e, SR), "si_sdr": sm.si_sdr(c, e, SR), "snr": sm.snr(c, e, SR),
            "ssnr": sm.ssnr(c, e, SR), "lsd": sm.lsd(c, e, SR), "llr": sm.llr(c, e, SR),
            "wss": sm.wss(c, e, SR), **comp}
    for k, v in want.items():
        assert got[k] == v, k
    # pystoi's ESTOI varies in the last ulps between calls on the same arrays
    assert got["estoi"] == pytest.approx(sm.stoi(c, e, SR, extended=True), abs=1e-12)
    assert _same(sm.score_pair(c, e, sr=SR), {k: got[k] for k in ("pesq_wb", "estoi", "si_sdr")})


def test_score_pair_failure_policy():
    c = _speechlike(SR)
    silent = np.zeros(SR)
    got = sm.score_pair(c, silent, SR, ["pesq_wb", "si_sdr", "snr", "csig", "covl"])
    assert math.isnan(got["pesq_wb"]) and math.isnan(got["si_sdr"])
    assert math.isnan(got["csig"]) and math.isnan(got["covl"])  # the composite needs PESQ
    assert got["snr"] == 0.0  # sum s^2 / sum (0 - s)^2 = 1
    with pytest.raises(sm.MetricUndefinedError, match="silent estimate"):
        sm.score_pair(c, silent, SR, ["si_sdr"], on_error="raise")
    with pytest.raises(ValueError, match="unknown metric.*'pesq'"):
        sm.score_pair(c, c, SR, ["pesq"])
    with pytest.raises(ValueError, match="on_error"):
        sm.score_pair(c, c, SR, on_error="skip")
    # a pair no metric can score, and a rate a metric is not defined at, raise even with "nan"
    with pytest.raises(sm.MetricInputError, match="differ in length"):
        sm.score_pair(c, c[:-10], SR, ["si_sdr"])
    with pytest.raises(sm.MetricInputError, match="reference is silent"):
        sm.score_pair(silent, c, SR, ["snr"])
    with pytest.raises(sm.MetricSampleRateError):
        sm.score_pair(_speechlike(22050), _speechlike(22050), 22050, ["stoi", "pesq_wb"])


def test_mean_scores_skips_nan():
    rows = [{"a": 1.0, "b": math.nan}, {"a": 3.0, "b": 2.0}, {"a": 5.0}]
    got = sm.mean_scores(rows, ["a", "b", "c"])
    assert got["a"] == {"mean": 3.0, "std": math.sqrt(8 / 3), "count": 3}
    assert got["b"] == {"mean": 2.0, "std": 0.0, "count": 1}
    assert got["c"] == {"mean": None, "std": None, "count": 0}


def test_format_metric_table_layout():
    cols = ("PESQ-WB", "ESTOI", "SI-SDR (dB)")
    rows = {"noisy": {"PESQ-WB": 1.5, "ESTOI": 0.5, "SI-SDR (dB)": 3.25, "files": 7},
            "enhanced": {"PESQ-WB": 2.0, "ESTOI": math.nan, "SI-SDR (dB)": 12.0, "files": 7}}
    got = sm.format_metric_table(rows, cols + ("files",), widths={"files": 8})
    # the layout tools/train_bsdt.py's report prints: 10-character labels, 14-wide metric cells
    head = f"{'':10s}" + "".join(f"{c:>14s}" for c in cols) + f"{'files':>8s}"
    want = [head, "-" * len(head)]
    for name, v in rows.items():
        want.append(f"{name:10s}" + "".join(f"{v[c]:14.3f}" for c in cols) + f"{v['files']:8d}")
    assert got == "\n".join(want)
    # headers map keys to headings; missing values print as '-'; long labels widen the column
    t = sm.format_metric_table([("a much longer label", {"si_sdr": 1.0})], ["si_sdr", "pesq_wb"],
                               headers=sm.METRIC_LABELS, width=12).splitlines()
    assert t[0] == " " * 19 + f"{'SI-SDR (dB)':>12s}{'PESQ-WB':>12s}"
    assert t[2] == "a much longer label" + f"{1.0:12.3f}" + f"{'-':>12s}"


def test_format_summary_table_with_out_dir(tmp_path):
    stats = {"mean": 1.0, "std": 0.5, "count": 2}
    summary = {"config": {"sr": 16000}, "enhanced": {"n_files": 3, "n_ok": 2, "metrics": {m: stats for m in sm.METRICS},
                                                     "failures": [{"file": "x.wav", "reason": "missing clean partner"}]},
               "resampled": [], "n_computed_this_run": 3}
    text = sm.format_summary_table(json.loads(json.dumps(summary)), tmp_path)
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "enhanced", "count", "undefined"]
    assert lines[2].split() == ["pesq_wb", "↑", "1.000", "±", "0.500", "2", "0"]  # a summary without n_undefined: 0
    assert "2/3 enhanced files scored, 1 failed" in text and "FAILED x.wav: missing clean partner" in text
    assert lines[-1] == (f"wrote {tmp_path / 'per_file.csv'} and {tmp_path / 'summary.json'} "
                         f"(3 file(s) computed this run)")
    assert "wrote" not in sm.format_summary_table(summary)
    assert sm.is_evaluation_dir(tmp_path) is False
    (tmp_path / "per_file.csv").write_text("file\n")
    assert sm.is_evaluation_dir(tmp_path) is True


def test_composite_frame_mean_without_frames_is_a_metric_error():
    """keep_lowest_mean of no frames raises the package's error (not a NameError)."""
    from se_metrics import MetricInputError
    from se_metrics._frames import keep_lowest_mean

    with pytest.raises(MetricInputError, match="no complete 30 ms frame"):
        keep_lowest_mean(np.zeros(0))
    assert keep_lowest_mean(np.arange(10.0), 0.5) == 2.0  # the 5 smallest: 0..4
