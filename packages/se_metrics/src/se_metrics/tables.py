"""Result tables keyed by column headings: what a tool prints and writes to JSON / CSV.

* :func:`labelled_scores` -- :func:`score_pair` with ``on_error="nan"``, keyed by the
  metrics' headings (``"PESQ-WB"``, ``"ESTOI"``, ``"SI-SDR (dB)"``, ... from
  :data:`METRIC_LABELS`), so per-file rows, means and :func:`format_metric_table` share keys.
* :func:`mean_rows` -- ``{row label: {column: mean over that row's files}}``, NaN skipped (as
  :func:`mean_scores`), ready for :func:`format_metric_table`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .report import METRIC_LABELS, mean_scores, score_pair

__all__ = ["DEFAULT_TABLE_METRICS", "labelled_scores", "mean_rows"]

#: the metrics of the toolkit's training and enhancement tables
DEFAULT_TABLE_METRICS = ("pesq_wb", "estoi", "si_sdr")


def labelled_scores(clean: Any, enhanced: Any, sample_rate: int,
                    metrics: Sequence[str] = DEFAULT_TABLE_METRICS) -> dict[str, float]:
    """``score_pair(clean, enhanced, sample_rate, metrics, on_error="nan")`` with each metric
    under its heading in :data:`METRIC_LABELS` (``{"PESQ-WB": ..., "ESTOI": ...,
    "SI-SDR (dB)": ...}`` by default), in ``metrics`` order. A metric undefined for the pair
    (it raises :class:`MetricUndefinedError`: e.g. SI-SDR or PESQ of a silent estimate, PESQ
    of a pair under 0.25 s) is NaN; a pair no metric can score and a wrong rate raise as in
    :func:`score_pair`."""
    return {METRIC_LABELS[m]: v for m, v in score_pair(clean, enhanced, sample_rate, metrics, on_error="nan").items()}


def mean_rows(groups: Mapping[str, Iterable[Mapping[str, float]]], columns: Sequence[str]
              ) -> dict[str, dict[str, float | None]]:
    """Per group (a table row, e.g. ``"noisy"`` / ``"enhanced"``) the mean of each column over
    its per-file rows, skipping NaN (missing scores); None where no file has a value (printed
    ``-`` by :func:`format_metric_table`). Row and column order are kept."""
    return {label: {c: s["mean"] for c, s in mean_scores(rows, columns).items()}  # type: ignore[misc]
            for label, rows in groups.items()}
