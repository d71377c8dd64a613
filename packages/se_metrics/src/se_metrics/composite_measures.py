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

from ._validate import as_float64, check_pair, sample_rate_alias, wrong_rate
from ._frames import keep_lowest_mean
from .lpc import llr_frames
from .pesq_stoi import pesq
from .segmental import ssnr_frames
from .weighted_slope import wss_frames

COMPOSITE_SR = 16000


def composite_from_parts(pesq_wb: float, llr: float, wss: float, ssnr: float) -> dict[str, float]:
    """CSIG / CBAK / COVL (each in [1, 5]) from already computed PESQ-WB, LLR, WSS and SSNR (dB)."""
    csig = 3.093 - 1.029 * llr + 0.603 * pesq_wb - 0.009 * wss
    cbak = 1.634 + 0.478 * pesq_wb - 0.007 * wss + 0.063 * ssnr
    covl = 1.594 + 0.805 * pesq_wb - 0.512 * llr - 0.007 * wss
    return {k: float(np.clip(v, 1.0, 5.0)) for k, v in (("csig", csig), ("cbak", cbak), ("covl", covl))}


def loizou_parts(clean: Any, enhanced: Any, sr: int) -> dict[str, float]:
    """LLR (95 % lowest frames), WSS (95 % lowest frames) and SSNR (dB) of a pair [T] at ``sr``,
    computed from one validation pass. Keys ``llr``, ``wss``, ``ssnr``."""
    c, e, sr = check_pair(clean, enhanced, sr)
    c, e = as_float64(c, e)
    return {
        "llr": keep_lowest_mean(llr_frames(c, e, sr)),
        "wss": keep_lowest_mean(wss_frames(c, e, sr)),
        "ssnr": float(np.mean(ssnr_frames(c, e, sr))),
    }


@sample_rate_alias
def composite(clean: Any, enhanced: Any, sample_rate: int) -> dict[str, float]:
    """CSIG, CBAK, COVL (Hu & Loizou 2008; 1 ... 5, higher is better) of ``enhanced`` [T]
    against ``clean`` [T]. ``sample_rate`` (``sr=`` also accepted) must be 16000 Hz (wide-band
    PESQ inside); another rate raises :class:`MetricSampleRateError`."""
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    if sr != COMPOSITE_SR:
        raise wrong_rate("the composite measures use wide-band PESQ and need 16000 Hz", sr, COMPOSITE_SR)
    parts = loizou_parts(c, e, sr)
    return composite_from_parts(pesq(c, e, sr, "wb"), parts["llr"], parts["wss"], parts["ssnr"])
