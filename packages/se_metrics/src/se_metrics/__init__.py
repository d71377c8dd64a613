"""se_metrics: speech-enhancement metrics and a batch evaluator.

Every metric takes ``(clean, enhanced, sr)`` (reference first), 1-D numpy arrays or torch
tensors ``[T]`` and the sample rate in Hz. Bad input raises :class:`MetricInputError`.
"""

from ._validate import MetricInputError
from .batch import evaluate_dir, format_summary_table
from .composite_measures import composite
from .evaluate import LOWER_IS_BETTER, METRICS, evaluate_pair
from .lpc import llr
from .log_spectral import lsd
from .pesq_stoi import pesq, stoi
from .sdr import si_sdr, snr
from .segmental import ssnr
from .weighted_slope import wss

__version__ = "0.1.0"

__all__ = [
    "LOWER_IS_BETTER",
    "METRICS",
    "MetricInputError",
    "composite",
    "evaluate_dir",
    "evaluate_pair",
    "format_summary_table",
    "llr",
    "lsd",
    "pesq",
    "si_sdr",
    "snr",
    "ssnr",
    "stoi",
    "wss",
]
