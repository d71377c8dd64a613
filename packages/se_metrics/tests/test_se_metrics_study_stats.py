"""se_metrics.mean_ci / paired_test / item_means / best_indices against hand-computed values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from se_metrics import MeanCI, PairedTest, best_indices, item_means, mean_ci, paired_test


def test_mean_ci_equals_the_t_interval_by_hand() -> None:
    r = mean_ci([1.0, 2.0, 3.0])
    # s = 1; with 2 degrees of freedom the t quantile has a closed form,
    # t_p = (2p - 1) * sqrt(2 / (4 p (1 - p))): t_{0.975, 2} = 4.3027 (tables)
    t975 = 0.95 * math.sqrt(2.0 / (4 * 0.975 * 0.025))
    assert t975 == pytest.approx(4.3027, abs=1e-4)
    assert r.mean == 2.0 and r.n == 3 and r.std == pytest.approx(1.0)
    assert r.half_width == pytest.approx(t975 / math.sqrt(3), rel=1e-12)
    assert (r.low, r.high) == pytest.approx((2.0 - r.half_width, 2.0 + r.half_width))


def test_mean_ci_matches_scipy_interval_and_other_confidences() -> None:
    x = [3.05, 3.11, 2.98, 3.20, 3.07]
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    r = mean_ci(x)
    assert (r.low, r.high) == pytest.approx((lo, hi), rel=1e-12)
    r90 = mean_ci(x, confidence=0.90)
    assert r90.half_width < r.half_width
    assert r90.half_width == pytest.approx(stats.t.ppf(0.95, 4) * np.std(x, ddof=1) / math.sqrt(5))


def test_mean_ci_skips_missing_values_and_has_no_interval_for_one_seed() -> None:
    r = mean_ci([2.5, float("nan"), None, 3.5])  # type: ignore[list-item]
    assert r.n == 2 and r.mean == 3.0
    assert r.half_width == pytest.approx(stats.t.ppf(0.975, 1) * math.sqrt(0.5) / math.sqrt(2))
    one = mean_ci([1.25])
    assert one == MeanCI(1.25, None, 1, None) and one.low is None
    assert mean_ci([]).mean is None and mean_ci([float("nan")]).n == 0
    with pytest.raises(ValueError, match="confidence"):
        mean_ci([1.0, 2.0], confidence=95)


def test_paired_test_matches_scipy_wilcoxon() -> None:
    rng = np.random.default_rng(0)
    b = rng.normal(2.5, 0.4, size=20)
    a = b + rng.normal(0.1, 0.1, size=20)
    r = paired_test(list(a), list(b))
    ref = stats.wilcoxon(a - b)
    assert r.n == 20 and r.p_value == pytest.approx(float(ref.pvalue), rel=1e-12)
    assert r.statistic == float(ref.statistic) and r.mean_diff == pytest.approx(float(np.mean(a - b)))


def test_paired_test_exact_small_sample_by_hand() -> None:
    # 8 positive differences: W- = 0, exact two-sided p = 2 / 2^8
    r = paired_test([1, 2, 3, 4, 5, 6, 7, 8], [0] * 8)
    assert r.p_value == pytest.approx(2 / 256) and r.statistic == 0.0
    # identical systems: no evidence of a difference
    assert paired_test([1.0, 2.0], [1.0, 2.0]) == PairedTest(2, 0.0, 0.0, 1.0)


def test_paired_test_pairs_mappings_by_file_and_drops_missing() -> None:
    a = {"f1": 3.0, "f2": 2.0, "f3": float("nan"), "f4": 1.0, "only_a": 9.0}
    b = {"f1": 2.0, "f2": 2.5, "f3": 1.0, "f4": 0.0, "only_b": 0.0}
    r = paired_test(a, b)
    assert r.n == 3  # f1, f2, f4
    assert r.mean_diff == pytest.approx((1.0 - 0.5 + 1.0) / 3)
    assert r.p_value == pytest.approx(float(stats.wilcoxon([1.0, -0.5, 1.0]).pvalue))
    assert paired_test({"x": 1.0}, {"y": 1.0}) == PairedTest(0, None, None, None)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_test([1.0], [1.0, 2.0])
    with pytest.raises(TypeError):
        paired_test({"x": 1.0}, [1.0])


def test_item_means_average_each_item_over_seeds_skipping_missing() -> None:
    seeds = [{"f1": 1.0, "f2": 2.0, "f3": float("nan")}, {"f1": 2.0, "f2": float("inf")}, {"f1": 4.5, "f4": 0.25}]
    assert item_means(seeds) == {"f1": 2.5, "f2": 2.0, "f4": 0.25}  # f3: no finite score
    assert list(item_means(seeds)) == ["f1", "f2", "f4"]
    assert item_means([]) == {}
    # what paired_test pairs: items averaged over seeds first (here a 2-seed system against one seed)
    a = item_means([{"x": 3.0, "y": 2.0, "z": 2.5}, {"x": 1.0, "y": 4.0, "z": 2.5}])
    r = paired_test(a, {"x": 1.0, "y": 1.5, "z": 3.0})
    assert r.n == 3 and r.mean_diff == pytest.approx((1.0 + 1.5 - 0.5) / 3)


def test_best_indices_pick_the_column_best_with_ties_and_direction() -> None:
    col = [2.5, None, 3.25, float("nan"), 3.25, -1.0]
    assert best_indices(col) == [2, 4]
    assert best_indices(col, lower_is_better=True) == [5]
    assert best_indices([None, float("nan")]) == [] and best_indices([]) == []
    assert best_indices([0.0]) == [0]
