"""All metrics of one (clean, enhanced) pair in one call, and the undefined ones with reasons.

:func:`evaluate_pair_defined` returns every metric of :data:`METRICS` that is defined for the
pair plus a short reason for each undefined one (see :class:`MetricUndefinedError`);
:func:`evaluate_pair` raises for an undefined metric by default, or records NaN with
``undefined="nan"``. :func:`join_undefined` / :func:`split_undefined` turn the reasons into the
one-line text the evaluator's ``undefined`` column holds and back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._validate import MetricUndefinedError, check_pair, sample_rate_alias, wrong_rate
from .composite_measures import COMPOSITE_NAMES, COMPOSITE_SR, composite_from_parts, part_undefined
from .log_spectral import lsd
from .lpc import llr
from .pesq_stoi import pesq, stoi_pair
from .sdr import si_sdr, snr
from .segmental import ssnr
from .weighted_slope import wss

#: The metric columns of the evaluator's CSV, in order (higher is better for all but ``lsd``).
METRICS: tuple[str, ...] = (
    "pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "snr", "ssnr", "lsd", "csig", "cbak", "covl")
#: Metrics where a lower value is better.
LOWER_IS_BETTER: frozenset[str] = frozenset({"lsd", "llr", "wss"})
_UNDEFINED_MODES = ("raise", "nan")
#: what the composite measures are computed from (Loizou's composite.m)
_COMPOSITE_PARTS = ("pesq_wb", "llr", "wss", "ssnr")


def check_metrics(metrics: Iterable[str] | None) -> tuple[str, ...]:
    """The chosen metrics as a tuple in :data:`METRICS` order (None: all of them); an unknown or
    repeated name, or none at all, raises ValueError naming the valid ones."""
    if metrics is None:
        return METRICS
    chosen = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in chosen if m not in METRICS]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        what = f"unknown metric(s) {unknown}" if unknown else "an empty or repeated selection"
        raise ValueError(f"metrics: {what} {chosen}; choose distinct names from {list(METRICS)}")
    return tuple(m for m in METRICS if m in chosen)


def _clean_reason(reason: str) -> str:
    """A reason fit for :func:`join_undefined`'s text: one line, no ``;`` (the separator)."""
    return " ".join(reason.replace(";", ",").split())


def join_undefined(undefined: Mapping[str, str]) -> str:
    """``{metric: reason}`` as one line, metrics sharing a reason grouped, in the mapping's
    order: ``"pesq_wb, pesq_nb: silent estimate (every sample is 0); csig, cbak, covl: needs
    pesq_wb, which is undefined (...)"``. Empty for an empty mapping."""
    groups: dict[str, list[str]] = {}
    for metric, reason in undefined.items():
        groups.setdefault(_clean_reason(reason), []).append(metric)
    return "; ".join(f"{', '.join(ms)}: {r}" for r, ms in groups.items())


def split_undefined(text: str) -> dict[str, str]:
    """Inverse of :func:`join_undefined`: ``{metric: reason}``. Raises ValueError for text not
    in that form."""
    out: dict[str, str] = {}
    for entry in filter(None, (t.strip() for t in text.split("; "))):
        names, sep, reason = entry.partition(": ")
        if not sep or not names:
            raise ValueError(f"not an 'undefined' entry ('metric, ...: reason'): {entry!r}")
        for name in names.split(", "):
            out[name] = reason
    return out


@sample_rate_alias
def evaluate_pair_defined(clean: Any, enhanced: Any, sample_rate: int, *, metrics: Iterable[str] | None = None
                          ) -> tuple[dict[str, float], dict[str, str]]:
    """The metrics of :data:`METRICS` (or the chosen ``metrics``) defined for ``enhanced`` [T]
    against ``clean`` [T] at 16000 Hz, and why each other one is undefined.

    Returns ``(values, undefined)``: ``values`` maps each defined metric to a finite float,
    ``undefined`` each undefined one to a short reason (``"silent estimate (every sample is
    0)"``, ``"too short (0.100 s < 0.250 s)"``, ...); together they hold every chosen metric,
    each in :data:`METRICS` order. Only what the chosen metrics need is computed: PESQ once
    (reused by the composite), STOI and ESTOI from one resampling, silent-frame removal and
    STFT (:func:`se_metrics.pesq_stoi.stoi_pair`, pystoi's values). The composite is undefined
    wherever PESQ-WB, LLR, WSS or SSNR is. Input that no metric can score (shape, length,
    NaN/Inf, silent reference, empty) raises :class:`MetricInputError`, a rate other than
    16000 Hz :class:`MetricSampleRateError`, an unknown metric name ValueError. ``sr=`` is
    accepted for ``sample_rate``.
    """
    names = check_metrics(metrics)
    c, e, sr = check_pair(clean, enhanced, sample_rate)
    if sr != COMPOSITE_SR:
        raise wrong_rate("evaluate_pair computes wide-band PESQ and the composite measures, which "
                         "need 16000 Hz", sr, COMPOSITE_SR)
    need = set(names) | (set(_COMPOSITE_PARTS) if set(COMPOSITE_NAMES) & set(names) else set())
    steps: dict[str, Callable[[], float]] = {
        "pesq_wb": lambda: pesq(c, e, sr, "wb"),
        "pesq_nb": lambda: pesq(c, e, sr, "nb"),
        "si_sdr": lambda: si_sdr(c, e, sr),
        "snr": lambda: snr(c, e, sr),
        "ssnr": lambda: ssnr(c, e, sr),
        "lsd": lambda: lsd(c, e, sr),
        "llr": lambda: llr(c, e, sr),   # composite inputs, not columns of their own
        "wss": lambda: wss(c, e, sr),
    }
    got: dict[str, float] = {}
    errors: dict[str, MetricUndefinedError] = {}
    stoi_kinds = tuple(ext for ext, m in ((False, "stoi"), (True, "estoi")) if m in need)
    if stoi_kinds:
        for ext, v in stoi_pair(c, e, sr, extended=stoi_kinds).items():
            if isinstance(v, MetricUndefinedError):
                errors["estoi" if ext else "stoi"] = v
            else:
                got["estoi" if ext else "stoi"] = v
    for name, step in steps.items():
        if name not in need:
            continue
        try:
            got[name] = step()
        except MetricUndefinedError as err:
            errors[name] = err
    if need >= set(_COMPOSITE_PARTS):
        missing = next((p for p in _COMPOSITE_PARTS if p in errors), None)
        if missing is None:
            got.update(composite_from_parts(got["pesq_wb"], got["llr"], got["wss"], got["ssnr"]))
        else:
            err = part_undefined(missing, errors[missing])
            errors.update({k: err for k in COMPOSITE_NAMES})
    values = {m: got[m] for m in names if m in got}
    undefined = {m: errors[m].reason for m in names if m in errors}
    return values, undefined


@sample_rate_alias
def evaluate_pair(clean: Any, enhanced: Any, sample_rate: int, *, undefined: str = "raise") -> dict[str, float]:
    """Every metric of :data:`METRICS` for ``enhanced`` [T] against ``clean`` [T] at 16000 Hz.

    Returns ``{"pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "snr", "ssnr", "lsd", "csig",
    "cbak", "covl"}`` as floats (PESQ computed once and reused by the composite). Raises
    MetricInputError for bad input, and its subclass MetricSampleRateError for
    ``sample_rate != 16000`` (wide-band PESQ and the composite are defined at 16 kHz; call the
    single metrics at other rates). ``sr=`` is accepted for ``sample_rate``.

    undefined: what a metric that is undefined for this pair (silent estimate, too short, ...;
        see :func:`evaluate_pair_defined`) gives: ``"raise"`` (default) raises
        :class:`MetricUndefinedError` naming every undefined metric and its reason; ``"nan"``
        records NaN for it and returns the others.
    """
    if undefined not in _UNDEFINED_MODES:
        raise ValueError(f"undefined must be one of {_UNDEFINED_MODES}, got {undefined!r}")
    values, why = evaluate_pair_defined(clean, enhanced, sample_rate)
    if why and undefined == "raise":
        text = join_undefined(why)
        raise MetricUndefinedError(
            f"{len(why)} metric(s) undefined for this pair: {text}. Use evaluate_pair_defined (or "
            f"undefined='nan') to get the defined ones.", reason=text)
    return {m: values.get(m, math.nan) for m in METRICS}
