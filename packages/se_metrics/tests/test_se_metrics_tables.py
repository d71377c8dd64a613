"""labelled_scores (score_pair keyed by table headings, NaN for undefined metrics) and
mean_rows (per-row means skipping NaN) feeding format_metric_table."""

from __future__ import annotations

import math

import numpy as np
import pytest

import se_metrics as sm

SR = 16000


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return 0.1 * rng.standard_normal(n) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))


def test_labelled_scores_are_score_pair_under_the_headings() -> None:
    c = _speechlike(SR)
    e = c + 0.3 * _speechlike(SR, 1)
    got = sm.labelled_scores(c, e, SR)
    assert list(got) == ["PESQ-WB", "ESTOI", "SI-SDR (dB)"]
    ref = sm.score_pair(c, e, SR, ("pesq_wb", "estoi", "si_sdr"))
    assert got["PESQ-WB"] == ref["pesq_wb"] and got["SI-SDR (dB)"] == ref["si_sdr"]
    assert got["ESTOI"] == pytest.approx(ref["estoi"], rel=1e-12)  # pystoi: last-ulp noise between calls
    # SI-SDR of a clean signal plus noise 0.3x as loud: 20 log10(1 / 0.3) within a dB
    assert abs(got["SI-SDR (dB)"] - 10.46) < 1.0
    assert list(sm.labelled_scores(c, e, SR, ("snr",))) == ["SNR (dB)"]


def test_labelled_scores_record_undefined_metrics_as_nan_and_raise_on_bad_pairs() -> None:
    c = _speechlike(SR)
    silent = sm.labelled_scores(c, np.zeros(SR), SR)
    assert math.isnan(silent["SI-SDR (dB)"]) and math.isnan(silent["PESQ-WB"])
    with pytest.raises(sm.MetricInputError):  # a silent reference is a mistake upstream
        sm.labelled_scores(np.zeros(SR), c, SR)


def test_mean_rows_skip_nan_keep_order_and_print() -> None:
    groups = {"noisy": [{"A": 1.0, "B": 2.0}, {"A": 3.0, "B": float("nan")}],
              "enhanced": [{"A": float("nan"), "B": 5.0}, {"A": float("nan"), "B": 6.0}]}
    rows = sm.mean_rows(groups, ["B", "A"])
    assert rows == {"noisy": {"B": 2.0, "A": 2.0}, "enhanced": {"B": 5.5, "A": None}}
    assert list(rows) == ["noisy", "enhanced"] and list(rows["noisy"]) == ["B", "A"]
    table = sm.format_metric_table(rows, ["A", "B"], width=8)
    assert table.splitlines() == ["                 A       B", "-" * 26,
                                  "noisy        2.000   2.000", "enhanced         -   5.500"]
