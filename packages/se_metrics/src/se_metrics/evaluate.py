"""All metrics of one (clean, enhanced) pair in one call."""

from __future__ import annotations

from typing import Any

from ._validate import check_pair, sample_rate_alias, wrong_rate
from .composite_measures import COMPOSITE_SR, composite_from_parts, loizou_parts
from .log_spectral import lsd
from .pesq_stoi import pesq, stoi
from .sdr import si_sdr, snr

#: The metric columns of the evaluator's CSV, in order (higher is better for all but ``lsd``).
METRICS: tuple[str, ...] = (
    "pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "snr", "ssnr", "lsd", "csig", "cbak", "covl")
#: Metrics where a lower value is better.
LOWER_IS_BETTER: frozenset[str] = frozenset({"lsd", "llr", "wss"})


@sample_rate_alias
def evaluate_pair(clean: Any, enhanced: Any, sample_rate: int) -> dict[str, float]:
    """Every metric of :data:`METRICS` for ``enhanced`` [T] against ``clean`` [T] at 16000 Hz.

    Returns ``{"pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "snr", "ssnr", "lsd", "csig",
    "cbak", "covl"}`` as floats (PESQ computed once and reused by the composite). Raises
    MetricInputError for bad input, and its subclass MetricSampleRateError for
    ``sample_rate != 16000`` (wide-band PESQ and the composite are defined at 16 kHz; call the
    single metrics at other rates). ``sr=`` is accepted for ``sample_rate``.
    """
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    if sr != COMPOSITE_SR:
        raise wrong_rate("evaluate_pair computes wide-band PESQ and the composite measures, which "
                         "need 16000 Hz", sr, COMPOSITE_SR)
    out = {
        "pesq_wb": pesq(c, e, sr, "wb"),
        "pesq_nb": pesq(c, e, sr, "nb"),
        "stoi": stoi(c, e, sr, extended=False),
        "estoi": stoi(c, e, sr, extended=True),
        "si_sdr": si_sdr(c, e, sr),
        "snr": snr(c, e, sr),
    }
    parts = loizou_parts(c, e, sr)
    out["ssnr"] = parts["ssnr"]
    out["lsd"] = lsd(c, e, sr)
    out.update(composite_from_parts(out["pesq_wb"], parts["llr"], parts["wss"], parts["ssnr"]))
    return {k: out[k] for k in METRICS}
