"""Statistics of a comparison study: a mean with its confidence interval over training seeds,
and a paired test of two systems over the same test files.

* :func:`mean_ci` -- mean and the two-sided Student-t confidence interval of the mean
  (``t_{1-(1-c)/2, n-1} * s / sqrt(n)``, ``s`` the sample standard deviation with ``n - 1``):
  the spread of a configuration's score over independently trained seeds.
* :func:`paired_test` -- the Wilcoxon signed-rank test (``scipy.stats.wilcoxon``, two-sided,
  exact distribution for small samples as scipy chooses) on per-file score differences of two
  systems scored on the same utterances; the paired test is far more sensitive than comparing
  two means, because the utterances' own difficulty cancels out.
* :func:`item_means` -- per test item the mean over seeds of its score: what
  :func:`paired_test` pairs when a configuration was trained with several seeds.
* :func:`best_indices` -- which entries of a table column hold its best value (ties: all).

NaN values are missing scores (a metric undefined for a file) and are left out: of a list in
:func:`mean_ci`, of a pair (both members) in :func:`paired_test`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["MeanCI", "PairedTest", "best_indices", "item_means", "mean_ci", "paired_test"]


@dataclass(frozen=True)
class MeanCI:
    """Mean of ``n`` values with the half-width of its ``confidence`` interval.

    ``half_width`` is None for fewer than two values (no spread to estimate); ``mean`` is None
    for none. ``low`` / ``high`` are ``mean -/+ half_width``."""

    mean: float | None
    half_width: float | None
    n: int
    std: float | None  # sample standard deviation (ddof 1), None for n < 2
    confidence: float = 0.95

    @property
    def low(self) -> float | None:
        return None if self.mean is None or self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.mean is None or self.half_width is None else self.mean + self.half_width


@dataclass(frozen=True)
class PairedTest:
    """Wilcoxon signed-rank test of ``a - b`` over ``n`` paired files.

    ``mean_diff``: mean of the per-file differences ``a - b``; ``statistic`` / ``p_value``:
    scipy's two-sided result, None for no pairs. All-zero differences (two identical systems)
    give ``p_value`` 1.0: no evidence of a difference."""

    n: int
    mean_diff: float | None
    statistic: float | None
    p_value: float | None


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    return a[np.isfinite(a)]


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    """Mean and Student-t confidence interval of ``values`` (one per seed; NaN/None skipped).

    >>> r = mean_ci([1.0, 2.0, 3.0])
    >>> round(r.mean, 6), round(r.half_width, 4)   # t_{0.975, 2} = 4.3027, s = 1
    (2.0, 2.4841)
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    a = _finite(values)
    n = int(a.size)
    if n == 0:
        return MeanCI(None, None, 0, None, confidence)
    mean = float(a.mean())
    if n < 2:
        return MeanCI(mean, None, 1, None, confidence)
    from scipy.stats import t  # noqa: PLC0415 - scipy is heavy; only statistics need it

    std = float(a.std(ddof=1))
    half = float(t.ppf(0.5 + confidence / 2.0, n - 1)) * std / math.sqrt(n)
    return MeanCI(mean, half, n, std, confidence)


def paired_test(a: Sequence[float] | Mapping[str, float], b: Sequence[float] | Mapping[str, float]) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of per-file scores ``a`` against ``b``.

    ``a`` and ``b`` are equal-length sequences in the same file order, or mappings
    ``{file: score}`` paired on their common files. Pairs with a NaN/None member are dropped.
    """
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            raise TypeError("paired_test: give two sequences or two {file: score} mappings")
        files = sorted(set(a) & set(b))
        xa, xb = [a[f] for f in files], [b[f] for f in files]
    else:
        if len(a) != len(b):
            raise ValueError(f"paired_test: {len(a)} and {len(b)} scores; pairs need equal lengths")
        xa, xb = list(a), list(b)
    x = np.asarray([np.nan if v is None else v for v in xa], dtype=np.float64)
    y = np.asarray([np.nan if v is None else v for v in xb], dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    d = x[keep] - y[keep]
    n = int(d.size)
    if n == 0:
        return PairedTest(0, None, None, None)
    if not np.any(d):
        return PairedTest(n, 0.0, 0.0, 1.0)
    from scipy.stats import wilcoxon  # noqa: PLC0415

    res = wilcoxon(d)
    return PairedTest(n, float(d.mean()), float(res.statistic), float(res.pvalue))


def item_means(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per item the mean over runs (seeds) of its score; non-finite scores are left out.

    ``runs``: one ``{item: score}`` per seed (items: test files). An item appears in the result
    when at least one run scored it finitely, in the order items are first met.

    >>> item_means([{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": float("nan")}])
    {'a': 2.0, 'b': 2.0}
    """
    acc: dict[str, list[float]] = {}
    for run in runs:
        for item, v in run.items():
            if v is not None and math.isfinite(v):
                acc.setdefault(item, []).append(v)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def best_indices(values: Sequence[float | None], *, lower_is_better: bool = False) -> list[int]:
    """Indices of the best value of a table column (the maximum, or the minimum when
    ``lower_is_better``); every index that ties with it; ``[]`` when no value is defined.
    None and NaN are undefined and never best.

    >>> best_indices([2.0, None, 3.0, 3.0]), best_indices([2.0, 3.0], lower_is_better=True)
    ([2, 3], [0])
    """
    defined = [(i, float(v)) for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    if not defined:
        return []
    best = (min if lower_is_better else max)(v for _, v in defined)
    return [i for i, v in defined if v == best]
