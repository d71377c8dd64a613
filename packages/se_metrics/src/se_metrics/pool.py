"""Per-utterance metrics in worker processes: a pool for callers that score while they work.

A trainer scores a few utterances at a time (validation PESQ, MetricGAN's PESQ targets) and
can go on computing while they are scored. :func:`metric_pool` makes the process pool (the
kind :func:`se_metrics.evaluate_dir` uses: workers started from a clean process, never by
forking the caller, one BLAS thread each); :func:`submit_pairs` hands it a list of pairs and
returns at once; :meth:`PendingScores.result` waits for exactly those scores. Without a pool
(``executor=None``) the same calls score in this process, item by item, with the same values:
each item is the same function on the same arrays.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor

import numpy as np

from .batch import _pool_context, _single_threaded_children

__all__ = ["PendingScores", "metric_pool", "score_pairs", "submit_pairs"]


def metric_pool(workers: int | None = None) -> ProcessPoolExecutor | None:
    """A process pool of ``workers`` processes (default ``os.cpu_count()``) for
    :func:`submit_pairs`, its workers started now (so their start-up overlaps the caller's
    work); None for ``workers=0`` (score in the calling process). Close it with ``shutdown()``
    or use it as a context manager. Metrics sent to it must pickle by reference: a module-level
    function or a ``functools.partial`` of one (e.g. ``partial(se_metrics.pesq,
    sample_rate=16000, mode="wb")``), not a lambda.
    """
    n = int(os.cpu_count() or 1) if workers is None else int(workers)
    if n < 0:
        raise ValueError(f"workers must be >= 0 (0: no pool), got {workers}")
    if n == 0:
        return None
    pool = ProcessPoolExecutor(max_workers=n, mp_context=_pool_context())
    with _single_threaded_children():  # the workers (and a fork server) start here, one per task
        for _ in range(n):
            pool.submit(int)
    return pool


def _score_one(metric: Callable[[np.ndarray, np.ndarray], float], reference: np.ndarray,
               estimate: np.ndarray) -> float:
    """``float(metric(reference, estimate))``, NaN where the metric raises (an item without a
    score, e.g. a silent crop without PESQ, is left out by the caller, not the whole batch)."""
    try:
        return float(metric(reference, estimate))
    except Exception:  # noqa: BLE001 - any failure of one item is that item's NaN
        return math.nan


class PendingScores:
    """The scores of one :func:`submit_pairs` call; :meth:`result` waits for them."""

    def __init__(self, items: list[Future[float] | float]) -> None:
        self._items = items

    def done(self) -> bool:
        return all(not isinstance(i, Future) or i.done() for i in self._items)

    def result(self) -> list[float]:
        """One float per pair, in the order given (NaN where the metric raised)."""
        return [i.result() if isinstance(i, Future) else i for i in self._items]


def submit_pairs(metric: Callable[[np.ndarray, np.ndarray], float], references: Sequence[np.ndarray],
                 estimates: Sequence[np.ndarray], executor: Executor | None = None) -> PendingScores:
    """Start ``metric(reference, estimate)`` for each pair (1-D arrays ``[T]``, lengths may
    differ between pairs) on ``executor`` (one task per pair) and return at once; without an
    executor they are scored here, now. Either way :meth:`PendingScores.result` gives the
    same values: NaN where the metric raised."""
    if len(references) != len(estimates):
        raise ValueError(f"references and estimates must pair up, got {len(references)} and {len(estimates)}")
    if executor is None:
        return PendingScores([_score_one(metric, r, e) for r, e in zip(references, estimates)])
    return PendingScores([executor.submit(_score_one, metric, np.asarray(r), np.asarray(e))
                          for r, e in zip(references, estimates)])


def score_pairs(metric: Callable[[np.ndarray, np.ndarray], float], references: Sequence[np.ndarray],
                estimates: Sequence[np.ndarray], executor: Executor | None = None) -> list[float]:
    """``submit_pairs(...).result()``: one score per pair, NaN where the metric raised."""
    return submit_pairs(metric, references, estimates, executor).result()
