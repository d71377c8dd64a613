"""Scoring a chosen set of metrics with a failure policy, and the text tables tools print.

* :func:`score_pair` scores one (clean, estimate) pair with any subset of the metric names in
  :data:`METRIC_LABELS`. A metric that is undefined for this pair (it raises
  :class:`MetricUndefinedError`: no utterance for PESQ, too little speech for STOI, a silent,
  DC-only or near-silent estimate, a pair shorter than that metric's minimum) is NaN with
  ``on_error="nan"`` (counted as missing), or raises with ``on_error="raise"``. A pair that no
  metric can score (shapes, lengths, NaN/Inf, a silent reference, empty) and a rate a metric
  is not defined at always raise: they are mistakes upstream, not missing scores.
* :func:`mean_scores` reduces per-file scores to mean / std (population) / count per metric,
  skipping NaN, as the evaluator's ``summary.json`` does.
* :func:`format_metric_table` prints rows of numbers under column names (floats ``.3f``, ints as is).
* :func:`format_summary_table` prints :func:`evaluate_dir`'s summary.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._validate import MetricUndefinedError, check_pair, sample_rate_alias
from .batch import PER_FILE, PER_FILE_NOISY, SUMMARY, _stats
from .composite_measures import composite
from .evaluate import LOWER_IS_BETTER, join_undefined
from .log_spectral import lsd
from .lpc import llr
from .pesq_stoi import pesq, stoi
from .sdr import si_sdr, snr
from .segmental import ssnr
from .weighted_slope import wss

#: Table heading of every metric name :func:`score_pair` knows (units in brackets).
METRIC_LABELS: dict[str, str] = {
    "pesq_wb": "PESQ-WB", "pesq_nb": "PESQ-NB", "stoi": "STOI", "estoi": "ESTOI",
    "si_sdr": "SI-SDR (dB)", "snr": "SNR (dB)", "ssnr": "SSNR (dB)", "lsd": "LSD", "llr": "LLR",
    "wss": "WSS", "csig": "CSIG", "cbak": "CBAK", "covl": "COVL",
}

_Metric = Callable[[Any, Any, int], float]
_SINGLE: dict[str, _Metric] = {
    "pesq_wb": lambda c, e, fs: pesq(c, e, fs, "wb"),
    "pesq_nb": lambda c, e, fs: pesq(c, e, fs, "nb"),
    "stoi": lambda c, e, fs: stoi(c, e, fs, extended=False),
    "estoi": lambda c, e, fs: stoi(c, e, fs, extended=True),
    "si_sdr": si_sdr, "snr": snr, "ssnr": ssnr, "lsd": lsd, "llr": llr, "wss": wss,
}
_COMPOSITE = ("csig", "cbak", "covl")
_ON_ERROR = ("nan", "raise")


@sample_rate_alias
def score_pair(clean: Any, enhanced: Any, sample_rate: int,
               metrics: Sequence[str] = ("pesq_wb", "estoi", "si_sdr"), *,
               on_error: str = "nan") -> dict[str, float]:
    """The ``metrics`` (names of :data:`METRIC_LABELS`) of ``enhanced`` [T] against ``clean``
    [T] at ``sample_rate`` Hz (``sr=`` also accepted), as ``{name: value}`` in that order.

    on_error: ``"nan"`` (default) records NaN for a metric that is undefined for this pair
        (it raises :class:`MetricUndefinedError`) and scores the others; ``"raise"`` re-raises.
    The pair is validated first: input that no metric can score raises
    :class:`MetricInputError` whatever ``on_error`` says, and so does a rate a metric is not
    defined at (:class:`MetricSampleRateError`). The composite measures (``csig`` / ``cbak``
    / ``covl``) are computed once for all three.
    """
    unknown = [m for m in metrics if m not in METRIC_LABELS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRIC_LABELS)}")
    if on_error not in _ON_ERROR:
        raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
    check_pair(clean, enhanced, sample_rate)
    out: dict[str, float] = {}
    comp: dict[str, float] | None = None
    for m in metrics:
        try:
            if m in _COMPOSITE:
                if comp is None:
                    comp = composite(clean, enhanced, sample_rate)
                out[m] = comp[m]
            else:
                out[m] = float(_SINGLE[m](clean, enhanced, sample_rate))
        except MetricUndefinedError:
            if on_error == "raise":
                raise
            out[m] = math.nan
            if m in _COMPOSITE:
                comp = {k: math.nan for k in _COMPOSITE}
    return out


def mean_scores(per_file: Iterable[Mapping[str, float]], metrics: Sequence[str]
                ) -> dict[str, dict[str, float | int | None]]:
    """Per metric ``{"mean", "std" (population), "count"}`` over the files' values, skipping NaN
    (missing scores); mean and std are None where no file has a value."""
    values: dict[str, list[float]] = {m: [] for m in metrics}
    for row in per_file:
        for m in metrics:
            v = row.get(m, math.nan)
            if v is not None and not math.isnan(v):
                values[m].append(float(v))
    return {m: _stats(vs) for m, vs in values.items()}  # the evaluator's summary statistics


def _cell(v: Any, width: int) -> str:
    if v is None:
        return f"{'-':>{width}s}"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return f"{int(v):{width}d}"
    return f"{float(v):{width}.3f}"


def format_metric_table(rows: Mapping[str, Mapping[str, Any]] | Sequence[tuple[str, Mapping[str, Any]]],
                 columns: Sequence[str], *, headers: Mapping[str, str] | None = None,
                 width: int = 14, widths: Mapping[str, int] | None = None,
                 label_width: int = 10) -> str:
    """Rows ``label -> {column: value}`` (or ``(label, values)`` pairs) as aligned text.

    Labels are left-aligned in ``max(label_width, longest label)`` characters; each column is
    right-aligned in ``widths.get(column, width)`` characters under ``headers.get(column,
    column)``. Floats print with 3 decimals (NaN as ``nan``), ints as they are, a missing value
    (or None) as ``-``. A dashed line separates the header from the rows.
    """
    items = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
    headers = headers or {}
    widths = widths or {}
    w0 = max([label_width] + [len(label) for label, _ in items])
    head = f"{'':{w0}s}" + "".join(f"{headers.get(c, c):>{widths.get(c, width)}s}" for c in columns)
    lines = [head, "-" * len(head)]
    for label, vals in items:
        lines.append(f"{label:{w0}s}" + "".join(_cell(vals.get(c), widths.get(c, width)) for c in columns))
    return "\n".join(lines)


def _fmt(s: Mapping[str, Any] | None, signed: bool = False) -> str:
    if not s or s["count"] == 0:
        return "-"
    return f"{s['mean']:+.3f} ± {s['std']:.3f}" if signed else f"{s['mean']:.3f} ± {s['std']:.3f}"


def _undefined_by_file(section: Mapping[str, Any]) -> dict[str, str]:
    """``{file: "metric, ...: reason; ..."}`` from a summary section's per-metric ``undefined``."""
    per_file: dict[str, dict[str, str]] = {}
    for m, entries in section.get("undefined", {}).items():
        for e in entries:
            per_file.setdefault(e["file"], {})[m] = e["reason"]
    return {f: join_undefined(per_file[f]) for f in sorted(per_file)}


def _recomputed_line(section: Mapping[str, Any], kind: str) -> str | None:
    rec = section.get("recomputed") or {}
    if not rec.get("n_files"):
        return None
    why = ", ".join(f"{k} ({n})" for k, n in rec["by_reason"].items())
    return f"{rec['n_files']} {kind} file(s) recomputed: {why}"


def format_summary_table(summary: Mapping[str, Any], out_dir: str | os.PathLike | None = None) -> str:
    """:func:`evaluate_dir`'s summary as plain text: per metric the enhanced (and noisy, delta)
    mean ± std over the files where it is defined, that count and how many files it is
    undefined for; the scored / failed counts, the first ten failures with their reasons, the
    first ten files with undefined metrics and why (not failures), the clipped-file count,
    the files recomputed because an input changed (per reason), the resampled-file count;
    with ``out_dir`` also a last line naming the files written there and how many files this
    run computed. The metrics are those the summary has (with DNSMOS, or DNSMOS only in
    non-intrusive mode, a line says which models scored them)."""
    has_noisy = "noisy" in summary
    enh = summary["enhanced"]
    config = summary.get("config", {})
    names = list(enh["metrics"])
    head = ["metric", "enhanced"] + (["noisy", "delta (enh - noisy)"] if has_noisy else []) + ["count", "undefined"]
    lines = []
    for m in names:
        arrow = "↓" if m in LOWER_IS_BETTER else "↑"
        cells = [f"{m} {arrow}", _fmt(enh["metrics"][m])]
        if has_noisy:
            cells += [_fmt(summary["noisy"]["metrics"][m]), _fmt(summary["delta"]["metrics"][m], signed=True)]
        cells += [str(enh["metrics"][m]["count"]), str(enh["metrics"][m].get("n_undefined", 0))]
        lines.append(cells)
    widths = [max(len(r[i]) for r in [head] + lines) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    out = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in lines]
    if config.get("dnsmos"):
        if config.get("clean_dir") is None:
            out.append("non-intrusive: no clean reference, DNSMOS only")
        out.append("dnsmos_*: DNSMOS P.835 SIG / BAK / OVRL (non-personalised) and P.808 MOS, 1..5 "
                   "(official ONNX models, 16 kHz)")
    out.append(f"{enh['n_ok']}/{enh['n_files']} enhanced files scored, {len(enh['failures'])} failed"
               + (f"; noisy: {summary['noisy']['n_ok']}/{summary['noisy']['n_files']}" if has_noisy else ""))
    for f in enh["failures"][:10]:
        out.append(f"  FAILED {f['file']}: {f['reason']}")
    if len(enh["failures"]) > 10:
        out.append(f"  ... and {len(enh['failures']) - 10} more (see summary.json)")
    undefined = _undefined_by_file(enh)
    if undefined:
        out.append(f"{len(undefined)} enhanced file(s) scored with some metrics undefined (not failures; left out "
                   f"of the means):")
        out += [f"  UNDEFINED {f}: {why}" for f, why in list(undefined.items())[:10]]
        if len(undefined) > 10:
            out.append(f"  ... and {len(undefined) - 10} more (see summary.json)")
    if enh.get("n_clipped"):
        out.append(f"{enh['n_clipped']} enhanced file(s) clipped (samples at |x| >= 1; scored, listed in summary.json)")
    for kind in ("enhanced", "noisy"):
        line = _recomputed_line(summary[kind], kind) if kind in summary else None
        if line:
            out.append(line)
    if summary.get("resampled"):
        rates = sorted({r["from_sr"] for r in summary["resampled"]})
        why = "; DNSMOS needs 16 kHz" if config.get("dnsmos") else ""
        out.append(f"{len(summary['resampled'])} file(s) resampled from {', '.join(f'{r} Hz' for r in rates)} to "
                   f"{summary['config']['sr']} Hz with scipy.signal.resample_poly{why} (listed in summary.json)")
    if out_dir is not None:
        d = Path(out_dir)
        out.append(f"\nwrote {d / PER_FILE}" + (f", {d / PER_FILE_NOISY}" if has_noisy else "")
                   + f" and {d / SUMMARY} ({summary['n_computed_this_run']} file(s) computed this run)")
    return "\n".join(out)
