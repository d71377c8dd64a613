"""Composite measures CSIG / CBAK / COVL (Hu & Loizou 2008), as Loizou's composite.m.

The regressions combine PESQ, LLR, WSS and segmental SNR:

    CSIG = 3.093 - 1.029 LLR + 0.603 PESQ - 0.009 WSS
    CBAK = 1.634 + 0.478 PESQ - 0.007 WSS + 0.063 SSNR
    COVL = 1.594 + 0.805 PESQ - 0.512 LLR - 0.007 WSS

each clipped to [1, 5]. PESQ inside is wide-band PESQ at 16 kHz, as recent VoiceBank-DEMAND
tables use (composite.m itself used the narrow-band raw score).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validate import MetricUndefinedError, check_pair, sample_rate_alias, wrong_rate
from .lpc import llr
from .pesq_stoi import pesq
from .segmental import ssnr
from .weighted_slope import wss

COMPOSITE_SR = 16000
#: the composite measures, in the evaluator's column order
COMPOSITE_NAMES = ("csig", "cbak", "covl")


def composite_from_parts(pesq_wb: float, llr: float, wss: float, ssnr: float) -> dict[str, float]:
    """CSIG / CBAK / COVL (each in [1, 5]) from already computed PESQ-WB, LLR, WSS and SSNR (dB)."""
    csig = 3.093 - 1.029 * llr + 0.603 * pesq_wb - 0.009 * wss
    cbak = 1.634 + 0.478 * pesq_wb - 0.007 * wss + 0.063 * ssnr
    covl = 1.594 + 0.805 * pesq_wb - 0.512 * llr - 0.007 * wss
    return {k: float(np.clip(v, 1.0, 5.0)) for k, v in (("csig", csig), ("cbak", cbak), ("covl", covl))}


def part_undefined(part: str, err: MetricUndefinedError) -> MetricUndefinedError:
    """The composite's error when its input ``part`` (``"pesq_wb"``, ``"llr"``, ``"wss"`` or
    ``"ssnr"``) is undefined for the pair with ``err``: the composite is undefined with it."""
    return MetricUndefinedError(
        f"the composite measures (CSIG / CBAK / COVL) are undefined for this pair: they combine "
        f"PESQ-WB, LLR, WSS and SSNR, and {part} is undefined: {err}",
        reason=f"needs {part}, which is undefined ({err.reason})")


@sample_rate_alias
def composite(clean: Any, enhanced: Any, sample_rate: int) -> dict[str, float]:
    """CSIG, CBAK, COVL (Hu & Loizou 2008; 1 ... 5, higher is better) of ``enhanced`` [T]
    against ``clean`` [T]. ``sample_rate`` (``sr=`` also accepted) must be 16000 Hz (wide-band
    PESQ inside); another rate raises :class:`MetricSampleRateError`. Undefined
    (:class:`MetricUndefinedError`) wherever PESQ-WB, LLR, WSS or SSNR is: e.g. a silent
    estimate or a pair shorter than PESQ's 0.25 s."""
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    if sr != COMPOSITE_SR:
        raise wrong_rate("the composite measures use wide-band PESQ and need 16000 Hz", sr, COMPOSITE_SR)
    parts: dict[str, float] = {}
    for name, fn in (("pesq_wb", lambda: pesq(c, e, sr, "wb")), ("llr", lambda: llr(c, e, sr)),
                     ("wss", lambda: wss(c, e, sr)), ("ssnr", lambda: ssnr(c, e, sr))):
        try:
            parts[name] = fn()
        except MetricUndefinedError as err:
            raise part_undefined(name, err) from err
    return composite_from_parts(parts["pesq_wb"], parts["llr"], parts["wss"], parts["ssnr"])
