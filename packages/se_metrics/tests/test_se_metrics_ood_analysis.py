"""se_metrics.ood_analysis: AUROC in its Mann-Whitney form (ties half) against hand-counted
examples, brute-force pair counts and scipy's U statistic; breakdown means and counts; the
condition-manifest reader."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from se_metrics import auroc, auroc_by_group, breakdown, correlation, read_condition_manifest


def _pairs(id_s, ood_s) -> float:
    """P(ood > id) + 1/2 P(ood == id) by counting every pair."""
    a, b = np.asarray(id_s, float), np.asarray(ood_s, float)
    return float(((b[None, :] > a[:, None]).sum() + 0.5 * (b[None, :] == a[:, None]).sum()) / (a.size * b.size))


def test_auroc_hand_examples() -> None:
    # roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) = 0.75: of the 4 pairs only (0.4, 0.35) is wrong
    assert auroc([0.1, 0.4], [0.35, 0.8]) == 0.75
    # ties: id [1, 2, 3], ood [2, 3, 4] -> (3 + 2.5 + 1.5) / 9
    assert auroc([1, 2, 3], [2, 3, 4]) == pytest.approx(7 / 9, abs=1e-15)
    assert auroc([0, 0], [1, 1, 1]) == 1.0 and auroc([1, 1, 1], [0, 0]) == 0.0
    assert auroc([5.0] * 3, [5.0] * 4) == 0.5  # a constant score is chance
    assert auroc([1], [1]) == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_equals_pair_counts_and_mann_whitney_u(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, size=17).astype(float)  # few distinct values: many ties
    b = rng.integers(1, 8, size=11).astype(float)
    want = _pairs(a, b)
    assert auroc(a, b) == pytest.approx(want, abs=1e-12)
    u = mannwhitneyu(b, a, alternative="two-sided", method="asymptotic").statistic  # U of the first sample
    assert auroc(a, b) == pytest.approx(u / (a.size * b.size), abs=1e-12)
    assert auroc(b, a) == pytest.approx(1.0 - want, abs=1e-12)  # swapping the sides mirrors it


def test_auroc_refuses_empty_and_non_finite() -> None:
    with pytest.raises(ValueError, match="at least one score"):
        auroc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        auroc([1.0, math.nan], [2.0])


def test_breakdown_means_counts_and_order() -> None:
    rows = [
        {"set": "OOD", "snr_db": 10.0, "noise_class": "dog", "a": 1.0, "b": 4.0},
        {"set": "OOD", "snr_db": 0.0, "noise_class": "dog", "a": 3.0, "b": math.nan},
        {"set": "OOD", "snr_db": 0.0, "noise_class": "rain", "a": 5.0, "b": 2.0},
        {"set": "ID", "a": 7.0, "b": 1.0},  # no tags: left out of the tagged groups
    ]
    by_snr = breakdown(rows, ("snr_db",), ("a", "b"))
    assert by_snr == [{"snr_db": 0.0, "files": 2, "a": 4.0, "b": 2.0},  # NaN skipped in b
                      {"snr_db": 10.0, "files": 1, "a": 1.0, "b": 4.0}]
    by_class = breakdown(rows, ("set", "noise_class"), ("a",), count_key="n")
    assert by_class == [{"set": "OOD", "noise_class": "dog", "n": 2, "a": 2.0},
                        {"set": "OOD", "noise_class": "rain", "n": 1, "a": 5.0}]
    everything = breakdown(rows, (), ("a",))
    assert everything == [{"files": 4, "a": 4.0}]
    assert breakdown([{"k": "x", "a": math.nan}], ("k",), ("a",)) == [{"k": "x", "files": 1, "a": None}]


def test_read_condition_manifest(tmp_path: Path) -> None:
    p = tmp_path / "manifest.csv"
    p.write_text("file,clean_source,noise_class,snr_db\nsub/a_dog_snr0dB.wav,a.wav,dog,0.0\nb.wav,b.wav,rain,-5\n"
                 "c.wav,c.wav,,\n")
    m = read_condition_manifest(p)
    assert m["sub/a_dog_snr0dB.wav"] == {"snr_db": 0.0, "noise_class": "dog"}
    assert m["a_dog_snr0dB.wav"] is m["sub/a_dog_snr0dB.wav"] is m["a_dog_snr0dB"]  # name and stem aliases
    assert m["b"] == {"snr_db": -5.0, "noise_class": "rain"} and m["c.wav"] == {"snr_db": None, "noise_class": None}
    q = tmp_path / "names.csv"
    q.write_text("name,snr_db\nx,3\n")
    assert read_condition_manifest(q) == {"x": {"snr_db": 3.0, "noise_class": None}}
    for text, message in (("file,seed\na.wav,1\n", "needs a 'file'"), ("file,snr_db\na.wav,loud\n", "not a finite"),
                          ("file,snr_db\na.wav,1\na.wav,2\n", "listed twice"), ("file,snr_db\na.wav,nan\n", "finite")):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_condition_manifest(bad)


def test_auroc_by_group_whole_and_per_condition() -> None:
    """All ID rows against all OOD rows, then against each SNR / class's OOD rows; rows without
    a finite score are left out of their column."""
    rows = [{"set": "ID", "s": v} for v in (0.1, 0.2, 0.3, "")] + [
        {"set": "OOD", "s": 0.25, "snr_db": 0.0, "noise_class": "dog"},
        {"set": "OOD", "s": 0.9, "snr_db": 5.0, "noise_class": "dog"},
        {"set": "OOD", "s": 0.05, "snr_db": 5.0, "noise_class": "rain"},
        {"set": "OOD", "s": None, "snr_db": 10.0, "noise_class": "rain"},
    ]
    res = auroc_by_group(rows, {"s": "score", "missing": "never there"})
    assert list(res) == ["s"]
    e = res["s"]
    assert (e["label"], e["n_id"], e["n_ood"]) == ("score", 3, 3)
    assert e["auroc"] == pytest.approx(auroc([0.1, 0.2, 0.3], [0.25, 0.9, 0.05]))
    # 0.25 beats 2 of 3 ID scores, 0.9 all 3, 0.05 none: (2 + 3 + 0) / 9
    assert e["auroc"] == pytest.approx(5 / 9)
    assert e["by_snr_db"] == {"0": {"auroc": pytest.approx(2 / 3), "n_ood": 1},
                              "5": {"auroc": pytest.approx(0.5), "n_ood": 2}}
    assert e["by_noise_class"]["rain"] == {"auroc": 0.0, "n_ood": 1}


def test_correlation_matches_numpy_and_skips_undefined_pairs() -> None:
    x = [1.0, 2.0, 3.0, 4.0, float("nan"), 6.0]
    y = [2.0, 1.0, 4.0, 3.0, 7.0, 8.0]
    c = correlation(x, y)
    keep = [0, 1, 2, 3, 5]
    want = np.corrcoef(np.array(x)[keep], np.array(y)[keep])[0, 1]
    assert c["n"] == 5 and c["pearson"] == pytest.approx(want, rel=1e-12)
    # ranks (1, 2, 3, 4, 5) against (2, 1, 4, 3, 5): Spearman = 1 - 6 * 4 / (5 * 24) = 0.8
    assert c["spearman"] == pytest.approx(0.8, rel=1e-12)
    flat = correlation([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0])
    assert math.isnan(flat["pearson"]) and math.isnan(flat["spearman"]) and flat["n"] == 4
    assert correlation([1.0, 2.0], [2.0, 1.0])["n"] == 2
    with pytest.raises(ValueError, match="equally long"):
        correlation([1.0, 2.0, 3.0], [1.0, 2.0])
