"""The table of a study (not a public API): per configuration the mean ± 95 % CI over seeds,
Δ against the baseline with a paired Wilcoxon test over test files, the best value per column
marked; quoted rows shown apart and never ranked. Written as ``table.csv`` and into
``results.json`` here, as ``table.md`` by :mod:`_study_markdown`; :func:`check_table`
re-derives every number from the runs' evaluator summaries.

A run's scores are ``{metric: {item: value}}`` (items: test files, or tones for analyze_aa);
its mean is the mean over items (NaN skipped, as se_metrics' summary). Over seeds the runs'
means give :func:`se_metrics.mean_ci`; for the paired test each item's score is first averaged
over the seeds (:func:`se_metrics.item_means`), then paired with the baseline's on the common
items; :func:`se_metrics.best_indices` marks each column's best.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from se_metrics import LOWER_IS_BETTER, METRIC_LABELS, best_indices, item_means, mean_ci, paired_test

#: the columns of a speech-enhancement study, in table order
DEFAULT_METRICS = ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr", "csig", "cbak", "covl", "lsd")
#: analyze_aa's metrics (dB, lower is better)
AA_METRICS = ("nmr_s", "nmr_t", "esr_t", "hesr_t", "asr")
#: eval_ood scores these three per file
OOD_METRICS = ("pesq_wb", "estoi", "si_sdr")
#: analyze_aa's frequency bands (per_tone_band.csv's ``band``); ``"nmr_s@12k-20k"`` names a metric in one band
AA_BANDS = ("20-500", "500-2k", "2k-8k", "8k-12k", "12k-20k")
AA_BAND_METRICS = tuple(f"{m}@{b}" for m in AA_METRICS for b in AA_BANDS)
#: the anti-aliasing research's targets in every band: NMR-S < -10 dB and HESR-R (analyze_aa's HESR-T) < -15 dB
AA_TARGETS_DB = {"nmr_s": -10.0, "hesr_t": -15.0}
LOWER = set(LOWER_IS_BETTER) | set(AA_METRICS) | set(AA_BAND_METRICS)
LABELS = {**METRIC_LABELS, "nmr_s": "NMR-S (dB)", "nmr_t": "NMR-T (dB)", "esr_t": "ESR-T (dB)",
          "hesr_t": "HESR-T (dB)", "asr": "ASR (dB)"}
LABELS.update({f"{m}@{b}": f"{LABELS[m].split(' ')[0]} {b}" for m in AA_METRICS for b in AA_BANDS})


def pooled(metric: str) -> bool:
    """analyze_aa metrics: mean and CI over every tone (and level) of every seed, not over seed means."""
    return metric.split("@")[0] in AA_METRICS
COST_COLUMNS = ("parameters", "macs_per_second", "rtf")
#: the ERB-UNet notes' go / no-go: validation PESQ-WB after the first epoch on VoiceBank-DEMAND
PESQ_GATE = 2.5


@dataclass
class RunScores:
    """One completed run (or the noisy input) at one evaluation setting."""

    seed: int
    per_item: dict[str, dict[str, float]]          # metric -> item -> value
    stats: dict[str, Any] = field(default_factory=dict)
    summary_means: dict[str, float | None] = field(default_factory=dict)  # the evaluator's own means
    run_dir: str = ""
    point_dir: str = ""                               # the evaluation setting's folder (enhanced/, ...)

    def finite(self, metric: str) -> list[float]:
        return [x for x in self.per_item.get(metric, {}).values() if math.isfinite(x)]

    def mean(self, metric: str) -> float | None:
        v = self.finite(metric)
        return float(np.mean(v)) if v else None


@dataclass
class TableRow:
    name: str
    kind: str                                        # model | noisy | quoted
    runs: list[RunScores] = field(default_factory=list)
    expected_seeds: int = 1
    failed: list[dict[str, Any]] = field(default_factory=list)   # {"seed", "log", "error"}
    quoted: dict[str, float] = field(default_factory=dict)
    citation: str = ""
    test_set: str = ""
    note: str = ""
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric -> {"mean","ci","n","delta","p"}
    cost: dict[str, float | None] = field(default_factory=dict)
    best: set[str] = field(default_factory=set)
    group: str = ""                                  # eval_ood: the test set ("ID", "OOD 5 dB"): Δ within it
    is_baseline: bool = False

    @property
    def status(self) -> str:
        if self.kind == "quoted":
            return "quoted"
        if self.expected_seeds == 0:
            return "not run with --quick"
        done = len(self.runs)
        if self.failed:
            return f"failed ({len(self.failed)} of {self.expected_seeds} seeds)"
        if done < self.expected_seeds:
            return f"pending ({done}/{self.expected_seeds} seeds)"
        return "ok"


def compute(rows: list[TableRow], metrics: list[str], baseline: str | None) -> None:
    """Fill each row's ``cells``, ``cost`` and ``best`` (in place). The baseline is the row named
    ``baseline``; where none is (an eval_ood row gives one table row per test set and condition),
    each test set's first model row of that study row is the baseline of its set."""
    base = next((r for r in rows if r.name == baseline), None)
    by_group: dict[str, TableRow] = {}
    if base is None and baseline:
        for r in rows:
            if r.kind == "model" and r.group and r.name.startswith(baseline + " / "):
                by_group.setdefault(r.group, r)
    for b in ([base] if base is not None else list(by_group.values())):
        b.is_baseline = True
    for r in rows:
        if r.kind == "quoted":
            r.cells = {m: {"mean": r.quoted.get(m), "ci": None, "n": None, "delta": None, "p": None} for m in metrics}
            continue
        rb = base if base is not None else by_group.get(r.group)
        for m in metrics:
            ci = _mean_ci(r.runs, m)
            cell: dict[str, Any] = {"mean": ci.mean, "ci": ci.half_width, "n": ci.n, "delta": None, "p": None,
                                    "n_files": None}
            if rb is not None and r is not rb and rb.runs and r.runs:
                bm = _mean_ci(rb.runs, m).mean
                if ci.mean is not None and bm is not None:
                    cell["delta"] = ci.mean - bm
                test = paired_test(item_means([x.per_item.get(m, {}) for x in r.runs]),
                                   item_means([x.per_item.get(m, {}) for x in rb.runs]))
                cell["p"], cell["n_files"] = test.p_value, test.n
            r.cells[m] = cell
        for c in COST_COLUMNS:
            v = [run.stats.get(c) for run in r.runs if run.stats.get(c) is not None]
            r.cost[c] = float(np.mean(v)) if v else None
    measured = [r for r in rows if r.kind != "quoted"]
    for m in metrics:  # the best measured value per column; quoted rows are never ranked
        for i in best_indices([r.cells.get(m, {}).get("mean") for r in measured], lower_is_better=m in LOWER):
            measured[i].best.add(m)


def _mean_ci(runs: list[RunScores], metric: str) -> Any:
    """Over seeds (the runs' means), or for analyze_aa metrics over every tone of every seed."""
    if pooled(metric):
        return mean_ci([x for run in runs for x in run.finite(metric)])
    return mean_ci([x for x in (run.mean(metric) for run in runs) if x is not None])


def aa_verdicts(r: TableRow, metrics: list[str]) -> dict[str, tuple[float, float, bool] | None]:
    """Per band with both NMR-S and HESR-T columns: ``(nmr_s, hesr_t, meets the targets)`` of the
    row's means (None where a mean is undefined)."""
    out: dict[str, tuple[float, float, bool] | None] = {}
    for b in AA_BANDS:
        if f"nmr_s@{b}" not in metrics or f"hesr_t@{b}" not in metrics:
            continue
        n, h = (r.cells.get(f"{m}@{b}", {}).get("mean") for m in ("nmr_s", "hesr_t"))
        out[b] = None if n is None or h is None else (n, h, n < AA_TARGETS_DB["nmr_s"] and h < AA_TARGETS_DB["hesr_t"])
    return out


def criteria_results(rows: list[TableRow], criteria: list[Any]) -> list[dict[str, Any]]:
    """Each study criterion measured: ``{"name", "row", "baseline", "metric", "row_mean",
    "baseline_mean", "gain", "need", "verdict"}`` (gain: row - baseline, or baseline - row for a
    lower-is-better metric; verdict "pass", "FAIL" or "–" where a mean is missing)."""
    by_name = {r.name: r for r in rows}
    out = []
    for c in criteria:
        a = by_name.get(c.row, TableRow(c.row, "model")).cells.get(c.metric, {}).get("mean")
        b = by_name.get(c.baseline, TableRow(c.baseline, "model")).cells.get(c.metric, {}).get("mean")
        gain = None if a is None or b is None else (b - a if c.metric in LOWER else a - b)
        ok = None if gain is None else (gain > c.margin if c.strict else gain >= c.margin)
        out.append({"name": c.name, "row": c.row, "baseline": c.baseline, "metric": c.metric, "row_mean": a,
                    "baseline_mean": b, "gain": gain, "need": f"{'>' if c.strict else '>='} {c.margin:+g}",
                    "verdict": "–" if ok is None else ("pass" if ok else "FAIL")})
    return out


CSV_HEAD = ("configuration", "kind", "status", "seeds")


def csv_text(rows: list[TableRow], metrics: list[str]) -> str:
    """``table.csv``: one line per configuration, full precision, empty where undefined."""
    cols = list(CSV_HEAD)
    for m in metrics:
        cols += [m, f"{m}_ci95", f"{m}_delta", f"{m}_p", f"{m}_best"]
    cols += [*COST_COLUMNS, "citation", "test_set", "logs"]
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        d: dict[str, Any] = {"configuration": r.name, "kind": r.kind, "status": r.status, "seeds": len(r.runs),
                             "citation": r.citation, "test_set": r.test_set,
                             "logs": ";".join(f.get("log") or "" for f in r.failed)}
        for m in metrics:
            c = r.cells.get(m, {})
            for k, key in ((m, "mean"), (f"{m}_ci95", "ci"), (f"{m}_delta", "delta"), (f"{m}_p", "p")):
                d[k] = "" if c.get(key) is None else repr(float(c[key]))
            d[f"{m}_best"] = "1" if m in r.best else ""
        for c in COST_COLUMNS:
            d[c] = "" if r.cost.get(c) is None else repr(float(r.cost[c]))
        w.writerow(d)
    return out.getvalue()


def as_json(rows: list[TableRow], metrics: list[str]) -> list[dict[str, Any]]:
    return [{"configuration": r.name, "kind": r.kind, "status": r.status, "seeds": [x.seed for x in r.runs],
             "expected_seeds": r.expected_seeds, "metrics": r.cells, "best": sorted(r.best), "cost": r.cost,
             "failed": r.failed, "citation": r.citation or None, "test_set": r.test_set or None,
             "run_means": {m: [x.mean(m) for x in r.runs] for m in metrics},
             "summary_means": [x.summary_means for x in r.runs], "run_dirs": [x.run_dir for x in r.runs]}
            for r in rows]


# ----------------------------------------------------------------------------- checking
def check_table(table_csv: Path, rows: list[TableRow], metrics: list[str], *, rel: float = 1e-9) -> list[str]:
    """Problems found when ``table.csv``'s means are compared with the means of the runs' own
    evaluator summaries (``summary.json``, computed by se_metrics independently of the table's
    per-file path); an empty list when every number matches."""
    problems: list[str] = []
    with open(table_csv, newline="") as fh:
        table = {r["configuration"]: r for r in csv.DictReader(fh)}
    for r in rows:
        if r.kind == "quoted":
            continue
        line = table.get(r.name)
        if line is None:
            problems.append(f"{r.name}: missing from {table_csv}")
            continue
        if int(line["seeds"] or 0) != len(r.runs):
            problems.append(f"{r.name}: table says {line['seeds']} seeds, {len(r.runs)} runs are complete")
        for m in metrics:
            pairs = [(x.summary_means.get(m), len(x.finite(m)) if pooled(m) else 1) for x in r.runs]
            pairs = [(v, w) for v, w in pairs if v is not None and w > 0]
            # pooled metrics: the runs' summary means weighted by their tones (equal weights with one tone grid)
            expect = float(np.average([v for v, _ in pairs], weights=[w for _, w in pairs])) if pairs else None
            got = float(line[m]) if line.get(m) else None
            tol = 1e-12
            if "@" in m:  # per_tone_band.csv holds 6 significant digits: each item within 5e-6 of its size
                tol += 5e-6 * max((abs(x) for run in r.runs for x in run.finite(m)), default=0.0)
            if (expect is None) != (got is None) or (expect is not None and got is not None and
                                                     not math.isclose(expect, got, rel_tol=rel, abs_tol=tol)):
                problems.append(f"{r.name} {m}: table {got!r} != mean of the runs' summaries {expect!r}")
    return problems
