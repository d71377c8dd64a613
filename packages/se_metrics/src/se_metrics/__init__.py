"""se_metrics: speech-enhancement metrics, a batch evaluator and the tables tools print.

Every metric takes ``(clean, enhanced, sample_rate)`` (reference first, as pesq and pystoi):
1-D numpy arrays or torch tensors ``[T]`` and the sample rate in Hz (``sr=`` is accepted as the
keyword's older name). Bad input raises :class:`MetricInputError`; a rate a metric is not
defined at raises its subclass :class:`MetricSampleRateError`, also a
:class:`se_data.SampleRateError`; a valid pair for which one metric has no meaningful value
(silent or DC-only estimate, shorter than that metric's minimum, too little speech) raises
the subclass :class:`MetricUndefinedError` from that metric only
(:func:`evaluate_pair_defined` returns the defined metrics and the reasons for the others).
:func:`metric_pool` / :func:`submit_pairs` score per-utterance metrics in worker processes
while the caller works on (validation, MetricGAN targets). :func:`dnsmos` is non-intrusive (one clip, no reference): DNSMOS P.835 / P.808 with the
official ONNX models, from the ``dnsmos`` extra. :mod:`se_metrics.condition_report` tabulates an
evaluation of every file under several conditions (``tools/eval_ood.py``): means, breakdowns, Markdown.
"""

from ._validate import MetricInputError, MetricSampleRateError, MetricUndefinedError
from .batch import evaluate_dir, is_evaluation_dir
from .composite_measures import composite
from .condition_report import (condition_breakdown, condition_markdown, condition_means, condition_tags,
                               set_file_pairs, write_dict_rows)
from .evaluate import LOWER_IS_BETTER, METRICS, evaluate_pair, evaluate_pair_defined
from .lpc import llr
from .log_spectral import lsd
from .non_intrusive import DNSMOS, DNSMOS_LABELS, DNSMOS_METRICS, DnsmosUnavailableError, dnsmos, \
    dnsmos_model_info
from .ood_analysis import auroc, auroc_by_group, breakdown, correlation, read_condition_manifest
from .pesq_stoi import pesq, stoi, stoi_pair
from .pool import PendingScores, metric_pool, score_pairs, submit_pairs
from .report import METRIC_LABELS, format_metric_table, format_summary_table, mean_scores, score_pair
from .sdr import si_sdr, snr
from .segmental import ssnr
from .study_stats import MeanCI, PairedTest, best_indices, item_means, mean_ci, paired_test
from .tables import DEFAULT_TABLE_METRICS, labelled_scores, mean_rows
from .weighted_slope import wss

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TABLE_METRICS",
    "DNSMOS",
    "DNSMOS_LABELS",
    "DNSMOS_METRICS",
    "DnsmosUnavailableError",
    "LOWER_IS_BETTER",
    "METRICS",
    "METRIC_LABELS",
    "MeanCI",
    "MetricInputError",
    "MetricSampleRateError",
    "PairedTest",
    "MetricUndefinedError",
    "PendingScores",
    "auroc",
    "auroc_by_group",
    "best_indices",
    "breakdown",
    "correlation",
    "composite",
    "condition_breakdown",
    "condition_markdown",
    "condition_means",
    "condition_tags",
    "dnsmos",
    "dnsmos_model_info",
    "evaluate_dir",
    "evaluate_pair",
    "evaluate_pair_defined",
    "format_metric_table",
    "format_summary_table",
    "is_evaluation_dir",
    "item_means",
    "labelled_scores",
    "llr",
    "lsd",
    "mean_rows",
    "mean_ci",
    "mean_scores",
    "metric_pool",
    "paired_test",
    "pesq",
    "read_condition_manifest",
    "score_pair",
    "score_pairs",
    "set_file_pairs",
    "si_sdr",
    "snr",
    "ssnr",
    "stoi",
    "stoi_pair",
    "submit_pairs",
    "write_dict_rows",
    "wss",
]
